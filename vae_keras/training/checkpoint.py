"""Where a run keeps its state, and how to load a trained run safely.

A run folder::

    RUN/config.json          # the VAEConfig, written first
    RUN/checkpoints/         # tf.train.CheckpointManager: model, optimizer, epoch, RNG state
    RUN/history.json         # one dict per finished epoch (losses, seconds)
    RUN/logs/                # TensorBoard event files
    RUN/samples/epoch_0001.png ...   # the fixed-latent grid after each epoch (GIF frames)

Loading restores *weights* from a TensorFlow checkpoint into a model built from the JSON
config: nothing in a run folder is ever executed as code (no pickles, no saved Python objects).
"""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from vae_keras.config import VAEConfig
from vae_keras.models.cvae import CVAE, build_model

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"


def latest_checkpoint(run_dir) -> str | None:
    """Path prefix of the newest *complete* checkpoint of a run, or None.

    ``CheckpointManager`` only names a checkpoint in its index file after all of its shards are
    written, so a run killed mid-save still resolves to the previous complete one.
    """
    return tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINT_DIR))


def load_config(run_dir) -> VAEConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run: {CONFIG_FILE} is missing "
                                "(train one with `python -m vae_keras train DATA --out RUN`)")
    return VAEConfig.load(path)


def load_history(run_dir) -> list:
    path = Path(run_dir) / HISTORY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def load_run(run_dir) -> tuple[VAEConfig, CVAE]:
    """``(config, model)`` of a trained run, weights restored from its latest checkpoint.

    Raises:
        FileNotFoundError: the folder has no config or no checkpoint.
    """
    config = load_config(run_dir)
    model = build_model(config)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet: train it for at least one epoch")
    tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
    return config, model
