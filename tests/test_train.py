"""The GradientTape loop: learning happens, checkpoints resume exactly, failures are clear."""
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from vae_keras.training.checkpoint import latest_checkpoint, load_history, load_run
from vae_keras.config import get_config
from vae_keras.errors import ConfigError, RunExists, TrainingDiverged
from vae_keras.training.trainer import Trainer, train


def tiny_config(**kw):
    base = dict(image_size=32, latent_dim=2, batch_size=8, epochs=2, learning_rate=1e-3, seed=3)
    base.update(kw)
    return get_config("seed", quick=False, **base)


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    """One 6-epoch run shared by the tests that only read it."""
    run = tmp_path_factory.mktemp("run")
    trainer = train(tiny_config(epochs=6), tiny_dataset, run, progress=False)
    return run, trainer


def test_loss_decreases(trained_run):
    _, trainer = trained_run
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 6
    assert losses[-1] < losses[0]
    assert all(np.isfinite(h["test_loss"]) for h in trainer.history)


def test_run_folder_holds_everything(trained_run):
    run, _ = trained_run
    assert json.loads((run / "config.json").read_text())["image_size"] == 32
    assert [h["epoch"] for h in load_history(run)] == [1, 2, 3, 4, 5, 6]
    assert latest_checkpoint(run).endswith("ckpt-6")
    assert len(list((run / "samples").glob("epoch_*.png"))) == 6
    assert list((run / "logs").iterdir()), "TensorBoard events missing"


def test_load_run_restores_the_trained_weights(trained_run):
    run, trainer = trained_run
    config, model = load_run(run)
    z = tf.constant([[0.3, -0.2]])
    np.testing.assert_allclose(model.decode(z).numpy(), trainer.model.decode(z).numpy(), atol=1e-6)


