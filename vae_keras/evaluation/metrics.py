"""Measures of generated X-ray images: pure functions on numpy arrays, plus two small CNNs.

Every function takes images as (n, S, S, 1) or (n, S, S) arrays in [0, 1] (uint8 is scaled).

- pixel statistics: :func:`sharpness_ratio` (variance of the Laplacian), :func:`dense_mass_ratio`
  (fraction of pixels below 0.3: dense metal), :func:`intensity_w1` (Wasserstein-1 between the
  pixel-intensity histograms);
- reconstruction: :func:`psnr`, :func:`ssim`;
- set-level: :func:`classifier_two_sample_test` (a small CNN told to separate real from generated;
  0.5 = indistinguishable), :func:`frechet_distance` and :func:`precision_recall` (Kynkaanniemi
  et al. 2019) in the feature space of a :class:`ThreatClassifier` trained on the real training
  split (no pretrained Inception weights can be downloaded here), :func:`memorisation_ratio`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from vae_keras.io.atomic import atomic_write_text

DENSE_THRESHOLD = 0.3
#: Bumped whenever the threat classifier's network, training or record changes (invalidates caches).
#: 3: ``train_images`` counts the data set (version 2 counted each image and its mirror).
CLASSIFIER_VERSION = 3


def as_images(x) -> np.ndarray:
    """(n, S, S[, 1]) uint8 or float -> (n, S, S) float32 in [0, 1]."""
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 4:
        x = x[..., 0]
    if x.ndim != 3:
        raise ValueError(f"images must be (n, S, S) or (n, S, S, 1), got shape {x.shape}")
    return x


def quantize(x) -> np.ndarray:
    """Round to the 8-bit grid, as a PNG export would: generated and real images then compare fairly."""
    return np.round(as_images(x) * 255.0) / 255.0


# -- pixel statistics --------------------------------------------------------------------------
def laplacian_variance(images) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each image -> (n,): high = sharp edges and texture."""
    a = as_images(images)
    lap = a[:, :-2, 1:-1] + a[:, 2:, 1:-1] + a[:, 1:-1, :-2] + a[:, 1:-1, 2:] - 4.0 * a[:, 1:-1, 1:-1]
    return lap.reshape(len(a), -1).var(axis=1)


def sharpness_ratio(generated, real) -> float:
    """Mean Laplacian variance of ``generated`` / that of ``real`` (1 = as sharp; the seed ~0.05)."""
    return float(laplacian_variance(generated).mean() / max(laplacian_variance(real).mean(), 1e-12))


def dense_fraction(images, threshold: float = DENSE_THRESHOLD) -> float:
    """Fraction of pixels darker than ``threshold`` (dense objects: metal, the threats)."""
    return float((as_images(images) < threshold).mean())


def dense_mass_ratio(generated, real, threshold: float = DENSE_THRESHOLD) -> float:
    """:func:`dense_fraction` of ``generated`` / that of ``real`` (target 0.7-1.3; nan if real has none)."""
    r = dense_fraction(real, threshold)
    return float(dense_fraction(generated, threshold) / r) if r > 0 else float("nan")


