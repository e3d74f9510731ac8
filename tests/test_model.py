"""The seed network's exact architecture, the VAE's verbs, and the configuration object."""
import json

import numpy as np
import pytest
import tensorflow as tf

from vae_keras.config import VAEConfig, get_config
from vae_keras.models.losses import elbo_terms, log_normal_pdf
from vae_keras.models.cvae import CVAE, build_model


def layer_shapes(seq):
    return [tuple(layer.output.shape[1:]) for layer in seq.layers]


def test_seed_matches_the_tensorflow_tutorial_at_28x28():
    # The 2021 project started from the TF CVAE tutorial: 69,989 parameters for 28x28, latent 2.
    model = build_model(get_config("seed", quick=False, image_size=28, latent_dim=2))
    assert model.count_params() == 69_989


@pytest.mark.parametrize("size", [64, 224])
def test_seed_layer_shapes(size):
    model = build_model(get_config("seed", quick=False, image_size=size, latent_dim=2))
    a, b = (size - 3) // 2 + 1, ((size - 3) // 2 + 1 - 3) // 2 + 1  # valid 3x3 stride-2 convs
    assert layer_shapes(model.encoder) == [(a, a, 32), (b, b, 64), (b * b * 64,), (4,)]
    q = size // 4
    assert layer_shapes(model.decoder) == [
        (q * q * 32,), (q, q, 32), (2 * q, 2 * q, 64), (size, size, 32), (size, size, 1)]
    kinds = [type(l).__name__ for l in model.encoder.layers + model.decoder.layers]
    assert kinds == ["Conv2D", "Conv2D", "Flatten", "Dense",
                     "Dense", "Reshape", "Conv2DTranspose", "Conv2DTranspose", "Conv2DTranspose"]
    strides = [l.strides for l in model.decoder.layers if type(l).__name__ == "Conv2DTranspose"]
    assert strides == [(2, 2), (2, 2), (1, 1)]


def test_verbs_shapes_and_ranges(tiny_model):
    x = tf.random.uniform((5, 32, 32, 1))
    mean, logvar = tiny_model.encode(x)
    assert mean.shape == logvar.shape == (5, 2)
    z = tiny_model.reparameterize(mean, logvar)
    assert z.shape == (5, 2)
    logits = tiny_model.decode(z)
    probs = tiny_model.decode(z, apply_sigmoid=True).numpy()
    assert logits.shape == (5, 32, 32, 1)
    np.testing.assert_allclose(probs, 1.0 / (1.0 + np.exp(-logits.numpy())), atol=1e-6)   # Bernoulli means
    # a sample is the decoded mean of temperature * eps
    eps = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    s = tiny_model.sample(n=3, eps=eps, temperature=0.5).numpy()
    assert s.shape == (3, 32, 32, 1)
    np.testing.assert_allclose(s, tiny_model.decode(0.5 * eps, apply_sigmoid=True).numpy(), atol=1e-6)


def test_temperature_zero_decodes_the_prior_mean(tiny_model):
    a = tiny_model.sample(n=2, temperature=0.0).numpy()
    b = tiny_model.decode(tf.zeros((2, 2)), apply_sigmoid=True).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_logvar_is_clipped_so_exp_cannot_overflow():
    cfg = get_config("seed", quick=False, image_size=32, latent_dim=2, logvar_clip=10.0)
    model = build_model(cfg)
    dense = model.encoder.layers[-1]
    dense.kernel.assign(tf.fill(dense.kernel.shape, 1e6))
    _, logvar = model.encode(tf.ones((1, 32, 32, 1)))
    assert np.all(np.abs(logvar.numpy()) <= 10.0)
    recon, kl = elbo_terms(model, tf.ones((1, 32, 32, 1)))
    assert np.isfinite(kl.numpy()).all()


def test_log_normal_pdf_matches_closed_form():
    x = tf.constant([[0.0, 1.0]])
    got = log_normal_pdf(x, 0.0, 0.0).numpy()
    want = -0.5 * (0 + 1) - np.log(2 * np.pi)
    np.testing.assert_allclose(got, [want], rtol=1e-6)


def test_elbo_terms_are_per_example_and_finite(tiny_model):
    x = tf.random.stateless_uniform((4, 32, 32, 1), seed=(0, 1))
    eps = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    recon, kl = elbo_terms(tiny_model, x, eps=tf.constant(eps))
    assert recon.shape == kl.shape == (4,)
    assert np.all(np.isfinite(recon.numpy())) and np.all(np.isfinite(kl.numpy()))
    # recon: the Bernoulli cross-entropy of x under the decoded logits of z = mean + eps * sigma
    mean, logvar = (t.numpy() for t in tiny_model.encode(x))
    z = mean + eps * np.exp(0.5 * logvar)
    logits = tiny_model.decode(tf.constant(z)).numpy()
    xs = x.numpy()
    bce = np.maximum(logits, 0) - logits * xs + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(recon.numpy(), bce.sum(axis=(1, 2, 3)), rtol=1e-4)
    # kl: the single-sample log q(z|x) - log p(z), which for this z is sum(z^2 - eps^2 - logvar) / 2
    np.testing.assert_allclose(kl.numpy(), 0.5 * (z ** 2 - eps ** 2 - logvar).sum(axis=1), rtol=1e-4, atol=1e-5)


def test_config_json_round_trip(tmp_path):
    cfg = get_config("seed", quick=False, image_size=64, latent_dim=8, epochs=3)
    cfg.save(tmp_path / "config.json")
    assert VAEConfig.load(tmp_path / "config.json") == cfg
    assert json.loads((tmp_path / "config.json").read_text())["encoder_filters"] == [32, 64]
    model = CVAE.from_config(build_model(cfg).get_config())
    assert model.config == cfg


def test_quick_mode_shrinks_and_explicit_overrides_win(monkeypatch):
    monkeypatch.setenv("XRAY_VAE_QUICK", "1")
    assert get_config("seed").image_size == 64
    assert get_config("seed", image_size=32).image_size == 32
    monkeypatch.setenv("XRAY_VAE_QUICK", "0")
    assert get_config("seed").image_size == 224


@pytest.mark.parametrize("bad, message", [
    (dict(image_size=30), "multiple of 4"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(likelihood="gaussian"), "likelihood"),
])
def test_invalid_configuration_says_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        VAEConfig(**bad)


def test_unknown_named_config():
    with pytest.raises(ValueError, match="unknown configuration"):
        get_config("nope")
