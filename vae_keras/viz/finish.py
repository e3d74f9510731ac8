"""What every trained run ends with: its figures and, when asked, its ``metrics.json``.

``train``, ``demo`` and ``scripts/make_figures.py`` all finish a run through :func:`finish_run`,
with the :class:`~vae_keras.training.run.Run` that training returned (or that was opened from
disk): the sampler is the one already fitted and loaded, and every figure uses the same real
images (:func:`figure_images`). Its ``class_samples.png`` is composite when the data set has a
boxed threat of every class (:func:`training_threats`): generated bags with threats cut from the
training split multiplied in, so each row holds its class by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from vae_keras.data.pipeline import load_split
from vae_keras.evaluation.evaluate import evaluate_run, threat_classifier
from vae_keras.io.atomic import PathLike
from vae_keras.io.manifest import CLASSES, MANIFEST, read_manifest
from vae_keras.sampling.objects import OBJECT_CLEAN, OBJECT_SET
from vae_keras.sampling.tip import crops_from_prepared
from vae_keras.viz.figures import ClassRows, class_samples, finish_run_figures


def figure_images(data_dir: PathLike, image_size: int, n: int = 64) -> np.ndarray:
    """Up to ``n`` real images in [0, 1] for a run's figures: the test split's (not trained on) when it has
    at least 8, else the training split's -> (m, S, S, 1) float32."""
    rows = read_manifest(Path(data_dir) / MANIFEST)
    split = "test" if sum(r.split == "test" for r in rows) >= 8 else "train"
    images, _ = load_split(data_dir, split, image_size=image_size)                # (m, S, S, 1) uint8
    return images[:n].astype(np.float32) / 255.0


def training_threats(data_dir: PathLike, image_size: int) -> Tuple[list, str]:
    """The boxed threats of a data set's training split, cut out as transmission maps, and what they are.

    Each is :func:`~vae_keras.sampling.tip.crops_from_prepared`'s crop with the faint bag clutter
    of its box dropped (:data:`~vae_keras.sampling.objects.OBJECT_CLEAN`, as ``objects`` cuts
    them): a threat, not a grey rectangle (on the quick demo's run, 100 bags a class, its
    classifier found a handgun in 22% of composites with the clutter dropped, 8% with it kept).

    Returns:
        ``(crops, description)``: the description names the source for a caption ("simulated
        threats cut from the training phantoms" for the phantom renderer's bags, else real ones);
        no crops for a set without boxes or for an object set (its "bags" are threats already).
    """
    rows = [r for r in read_manifest(Path(data_dir) / MANIFEST) if r.split == "train"]
    if not any(r.boxes for r in rows) or OBJECT_SET.ours(rows):
        return [], ""
    phantoms = all(r.source.startswith("phantom:") for r in rows)           # data_prep.phantoms' rows
    what = ("simulated threats cut from the training phantoms" if phantoms
            else "real threats cut from the training scans")
    return crops_from_prepared(data_dir, "train", image_size=image_size, clean=OBJECT_CLEAN), what


@dataclass
class FinishedRun:
    """What :func:`finish_run` wrote: the figures' paths, the class rows of ``class_samples.png`` (their
    images, exact boxes and, when recognised, the classifier's shares) and, when evaluated, the metrics."""

    figures: list = field(default_factory=list)
    metrics: Optional[dict] = None
    class_rows: Optional[ClassRows] = None


def finish_run(run, data_dir: Optional[PathLike] = None, seed: int = 0, evaluate: bool = False,
               progress: bool = True, recognise: bool = False, two_sample_steps: int = 300) -> FinishedRun:
    """Write a trained run's figures (:func:`~vae_keras.viz.figures.finish_run_figures`) and, with
    ``evaluate``, its ``metrics.json`` (:func:`~vae_keras.evaluation.evaluate.evaluate_run` on ``data_dir``).

    ``class_samples.png`` is composite (:func:`~vae_keras.viz.figures.class_samples` with
    :func:`training_threats`) when ``data_dir`` has a boxed threat of every class; otherwise, for a
    run that can be asked for a class, drawn from its label prior.

    Args:
        run: the trained :class:`~vae_keras.training.run.Run` (``Trainer.fit``'s, or ``open_run``'s).
        data_dir: the prepared data set it was trained on: the real images of the interpolations
            (:func:`figure_images`), the threats of the class rows and the evaluation's; None:
            figures without real images.
        recognise: score each class row with the data set's threat classifier
            (:func:`~vae_keras.evaluation.evaluate.threat_classifier`, trained once and cached, the one
            ``evaluate`` uses): :attr:`FinishedRun.class_rows` ``.found`` and the rows' labels.
        two_sample_steps: with ``evaluate``, the two-sample test's Adam steps per fold (most of the
            evaluation's time on a small run; fewer steps, a weaker test).
    """
    size = run.config.image_size
    images = figure_images(data_dir, size) if data_dir is not None else None
    rows = None
    if data_dir is not None:
        crops, source = training_threats(data_dir, size)
        composite = {c.label for c in crops} >= set(CLASSES)
        if composite or run.answers_labels:
            clf = threat_classifier(data_dir, size, progress) if recognise else None
            rows = class_samples(run.model, run.sampler, seed=seed, threats=crops if composite else None,
                                 classifier=clf, threats_from=source)
    done = FinishedRun(figures=finish_run_figures(run, data_images=images, seed=seed, class_rows=rows),
                       class_rows=rows)
    if evaluate:
        if data_dir is None:
            raise ValueError("finish_run(evaluate=True) needs the data set the run was trained on (data_dir)")
        done.metrics = evaluate_run(run, data_dir, seed=seed, progress=progress, two_sample_steps=two_sample_steps)
    return done
