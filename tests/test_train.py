"""The GradientTape loop: learning happens, checkpoints resume exactly, failures are clear."""
import json

import numpy as np
import pytest
import tensorflow as tf

from vae_keras.training.checkpoint import latest_checkpoint, load_history, load_run
from vae_keras.config import get_config
from vae_keras.errors import RunExists, TrainingDiverged
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
    with pytest.raises(RunExists, match="--resume"):
        Trainer(tiny_config(), tiny_dataset, run, progress=False)


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
