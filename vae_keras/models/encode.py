"""The one batched encoder: posterior means of many images, a batch at a time.

Every consumer of a trained encoder's codes (the Gaussian-mixture sampler, the diffusion prior's
training latents, reconstructions, interpolations, the latent manifold) goes through
:func:`posterior_means`, so they all scale pixels and batch the same way.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


def as_unit_float(x) -> np.ndarray:
    """uint8 pixels (or layout maps) -> float32 in [0, 1]; anything else -> float32 unchanged."""
    x = np.asarray(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def posterior_means(model, images, conditions: Optional[np.ndarray] = None, batch_size: int = 256) -> np.ndarray:
    """The encoder's means of ``images`` (n, S, S, 1), uint8 or [0, 1] -> (n, latent_dim) float32.

    Args:
        conditions: a conditional model's conditions, one row per image: (n, C) labels or a layout
            model's (n, L, L, C) maps (uint8 maps are scaled to [0, 1]); None for other models.
        batch_size: images encoded at once.
    """
    x = as_unit_float(images)
    y = None if conditions is None else as_unit_float(conditions)
    codes = []
    for i in range(0, len(x), int(batch_size)):
        xb = tf.constant(x[i:i + batch_size])
        mean = model.encode(xb)[0] if y is None else model.encode(xb, y=tf.constant(y[i:i + batch_size]))[0]
        codes.append(mean.numpy())                                     # (b, latent_dim)
    return np.concatenate(codes) if codes else np.zeros((0, int(model.latent_dim)), np.float32)
