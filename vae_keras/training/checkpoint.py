"""Where a run keeps its state, and how to load a trained run safely.

A run folder::

    RUN/config.json          # the VAEConfig, written first
    RUN/checkpoints/         # tf.train.CheckpointManager: model, optimizer (Adam slots, step), epoch,
                             # and the discriminator with its optimizer when the run has one
    RUN/history.json         # one dict per finished epoch (losses, seconds)
    RUN/logs/                # TensorBoard event files
    RUN/samples/epoch_0001.png ...   # the fixed-latent grid after each epoch (GIF frames)
    RUN/prior/               # a ``latent`` run's second stage (:mod:`vae_keras.samplers.diffusion_training`)

No random generator is saved: the shuffle order and flips are derived from ``(seed, epoch)`` and the
reparameterization noise from ``(seed, epoch, step)`` by stateless draws, so the checkpoint and the
configuration together fix every later step.

Loading restores *weights* from a TensorFlow checkpoint into a model built from the JSON
config: nothing in a run folder is ever executed as code (no pickles, no saved Python objects).
"""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from vae_keras.config import VAEConfig
from vae_keras.errors import ConfigError
from vae_keras.models.cvae import CVAE, build_model

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"

#: The configuration fields that fix the model's variables: runs that agree on all of them are of one
#: family, and one's weights can start another (``train --init-from``).
FAMILY_FIELDS = ("architecture", "image_size", "latent_dim", "encoder_filters", "decoder_filters", "res_blocks",
                 "likelihood", "conditional", "layout", "num_classes")


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


def family_differences(a: VAEConfig, b: VAEConfig) -> list[str]:
    """The :data:`FAMILY_FIELDS` on which two configurations disagree."""
    return [name for name in FAMILY_FIELDS if getattr(a, name) != getattr(b, name)]


def check_init_source(source_run, config: VAEConfig) -> str:
    """The latest checkpoint of ``source_run``, if its weights fit a model of ``config``.

    Raises:
        ConfigError: the source run's configuration differs in a :data:`FAMILY_FIELDS` field.
        FileNotFoundError: ``source_run`` is not a run, or has no checkpoint yet.
    """
    source = load_config(source_run)
    differences = family_differences(source, config)
    if differences:
        what = "; ".join(f"{name}: {getattr(source, name)!r} there, {getattr(config, name)!r} here"
                         for name in differences)
        raise ConfigError(f"cannot start from the weights of {source_run}: its configuration differs ({what}); "
                          "weights transfer only between runs of the same architecture, image size, latent size, "
                          "likelihood and conditioning")
    ckpt = latest_checkpoint(source_run)
    if ckpt is None:
        raise FileNotFoundError(f"{source_run} has no checkpoint yet: train it for at least one epoch")
    return ckpt


def init_from_run(source_run, config: VAEConfig, model: CVAE, discriminator=None) -> str:
    """Copy the latest weights of ``source_run`` into ``model`` (and ``discriminator``); returns the checkpoint.

    The start of a fine-tuning run (``train --init-from``): pre-train on many phantoms, then train
    on a few hundred real scans from those weights. Only weights move; the new run's optimizer and
    epoch counter start fresh. The discriminator's weights move too when both runs have one.

    Raises:
        ConfigError, FileNotFoundError: see :func:`check_init_source`.
    """
    ckpt = check_init_source(source_run, config)
    parts = dict(model=model)
    if discriminator is not None and load_config(source_run).adversarial_weight > 0:
        parts["discriminator"] = discriminator
    # every variable of the new model must be found in the checkpoint; its optimizer slots are not wanted
    tf.train.Checkpoint(**parts).restore(ckpt).assert_existing_objects_matched().expect_partial()
    return ckpt
