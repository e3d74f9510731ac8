"""Latents from a prior told *where* the threats are: the diffusion prior conditioned on a box map.

Why: the ``diffusion`` prior is told only *which* threats a bag holds (a global label vector). A
threat covers 1-3% of the latent map and nothing tells the denoiser where it is, so after CPU
budgets the class asked for is rarely drawn (figures/quality_v3/quality.md: handgun 29%, knife 7%,
razor blade 3%, shuriken 0%). Here the U-Net also gets a box map (one channel per class, the share
of each latent cell a box of that class covers) concatenated to the noisy latent, the
layout-to-image idea: each cell is told locally whether it holds a threat.

Training: the data set's boxes (a ``train --config boxes`` run reads them from the manifest),
rasterised at the latent's side; a dropped condition (``label_dropout``) drops the map with the
labels, so classifier-free guidance works as for ``diffusion``. Sampling: a draw asked for a class
takes the layout of a random training bag with the same classes (the boxes of each class from a
random bag holding it when no bag has that combination) and denoises under its map; the layout's
boxes label the sample (:func:`vae_keras.sampling.generate.draw`, so ``generate --format yolo``
writes them). The training layouts are kept in ``RUN/prior/layouts.npz``.

Example:
    >>> z, boxes = open_run("runs/boxes").sampler.sample_layouts(8, labels=[[0, 1, 0, 0]] * 8)  # knives
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from vae_keras.errors import ConfigError
from vae_keras.io.atomic import atomic_write_bytes
from vae_keras.io.manifest import CLASSES
from vae_keras.samplers.base import FitData, register
from vae_keras.samplers.diffusion import DiffusionSampler
from vae_keras.samplers.labels import label_keys

#: the training layouts of a box-conditioned prior, beside its checkpoints
LAYOUTS_FILE = "layouts.npz"


@register
class BoxDiffusionSampler(DiffusionSampler):
    """A ``diffusion`` prior conditioned on box maps as well as labels (see the module docstring).

    Args: as :class:`~vae_keras.samplers.diffusion.DiffusionSampler`; ``layouts``: the training
    layouts ``(labels (n, C) int8, packed boxes (m, 6))`` already in memory (None: read from
    ``RUN/prior/layouts.npz``).
    """

    name = "box_diffusion"
    conditions_on = "boxes"
    box_maps = True
    options = DiffusionSampler.options

    def __init__(self, model, run_dir, layouts=None, **kwargs):
        super().__init__(model, run_dir, **kwargs)
        if layouts is None:
            from vae_keras.models import diffusion

            path = self.run_dir / diffusion.PRIOR_DIR / LAYOUTS_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{self.run_dir} has no training layouts ({path}): its box-conditioned prior "
                                        "was not trained to the end (rerun `train` with --resume)")
            with np.load(path, allow_pickle=False) as f:
                layouts = f["labels"], f["boxes"]
        self.layout_labels = np.asarray(layouts[0], np.int8)                     # (n, C)
        self.layout_boxes = np.asarray(layouts[1], np.float32).reshape(-1, 6)   # [image, class, x1, y1, x2, y2]
        self.image_size = int(model.config.image_size)

    @classmethod
    def training_maps(cls, config, data: FitData):
        from vae_keras.data.layouts import rasterize

        if data.boxes is None:
            raise ConfigError("sampler='box_diffusion' needs the training boxes (a data set whose manifest has them)")
        return rasterize(data.boxes, data.labels, config.image_size, side=config.latent_shape()[0])   # uint8

    @classmethod
    def save_training_layouts(cls, run_dir, data: FitData) -> None:
        from vae_keras.data.layouts import pack_boxes
        from vae_keras.models import diffusion

        buf = io.BytesIO()
        np.savez(buf, labels=(np.asarray(data.labels) > 0.5).astype(np.int8), boxes=pack_boxes(data.boxes))
        atomic_write_bytes(Path(run_dir) / diffusion.PRIOR_DIR / LAYOUTS_FILE, buf.getvalue())

    def pick_layouts(self, n: int, seed: int = 0, labels=None) -> tuple:
        """``n`` layouts: ``(labels (n, C) float32, boxes: one list per draw)``.

        ``labels`` None: random training layouts (the training mix). Otherwise, per draw, the layout of a
        random training bag with exactly those classes; for a combination no training bag has, each
        class's boxes from a random training bag that holds the class (a class no bag has a box of
        is asked for by its label alone).
        """
        from vae_keras.data.layouts import boxes_per_class, unpack_boxes

        rng = np.random.default_rng([int(seed), 7919])
        train_keys = label_keys(self.layout_labels)
        if labels is None:
            picks = rng.integers(len(train_keys), size=int(n))
            return self.layout_labels[picks].astype(np.float32), unpack_boxes(self.layout_boxes, picks)
        wanted = np.asarray(labels, np.float32).reshape(int(n), self.num_classes)
        wanted_keys = label_keys(wanted)
        boxed = np.zeros_like(self.layout_labels)                 # (n, C): the image has a box of the class
        boxed[self.layout_boxes[:, 0].astype(int), self.layout_boxes[:, 1].astype(int)] = 1
        boxes: list = [None] * int(n)
        for key in sorted(set(wanted_keys)):
            draws = [j for j, k in enumerate(wanted_keys) if k == key]
            same = [i for i, k in enumerate(train_keys) if k == key]
            if same:
                for j, i in zip(draws, rng.choice(same, size=len(draws))):
                    boxes[j] = unpack_boxes(self.layout_boxes, [int(i)])[0]
                continue
            for j in draws:
                boxes[j] = boxes_per_class(self.layout_boxes, boxed, key, rng)
        return wanted, boxes

    def sample_layouts(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None, boxes=None, **options):
        """``n`` latents and the layouts they were drawn under: ``(z (n, latent_dim), boxes: one list per draw)``.

        ``boxes``: the layouts to draw under (one list of ``{"label", "box"}`` per draw, in pixels of the
        run's image size; ``labels`` then default to their classes); None: :meth:`pick_layouts`.
        """
        from vae_keras.data.layouts import rasterize

        n = int(n)
        if boxes is None:
            labels, boxes = self.pick_layouts(n, seed, labels)
        elif len(boxes) != n:
            raise ValueError(f"boxes must hold one list per draw (n={n}), got {len(boxes)}")
        elif labels is None:
            labels = np.array([[float(any(b["label"] == c for b in bs)) for c in CLASSES] for bs in boxes],
                              np.float32)
        maps = rasterize(boxes, labels, self.image_size, side=self.latent_shape[0]).astype(np.float32) / 255.0
        return self._denoise(n, temperature, seed, labels, maps, options), boxes

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None, **options) -> np.ndarray:
        """``n`` latents (n, latent_dim), each under a layout :meth:`pick_layouts` chose (see :meth:`sample_layouts`)."""
        return self.sample_layouts(n, temperature, seed, labels, **options)[0]

