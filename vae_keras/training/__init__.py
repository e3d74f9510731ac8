"""Fitting a model to a prepared data set and keeping the run folder.

Owns :mod:`.trainer` (the ``tf.GradientTape`` loop: data, model, steps per objective, epochs,
resume), :mod:`.checkpoint` (the run folder: ``config.json``, checkpoints, history; loading a run
builds the model from its config and restores weights, never executes code) and
:mod:`.distribute` (strategies and mixed precision). May import :mod:`vae_keras.models`,
:mod:`vae_keras.data`, :mod:`vae_keras.io` and :mod:`vae_keras.viz.figures` (per-epoch grids).
"""
