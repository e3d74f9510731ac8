"""Classic augmentation and the augmentation benchmark's threat classifier.

Four pieces, each used by ``benchmarks/augmentation.py`` and notebook 06:

- :func:`classic_augment`: the usual image augmentations of X-ray detection papers (flips,
  rotations by 90 degrees, random crops, and intensity changes done the physical way, as a
  power of the transmission: ``I ** g`` scales every attenuation by ``g``), on a numpy batch;
- :func:`train_classifier`: the multi-label threat classifier of :mod:`vae_keras.evaluation.metrics`
  (:class:`~vae_keras.metrics.ThreatClassifier`, a small CNN with max pooling) trained for a
  *fixed number of Adam steps*, whatever the training set's size: an arm with more data gets
  more variety, never more optimisation;
- :func:`subset_dataset`: a real subset of a prepared set as a data set of its own (to train
  the VAE on the subset only);
- :func:`score`: per-class AUROC and average precision on a test set (``keras.metrics.AUC``).

Example:
    >>> clf = train_classifier(x_train, y_train, steps=600, seed=0, augment=classic_augment)
    >>> score(clf, x_test, y_test)["mAP"]
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from vae_keras.io.manifest import CLASSES, MANIFEST, ManifestRow, write_manifest
from vae_keras.evaluation.metrics import quantize
from vae_keras.evaluation.metrics import ThreatClassifier


# -- a real subset as a data set -----------------------------------------------------------------
def subset_dataset(data_dir, rows: Sequence[ManifestRow], out_dir) -> Path:
    """A prepared data set (``out_dir/manifest.csv``) listing only ``rows`` of ``data_dir``.

    The images are not copied: each top folder the rows use (``train/``) is a symbolic link to
    the original (copies of just the listed files where links are not allowed), so the VAE of the
    benchmark can be trained on a subset with :func:`vae_keras.train.train` as on any data set.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for top in sorted({Path(r.path).parts[0] for r in rows}):
        link = out_dir / top
        if link.exists():
            continue
        try:
            os.symlink((data_dir / top).resolve(), link, target_is_directory=True)
        except OSError:  # no symlinks (Windows without the right): copy the subset's files
            for r in rows:
                dst = out_dir / r.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(data_dir / r.path, dst)
    write_manifest(out_dir / MANIFEST, rows)
    return out_dir


# -- classic augmentation -------------------------------------------------------------------------
def _crop_resize(img: np.ndarray, rng: np.random.Generator, min_scale: float) -> np.ndarray:
    """A random square crop of ``min_scale``..1 of the side, resized back (bilinear)."""
    from PIL import Image

    size = img.shape[0]
    side = int(round(size * rng.uniform(min_scale, 1.0)))
    if side >= size:
        return img
    x, y = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    crop = Image.fromarray(np.ascontiguousarray(img[y:y + side, x:x + side]), mode="F")
    return np.asarray(crop.resize((size, size), Image.BILINEAR), np.float32)


def classic_augment(images, rng: np.random.Generator, flip: bool = True, rotate: bool = True,
                    crop: float = 0.8, gamma=(0.7, 1.4), gain=(0.9, 1.05), noise: float = 0.02) -> np.ndarray:
    """Randomly flipped, rotated, cropped and re-exposed copies of a batch.

    Args:
        images: (n, S, S, 1) or (n, S, S), uint8 or float in [0, 1].
        rng: numpy random generator.
        flip: horizontal and vertical flips (a bag on the belt has no preferred side).
        rotate: rotations by a multiple of 90 degrees.
        crop: smallest crop side as a fraction of the image (1 = no crops); the crop is resized back.
        gamma: range of the exponent ``g`` of ``I ** g``: thicker (g > 1) or thinner objects.
        gain: range of a global exposure factor.
        noise: standard deviation of added Gaussian noise.

    Returns:
        (n, S, S, 1) float32 in [0, 1].
    """
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1] != x.shape[2]:
        raise ValueError(f"images must be (n, S, S, 1) square, got shape {x.shape}")
    out = np.empty_like(x)
    for i, img in enumerate(x[..., 0]):
        if flip and rng.random() < 0.5:
            img = img[:, ::-1]
        if flip and rng.random() < 0.5:
            img = img[::-1]
        if rotate:
            img = np.rot90(img, int(rng.integers(4)))
        img = np.ascontiguousarray(img)
        if crop < 1.0:
            img = _crop_resize(img, rng, crop)
        img = np.clip(img, 1e-4, 1.0) ** rng.uniform(*gamma) * rng.uniform(*gain)
        if noise > 0:
            img = img + rng.normal(0.0, noise, img.shape)
        out[i, ..., 0] = np.clip(img, 0.0, 1.0)
    return out


