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
- :func:`score`: per-class AUROC and average precision on a test set (``keras.metrics.AUC``);
- :func:`check_not_collapsed`: the guard every classifier and detector run passes at its end: a
  network whose training loss never fell below the loss of predicting the label prior (constant
  outputs, AUROC 0.50) raises :class:`~vae_keras.errors.TrainingCollapsed` instead of entering a
  table as a result.

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

from vae_keras.errors import TrainingCollapsed
from vae_keras.io.manifest import CLASSES, MANIFEST, ManifestRow, write_manifest
from vae_keras.evaluation.metrics import compile_bce, quantize
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


# -- the guard against collapsed training ------------------------------------------------------
#: The guard compares the mean training loss over this last share of the steps with the prior's loss.
COLLAPSE_TAIL = 0.25
#: ... and fires unless that mean is below ``(1 - COLLAPSE_MARGIN)`` times the prior's loss. A
#: collapsed network sits at the prior's loss (the constant it learns is the prior): measured 1.000
#: and 1.0003 times it (128 px, 800 steps). Classifiers that learned ended at 0.58-0.92 times it
#: (64 px, 800 steps, seeds 0-2, with and without TIP) and 0.67-0.80 (128 px).
COLLAPSE_MARGIN = 0.02
#: Shorter runs are not checked: a classifier that is learning may still sit near the prior's loss
#: after 150 steps (64 px, width 16: 0.96-1.00 times it, seeds 0-2), and ``--quick`` runs 20 steps.
COLLAPSE_MIN_STEPS = 500


def prior_bce(labels) -> float:
    """Binary cross-entropy of predicting each class's frequency in ``labels`` for every image.

    The loss of the best network with constant outputs (mean over classes, like
    ``keras.losses.BinaryCrossentropy``): ``-mean_c [p_c log p_c + (1 - p_c) log(1 - p_c)]``.
    """
    p = np.clip(np.asarray(labels, np.float64).mean(axis=0), 1e-7, 1 - 1e-7)
    return float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))


def tail_mean(losses: Sequence[float], tail: float = COLLAPSE_TAIL) -> float:
    """Mean of the last ``tail`` share of per-step ``losses`` (at least one step)."""
    losses = np.asarray(losses, np.float64)
    return float(losses[-max(1, int(round(tail * len(losses)))):].mean())


def check_not_collapsed(loss: float, prior_loss: float, what: str, steps: int, advice: str = "") -> None:
    """Raise :class:`~vae_keras.errors.TrainingCollapsed` unless ``loss`` fell below the prior's loss.

    Args:
        loss: the mean training loss (or the term of it that the prior predicts) over the last
            :data:`COLLAPSE_TAIL` of the run, e.g. from :func:`tail_mean`.
        prior_loss: that loss for constant outputs equal to the training split's label prior.
        what: the model, for the message ("the threat classifier").
        steps: the run's steps; runs shorter than :data:`COLLAPSE_MIN_STEPS` are not checked.
        advice: what to try, appended to the message.
    """
    if int(steps) < COLLAPSE_MIN_STEPS or not np.isfinite(prior_loss) or prior_loss <= 0:
        return
    if not np.isfinite(loss) or loss >= (1.0 - COLLAPSE_MARGIN) * prior_loss:
        raise TrainingCollapsed(
            f"{what} did not learn: its mean training loss over the last {COLLAPSE_TAIL:.0%} of {int(steps)} steps "
            f"is {loss:.4f}, not below {1 - COLLAPSE_MARGIN:.2f} x {prior_loss:.4f}, the loss of predicting the "
            f"training labels' frequencies for every image; its outputs are (nearly) constant and its scores "
            f"would be those of guessing. {advice}".rstrip())


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


def he_initialize(net, seed: int = 0) -> None:
    """Redraw the kernels of ``net``'s ReLU layers (every Conv2D and Dense but ``logits``) from He's normal.

    Why: Keras' default (Glorot uniform) halves a ReLU layer's signal variance, and the classifier
    has eight ReLU convolutions and a ReLU dense layer; its initial logits then differ from image to
    image by ~0.001 (128 px, width 16: std 0.001-0.003 across bags for seeds 0-2, 0.10-0.25 with He).
    Such a network starts on the plateau of the label prior and may never leave it: at 25% of the
    128-px phantoms, seed 2's ``classic+tip`` classifier kept its loss at the prior's for all 800
    steps and scored AUROC 0.50 (the collapse of issue #24, reproduced); with He's initialisation
    the same run leaves the plateau after ~200 steps and scores AUROC 0.82, mAP 0.68.
    """
    import keras

    for i, layer in enumerate(net.layers):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.name != "logits":
            layer.kernel.assign(keras.initializers.HeNormal(seed=int(seed) * 1000 + i)(layer.kernel.shape))


def train_classifier(images, labels, steps: int = 800, seed: int = 0, batch_size: int = 32,
                     augment: Optional[Callable] = None, width: int = 32, learning_rate: float = 1e-3):
    """Train the benchmark's threat classifier for exactly ``steps`` Adam steps.

    Args:
        images: (n, S, S, 1), uint8 or float in [0, 1] (real and synthetic alike).
        labels: (n, len(CLASSES)) multi-hot.
        steps: optimisation steps, the same for every arm of a comparison.
        augment: ``f(batch, rng) -> batch`` applied to every batch (e.g. :func:`classic_augment`).
        width: the CNN's base width (:func:`vae_keras.metrics.small_cnn`).
        learning_rate: Adam's.

    The kernels of the ReLU layers start from He's initialisation (:func:`he_initialize`), not Keras'
    Glorot: with Glorot a seed could leave the network on the label prior's plateau for good.

    Returns:
        a :class:`vae_keras.metrics.ThreatClassifier` (``predict`` gives per-class probabilities);
        ``info["train_loss"]`` and ``info["prior_loss"]`` are the guard's two numbers.

    Raises:
        TrainingCollapsed: the mean training loss over the last quarter of the steps is not below
            the loss of predicting the labels' frequencies (:func:`check_not_collapsed`).
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
    he_initialize(clf.net, seed)
    compile_bce(clf.net, learning_rate)
    size = x.shape[1]
    ds = tf.data.Dataset.from_generator(
        lambda: _batches(x, y, int(steps), batch_size, seed, augment),
        output_signature=(tf.TensorSpec((None, size, size, 1), tf.float32),
                          tf.TensorSpec((None, len(CLASSES)), tf.float32)))
    running = []                              # Keras logs the epoch's running mean loss after each batch
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: running.append(float(logs["loss"])))
    clf.net.fit(ds.prefetch(2), epochs=1, steps_per_epoch=int(steps), verbose=0, shuffle=False, callbacks=[record])
    mean = np.asarray(running, np.float64) * np.arange(1, len(running) + 1)       # cumulative sums
    losses = np.diff(mean, prepend=0.0)                                               # per-step losses
    clf.info = {"image_size": int(size), "classes": list(CLASSES), "width": width, "steps": int(steps),
                "batch_size": batch_size, "train_images": int(len(x)), "learning_rate": learning_rate,
                "train_loss": tail_mean(losses), "prior_loss": prior_bce(y)}
    check_not_collapsed(clf.info["train_loss"], clf.info["prior_loss"], "the threat classifier", steps,
                        "Try another seed, a lower learning rate or more steps, and check that the labels "
                        "match the images.")
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
