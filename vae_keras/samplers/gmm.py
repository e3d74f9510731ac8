"""Latents from a Gaussian mixture fitted to the trained encoder's codes (``sampler="gmm"``).

A VAE's prior ``N(0, I)`` and its aggregate posterior ``q(z) = mean_x q(z|x)`` never match
exactly; prior draws that land in the holes of ``q(z)`` decode to blurry, object-less bags.
Ghosh et al. (2020, "From variational to deterministic autoencoders") fit a Gaussian mixture to
the training set's latent codes after training and sample from it instead ("ex-post density
estimation")::

    sampler = GMMSampler(model, n_components=10).fit_images(train_images)
    sampler.save(run_dir)                          # RUN/sampler_gmm.npz (arrays only, no pickle)
    z = GMMSampler.load(run_dir, model).sample(500)   # (500, latent_dim) float32

Why the EM is written here (about 40 lines of numpy) rather than taken from scikit-learn: it is
the only thing we would use from that package, and owning it keeps the fitted state a plain npz.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike, atomic_write_bytes
from vae_keras.io.manifest import CLASSES
from vae_keras.samplers.base import Sampler, register
from vae_keras.samplers.labels import FALLBACK_NOTE, label_keys

GMM_FILE = "sampler_gmm.npz"


class RareLabelsWarning(UserWarning):
    """A requested label combination had too few training images for a mixture of its own: its
    latents come from the whole mixture, so the image may not hold what its labels say."""


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


def _draw(rng, weights, means, chols, n: int, temperature: float) -> np.ndarray:
    """``n`` draws of one mixture: a component by its weight, then ``mean + temperature * L eps``."""
    comp = rng.choice(len(weights), size=int(n), p=weights / weights.sum())
    eps = rng.standard_normal((int(n), means.shape[1]))
    return means[comp] + temperature * np.einsum("nij,nj->ni", chols[comp], eps)   # (n, d)


@register
class GMMSampler(Sampler):
    """Latents from a Gaussian mixture fitted to the posterior means of the training images.

    Given the training labels, it also fits one smaller mixture per label combination (each
    combination's own codes, ``count // points_per_component`` components, at most
    ``n_components``): ``sample(n, labels=...)`` then draws the latents of bags that hold the
    requested threats. Why: a latent drawn from the whole mixture is, most of the time, the
    code of a bag with other threats or none, and the decoder draws what its latent holds;
    a conditional decoder was only ever trained on a latent and a label that agree.

    Args:
        model: a trained CVAE. n_components: mixture size (Ghosh et al. use 10). seed: EM start.
        min_points: a label combination with fewer training images gets no mixture of its own:
            its requests fall back to the whole mixture (a conditional decoder still gets the
            label). This is said once per combination (:class:`RareLabelsWarning`) and recorded
            per image in an export's manifest (``fallback`` column, :meth:`fallbacks`).
    """

    name = "gmm"

    def __init__(self, model, n_components: int = 10, seed: int = 0, min_points: int = 10,
                 points_per_component: int = 50):
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        super().__init__(model)
        self.n_components = int(n_components)
        self.seed = int(seed)
        self.min_points = int(min_points)
        self.points_per_component = int(points_per_component)
        self.weights = self.means = self.covariances = None
        self.by_labels: dict = {}        # label combination (tuple of 0/1) -> (weights, means, covariances)
        # a layout model's training layouts: packed boxes, labels and each image's mixture component
        self.layout_boxes = self.layout_labels = self.layout_components = None
        self._warned: set = set()        # combinations already warned about

    @property
    def conditions_on(self) -> str:
        """``boxes`` when it kept a layout model's training layouts, ``labels`` when it fitted a mixture per
        label combination, else ``nothing``."""
        return "boxes" if self.layout_boxes is not None else "labels" if self.by_labels else "nothing"

    @classmethod
    def fit(cls, model, data, run_dir, **context) -> "GMMSampler":
        """The protocol's fit: a mixture over ``data``'s training codes (the configuration's ``gmm_components``),
        one per label combination, and a layout model's layouts; saved to ``RUN/sampler_gmm.npz``."""
        sampler = cls(model, n_components=model.config.gmm_components, seed=model.config.seed)
        sampler.fit_images(data.images, data.labels, conditions=data.conditions, boxes=data.boxes)
        sampler.save(run_dir)
        return sampler

    def fit_images(self, images, labels=None, batch_size: int = 256, conditions=None, boxes=None) -> "GMMSampler":
        """Encode ``images`` and fit the mixture to their means (and one per label combination).

        Args:
            labels: multi-hot (n, C): the label combinations (and the condition of a conditional model).
            conditions: what the model is conditioned on, when not ``labels`` (a layout model's maps).
            boxes: a layout model's training boxes (one list per image): kept, so that
                :meth:`sample_layouts` can pair a drawn latent with a layout like its own.
        """
        from vae_keras.models.encode import posterior_means        # TensorFlow: loaded when fitting, not on import

        z = posterior_means(self.model, images, labels if conditions is None else conditions, batch_size)
        self.weights, self.means, self.covariances, self.log_likelihood = fit_gmm(
            z, self.n_components, seed=self.seed)
        self.by_labels = {}
        if labels is not None:
            keys = label_keys(labels)
            if len(set(keys)) > 1:                   # one combination only: the whole mixture is it
                for key in sorted(set(keys)):
                    rows = np.array([k == key for k in keys])
                    if rows.sum() < self.min_points:
                        continue
                    k = max(1, min(self.n_components, int(rows.sum()) // self.points_per_component))
                    self.by_labels[key] = fit_gmm(z[rows], k, seed=self.seed)[:3]
        if boxes is not None:
            from vae_keras.data.layouts import pack_boxes

            self.layout_boxes = pack_boxes(boxes)
            self.layout_labels = (np.asarray(labels) > 0.5).astype(np.int8)
            self.layout_components = self._components_of(z, label_keys(labels))
        return self

    def fallbacks(self, labels) -> np.ndarray:
        """Which rows of ``labels`` (n, C) multi-hot get latents from the whole mixture -> (n,) bool.

        A row falls back when its combination has no mixture of its own (fewer than
        ``min_points`` training images; for a layout sampler: no training layout with it).
        ``labels`` None, or a sampler fitted without per-combination mixtures: nothing falls back.
        """
        if labels is None:
            return np.zeros(0, bool)
        keys = label_keys(labels)
        if self.layout_boxes is not None:
            seen = set(label_keys(self.layout_labels))
            return np.array([k not in seen for k in keys], bool)
        if not self.by_labels:
            return np.zeros(len(keys), bool)
        return np.array([k not in self.by_labels for k in keys], bool)

    def _warn_fallback(self, key, count: int, why: str = "") -> None:
        """One :class:`RareLabelsWarning` per combination and sampler."""
        if key in self._warned:
            return
        self._warned.add(key)
        names = [CLASSES[i] for i, v in enumerate(key) if v] or ["benign"]
        why = why or f"had fewer than {self.min_points} training images"
        warnings.warn(f"label combination {'+'.join(names)} {why}: "
                      f"the latents of {count} requested image(s) come from the whole mixture, so they may not "
                      f"show it (marked in an export's manifest: fallback={FALLBACK_NOTE!r})",
                      RareLabelsWarning, stacklevel=3)

    def _mixture(self, key):
        """(weights, means, covariances) of a label combination's mixture, or the whole mixture."""
        return self.by_labels.get(key, (self.weights, self.means, self.covariances))

    def _components_of(self, z, keys) -> np.ndarray:
        """Each code's most responsible component in its label combination's mixture -> (n,) int."""
        out = np.empty(len(z), np.int32)
        for key in set(keys):
            rows = np.array([k == key for k in keys])
            w, m, c = self._mixture(key)
            log_p = np.log(np.maximum(w, 1e-300)) + _log_gauss(z[rows], m, np.linalg.cholesky(c))
            out[rows] = np.argmax(log_p, axis=1)
        return out

    def sample_layouts(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None):
        """``n`` latents paired with layouts: ``(z (n, latent_dim), boxes: one list per draw)``.

        For each draw, a training image with the requested label combination is picked at random:
        its boxes are the layout, and the latent is drawn from the mixture component that holds
        that image's code (so bag and threats fit together, as in training). A combination no
        training image has gets, per class, the boxes of that class from a random training image,
        and a latent from the whole mixture. ``labels`` None: the training images' own mix.
        """

        if self.layout_boxes is None:
            raise ValueError("this sampler holds no layouts: it was not fitted on a layout model's boxes")
        from vae_keras.data.layouts import boxes_per_class, unpack_boxes

        rng = np.random.default_rng(seed)
        n = int(n)
        train_keys = label_keys(self.layout_labels)
        if labels is None:
            keys = [train_keys[i] for i in rng.integers(len(train_keys), size=n)]
        else:
            keys = label_keys(labels)
            if len(keys) != n:
                raise ValueError(f"labels must have n={n} rows, got {len(keys)}")
        z = np.empty((n, self.latent_dim))
        boxes: list = [None] * n
        for key in sorted(set(keys)):
            draws = [j for j, k in enumerate(keys) if k == key]
            same = np.array([i for i, k in enumerate(train_keys) if k == key])
            if len(same):
                w, m, c = self._mixture(key)
                picks = rng.choice(same, size=len(draws))
                comps = self.layout_components[picks]
                z[draws] = m[comps] + temperature * np.einsum(
                    "nij,nj->ni", np.linalg.cholesky(c)[comps], rng.standard_normal((len(draws), self.latent_dim)))
                for j, i in zip(draws, picks):
                    boxes[j] = unpack_boxes(self.layout_boxes, [int(i)])[0]
                continue
            self._warn_fallback(key, len(draws), "is in no training layout")
            z[draws] = _draw(rng, self.weights, self.means, np.linalg.cholesky(self.covariances), len(draws),
                             temperature)
            for j in draws:                        # per class, that class's boxes of a random training image
                boxes[j] = boxes_per_class(self.layout_boxes, self.layout_labels, key, rng)
        return z.astype(np.float32), boxes

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None, **options) -> np.ndarray:
        """``n`` latents (n, latent_dim) float32; ``labels`` (n, C) multi-hot picks each one's mixture."""
        if self.means is None:
            raise ValueError("GMMSampler.sample before fit (or load)")
        rng = np.random.default_rng(seed)
        chols = np.linalg.cholesky(self.covariances)                      # (k, d, d)
        if labels is None or not self.by_labels:
            return _draw(rng, self.weights, self.means, chols, n, temperature).astype(np.float32)
        keys = label_keys(labels)
        if len(keys) != int(n):
            raise ValueError(f"labels must have n={n} rows, got {len(keys)}")
        z = np.empty((int(n), self.latent_dim))
        for key in sorted(set(keys)):
            rows = np.array([k == key for k in keys])
            if key in self.by_labels:
                w, m, c = self.by_labels[key]
                z[rows] = _draw(rng, w, m, np.linalg.cholesky(c), rows.sum(), temperature)
            else:  # too rare in training for a mixture of its own (see min_points)
                self._warn_fallback(key, int(rows.sum()))
                z[rows] = _draw(rng, self.weights, self.means, chols, rows.sum(), temperature)
        return z.astype(np.float32)                                       # (n, latent_dim)

    def save(self, run_dir: PathLike) -> Path:
        """Write the fitted state to ``run_dir/sampler_gmm.npz`` (arrays only, atomically)."""
        arrays = dict(weights=self.weights, means=self.means, covariances=self.covariances,
                      label_keys=np.array(sorted(self.by_labels), np.int8).reshape(len(self.by_labels), -1 if self.by_labels else 0))
        for j, key in enumerate(sorted(self.by_labels)):
            arrays.update({f"labels{j}_{name}": a for name, a in
                           zip(("weights", "means", "covariances"), self.by_labels[key])})
        if self.layout_boxes is not None:
            arrays.update(layout_boxes=self.layout_boxes, layout_labels=self.layout_labels,
                          layout_components=self.layout_components)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write_bytes(Path(run_dir) / GMM_FILE, buf.getvalue())

    @classmethod
    def load(cls, run_dir: PathLike, model, label_prior=None, **options) -> "GMMSampler":
        if not (Path(run_dir) / GMM_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} has no {GMM_FILE}: the gmm sampler is fitted at the end of "
                                    "`train` (rerun it with --resume)")
        with np.load(Path(run_dir) / GMM_FILE, allow_pickle=False) as f:
            sampler = cls(model, n_components=len(f["weights"]))
            sampler.weights, sampler.means, sampler.covariances = f["weights"], f["means"], f["covariances"]
            keys = f["label_keys"] if "label_keys" in f.files else np.zeros((0, 0))
            for j, key in enumerate(keys):
                sampler.by_labels[tuple(int(v) for v in key)] = tuple(
                    f[f"labels{j}_{name}"] for name in ("weights", "means", "covariances"))
            if "layout_boxes" in f.files:
                sampler.layout_boxes, sampler.layout_labels, sampler.layout_components = (
                    f["layout_boxes"], f["layout_labels"], f["layout_components"])
        if sampler.means.shape[1] != sampler.latent_dim:
            raise DataError(f"{GMM_FILE} has latent_dim {sampler.means.shape[1]}, the model {sampler.latent_dim}")
        return sampler.configure(**options)