# -- the classifier ----------------------------------------------------------------------------
def _batches(x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, seed: int,
             augment: Optional[Callable]):
    """``steps`` batches of shuffled epochs (the last partial batch of an epoch is dropped)."""

    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(len(x)), 0
    bs = min(batch_size, len(x))
    for _ in range(steps):
        if pos + bs > len(order):
            order, pos = rng.permutation(len(x)), 0
        idx = order[pos:pos + bs]
        pos += bs
        xb = x[idx]
        if augment is not None:
            xb = augment(xb, rng)
        yield quantize(xb)[..., None], y[idx]           # 8-bit levels, as a PNG would carry


def train_classifier(images, labels, steps: int = 800, seed: int = 0, batch_size: int = 32,
                     augment: Optional[Callable] = None, width: int = 32, learning_rate: float = 1e-3):
    """Train the benchmark's threat classifier for exactly ``steps`` Adam steps.

    Args:
        images: (n, S, S, 1), uint8 or float in [0, 1] (real and synthetic alike).
        labels: (n, len(CLASSES)) multi-hot.
        steps: optimisation steps, the same for every arm of a comparison.
        augment: ``f(batch, rng) -> batch`` applied to every batch (e.g. :func:`classic_augment`).
        width: the CNN's base width (:func:`vae_keras.metrics.small_cnn`).

    Returns:
        a :class:`vae_keras.metrics.ThreatClassifier` (``predict`` gives per-class probabilities).
    """
    import keras
    import tensorflow as tf


    x = np.asarray(images)
    y = np.asarray(labels, np.float32)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as images (and at least one), got {len(x)} and {len(y)}")
    if y.ndim != 2 or y.shape[1] != len(CLASSES):
        raise ValueError(f"labels must be (n, {len(CLASSES)}) multi-hot, got shape {y.shape}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    keras.utils.set_random_seed(seed)
    clf = ThreatClassifier(x.shape[1], CLASSES, width=width)
    clf.net.compile(keras.optimizers.Adam(learning_rate), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    size = x.shape[1]
    ds = tf.data.Dataset.from_generator(
        lambda: _batches(x, y, int(steps), batch_size, seed, augment),
        output_signature=(tf.TensorSpec((None, size, size, 1), tf.float32),
                          tf.TensorSpec((None, len(CLASSES)), tf.float32)))
    clf.net.fit(ds.prefetch(2), epochs=1, steps_per_epoch=int(steps), verbose=0, shuffle=False)
    clf.info = {"image_size": int(size), "classes": list(CLASSES), "width": width, "steps": int(steps),
                "batch_size": batch_size, "train_images": int(len(x))}
    return clf


def score(classifier, images, labels, num_thresholds: int = 1000) -> Dict[str, object]:
    """Per-class AUROC and average precision of ``classifier`` on ``(images, labels)``.

    Uses ``keras.metrics.AUC`` (``curve="ROC"`` and ``curve="PR"``, the latter the interpolated
    area under the precision-recall curve) one class at a time; a class without positives (or
    without negatives) in ``labels`` scores nan and is left out of the means.

    Args:
        classifier: anything with ``predict(images) -> (n, C)`` probabilities (a
            :class:`~vae_keras.metrics.ThreatClassifier`), or the (n, C) probabilities themselves
            (``images`` is then ignored).
        labels: (n, C) multi-hot truth.

    Returns:
        ``{"auroc": {class: float}, "ap": {class: float}, "mean_auroc": float, "mAP": float}``.
    """
    import keras

    probs = classifier.predict(images) if hasattr(classifier, "predict") else np.asarray(classifier)
    y = np.asarray(labels, np.float32)
    out = {"auroc": {}, "ap": {}}
    for i, name in enumerate(CLASSES):
        if y[:, i].min() == y[:, i].max():
            out["auroc"][name] = out["ap"][name] = float("nan")
            continue
        for key, curve in (("auroc", "ROC"), ("ap", "PR")):
            m = keras.metrics.AUC(num_thresholds=num_thresholds, curve=curve)
            m.update_state(y[:, i], probs[:, i])
            out[key][name] = float(m.result())
    out["mean_auroc"] = float(np.nanmean(list(out["auroc"].values())))
    out["mAP"] = float(np.nanmean(list(out["ap"].values())))
    return out
