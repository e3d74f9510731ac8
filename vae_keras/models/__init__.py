"""The networks and their objectives: what a run *is*, without how it is trained.

Owns :mod:`.cvae` (the subclassed ``CVAE``: encoder, reparameterization, decoder; built from a
``VAEConfig``), :mod:`.losses` (ELBO, sigma-VAE Gaussian, free bits, log-likelihood terms),
:mod:`.adversarial` (PatchGAN discriminator and its losses) and :mod:`.priors` (what a sample's
latent is drawn from: N(0, I) or a Gaussian mixture fitted to the aggregate posterior, one per
label combination). May import :mod:`vae_keras.data`, :mod:`vae_keras.io` and the config.
"""
