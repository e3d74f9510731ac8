"""Where the latent vectors come from: the prior, or a density fitted to the trained encoder's codes.

A VAE's prior ``N(0, I)`` and its aggregate posterior ``q(z) = mean_x q(z|x)`` never match
exactly; prior draws that land in the holes of ``q(z)`` decode to blurry, object-less bags.
Ghosh et al. (2020, "From variational to deterministic autoencoders") fit a Gaussian mixture to
the training set's latent codes after training and sample from it instead ("ex-post density
estimation"). As in pythae, samplers are separate objects that take a trained model::

    sampler = GMMSampler(model, n_components=10).fit(train_images)
    sampler.save(run_dir)                         # RUN/sampler_gmm.npz (arrays only, no pickle)
    z = load_sampler(run_dir, model).sample(500)  # (500, latent_dim) float32

Why the EM is written here (about 40 lines of numpy) rather than taken from scikit-learn: it is
the only thing we would use from that package, and owning it keeps the fitted state a plain npz.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from data_prep.atomic import PathLike

GMM_FILE = "sampler_gmm.npz"
LABELS_FILE = "label_prior.npz"


class NormalSampler:
    """Latents from the prior: ``temperature * eps``, ``eps ~ N(0, I)`` from ``default_rng(seed)``."""

    def __init__(self, model):
        self.latent_dim = int(model.latent_dim)

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        eps = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim))
        return (eps * temperature).astype(np.float32)                   # (n, latent_dim)


def _log_gauss(x, means, chols):
    """``log N(x; means[j], L_j L_j^T)`` for every component -> (n, k)."""
    n, d = x.shape
    out = np.empty((n, len(means)))
    for j, (m, chol) in enumerate(zip(means, chols)):
        sol = np.linalg.solve(chol, (x - m).T)                          # (d, n): L^-1 (x - m)
        out[:, j] = (-0.5 * np.sum(sol ** 2, axis=0) - np.sum(np.log(np.diag(chol)))
                     - 0.5 * d * np.log(2 * np.pi))
    return out


def fit_gmm(x: np.ndarray, n_components: int, seed: int = 0, max_iter: int = 200, tol: float = 1e-6,
            reg: float = 1e-4):
    """Full-covariance Gaussian mixture by expectation-maximisation.

    Args:
        x: (n, d) data. n_components: k. reg: added to every covariance's diagonal.

    Returns:
        ``(weights (k,), means (k, d), covariances (k, d, d), mean log-likelihood)``.
    """
    x = np.asarray(x, np.float64)
    n, d = x.shape
    k = int(min(n_components, n))
    if k < 1:
        raise ValueError(f"fit_gmm needs at least one point, got {n}")
    rng = np.random.default_rng(seed)
    means = x[rng.choice(n, k, replace=False)]
    covs = np.tile(np.cov(x.T).reshape(d, d) + reg * np.eye(d), (k, 1, 1))
    weights = np.full(k, 1.0 / k)
    prev = -np.inf
    for _ in range(max_iter):
        # E step: responsibilities (n, k)
        logp = _log_gauss(x, means, np.linalg.cholesky(covs)) + np.log(weights)
        ll = np.logaddexp.reduce(logp, axis=1)
        resp = np.exp(logp - ll[:, None])
        # M step
        nk = resp.sum(axis=0) + 1e-10
        weights = nk / n
        means = resp.T @ x / nk[:, None]
        for j in range(k):
            diff = x - means[j]
            covs[j] = (resp[:, j, None] * diff).T @ diff / nk[j] + reg * np.eye(d)
        if ll.mean() - prev < tol * max(1.0, abs(prev)):
            break
        prev = ll.mean()
    return weights, means, covs, float(ll.mean())


class GMMSampler:
    """Latents from a Gaussian mixture fitted to the posterior means of the training images.

    Args:
        model: a trained CVAE. n_components: mixture size (Ghosh et al. use 10). seed: EM start.
    """

    def __init__(self, model, n_components: int = 10, seed: int = 0):
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.model = model
        self.latent_dim = int(model.latent_dim)
        self.n_components = int(n_components)
        self.seed = int(seed)
        self.weights = self.means = self.covariances = None

    def fit(self, images, labels=None, batch_size: int = 256) -> "GMMSampler":
        """Encode ``images`` (n, S, S, 1), uint8 or [0, 1], and fit the mixture to their means."""
        import tensorflow as tf

        x = np.asarray(images)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        codes = []
        for i in range(0, len(x), batch_size):
            y = None if labels is None else tf.constant(labels[i:i + batch_size], tf.float32)
            codes.append(self.model.encode(tf.constant(x[i:i + batch_size]), y=y)[0].numpy())
        z = np.concatenate(codes)                                         # (n, latent_dim)
        self.weights, self.means, self.covariances, self.log_likelihood = fit_gmm(
            z, self.n_components, seed=self.seed)
        return self

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        """``n`` latents: a component by its weight, then ``mean + temperature * L eps``."""
        if self.means is None:
            raise ValueError("GMMSampler.sample before fit (or load)")
        rng = np.random.default_rng(seed)
        comp = rng.choice(len(self.weights), size=int(n), p=self.weights / self.weights.sum())
        eps = rng.standard_normal((int(n), self.latent_dim))
        chols = np.linalg.cholesky(self.covariances)                      # (k, d, d)
        z = self.means[comp] + temperature * np.einsum("nij,nj->ni", chols[comp], eps)
        return z.astype(np.float32)                                       # (n, latent_dim)

    def save(self, run_dir: PathLike) -> Path:
        import io

        from data_prep.atomic import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, weights=self.weights, means=self.means, covariances=self.covariances)
        return atomic_write_bytes(Path(run_dir) / GMM_FILE, buf.getvalue())

    @classmethod
    def load(cls, run_dir: PathLike, model) -> "GMMSampler":
        with np.load(Path(run_dir) / GMM_FILE, allow_pickle=False) as f:
            sampler = cls(model, n_components=len(f["weights"]))
            sampler.weights, sampler.means, sampler.covariances = f["weights"], f["means"], f["covariances"]
        if sampler.means.shape[1] != sampler.latent_dim:
            raise ValueError(f"{GMM_FILE} has latent_dim {sampler.means.shape[1]}, the model {sampler.latent_dim}")
        return sampler


def load_sampler(run_dir: PathLike, model, kind: Optional[str] = None):
    """The run's sampler: ``kind`` (``normal``/``gmm``), default the configuration's ``sampler``."""
    kind = kind or getattr(model.config, "sampler", "normal")
    if kind == "normal":
        return NormalSampler(model)
    if kind == "gmm":
        if not (Path(run_dir) / GMM_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} has no {GMM_FILE}: the gmm sampler is fitted at the end of "
                                    "`train` (rerun it with --resume)")
        return GMMSampler.load(run_dir, model)
    raise ValueError(f"sampler must be 'normal' or 'gmm', got {kind!r}")


# -- the labels of a conditional model ----------------------------------------------------------
def save_label_prior(run_dir: PathLike, labels: np.ndarray) -> Path:
    """Save the training split's label combinations and their frequencies (``RUN/label_prior.npz``)."""
    import io

    from data_prep.atomic import atomic_write_bytes

    combos, counts = np.unique(np.asarray(labels, np.float32), axis=0, return_counts=True)
    buf = io.BytesIO()
    np.savez(buf, combos=combos, counts=counts)
    return atomic_write_bytes(Path(run_dir) / LABELS_FILE, buf.getvalue())


def sample_label_prior(run_dir: PathLike, n: int, seed: int = 0) -> np.ndarray:
    """``n`` multi-hot label vectors drawn with the training split's frequencies -> (n, C) float32."""
    with np.load(Path(run_dir) / LABELS_FILE, allow_pickle=False) as f:
        combos, counts = f["combos"], f["counts"]
    idx = np.random.default_rng(seed + 7919).choice(len(combos), size=int(n), p=counts / counts.sum())
    return combos[idx].astype(np.float32)
