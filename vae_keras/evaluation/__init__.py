"""Measuring what a run makes: numbers that say whether the samples are any good.

Owns :mod:`.metrics` (pure functions: sharpness, dense mass, Frechet distance, two-sample test,
memorisation, the threat classifier), :mod:`.evaluate` (``evaluate RUN``: all of them on one run,
``metrics.json``), :mod:`.measures` (what each key of ``metrics.json`` means: titles, formats,
directions, explanations; the tables), :mod:`.augmentation` (the augmentation benchmark's subsets,
classic augmentation and classifier) and :mod:`.detection` (its detector and COCO score). May import :mod:`vae_keras.sampling` and everything below it.
"""
