"""Fitting a model to a prepared data set and keeping the run folder.

Owns :mod:`.steps` (one ``tf.GradientTape`` step per objective: the seed's ELBO, the weighted
ELBO of the improved configurations, the adversarial term), :mod:`.trainer` (the loop: data,
model, epochs, resume, ``init_from``), :mod:`.prior` (a ``latent`` run's second stage: its diffusion prior), :mod:`.checkpoint` (the run folder: ``config.json``,
checkpoints, history; loading a run builds the model from its config and restores weights, never
executes code) and :mod:`.distribute` (strategies and mixed precision). May import
:mod:`vae_keras.models`, :mod:`vae_keras.data`, :mod:`vae_keras.io` and :mod:`vae_keras.viz.figures`
(per-epoch grids).
"""
