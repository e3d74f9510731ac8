"""Each measure on cases whose answer is known, the samplers, and the evaluation end to end."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import pytest

from vae_keras.evaluation import metrics as M


def blocky_images(n=40, size=32, seed=0):
    """Bright images with sharp dark rectangles and a little noise, (n, size, size, 1) in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = np.full((n, size, size), 0.9, np.float32)
    for img in x:
        for _ in range(3):
            x0, y0 = rng.integers(0, size // 2, 2)
            w, h = rng.integers(3, size // 2, 2)
            img[y0:y0 + h, x0:x0 + w] = rng.uniform(0.05, 0.6)
    return np.clip(x + rng.normal(0, 0.02, x.shape), 0, 1).astype(np.float32)[..., None]


def box_blur(x, r=2):
    a = x[..., 0]
    out = np.zeros_like(a)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out += np.roll(np.roll(a, dy, 1), dx, 2)
    return (out / (2 * r + 1) ** 2)[..., None]


def test_sharpness_ratio_identical_is_one_and_blur_lowers_it():
    x = blocky_images()
    assert M.sharpness_ratio(x, x) == pytest.approx(1.0)
    assert M.sharpness_ratio(box_blur(x), x) < 0.3


def test_dense_mass_and_intensity_w1():
    x = blocky_images()
    assert M.dense_mass_ratio(x, x) == pytest.approx(1.0)
    assert M.dense_mass_ratio(np.full_like(x, 0.8), x) == 0.0
    assert M.intensity_w1(x, x) == pytest.approx(0.0)
    # shifting every pixel by 0.1 moves the histogram by 0.1 (within a bin)
    w1 = M.intensity_w1(np.full((2, 8, 8), 0.5), np.full((2, 8, 8), 0.6))
    assert w1 == pytest.approx(0.1, abs=1 / 256)


def test_psnr_and_ssim():
    x = blocky_images(n=4)
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert M.psnr(x, np.clip(x + 0.1, 0, 1)) < M.psnr(x, np.clip(x + 0.01, 0, 1))


def test_memorisation_ratio_copies_near_zero_fresh_near_one():
    train, test, fresh = blocky_images(60, seed=1), blocky_images(30, seed=2), blocky_images(30, seed=3)
    assert M.memorisation_ratio(train[:30], train, test) < 0.05
    assert 0.7 < M.memorisation_ratio(fresh, train, test) < 1.4


def test_frechet_distance_zero_for_identical_and_grows_with_shift():
    f = np.random.default_rng(0).normal(size=(500, 8))
    assert M.frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    assert M.frechet_distance(f, f + 1.0) == pytest.approx(8.0, rel=0.05)


def test_precision_recall():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 4))
    same = M.precision_recall(real, real + 1e-9)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    far = M.precision_recall(real, real + 50.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


def test_two_sample_test_identical_sets_near_chance_and_blur_found():
    x = blocky_images(40, size=16)
    assert abs(M.classifier_two_sample_test(x, x, folds=2, steps=60) - 0.5) <= 0.1
    assert M.classifier_two_sample_test(x, np.full_like(x, 0.9), folds=2, steps=60) >= 0.9


def test_threat_classifier_round_trip(tmp_path):
    x = blocky_images(16)
    y = np.zeros((16, 4), np.float32)
    y[::2, 1] = 1
    clf = M.ThreatClassifier(32, ("handgun", "knife", "razor_blade", "shuriken"), width=4).fit(x, y, epochs=1)
    clf.save(tmp_path / "clf")
    back = M.ThreatClassifier.load(tmp_path / "clf")
    np.testing.assert_allclose(back.predict(x), clf.predict(x), atol=1e-6)
    assert back.features(x).shape == (16, 16)
    rec = M.class_recognition(clf, {"knife": x[:4]})        # known answers: tests/test_evaluate.py
    assert rec == {"knife": float(np.mean(clf.predict(x[:4])[:, 1] > 0.5))}


# -- samplers ------------------------------------------------------------------------------------
def test_gmm_fit_recovers_two_clusters():
    from vae_keras.samplers import fit_gmm

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 0.5, (300, 2)), rng.normal(5, 0.5, (100, 2))])
    w, means, covs, _ = fit_gmm(x, 2, seed=0)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], [[-5, -5], [5, 5]], atol=0.2)
    np.testing.assert_allclose(w[order], [0.75, 0.25], atol=0.02)
    assert covs.shape == (2, 2, 2)


