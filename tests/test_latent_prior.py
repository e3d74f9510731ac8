"""The ``latent`` configuration: a spatial-latent autoencoder and its learned diffusion prior (issue #14).

Known answers first (the schedule, a DDIM step given the true noise, guidance at 0 and 1, an
oracle denoiser), then the two-stage training on the tiny 32x32 set (16 training images):
``train -> generate -> evaluate`` work through the command line. (The prior's resume giving the
uninterrupted run's weights: tests/test_prior_recipe.py, with every part of the recipe on.)
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import OracleDenoiser

from vae_keras.cli import main
from vae_keras.config import get_config
from vae_keras.errors import ConfigError
from vae_keras.evaluation import evaluate as E
from vae_keras.io.manifest import CLASSES, read_manifest
from vae_keras.models import diffusion as D
from vae_keras.models.cvae import build_model
from vae_keras.samplers import get_sampler, load_sampler
from vae_keras.training.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:label combination")


def tiny(**kw):
    base = dict(image_size=32, batch_size=8, epochs=2, prior_epochs=3, prior_batch_size=8, seed=1)
    base.update(kw)
    return get_config("latent", quick=False, **base)


# -- the configuration and the autoencoder ------------------------------------------------------
def test_latent_map_size_follows_the_image_size():
    assert get_config("latent", quick=False, image_size=64).latent_shape() == (16, 16, 4)     # f = 4
    assert get_config("latent", quick=False, image_size=224).latent_shape() == (28, 28, 4)   # f = 8
    assert get_config("latent", quick=False, image_size=64).latent_dim == 1024
    assert get_config("latent", quick=False, image_size=64, latent_factor=2).latent_dim == 32 * 32 * 4
    with pytest.raises(ConfigError, match="power of 2"):
        get_config("latent", quick=False, image_size=64, latent_factor=3)
    with pytest.raises(ConfigError, match="needs architecture='latent'"):      # the sampler's own rule
        get_sampler("diffusion", get_config("sigma", quick=False, sampler="diffusion"))
    with pytest.raises(ConfigError, match="unconditional"):
        get_config("latent", quick=False, conditional=True)


def test_spatial_latent_is_a_map_flattened_row_major():
    model = build_model(tiny())
    x = tf.random.uniform((2, 32, 32, 1), seed=0)
    mean, logvar = model.encode(x)
    h = model.encoder(x)                                              # (2, 8, 8, 8): means | log-variances
    np.testing.assert_allclose(mean.numpy(), h[..., :4].numpy().reshape(2, -1), atol=1e-6)
    np.testing.assert_allclose(logvar.numpy(), h[..., 4:].numpy().reshape(2, -1), atol=1e-6)
    # each level's residual branch starts at zero: the block is the identity before training
    blocks = [layer for layer in model.encoder.layers if type(layer).__name__ == "ResBlock"]
    y = tf.random.normal((1, 8, 8, blocks[0].filters))
    np.testing.assert_array_equal(blocks[0](y).numpy(), y.numpy())


def test_the_squared_error_term_is_added_only_when_weighted():
    from vae_keras.models.latent import edge_l1

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(3, 8, 8, 1)), tf.float32)
    x_hat = tf.constant(rng.uniform(size=(3, 8, 8, 1)), tf.float32)
    plain = edge_l1(x, x_hat, 1.0).numpy()                                 # (3,)
    mse = np.mean((x.numpy() - x_hat.numpy()) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(edge_l1(x, x_hat, 1.0, 2.5).numpy(), plain + 2.5 * mse, rtol=1e-5)
    np.testing.assert_array_equal(edge_l1(x, x, 1.0, 2.5).numpy(), 0.0)
    with pytest.raises(ConfigError, match="pixel_l2_weight"):
        tiny(pixel_l2_weight=-1.0)


# -- the schedule, DDIM, guidance ---------------------------------------------------------------
def test_schedule_ends_and_unit_norm():
    t = tf.linspace(0.0, 1.0, 11)
    noise, signal = D.diffusion_schedule(t)
    np.testing.assert_allclose((noise ** 2 + signal ** 2).numpy(), 1.0, atol=1e-6)
    assert float(signal[0]) == pytest.approx(D.MAX_SIGNAL_RATE, abs=1e-6)
    assert float(signal[-1]) == pytest.approx(D.MIN_SIGNAL_RATE, abs=1e-6)
    assert np.all(np.diff(signal.numpy()) < 0)                       # less signal as t grows


@pytest.mark.parametrize("t,t_next", [(1.0, 0.96), (0.5, 0.4), (0.08, 0.0)])
def test_ddim_step_with_the_true_noise_recovers_x0_and_lands_on_the_next_noise_level(t, t_next):
    rng = np.random.default_rng(0)
    x0 = tf.constant(rng.standard_normal((3, 4, 4, 2)), tf.float32)
    noise = tf.constant(rng.standard_normal((3, 4, 4, 2)), tf.float32)
    x_t = D.add_noise(x0, noise, tf.fill((3,), t))
    pred_x0, x_next = D.ddim_step(x_t, noise, tf.constant(t), tf.constant(t_next))
    np.testing.assert_allclose(pred_x0.numpy(), x0.numpy(), atol=2e-4 if t == 1.0 else 1e-5)
    np.testing.assert_allclose(x_next.numpy(), D.add_noise(x0, noise, tf.fill((3,), t_next)).numpy(), atol=1e-5)
    wrong, _ = D.ddim_step(x_t, noise * 0.5, tf.constant(t), tf.constant(t_next))
    assert np.abs(wrong.numpy() - x0.numpy()).max() > 0.1
    clipped, _ = D.ddim_step(x_t, noise * 0.5, tf.constant(t), tf.constant(t_next), clip=1.0)
    np.testing.assert_array_equal(clipped.numpy(), np.clip(wrong.numpy(), -1.0, 1.0))
    low, high = np.array([-0.5, -2.0], np.float32), np.array([0.25, 1.5], np.float32)     # one range per channel
    ranged, _ = D.ddim_step(x_t, noise * 0.5, tf.constant(t), tf.constant(t_next), clip=(low, high))
    np.testing.assert_array_equal(ranged.numpy(), np.clip(wrong.numpy(), low, high))


def test_ddim_sampling_with_an_oracle_denoiser_returns_its_x0():
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    out = D.ddim_sample(OracleDenoiser(x0), rng.standard_normal((2, 4, 4, 3)), np.zeros((2, 5), np.float32),
                        steps=7, guidance=3.0)
    np.testing.assert_allclose(out.numpy(), x0, atol=1e-4)


def random_unet():
    net = D.build_unet((8, 8, 4), (16, 32), condition_dim=5)
    rng = np.random.default_rng(3)
    for w in net.weights:                                             # no zero-initialised output
        w.assign(rng.normal(0.0, 0.1, w.shape).astype(np.float32))
    return net


def test_guidance_zero_is_the_unconditional_prediction_and_one_the_conditional():
    net = random_unet()
    x = tf.constant(np.random.default_rng(4).standard_normal((3, 8, 8, 4)), tf.float32)
    cond = tf.constant(D.condition_vectors(np.eye(4, dtype=np.float32)[:3], 3, 4))
    v = tf.fill((3, 1), 0.25)
    uncond = net([x, v, tf.zeros_like(cond)]).numpy()
    conditional = net([x, v, cond]).numpy()
    assert np.abs(uncond - conditional).max() > 1e-3                   # the labels matter
    np.testing.assert_allclose(D.guided_noise(net, x, 0.5, cond, 0.0).numpy(), uncond, atol=1e-5)
    np.testing.assert_allclose(D.guided_noise(net, x, 0.5, cond, 1.0).numpy(), conditional, atol=1e-5)
    np.testing.assert_allclose(D.guided_noise(net, x, 0.5, cond, 3.0).numpy(),
                               uncond + 3.0 * (conditional - uncond), atol=1e-4)


def test_condition_vectors_tell_benign_from_no_condition():
    assert D.condition_vectors(None, 2, 4).tolist() == [[0.0] * 5] * 2
    assert D.condition_vectors(np.zeros((1, 4)), 1, 4).tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]


# -- two-stage training ----------------------------------------------------------------------------
def test_time_budget_splits_the_stages(tiny_dataset, tmp_path):
    trainer = Trainer(tiny(epochs=50, prior_epochs=50), str(tiny_dataset), tmp_path / "run", minutes=1e-4,
                      progress=False)
    trainer.fit()
    assert len(trainer.history) == 1 and len(trainer.prior_history) == 1   # one epoch each, then out of time


def test_a_prior_trained_on_another_autoencoder_is_not_resumed(tiny_dataset, tmp_path, capsys):
    from vae_keras.data.pipeline import load_split
    from vae_keras.samplers.diffusion_training import PriorTrainer

    config = tiny(prior_epochs=1)
    x, y = load_split(tiny_dataset, "train", image_size=32)
    first, other = build_model(config), build_model(config.replace(seed=2))     # two untrained autoencoders
    PriorTrainer(config, first, x, y, tmp_path, progress=False).fit()
    longer = config.replace(prior_epochs=2)
    same = PriorTrainer(longer, first, x, y, tmp_path, resume=True)
    assert not same.stale and [h["epoch"] for h in same.history] == [1]        # resumed where it stopped
    assert "another autoencoder" not in capsys.readouterr().err
    changed = PriorTrainer(longer, other, x, y, tmp_path, resume=True)
    assert changed.stale and changed.history == [] and int(changed.epoch.numpy()) == 0   # trained afresh
    assert "another autoencoder's latents" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cli_run(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("latent_cli")
    data = shutil.copytree(tiny_dataset, root / "data")
    assert main(["train", str(data), "--out", str(root / "run"), "--config", "latent", "--image-size", "32",
                 "--epochs", "2", "--batch-size", "8", "--quiet"]) == 0
    return data, root / "run"


def test_train_generate_evaluate_end_to_end(cli_run, tmp_path):
    data, run = cli_run
    assert (run / "prior" / "latent_stats.npz").is_file() and (run / "prior" / "history.json").is_file()
    for out in ("a", "b"):
        assert main(["generate", str(run), "--n", "5", "--out", str(tmp_path / out), "--steps", "4",
                     "--guidance", "3", "--label", "knife", "--quiet"]) == 0
    rows = read_manifest(tmp_path / "a" / "manifest.csv")
    assert len(rows) == 5 and all(r.labels == ["knife"] for r in rows)
    for r in rows:                                                    # the same seed: the same images
        assert (tmp_path / "a" / r.path).read_bytes() == (tmp_path / "b" / r.path).read_bytes()
    assert main(["generate", str(run), "--n", "2", "--out", str(tmp_path / "c"), "--steps", "0"]) == 2
    assert main(["generate", str(run), "--n", "2", "--out", str(tmp_path / "d"), "--clip", "-1"]) == 2
    out = E.evaluate_run(run, data, n=8, k=2, n_likelihood=4, n_per_class=2, folds=2, two_sample_steps=20,
                         progress=False, save=False, steps=3, clip=0.0)
    assert out["ddim_steps"] == 3 and out["guidance"] == 3.0 and out["prior_clip"] == 0.0
    assert out["sampler"] == "diffusion" and np.isfinite(out["recon_psnr"]) and np.isfinite(out["sharpness_ratio"])
    assert set(out["class_recognition"]) == {"handgun", "knife", "razor_blade", "shuriken"}   # a class can be asked for


def test_sampler_is_deterministic_whatever_the_batch_and_follows_steps_and_guidance(cli_run):
    _, run = cli_run
    from vae_keras.training.checkpoint import load_run

    _, model = load_run(run)
    sampler = load_sampler(run, model, steps=3, guidance=2.0)
    assert (sampler.steps, sampler.guidance) == (3, 2.0)
    labels = np.eye(4, dtype=np.float32)[[1, 1, 0, 3, 2]]
    whole = sampler.sample(5, seed=7, labels=labels)
    sampler.batch_size = 2
    np.testing.assert_allclose(sampler.sample(5, seed=7, labels=labels), whole, atol=1e-5)
    assert whole.shape == (5, model.latent_dim)
    unguided = load_sampler(run, model, steps=3, guidance=0.0)
    assert np.abs(unguided.sample(5, seed=7, labels=labels) - whole).max() > 0
    # guidance 0 is the unconditional prediction: the labels then change nothing
    np.testing.assert_array_equal(unguided.sample(5, seed=7, labels=labels), unguided.sample(5, seed=7, labels=labels[::-1]))
    # a setting given per call is the same as one given when loading
    np.testing.assert_array_equal(unguided.sample(5, seed=7, labels=labels, guidance=2.0), whole)
    assert np.abs(sampler.sample(5, seed=8, labels=labels) - whole).max() > 0
    tight = load_sampler(run, model, steps=3, guidance=2.0, clip=0.01)    # clipped to 0.01 sd of each channel
    assert tight.clip == 0.01 and np.abs(tight.sample(5, seed=7, labels=labels) - whole).max() > 0


def test_clip_range_bounds_each_channel_by_the_training_latents_range(cli_run, tmp_path):
    data, run = cli_run
    from vae_keras.samplers.diffusion_training import posterior_latents, record_latent_range
    from vae_keras.training.checkpoint import load_run
    from vae_keras.data.pipeline import load_split

    config, model = load_run(run)
    sampler = load_sampler(run, model, steps=3, guidance=2.0, clip=0.0)
    low, high = sampler.latent_range                                  # what the prior's training latents span
    train_x, _ = load_split(data, "train", image_size=32)
    standardised = (posterior_latents(model, train_x, flip=config.flip) - sampler.mean) / sampler.std
    np.testing.assert_allclose(low, standardised.min(axis=(0, 1, 2)), atol=1e-4)
    np.testing.assert_allclose(high, standardised.max(axis=(0, 1, 2)), atol=1e-4)
    labels = np.eye(4, dtype=np.float32)[[1, 1, 0, 3, 2]]
    shape = (-1,) + tuple(config.latent_shape())
    for k in (1.0, 0.5):             # clip_range replaces clip: every channel within k times its own range
        ranged = sampler.sample(5, seed=7, labels=labels, clip=0.01, clip_range=k).reshape(shape)
        z = (ranged - sampler.mean) / sampler.std
        assert np.all(z >= k * low - 1e-4) and np.all(z <= k * high + 1e-4)
        assert np.abs(z).max() > 0.02                                 # not the +-0.01 of clip
    assert np.any((z <= 0.5 * low + 1e-4) | (z >= 0.5 * high - 1e-4))  # at half the range the bound binds
    # a prior saved before the range was recorded: a clear error that says how to record it
    old = shutil.copytree(run, tmp_path / "old")
    stats = old / "prior" / "latent_stats.npz"
    with np.load(stats) as f:
        np.savez(stats, mean=f["mean"], std=f["std"])
    plain = load_sampler(old, model, steps=3)
    assert plain.latent_range is None and plain.sample(2, seed=1).shape == (2, model.latent_dim)   # clip alone works
    with pytest.raises(ConfigError, match="record_latent_range"):
        plain.sample(2, seed=1, clip_range=1.0)
    with pytest.raises(ValueError, match="not those its prior was trained on"):
        record_latent_range(model, train_x[:5], old)                  # not the prior's training split
    np.testing.assert_allclose(record_latent_range(model, train_x, old), (low, high), atol=1e-5)   # as the message says
    np.testing.assert_allclose(load_sampler(old, model, steps=3).latent_range, (low, high), atol=1e-5)


def test_latent_dim_flag_is_refused_for_a_spatial_latent(tiny_dataset, tmp_path, capsys):
    assert main(["train", str(tiny_dataset), "--out", str(tmp_path / "run"), "--config", "latent",
                 "--latent-dim", "8", "--quiet"]) == 2
    assert "--latent-dim does not apply" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_gallery_and_detection_export_of_a_latent_run(cli_run, tmp_path):
    data, run = cli_run
    assert main(["gallery", str(run), "--out", str(tmp_path / "gallery"), "--data", str(data)]) == 0
    page = (tmp_path / "gallery" / "index.html").read_text(encoding="utf-8")
    assert "diffusion" in page                                   # the page names the learned prior it sampled
    # a prior sample has image-level labels only: a detection format without boxes is refused, csv is not
    assert main(["generate", str(run), "--n", "4", "--label", "handgun", "--format", "voc", "--steps", "3",
                 "--out", str(tmp_path / "voc"), "--quiet"]) == 2 and not (tmp_path / "voc").exists()
    assert main(["generate", str(run), "--n", "4", "--label", "handgun", "--format", "csv", "--steps", "3",
                 "--out", str(tmp_path / "csv"), "--quiet"]) == 0
    assert [r.labels for r in read_manifest(tmp_path / "csv" / "manifest.csv")] == [["handgun"]] * 4
    # hybrid: the prior's benign bags with real threats (of boxed phantoms) projected in, exact boxes for YOLO
    from data_prep.phantoms import write_phantom_dataset

    write_phantom_dataset(tmp_path / "boxed", n=24, size=32, seed=0, progress=False, workers=1)
    assert main(["generate", str(run), "--n", "4", "--label", "knife", "--format", "yolo", "--steps", "3",
                 "--tip", str(tmp_path / "boxed"), "--out", str(tmp_path / "yolo"), "--quiet"]) == 0
    rows = read_manifest(tmp_path / "yolo" / "manifest.csv")
    assert all(r.labels == ["knife"] and [b["label"] for b in r.boxes] == ["knife"] for r in rows)
    assert len(list((tmp_path / "yolo" / "labels").glob("*.txt"))) == 4


def test_demo_trains_the_default_latent_configuration_in_two_stages(tmp_path, capsys):
    from vae_keras.cli.commands.demo import QUICK
    from vae_keras.config import DEFAULT_CONFIG

    assert DEFAULT_CONFIG == "latent" and QUICK["prior_epochs"] > QUICK["epochs"]   # the prior's epochs are cheap
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "30", "--epochs", "1", "--prior-epochs", "3", "--image-size", "32",
                 "--n-generate", "4", "--quick", "--quiet"]) == 0
    for name in ("samples_grid.png", "real_grid.png", "interpolations.png", "class_samples.png"):
        assert (out / name).stat().st_size > 0, name
    printed = capsys.readouterr().out                         # the class rows: composites, each scored
    assert "class_samples.png (composite, 8 images a row)" in printed
    assert all(f"\n  {c:<12} " in printed for c in [*CLASSES, "benign"])
    assert (out / "run" / "prior" / "latent_stats.npz").is_file()                  # both stages trained
    assert len(json.loads((out / "run" / "prior" / "history.json").read_text())) == 3    # --prior-epochs
    assert len(read_manifest(out / "generated" / "manifest.csv")) == 4
