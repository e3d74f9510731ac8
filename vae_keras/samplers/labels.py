"""The labels of a run: the training split's label mix, class names as vectors, and fallback notes.

A run trained on labelled data keeps its training split's label combinations and their
frequencies (``RUN/label_prior.npz``): a sample asked for no particular class gets a label mix
drawn from it, so an export has the training data's class balance. :class:`LabelPrior` is read
once per loaded run and handed to whoever needs it (the diffusion sampler, ``generate``,
``evaluate``, the gallery).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike, atomic_write_bytes
from vae_keras.io.manifest import CLASSES

LABELS_FILE = "label_prior.npz"
#: The manifest's ``fallback`` note of an image whose label combination had no mixture of its own.
FALLBACK_NOTE = "label mix too rare"


class LabelPrior:
    """The training split's label combinations ``combos`` (k, C) and their ``counts`` (k,)."""

    def __init__(self, combos: np.ndarray, counts: np.ndarray):
        self.combos = np.asarray(combos, np.float32)
        self.counts = np.asarray(counts)

    @classmethod
    def from_labels(cls, labels) -> "LabelPrior":
        combos, counts = np.unique(np.asarray(labels, np.float32), axis=0, return_counts=True)
        return cls(combos, counts)

    def save(self, run_dir: PathLike) -> Path:
        buf = io.BytesIO()
        np.savez(buf, combos=self.combos, counts=self.counts)
        return atomic_write_bytes(Path(run_dir) / LABELS_FILE, buf.getvalue())

    @classmethod
    def load(cls, run_dir: PathLike) -> Optional["LabelPrior"]:
        """The run's label prior, or None when it saved none (its data had no labels)."""
        path = Path(run_dir) / LABELS_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as f:
            return cls(f["combos"], f["counts"])

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` multi-hot label vectors drawn with the training split's frequencies -> (n, C) float32."""
        idx = np.random.default_rng(seed + 7919).choice(len(self.combos), size=int(n),
                                                        p=self.counts / self.counts.sum())
        return self.combos[idx].astype(np.float32)

    def mix(self, n: int, seed: int = 0) -> List[List[str]]:
        """:meth:`sample` as ``n`` lists of class names."""
        return [[c for c, v in zip(CLASSES, row) if v > 0.5] for row in self.sample(n, seed)]


# -- path-based helpers (notebooks, benchmarks): read the file on each call ---------------------------
def save_label_prior(run_dir: PathLike, labels: np.ndarray) -> Path:
    """Save the training split's label combinations and their frequencies (``RUN/label_prior.npz``)."""
    return LabelPrior.from_labels(labels).save(run_dir)


def sample_label_prior(run_dir: PathLike, n: int, seed: int = 0) -> np.ndarray:
    """``n`` multi-hot label vectors drawn with the training split's frequencies -> (n, C) float32."""
    prior = LabelPrior.load(run_dir)
    if prior is None:
        raise FileNotFoundError(f"{run_dir} has no {LABELS_FILE}: its training data had no labels")
    return prior.sample(n, seed)


def sample_label_mix(run_dir: PathLike, n: int, seed: int = 0):
    """``n`` lists of class names drawn with the training split's label frequencies, or None when the
    run saved no label prior (its data had no labels)."""
    prior = LabelPrior.load(run_dir)
    return None if prior is None else prior.mix(n, seed)


# -- class names ----------------------------------------------------------------------------------------
def per_sample_labels(labels, n: int) -> List[List[str]]:
    """``None`` | class names for all samples | one list of class names per sample -> n lists."""
    if labels is None:
        return [[] for _ in range(n)]
    if isinstance(labels, str):
        labels = [labels]
    labels = list(labels)
    if all(isinstance(l, str) for l in labels):
        per = [list(labels)] * n
    else:
        if len(labels) != n:
            raise ValueError(f"labels per sample must have n={n} entries, got {len(labels)}")
        per = [[l] if isinstance(l, str) else list(l) for l in labels]
    unknown = sorted({l for ls in per for l in ls} - set(CLASSES))
    if unknown:
        raise DataError(f"unknown label(s) {unknown}; known classes: {', '.join(CLASSES)} (or none for a benign bag)")
    return per


def label_vectors(per_labels: Sequence[Sequence[str]]) -> np.ndarray:
    """Lists of class names -> (n, len(CLASSES)) float32 multi-hot vectors (the model's condition)."""
    y = np.zeros((len(per_labels), len(CLASSES)), np.float32)
    for i, names in enumerate(per_labels):
        for name in names:
            y[i, CLASSES.index(name)] = 1.0
    return y


def fallback_notes(sampler, labels, n: int) -> List[str]:
    """The manifest's ``fallback`` column of ``n`` samples asked for ``labels`` (see :func:`per_sample_labels`):
    :data:`FALLBACK_NOTE` where ``sampler`` drew a latent that need not hold them, else ``""``."""
    if sampler is None or labels is None:
        return [""] * int(n)
    flags = sampler.fallbacks(label_vectors(per_sample_labels(labels, int(n))))
    return [FALLBACK_NOTE if len(flags) and flags[i] else "" for i in range(int(n))]


def label_keys(labels) -> list:
    """Multi-hot rows (n, C) -> n hashable keys (tuples of 0/1): a label combination per row."""
    return [tuple(int(v > 0.5) for v in row) for row in np.asarray(labels)]