def intensity_w1(generated, real, bins: int = 256) -> float:
    """Wasserstein-1 distance between the two sets' pixel-intensity histograms on [0, 1]."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    cdf = [np.cumsum(np.histogram(np.clip(as_images(s), 0, 1), bins=edges)[0]) for s in (generated, real)]
    cdf = [c / c[-1] for c in cdf]
    return float(np.sum(np.abs(cdf[0] - cdf[1])) / bins)


# -- reconstruction ----------------------------------------------------------------------------
def psnr(a, b) -> float:
    """Mean peak signal-to-noise ratio (dB, peak 1) between paired images."""
    mse = ((as_images(a) - as_images(b)) ** 2).reshape(len(as_images(a)), -1).mean(axis=1)
    return float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))))


def ssim(a, b) -> float:
    """Mean structural similarity (``tf.image.ssim``, 11x11 Gaussian window) between paired images."""
    import tensorflow as tf

    return float(tf.reduce_mean(tf.image.ssim(as_images(a)[..., None], as_images(b)[..., None], max_val=1.0)))


# -- distances ---------------------------------------------------------------------------------
def nearest_neighbours(queries, reference, chunk: int = 512, batch: int = 256):
    """Index and RMS pixel distance of each query's nearest reference image (L2 in pixel space).

    The one nearest-neighbour search of the project: :func:`memorisation_ratio` and the
    gallery's "nearest training image" figure both use it. Float64, in blocks of ``batch``
    queries by ``chunk`` references, so memory stays bounded at 224 x 224.

    Args:
        queries: (n, S, S[, 1]) in [0, 1] (or uint8).
        reference: (m, S, S[, 1]) in [0, 1] (or uint8).

    Returns:
        ``(index, rms)``: (n,) int64 and (n,) float64, ``rms = ||q - r|| / sqrt(S * S)``.
    """
    q = as_images(queries).reshape(len(queries), -1).astype(np.float64)
    r = as_images(reference).reshape(len(reference), -1).astype(np.float64)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and reference differ in image size: {q.shape} vs {r.shape}")
    best = np.full(len(q), np.inf)
    index = np.zeros(len(q), np.int64)
    for i in range(0, len(q), batch):
        qb = q[i:i + batch]                                          # (b, S*S)
        q2 = (qb ** 2).sum(axis=1)[:, None]                          # (b, 1)
        for start in range(0, len(r), chunk):
            block = r[start:start + chunk]                           # (c, S*S)
            d2 = q2 - 2.0 * qb @ block.T + (block ** 2).sum(axis=1)[None]   # (b, c)
            j = d2.argmin(axis=1)
            d = d2[np.arange(len(qb)), j]
            better = d < best[i:i + batch]
            best[i:i + batch][better] = d[better]
            index[i:i + batch][better] = start + j[better]
    return index, np.sqrt(np.maximum(best, 0.0) / q.shape[1])


def nearest_neighbour_distances(queries, reference, batch: int = 256) -> np.ndarray:
    """Euclidean distance of each query (flattened) to its nearest reference -> (n_queries,)."""
    _, rms = nearest_neighbours(queries, reference, batch=batch)
    return rms * np.sqrt(np.prod(np.shape(queries)[1:3]))      # (n,): back from RMS to the plain L2 norm


def memorisation_ratio(generated, train, test) -> float:
    """Median NN distance generated -> train over the same for real test images (<< 1: copies)."""
    gen = np.median(nearest_neighbour_distances(generated, train))
    ref = np.median(nearest_neighbour_distances(test, train))
    return float(gen / max(ref, 1e-12))


def frechet_distance(feat_a, feat_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, d) (FID's formula).

    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)``, the square roots by eigh.
    """
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a.T)), np.atleast_2d(np.cov(b.T))
    w, v = np.linalg.eigh(ca)
    sqrt_ca = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_ca @ cb @ sqrt_ca
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)))
    return float(max(np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb) - 2.0 * tr_sqrt, 0.0))


def _pairwise(a, b):
    a2, b2 = (a ** 2).sum(1)[:, None], (b ** 2).sum(1)[None]
    return np.sqrt(np.maximum(a2 - 2 * a @ b.T + b2, 0.0))


