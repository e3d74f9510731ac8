"""What every trained run ends with: its figures and, when asked, its ``metrics.json``.

``train``, ``demo`` and ``scripts/make_figures.py`` all finish a run through :func:`finish_run`,
with the :class:`~vae_keras.training.run.Run` that training returned (or that was opened from
disk): the sampler is the one already fitted and loaded, and every figure uses the same real
images (:func:`figure_images`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from vae_keras.data.pipeline import load_split
from vae_keras.evaluation.evaluate import evaluate_run
from vae_keras.io.atomic import PathLike
from vae_keras.io.manifest import MANIFEST, read_manifest
from vae_keras.viz.figures import finish_run_figures


def figure_images(data_dir: PathLike, image_size: int, n: int = 64) -> np.ndarray:
    """Up to ``n`` real images in [0, 1] for a run's figures: the test split's (not trained on) when it has
    at least 8, else the training split's -> (m, S, S, 1) float32."""
    rows = read_manifest(Path(data_dir) / MANIFEST)
    split = "test" if sum(r.split == "test" for r in rows) >= 8 else "train"
    images, _ = load_split(data_dir, split, image_size=image_size)                # (m, S, S, 1) uint8
    return images[:n].astype(np.float32) / 255.0


@dataclass
class FinishedRun:
    """What :func:`finish_run` wrote: the figures' paths and, when evaluated, the metrics."""

    figures: list = field(default_factory=list)
    metrics: Optional[dict] = None


def finish_run(run, data_dir: Optional[PathLike] = None, seed: int = 0, evaluate: bool = False,
               progress: bool = True) -> FinishedRun:
    """Write a trained run's figures (:func:`~vae_keras.viz.figures.finish_run_figures`) and, with
    ``evaluate``, its ``metrics.json`` (:func:`~vae_keras.evaluation.evaluate.evaluate_run` on ``data_dir``).

    Args:
        run: the trained :class:`~vae_keras.training.run.Run` (``Trainer.fit``'s, or ``open_run``'s).
        data_dir: the prepared data set it was trained on: the real images of the interpolations
            (:func:`figure_images`) and the evaluation's; None: figures without real images.
    """
    images = figure_images(data_dir, run.config.image_size) if data_dir is not None else None
    done = FinishedRun(figures=finish_run_figures(run, data_images=images, seed=seed))
    if evaluate:
        if data_dir is None:
            raise ValueError("finish_run(evaluate=True) needs the data set the run was trained on (data_dir)")
        done.metrics = evaluate_run(run, data_dir, seed=seed, progress=progress)
    return done
