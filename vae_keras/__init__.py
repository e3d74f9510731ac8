"""xray-vae: a convolutional VAE that generates synthetic grayscale X-ray baggage images.

Data flow, one module per step::

    data_prep (phantoms / prepare) -> vae_keras.data (tf.data) -> vae_keras.model (CVAE)
    -> vae_keras.train (GradientTape loop) -> vae_keras.generate (sampling, export)
    -> vae_keras.visualize (grids, latent manifold, GIF)

TensorFlow is imported lazily by the submodules so that ``import vae_keras`` and ``--help`` are fast.
"""
from vae_keras.config import NAMED_CONFIGS, VAEConfig, get_config, quick_mode

__version__ = "0.1.0"
__all__ = ["VAEConfig", "NAMED_CONFIGS", "get_config", "quick_mode", "__version__"]