def test_resumed_run_equals_uninterrupted_run(tiny_dataset, tmp_path):
    tf.config.experimental.enable_op_determinism()
    full = train(tiny_config(epochs=3, flip=True), tiny_dataset, tmp_path / "full", progress=False)
    train(tiny_config(epochs=1, flip=True), tiny_dataset, tmp_path / "cut", progress=False)
    resumed = train(tiny_config(epochs=3, flip=True), tiny_dataset, tmp_path / "cut", resume=True,
                    progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(full.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert resumed.history[-1]["loss"] == full.history[-1]["loss"]


def test_existing_run_is_not_overwritten(trained_run, tiny_dataset):
    run, _ = trained_run
    before = (run / "config.json").read_bytes()
    with pytest.raises(RunExists, match="--resume"):
        Trainer(tiny_config(), tiny_dataset, run, progress=False).fit()
    assert (run / "config.json").read_bytes() == before


def test_constructing_a_trainer_reads_and_writes_nothing(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path / "no_data", tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    assert not hasattr(trainer, "model"), "the model is built by setup(), not on first attribute read"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trainer.setup()                                 # set up explicitly (fit() and evaluate() call it)
    assert not (tmp_path / "run").exists(), "a failed setup must not leave a run folder behind"


def test_a_data_set_that_fails_to_load_leaves_no_run_folder(tiny_dataset, tmp_path):
    """Else the rerun after fixing the data is refused with RunExists."""
    with pytest.raises(ValueError, match="num_classes=3"):
        train(tiny_config(conditional=True, num_classes=3), tiny_dataset, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_broken_test_split_is_an_error_not_a_skipped_evaluation(tiny_dataset, tmp_path, monkeypatch):
    from vae_keras.training import trainer as trainer_module

    real = trainer_module.load_split

    def broken_test_split(data_dir, split, image_size=None):
        if split == "test":
            raise ValueError(f"split 'test' of {data_dir} mixes image sizes [(32, 32), (48, 48)]")
        return real(data_dir, split, image_size=image_size)

    monkeypatch.setattr(trainer_module, "load_split", broken_test_split)
    with pytest.raises(ValueError, match="mixes image sizes"):
        train(tiny_config(epochs=1), tiny_dataset, tmp_path / "run", progress=False)


def test_a_data_set_without_test_split_trains_and_says_so_once(tiny_dataset, tmp_path, capsys):
    import shutil

    from vae_keras.io.manifest import read_manifest, write_manifest

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    write_manifest(data / "manifest.csv", [r for r in read_manifest(data / "manifest.csv") if r.split == "train"])
    trainer = train(tiny_config(epochs=2), data, tmp_path / "run", progress=False)
    assert [h["epoch"] for h in trainer.history] == [1, 2]
    assert not any("test_loss" in h for h in trainer.history)
    assert capsys.readouterr().err.count("has no test split") == 1


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(tiny_dataset, tmp_path):
    trainer = train(tiny_config(epochs=1), tiny_dataset, tmp_path / "run", progress=False)
    good = latest_checkpoint(tmp_path / "run")
    trainer.config = trainer.config.replace(epochs=2)
    b = trainer.model.encoder.layers[-1].bias  # NaN posterior mean -> NaN loss on the first step
    b.assign(tf.fill(b.shape, float("nan")))
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1"):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "run") == good
    assert [h["epoch"] for h in load_history(tmp_path / "run")] == [1]


def test_minutes_budget_stops_at_first_epoch_end(tiny_dataset, tmp_path):
    trainer = train(tiny_config(epochs=5), tiny_dataset, tmp_path / "run", minutes=0, progress=False)
    assert len(trainer.history) == 1


def test_improved_configuration_resumes_exactly(tiny_dataset, tmp_path):
    """KL warm-up, free bits, the sigma-VAE's running sigma and the labels all survive a resume."""
    tf.config.experimental.enable_op_determinism()

    def cfg(epochs):
        return get_config("conditional", quick=False, image_size=32, latent_dim=4, batch_size=8, epochs=epochs,
                          encoder_filters=(8, 16, 16), decoder_filters=(16, 16, 8), kl_warmup_epochs=2,
                          gmm_components=2, seed=3)

    full = train(cfg(3), tiny_dataset, tmp_path / "full", progress=False)
    train(cfg(1), tiny_dataset, tmp_path / "cut", progress=False)
    resumed = train(cfg(3), tiny_dataset, tmp_path / "cut", resume=True, progress=False)
    for a, b in zip(full.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert resumed.history[-1]["kl_weight"] == full.history[-1]["kl_weight"] == 1.0
    assert resumed.history[-1]["log_sigma"] == full.history[-1]["log_sigma"]


def test_adversarial_configuration_resumes_exactly_with_the_discriminator_on(tiny_dataset, tmp_path):
    """The adversarial objective, discriminator active from epoch 1: interrupted == uninterrupted."""
    tf.config.experimental.enable_op_determinism()

    def cfg(epochs):
        return get_config("adversarial", quick=False, image_size=32, latent_dim=4, batch_size=8, epochs=epochs,
                          encoder_filters=(8, 16, 16), decoder_filters=(16, 16, 8), adversarial_start_epoch=0,
                          gmm_components=2, seed=3)

    assert cfg(1).adversarial_weight > 0
    full = train(cfg(2), tiny_dataset, tmp_path / "full", progress=False)
    train(cfg(1), tiny_dataset, tmp_path / "cut", progress=False)
    resumed = train(cfg(2), tiny_dataset, tmp_path / "cut", resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert all(h["adversarial_weight"] > 0 for h in full.history), "the discriminator must be on from epoch 1"

    def state(t):
        return t.model.weights + t.discriminator.weights + t.optimizer.variables + t.d_optimizer.variables

    assert len(state(full)) == len(state(resumed))
    for a, b in zip(state(full), state(resumed)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for key in ("loss", "test_loss", "discriminator_loss", "adversarial_weight", "log_sigma"):
        assert resumed.history[-1][key] == full.history[-1][key], key


def test_init_from_starts_with_the_source_runs_weights(trained_run, tiny_dataset, tmp_path, capsys):
    run, source = trained_run
    trainer = Trainer(tiny_config(epochs=1, seed=7), tiny_dataset, tmp_path / "tuned", init_from=run,
                      progress=False).setup()
    assert "from the weights of" in capsys.readouterr().err
    _, model = load_run(run)
    assert len(trainer.model.weights) == len(model.weights)
    for a, b in zip(model.weights, trainer.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert int(trainer.optimizer.iterations.numpy()) == 0 and int(trainer.epoch.numpy()) == 0   # fresh start
    trainer.fit()
    assert [h["epoch"] for h in trainer.history] == [1]
    assert trainer.history[0]["loss"] < source.history[0]["loss"], "a warm start begins below a cold one"


def test_init_from_another_family_is_a_clear_error(trained_run, tiny_dataset, tmp_path):
    run, _ = trained_run
    with pytest.raises(ConfigError, match=r"latent_dim: 2 there, 3 here.*image_size|image_size: 32 there, 64 here"):
        train(tiny_config(latent_dim=3, image_size=64), tiny_dataset, tmp_path / "other", init_from=run,
              progress=False)
    assert not (tmp_path / "other").exists()
    with pytest.raises(FileNotFoundError, match="not a training run"):
        train(tiny_config(), tiny_dataset, tmp_path / "other", init_from=tmp_path / "nothing", progress=False)


def test_cli_init_from_another_family_is_one_error_line(trained_run, tiny_dataset, tmp_path):
    import os
    import subprocess
    import sys

    run, _ = trained_run
    out = subprocess.run([sys.executable, "-m", "vae_keras", "train", str(tiny_dataset), "--out", str(tmp_path / "t"),
                          "--config", "seed", "--image-size", "64", "--latent-dim", "2", "--init-from", str(run),
                          "--quiet"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: cannot start from the weights of" in out.stderr and "image_size: 32 there, 64 here" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "t").exists()


def test_make_figures_from_a_finished_run_leaves_the_run_alone(trained_run, tiny_dataset, tmp_path):
    """scripts/make_figures.py --from-run: figures, gallery and provenance from a run trained elsewhere;
    the source run gets nothing written into it, and a folder that is not a run is one error line."""
    import subprocess
    import sys

    run, trainer = trained_run
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_figures.py"
    argv = [sys.executable, str(script), "--from-run", str(run), "--data", str(tiny_dataset),
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "figs"), "--quiet",
            "--two-sample-steps", "20"]                      # the two-sample test has its own tests
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    info = json.loads((tmp_path / "figs" / "run" / "run_info.json").read_text())
    assert info["from_run"] == str(run) and info["budget_minutes"] is None
    assert info["training_minutes"] == round(sum(h["seconds"] for h in trainer.history) / 60, 1)
    assert (tmp_path / "figs" / "gallery" / "index.html").is_file() and (tmp_path / "figs" / "training.gif").is_file()
    assert f"({len(trainer.history)} epochs, 32x32)" in (tmp_path / "figs" / "run_quality.md").read_text()
    metrics, = (tmp_path / "work").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["c2st_steps"] == 20
    bad = subprocess.run(argv[:3] + [str(tmp_path / "nothing")] + argv[4:], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
