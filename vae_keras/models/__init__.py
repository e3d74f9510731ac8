"""The networks and their objectives: what a run *is*, without how it is trained.

Owns :mod:`.cvae` (the subclassed ``CVAE``: encoder, reparameterization, decoder; built from a
``VAEConfig``), :mod:`.losses` (ELBO, sigma-VAE Gaussian, free bits, log-likelihood terms),
:mod:`.adversarial` (PatchGAN discriminator and its losses), :mod:`.latent` (the ``latent``
configuration's spatial-latent encoder, decoder and loss), :mod:`.diffusion` (the latent prior's
U-Net, noise schedule and DDIM sampler) and :mod:`.encode` (the one batched encoder: posterior
means of many images). What a sample's latent is drawn from is :mod:`vae_keras.samplers`, above
this package. May import :mod:`vae_keras.data`, :mod:`vae_keras.io` and the config.
"""
