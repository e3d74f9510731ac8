"""The prior itself: ``z ~ N(0, temperature^2 I)``, the VAE's own assumption (nothing to fit)."""
from __future__ import annotations

import numpy as np

from vae_keras.samplers.base import Sampler, register


@register
class NormalSampler(Sampler):
    """Latents from the prior: ``temperature * eps``, ``eps ~ N(0, I)`` from ``default_rng(seed)``."""

    name = "normal"

    @classmethod
    def fit(cls, model, data, run_dir, **context) -> "NormalSampler":
        return cls(model)

    @classmethod
    def load(cls, run_dir, model, label_prior=None, **options) -> "NormalSampler":
        sampler = cls(model)
        return sampler.configure(**options)

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None, **options) -> np.ndarray:
        """``labels`` is accepted for a uniform interface and ignored: the prior has no classes."""
        eps = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim))
        return (eps * temperature).astype(np.float32)                   # (n, latent_dim)
