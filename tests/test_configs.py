"""Every named configuration builds, takes a training step, and the improved pieces do their job."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from vae_keras.config import DEFAULT_CONFIG, NAMED_CONFIGS, SEED, get_config
from vae_keras.models.losses import continuous_bernoulli_log_norm, loss_terms
from vae_keras.models.cvae import build_model
from vae_keras.training.trainer import Trainer


def small(name, **kw):
    return get_config(name, quick=False, image_size=32, batch_size=8, epochs=1, **kw)


def test_seed_is_unchanged_and_default_is_named():
    assert SEED.architecture == "seed" and SEED.likelihood == "bernoulli" and not SEED.conditional
    assert SEED.latent_dim == 2 and SEED.encoder_filters == (32, 64) and SEED.kl_warmup_epochs == 0
    assert DEFAULT_CONFIG in NAMED_CONFIGS


@pytest.mark.parametrize("name", sorted(NAMED_CONFIGS))
def test_each_configuration_builds_and_takes_a_step(name, tiny_dataset, tmp_path):
    trainer = Trainer(small(name), str(tiny_dataset), tmp_path / name, progress=False).setup()
    before = [w.numpy().copy() for w in trainer.model.trainable_weights]
    x = tf.random.uniform((8, 32, 32, 1))
    y = tf.constant(np.eye(4, dtype=np.float32)[np.arange(8) % 4])
    recon, kl, _ = trainer.train_step(x, y)
    assert np.isfinite(float(recon)) and np.isfinite(float(kl))
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, trainer.model.trainable_weights)]
    assert any(changed)
    out = trainer.model.sample(n=2, y=y[:2]).numpy()
    assert out.shape == (2, 32, 32, 1) and np.all((out >= 0) & (out <= 1))


def test_conditional_output_changes_with_the_label():
    model = build_model(small("conditional"))
    z = tf.random.normal((1, model.latent_dim), seed=1)
    knife = model.decode(z, y=tf.constant([[0.0, 1.0, 0.0, 0.0]])).numpy()
    gun = model.decode(z, y=tf.constant([[1.0, 0.0, 0.0, 0.0]])).numpy()
    assert np.abs(knife - gun).max() > 1e-4
    mean_k, _ = model.encode(tf.zeros((1, 32, 32, 1)), y=tf.constant([[0.0, 1.0, 0.0, 0.0]]))
    mean_g, _ = model.encode(tf.zeros((1, 32, 32, 1)), y=tf.constant([[1.0, 0.0, 0.0, 0.0]]))
    assert np.abs(mean_k.numpy() - mean_g.numpy()).max() > 1e-6


def test_sigma_vae_uses_the_analytic_optimal_sigma():
    model = build_model(small("sigma"))
    x = tf.random.uniform((4, 32, 32, 1))
    recon, kl, kl_dim, log_sigma = loss_terms(model, x, eps=tf.zeros((4, model.latent_dim)))
    x_mean = model.decode(model.encode(x)[0], apply_sigmoid=True)
    mse = float(tf.reduce_mean(tf.square(x - x_mean)))
    assert float(log_sigma) == pytest.approx(0.5 * np.log(mse), rel=1e-4)
    np.testing.assert_allclose(kl.numpy(), kl_dim.numpy().sum(axis=1), rtol=1e-5)


def test_kl_warmup_and_free_bits():
    from vae_keras.models.losses import free_bits_kl

    assert float(free_bits_kl(tf.zeros((3, 4)), 0.5)) == pytest.approx(2.0)
    assert float(free_bits_kl(tf.fill((3, 4), 1.0), 0.5)) == pytest.approx(4.0)


def test_warmup_weight_rises_linearly(tiny_dataset, tmp_path):
    trainer = Trainer(small("resnet", kl_warmup_epochs=2), str(tiny_dataset), tmp_path / "r", progress=False).setup()
    steps = trainer._steps_per_epoch * 2                        # 16 images / batch 8 = 2 steps an epoch
    assert float(trainer.kl_weight(tf.constant(0, tf.int64))) == pytest.approx(1 / steps)
    assert float(trainer.kl_weight(tf.constant(steps + 5, tf.int64))) == 1.0


def test_continuous_bernoulli_normaliser_integrates_to_one():
    logits = tf.constant([-3.0, 0.0, 1e-4, 2.5])
    xs = np.linspace(0, 1, 20001, dtype=np.float32)[:, None]
    lam = tf.sigmoid(logits).numpy()
    dens = np.exp(xs * np.log(lam) + (1 - xs) * np.log1p(-lam) + continuous_bernoulli_log_norm(logits).numpy())
    np.testing.assert_allclose(np.trapezoid(dens, xs[:, 0], axis=0), 1.0, rtol=1e-3)


def test_conditional_run_trains_fits_sampler_and_generates_with_label(tiny_dataset, tmp_path):
    from vae_keras.io.manifest import read_manifest
    from vae_keras.training.checkpoint import load_run
    from vae_keras.cli import main

    run = tmp_path / "run"
    Trainer(small("conditional", gmm_components=2), str(tiny_dataset), run, progress=False).fit()
    assert (run / "sampler_gmm.npz").is_file() and (run / "label_prior.npz").is_file()
    assert main(["generate", str(run), "--n", "5", "--out", str(tmp_path / "gen"), "--label", "knife",
                 "--quiet"]) == 0
    rows = read_manifest(tmp_path / "gen" / "manifest.csv")
    assert [r.labels for r in rows] == [["knife"]] * 5
    _, model = load_run(run)
    assert model.conditional


def test_adversarial_pieces_on_known_cases():
    from vae_keras.models.adversarial import adaptive_weight, generator_loss, hinge_discriminator_loss, patch_discriminator

    sure = hinge_discriminator_loss(tf.fill((2, 4, 4, 1), 2.0), tf.fill((2, 4, 4, 1), -2.0))
    fooled = hinge_discriminator_loss(tf.fill((2, 4, 4, 1), -1.0), tf.fill((2, 4, 4, 1), 1.0))
    np.testing.assert_allclose(sure.numpy(), 0.0)                  # confident and right: no loss
    np.testing.assert_allclose(fooled.numpy(), 4.0)
    np.testing.assert_allclose(generator_loss(tf.fill((2, 4, 4, 1), 3.0)).numpy(), -3.0)
    assert float(adaptive_weight(tf.fill((4,), 2.0), tf.fill((4,), 1.0))) == pytest.approx(2.0, rel=1e-3)
    assert float(adaptive_weight(tf.ones((4,)), tf.zeros((4,)))) == 1e4       # clipped, never inf
    assert patch_discriminator(32)(tf.zeros((3, 32, 32, 1))).shape == (3, 8, 8, 1)
    with pytest.raises(ValueError, match="adversarial"):
        small("sigma", adversarial_weight=-1.0)


def test_adversarial_training_steps_both_networks_and_resumes(tiny_dataset, tmp_path):
    """After adversarial_start_epoch the step also trains the discriminator; its state is checkpointed."""
    config = small("sigma", adversarial_weight=0.5, adversarial_start_epoch=1, gmm_components=2).replace(epochs=2)
    trainer = Trainer(config, str(tiny_dataset), tmp_path / "adv", progress=False).setup()
    assert not trainer.adversarial_at(1) and trainer.adversarial_at(2)
    disc = [w.numpy().copy() for w in trainer.discriminator.trainable_weights]
    trainer.fit()
    assert [h.get("discriminator_loss") is None for h in trainer.history] == [True, False]
    assert np.isfinite(trainer.history[-1]["discriminator_loss"]) and trainer.history[-1]["adversarial_weight"] > 0
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(disc, trainer.discriminator.trainable_weights))
    resumed = Trainer(config.replace(epochs=3), str(tiny_dataset), tmp_path / "adv", resume=True,
                      progress=False).setup()
    for a, b in zip(trainer.discriminator.weights, resumed.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
