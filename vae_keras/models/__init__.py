"""The networks and their objectives: what a run *is*, without how it is trained.

Owns :mod:`.cvae` (the subclassed ``CVAE``: encoder, reparameterization, decoder; built from a
``VAEConfig``), :mod:`.losses` (ELBO, sigma-VAE Gaussian, free bits, log-likelihood terms),
:mod:`.adversarial` (PatchGAN discriminator and its losses), :mod:`.latent` (the ``latent``
configuration's spatial-latent encoder, decoder and loss), :mod:`.diffusion` (the latent prior's
U-Net, noise schedule and DDIM sampler) and :mod:`.priors` (what a sample's latent is drawn from:
N(0, I), a Gaussian mixture fitted to the aggregate posterior, one per label combination, or the
learned diffusion prior). May import :mod:`vae_keras.data`, :mod:`vae_keras.io` and the config.
"""
