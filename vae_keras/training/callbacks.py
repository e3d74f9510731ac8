"""What the trainer calls after each epoch: ``callback(trainer, record)``.

The trainer knows nothing of pictures; the per-epoch sample grid (the training GIF's frames) is
the default callback, :class:`SampleGrid`, which tiles with :func:`vae_keras.io.images.tile_images`.
Pass ``callbacks=()`` to train without it, or add your own (a callable of the trainer and the
epoch's history record).
"""
from __future__ import annotations

import numpy as np

from vae_keras.config import VAEConfig
from vae_keras.io.atomic import save_png_atomic
from vae_keras.io.images import tile_images
from vae_keras.training.checkpoint import SAMPLES_DIR


def fixed_latents(config: VAEConfig, n: int = 16) -> np.ndarray:
    """The latent vectors decoded after every epoch: the same for the whole run (GIF frames)."""
    return np.random.default_rng(config.seed).standard_normal((n, config.latent_dim)).astype(np.float32)


class SampleGrid:
    """After each epoch, decode the run's fixed latents into ``RUN/samples/epoch_0001.png`` ... (a 4 x 4 grid).

    The same latents every epoch (:func:`fixed_latents`), so the frames show one set of draws
    taking shape: ``finish_run_figures`` turns them into ``training.gif``.
    """

    def __init__(self, n: int = 16, ncols: int = 4):
        self.n, self.ncols = int(n), int(ncols)
        self._z = None

    def __call__(self, trainer, record: dict) -> None:
        if self._z is None:
            self._z = fixed_latents(trainer.config, self.n)                     # (n, latent_dim)
        images = trainer.model.decode(self._z, apply_sigmoid=True).numpy()      # (n, S, S, 1)
        path = trainer.run_dir / SAMPLES_DIR / f"epoch_{record['epoch']:04d}.png"
        save_png_atomic(path, tile_images(images, self.ncols))
