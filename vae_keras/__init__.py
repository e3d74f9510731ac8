"""xray-vae: variational autoencoders that generate synthetic grayscale X-ray baggage images.

The package is laid out by stage; imports run one way, from the top of this list down::

    vae_keras.cli         the command line (python -m vae_keras COMMAND), one function per subcommand
    vae_keras.viz         figures (grids, manifold, GIF, loss curves) and the HTML gallery
    vae_keras.evaluation  metrics, evaluate RUN, the augmentation benchmark's classifier
    vae_keras.sampling    generate, threat image projection, composites, labelled export
    vae_keras.training    the GradientTape trainer, the run folder (checkpoints), a loaded Run, tf.distribute
    vae_keras.samplers    where latents come from: normal, gmm, the diffusion prior (one registered class each)
    vae_keras.models      the CVAE, losses, the patch discriminator, the diffusion U-Net
    vae_keras.data        the tf.data pipeline and the threat box maps
    vae_keras.io          atomic writes, the manifest, YOLO/VOC/CSV files (no TensorFlow)
    vae_keras.config      VAEConfig, one dataclass per run, and the named configurations
    vae_keras.errors      the project's expected errors
    vae_keras.course      the notebooks' setup cell (Colab or local)

``data_prep`` (phantoms, importers, TFDS builders) sits beside it and uses only ``vae_keras.io``.

The names most users call are importable from here; they load their stage (and TensorFlow) on
first use, so ``import vae_keras`` and ``--help`` stay fast::

    from vae_keras import get_config, train, open_run, sample_images, image_grid
"""
from importlib import import_module

from vae_keras.config import NAMED_CONFIGS, VAEConfig, get_config, quick_mode

__version__ = "0.1.0"

# public name -> the module that defines it (loaded on first access, PEP 562)
_LAZY = {
    "load_split": "vae_keras.data.pipeline", "make_dataset": "vae_keras.data.pipeline",
    "CVAE": "vae_keras.models.cvae", "build_model": "vae_keras.models.cvae",
    "load_sampler": "vae_keras.samplers", "get_sampler": "vae_keras.samplers",
    "open_run": "vae_keras.training.run", "Run": "vae_keras.training.run",
    "Trainer": "vae_keras.training.trainer", "train": "vae_keras.training.trainer",
    "load_run": "vae_keras.training.checkpoint", "load_history": "vae_keras.training.checkpoint",
    "sample_images": "vae_keras.sampling.generate", "reconstruct": "vae_keras.sampling.generate",
    "interpolate": "vae_keras.sampling.generate", "export_samples": "vae_keras.sampling.generate",
    "export_run": "vae_keras.sampling.export",
    "evaluate_run": "vae_keras.evaluation.evaluate",
    "image_grid": "vae_keras.viz.figures", "latent_manifold": "vae_keras.viz.figures",
    "make_gif": "vae_keras.viz.figures", "plot_history": "vae_keras.viz.figures",
    "build_gallery": "vae_keras.viz.gallery", "finish_run": "vae_keras.viz.finish",
}
__all__ = ["VAEConfig", "NAMED_CONFIGS", "get_config", "quick_mode", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vae_keras' has no attribute {name!r}")
