"""The prior's recipe parts (issue #25): v-prediction, min-SNR weighting, self-attention, resume.

Known answers: the true noise and the true velocity of a noisy sample give back the same clean
latent and the same noise; DDIM with a v-predicting oracle lands on its x0; min-SNR weights
against hand-computed ones; the attention block keeps shapes, is the identity at initialisation
and permutation-equivariant over positions. Then a tiny two-stage run with every part switched on:
its resumed prior takes the uninterrupted one's steps (the only resume test of the prior stage: the
default recipe differs from it in the loss weights and target alone, pinned above).
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import OracleDenoiser

from vae_keras.config import get_config
from vae_keras.errors import ConfigError
from vae_keras.models import diffusion as D
from vae_keras.samplers import DiffusionSampler
from vae_keras.samplers.diffusion_training import prior_started
from vae_keras.training.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:label combination")


def noisy_sample(t: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x0 = tf.constant(rng.standard_normal((2, 4, 4, 3)), tf.float32)
    noise = tf.constant(rng.standard_normal((2, 4, 4, 3)), tf.float32)
    n, s = D.diffusion_schedule(tf.constant(t))
    return x0, noise, n, s, s * x0 + n * noise


@pytest.mark.parametrize("t", [0.02, 0.5, 0.97])
def test_v_and_eps_give_the_same_clean_estimate_of_a_known_noisy_sample(t):
    x0, noise, n, s, x_t = noisy_sample(t)
    from_eps = D.clean_and_noise(x_t, D.training_target(x0, noise, n, s, "eps"), n, s, "eps")
    from_v = D.clean_and_noise(x_t, D.training_target(x0, noise, n, s, "v"), n, s, "v")
    for (x0_eps, noise_eps), (x0_v, noise_v) in [(from_eps, from_v)]:
        np.testing.assert_allclose(x0_v.numpy(), x0_eps.numpy(), atol=2e-4)
        np.testing.assert_allclose(x0_v.numpy(), x0.numpy(), atol=2e-4)
        np.testing.assert_allclose(noise_v.numpy(), noise.numpy(), atol=1e-5)
    # the targets differ (v is not the noise), so the agreement above is not trivial
    assert np.abs(D.training_target(x0, noise, n, s, "v").numpy() - noise.numpy()).max() > 0.05
    with pytest.raises(ValueError, match="target"):
        D.clean_and_noise(x_t, noise, n, s, "x0")


def test_ddim_with_a_v_predicting_oracle_returns_its_x0_and_misreading_it_does_not():
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    noise = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    condition = np.zeros((2, 5), np.float32)
    out = D.ddim_sample(OracleDenoiser(x0, target="v"), noise, condition, steps=7, guidance=3.0, target="v")
    np.testing.assert_allclose(out.numpy(), x0, atol=1e-4)
    wrong = D.ddim_sample(OracleDenoiser(x0, target="v"), noise, condition, steps=7, guidance=3.0, target="eps")
    assert np.abs(wrong.numpy() - x0).max() > 0.1


def test_min_snr_weights_cap_the_easy_times():
    t = tf.constant([0.0, 0.3, 0.9])
    n, s = D.diffusion_schedule(t)
    snr = (s.numpy() / n.numpy()) ** 2                                # about 9.3, 1.6, 0.008
    np.testing.assert_allclose(D.min_snr_weights(n, s, 0.0).numpy(), 1.0)            # off: plain MSE
    np.testing.assert_allclose(D.min_snr_weights(n, s, 5.0, "eps").numpy(), np.minimum(snr, 5.0) / snr, rtol=1e-5)
    np.testing.assert_allclose(D.min_snr_weights(n, s, 5.0, "v").numpy(), np.minimum(snr, 5.0) / (snr + 1),
                               rtol=1e-5)
    assert D.min_snr_weights(n, s, 5.0, "eps").numpy()[0] < 0.6       # the nearly clean time is down-weighted
    np.testing.assert_allclose(D.min_snr_weights(n, s, 5.0, "eps").numpy()[1:], 1.0, rtol=1e-5)


def test_attention_block_keeps_shapes_starts_as_identity_and_is_permutation_equivariant():
    block = D.SpatialSelfAttention(heads=2)
    x = tf.constant(np.random.default_rng(2).standard_normal((2, 4, 4, 8)), tf.float32)
    np.testing.assert_array_equal(block(x).numpy(), x.numpy())         # the scale starts at zero
    block.scale.assign(np.linspace(0.5, 1.5, 8).astype(np.float32))
    y = block(x).numpy()
    assert y.shape == (2, 4, 4, 8) and np.abs(y - x.numpy()).max() > 1e-2
    perm = np.random.default_rng(3).permutation(16)
    x_perm = tf.reshape(tf.gather(tf.reshape(x, (2, 16, 8)), perm, axis=1), (2, 4, 4, 8))
    y_perm = block(x_perm).numpy().reshape(2, 16, 8)
    np.testing.assert_allclose(y_perm, y.reshape(2, 16, 8)[:, perm], atol=1e-5)
    # in the U-Net: one attention layer at the lowest resolution, same output shape as without
    net = D.build_unet((8, 8, 4), (16, 32), condition_dim=5, attention_heads=2)
    assert [type(layer).__name__ for layer in net.layers].count("SpatialSelfAttention") == 1
    out = net([tf.zeros((1, 8, 8, 4)), tf.fill((1, 1), 0.5), tf.zeros((1, 5))])
    assert out.shape == (1, 8, 8, 4)


def test_config_refuses_an_unknown_target_and_negative_parts():
    with pytest.raises(ConfigError, match="prior_target"):
        get_config("latent", quick=False, prior_target="x0")
    with pytest.raises(ConfigError, match="prior_attention"):
        get_config("latent", quick=False, prior_attention=-1)


def recipe(**kw):
    base = dict(image_size=32, batch_size=8, epochs=1, prior_epochs=3, prior_batch_size=8, seed=2,
                prior_target="v", prior_min_snr=5.0, prior_attention=2, prior_widths=(16, 32))
    base.update(kw)
    return get_config("latent", quick=False, **base)


def test_a_resumed_prior_with_the_whole_recipe_equals_the_uninterrupted_one(tiny_dataset, tmp_path):
    tf.config.experimental.enable_op_determinism()
    full = train(recipe(), tiny_dataset, tmp_path / "full", progress=False, callbacks=())
    cut = train(recipe(prior_epochs=1), tiny_dataset, tmp_path / "cut", progress=False, callbacks=())
    assert prior_started(tmp_path / "cut") and len(cut.prior_history) == 1
    after_one = [w.numpy() for w in DiffusionSampler(cut.model, tmp_path / "cut").network.weights]
    resumed = train(recipe(), tiny_dataset, tmp_path / "cut", resume=True, progress=False, callbacks=())
    assert [h["epoch"] for h in resumed.history] == [1]                 # the autoencoder was final
    assert [h["epoch"] for h in resumed.prior_history] == [1, 2, 3]
    a = DiffusionSampler(full.model, tmp_path / "full", steps=3)
    b = DiffusionSampler(resumed.model, tmp_path / "cut", steps=3)
    assert a.target == "v" and any(type(layer).__name__ == "SpatialSelfAttention" for layer in a.network.layers)
    for wa, wb in zip(a.network.weights, b.network.weights):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-5, atol=1e-7, err_msg=wa.path)
    np.testing.assert_allclose(a.sample(4, seed=5), b.sample(4, seed=5), atol=1e-5)
    # the control: after one epoch the weights were measurably elsewhere
    assert max(np.abs(w.numpy() - w1).max() for w, w1 in zip(a.network.weights, after_one)) > 1e-4
    scale = next(w for w in a.network.weights if w.path.endswith("middle_attention/scale"))
    assert np.abs(scale.numpy()).max() > 0                          # the attention took part in training