def test_gmm_sampler_shapes_finite_and_saved(tiny_model, tiny_dataset, tmp_path):
    from vae_keras.data.pipeline import load_split
    from vae_keras.samplers import GMMSampler, load_sampler

    images, _ = load_split(tiny_dataset, "train")
    sampler = GMMSampler(tiny_model, n_components=3, seed=0).fit_images(images)
    z = sampler.sample(10, seed=1)
    assert z.shape == (10, 2) and z.dtype == np.float32 and np.isfinite(z).all()
    np.testing.assert_array_equal(z, sampler.sample(10, seed=1))
    sampler.save(tmp_path)
    back = load_sampler(tmp_path, tiny_model, "gmm")
    np.testing.assert_allclose(back.sample(10, seed=1), z, atol=1e-6)
    assert load_sampler(tmp_path, tiny_model, "normal").sample(5).shape == (5, 2)


class _BrightnessEncoder:
    """A stand-in model whose code is (brightness, brightness) * 10 - 5: bright bags at (5, 5), dark at (-5, -5)."""

    latent_dim = 2

    def encode(self, x, y=None):
        b = tf.reduce_mean(x, axis=[1, 2, 3])[:, None] * 10.0 - 5.0
        return tf.concat([b, b], axis=1), tf.zeros((tf.shape(x)[0], 2))


def test_gmm_sampler_draws_the_codes_of_the_requested_labels(tmp_path):
    from vae_keras.samplers import GMMSampler, load_sampler

    rng = np.random.default_rng(0)
    n = 120
    knife = np.arange(n) % 3 == 0                                     # a third of the bags hold a knife
    images = np.where(knife[:, None, None, None], 0.95, 0.05) + rng.normal(0, 0.01, (n, 8, 8, 1))
    labels = np.zeros((n, 4), np.float32)
    labels[knife, 1] = 1.0
    model = _BrightnessEncoder()
    sampler = GMMSampler(model, n_components=2, seed=0).fit_images(images.astype(np.float32), labels)
    assert set(sampler.by_labels) == {(0, 0, 0, 0), (0, 1, 0, 0)}
    want = np.tile([[0, 1, 0, 0]], (50, 1))
    z = sampler.sample(50, seed=3, labels=want)
    assert z.shape == (50, 2) and np.isfinite(z).all()
    assert (z > 2).all()                                              # every latent is a knife bag's
    assert (sampler.sample(50, seed=3, labels=np.zeros((50, 4))) < -2).all()
    mixed = sampler.sample(400, seed=3)                               # no labels: the whole mixture
    assert 0.2 < np.mean(mixed[:, 0] > 0) < 0.45
    unseen = sampler.sample(400, seed=3, labels=np.tile([[1, 1, 1, 1]], (400, 1)))   # no mixture: the whole one
    assert 0.2 < np.mean(unseen[:, 0] > 0) < 0.45
    sampler.save(tmp_path)
    back = load_sampler(tmp_path, model, "gmm")
    np.testing.assert_allclose(back.sample(50, seed=3, labels=want), z, atol=1e-6)


def test_bits_per_dim_of_a_uniform_density_is_eight():
    from vae_keras.evaluation.evaluate import nats_to_bpd

    assert nats_to_bpd(0.0, 32) == pytest.approx(8.0)


def test_threat_classifier_reports_the_training_images_it_was_given():
    # fit() trains on the images and their mirror images; the record must count the data set
    # (figures/run_quality.md once reported 2,628 training images for a split of 1,314)
    x = blocky_images(12)
    y = np.zeros((12, 4), np.float32)
    y[::3, 0] = 1
    clf = M.ThreatClassifier(32, ("handgun", "knife", "razor_blade", "shuriken"), width=4).fit(x, y, epochs=1)
    assert clf.info["train_images"] == 12
