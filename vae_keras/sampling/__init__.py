"""Using a trained run: new images, reconstructions, and labelled images with exact boxes.

Owns :mod:`.generate` (latents -> images, batched decoding, plain PNG export), :mod:`.tip`
(threat image projection: real threat crops projected into bags by Beer-Lambert; the hybrid
mode), :mod:`.objects` (the object VAE's data set and composite generation), :mod:`.insert`
(generated threats inserted into given bags: ``generate --into``) and :mod:`.export`
(``generate --format``: choose the source of labelled images, write them through
:mod:`vae_keras.io.detection`). Each takes a loaded :class:`~vae_keras.training.run.Run` (or a
run folder, opened once). May import :mod:`vae_keras.training` (to open or train runs),
:mod:`vae_keras.samplers`, :mod:`vae_keras.models`, :mod:`vae_keras.data` and :mod:`vae_keras.io`.
"""