def precision_recall(real_features, generated_features, k: int = 3) -> Dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls in feature space.

    Precision: fraction of generated points inside some real point's k-NN ball (realism);
    recall: fraction of real points inside some generated point's k-NN ball (coverage).
    """
    r = np.asarray(real_features, np.float64)
    g = np.asarray(generated_features, np.float64)

    def radii(x):
        d = _pairwise(x, x)
        return np.sort(d, axis=1)[:, min(k, len(x) - 1)]               # column 0 is the point itself

    r_rad, g_rad = radii(r), radii(g)
    d_gr = _pairwise(g, r)                                                # (n_gen, n_real)
    precision = np.mean(np.any(d_gr <= r_rad[None], axis=1))
    recall = np.mean(np.any(d_gr.T <= g_rad[None], axis=1))
    return {"precision": float(precision), "recall": float(recall)}


# -- small CNNs --------------------------------------------------------------------------------
def compile_bce(net, learning_rate: float = 1e-3):
    """Compile ``net`` (logits out) with Adam and binary cross-entropy, and build the optimizer now.

    Built before ``fit``: otherwise the optimizer's variables are made inside ``fit``'s first call,
    and TensorFlow traces the whole training step twice (a second per small classifier here).
    """
    import keras

    net.compile(keras.optimizers.Adam(learning_rate), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    net.optimizer.build(net.trainable_variables)
    return net


def small_cnn(size: int, outputs: int, width: int = 16, name: str = "small_cnn", pooling: str = "avg"):
    """Three stride-2 3x3 convs (w, 2w, 4w), one more 3x3 conv, global ``avg`` or ``max`` pooling,
    Dense(4w) -> ``outputs`` logits. Max pooling suits "is there a small object anywhere"."""
    import keras

    inputs = keras.Input((size, size, 1))
    h = inputs
    for f in (width, 2 * width, 4 * width):
        h = keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(h)   # (s/2, s/2, f) ...
    h = keras.layers.Conv2D(4 * width, 3, padding="same", activation="relu")(h)
    h = (keras.layers.GlobalMaxPooling2D() if pooling == "max" else keras.layers.GlobalAveragePooling2D())(h)
    features = keras.layers.Dense(4 * width, activation="relu", name="features")(h)      # (batch, 4w)
    logits = keras.layers.Dense(outputs, name="logits")(features)
    return keras.Model(inputs, logits, name=name)


def threat_cnn(size: int, outputs: int, width: int = 32, name: str = "threat_classifier"):
    """The threat classifier: a stride-1 conv keeps small objects (razor blades are ~4 px at 64x64),
    then stride-2 convs (w, 2w, 4w), global max pooling ("anywhere in the bag"), Dense(4w) features."""
    import keras

    inputs = keras.Input((size, size, 1))
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)          # (s, s, w)
    for f in (width, 2 * width, 4 * width):
        h = keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(h)   # (s/2, s/2, f) ...
        h = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalMaxPooling2D()(h)                                              # (batch, 4w)
    features = keras.layers.Dense(4 * width, activation="relu", name="features")(h)
    logits = keras.layers.Dense(outputs, name="logits")(features)
    return keras.Model(inputs, logits, name=name)


def classifier_two_sample_test(real, generated, folds: int = 5, steps: int = 300, seed: int = 0,
                               batch_size: int = 64) -> float:
    """k-fold held-out accuracy of a small CNN trained to tell ``real`` from ``generated``.

    0.5 means the sets are indistinguishable to it; 1.0 that every image is told apart. The two
    sets are cut to the same size and both quantised to 8 bits first. Each fold's classifier
    takes exactly ``steps`` Adam steps on batches reshuffled at each pass, whatever the set size
    (counted in steps, not Keras epochs: a set of 16 images once took 300 one-batch epochs, a
    minute of per-epoch overhead for 2 folds).
    """
    import keras
    import tensorflow as tf

    n = min(len(real), len(generated))
    x = np.concatenate([quantize(real)[:n], quantize(generated)[:n]])[..., None]
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    # folds of index pairs (real i, generated i): with identical sets a memorising classifier
    # then scores exactly 0.5 instead of being pushed below it by copies across folds
    pairs = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    parts = [np.concatenate([p, p + n]) for p in pairs]
    correct = 0
    for f, test_idx in enumerate(parts):
        train_idx = np.setdiff1d(np.arange(2 * n), test_idx)
        keras.utils.set_random_seed(seed + f)
        net = small_cnn(x.shape[1], 1, name="c2st")
        compile_bce(net)
        batches = (tf.data.Dataset.from_tensor_slices((x[train_idx], y[train_idx]))
                   .shuffle(len(train_idx), seed=seed + f).repeat().batch(batch_size))
        net.fit(batches, epochs=1, steps_per_epoch=int(steps), verbose=0, shuffle=False)
        pred = net.predict(x[test_idx], batch_size=256, verbose=0)[:, 0] > 0
        correct += int(np.sum(pred == (y[test_idx] > 0.5)))
        del net
        tf.keras.backend.clear_session() if hasattr(tf.keras.backend, "clear_session") else None
    return float(correct / (2 * n))


class ThreatClassifier:
    """A small CNN trained on real images' multi-hot threat labels; its penultimate layer is the
    feature space of the Frechet distance and precision/recall, its outputs judge whether a
    conditional sample contains the class it was asked for.

    Saved as ``.weights.h5`` + ``.json`` (size, classes, test accuracy): never a pickle.
    """

    def __init__(self, image_size: int, classes: Sequence[str], width: int = 32):
        import keras

        self.image_size, self.classes, self.width = int(image_size), tuple(classes), int(width)
        self.net = threat_cnn(self.image_size, len(self.classes), width=self.width)
        self.features_net = keras.Model(self.net.input, self.net.get_layer("features").output)
        self.info: dict = {}

    def fit(self, images, labels, epochs: int = 20, seed: int = 0, batch_size: int = 64,
            test=None) -> "ThreatClassifier":
        """Train on ``images`` (n, S, S, 1) and multi-hot ``labels``; ``test=(images, labels)`` is scored."""
        import keras

        keras.utils.set_random_seed(seed)
        compile_bce(self.net)
        x = quantize(images)[..., None]
        n_images = len(x)
        x, y = np.concatenate([x, x[:, :, ::-1]]), np.concatenate([labels, labels]).astype(np.float32)  # + flips
        self.net.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
        # train_images counts the data set; each epoch also sees their mirror images
        self.info = {"version": CLASSIFIER_VERSION, "image_size": self.image_size, "classes": list(self.classes),
                     "width": self.width, "epochs": epochs, "train_images": int(n_images),
                     "augmentation": "horizontal flip (each epoch sees every image and its mirror)"}
        if test is not None:
            pred = self.predict(test[0]) > 0.5
            truth = np.asarray(test[1]) > 0.5
            self.info["test_accuracy_per_class"] = {c: float(np.mean(pred[:, i] == truth[:, i]))
                                                    for i, c in enumerate(self.classes)}
            self.info["test_recall_per_class"] = {c: float(np.mean(pred[truth[:, i], i])) if truth[:, i].any()
                                                  else float("nan") for i, c in enumerate(self.classes)}
        return self

    def predict(self, images) -> np.ndarray:
        """Per-class probabilities (n, C)."""
        logits = self.net.predict(quantize(images)[..., None], batch_size=256, verbose=0)
        return 0.5 * (1.0 + np.tanh(0.5 * logits))          # the sigmoid, without exp's overflow at large -logits

    def features(self, images) -> np.ndarray:
        """Penultimate-layer features (n, 4 * width)."""
        return self.features_net.predict(quantize(images)[..., None], batch_size=256, verbose=0)

    def save(self, prefix) -> Path:

        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        self.net.save_weights(str(prefix) + ".weights.h5")
        atomic_write_text(str(prefix) + ".json", json.dumps(self.info, indent=1))
        return prefix

    @classmethod
    def load(cls, prefix) -> "ThreatClassifier":
        info = json.loads(Path(str(prefix) + ".json").read_text(encoding="utf-8"))
        clf = cls(info["image_size"], info["classes"], width=info.get("width", 32))
        clf.net.load_weights(str(prefix) + ".weights.h5")
        clf.info = info
        return clf


def class_recognition(classifier: ThreatClassifier, images_by_class: Dict[str, np.ndarray]) -> Dict[str, float]:
    """For each class, the fraction of images generated for it in which the classifier finds it."""
    out = {}
    for name, images in images_by_class.items():
        probs = classifier.predict(images)
        out[name] = float(np.mean(probs[:, classifier.classes.index(name)] > 0.5))
    return out
