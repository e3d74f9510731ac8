"""Fitting a model to a prepared data set and keeping the run folder.

Owns :mod:`.steps` (one ``tf.GradientTape`` step per objective: the seed's ELBO, the weighted
ELBO of the improved configurations, the adversarial term), :mod:`.trainer` (the loop: data,
model, epochs, resume, ``init_from``, then the sampler's fit through the registry),
:mod:`.callbacks` (what runs after each epoch: the per-epoch sample grid), :mod:`.checkpoint`
(the run folder: ``config.json``, checkpoints, history; loading a run builds the model from its
config and restores weights, never executes code), :mod:`.run` (a trained run loaded once:
:class:`~vae_keras.training.run.Run`, what ``Trainer.fit`` returns and everything above takes)
and :mod:`.distribute` (strategies and mixed precision). May import :mod:`vae_keras.samplers`,
:mod:`vae_keras.models`, :mod:`vae_keras.data`, :mod:`vae_keras.io` and the config.
"""
