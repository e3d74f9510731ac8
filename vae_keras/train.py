"""The training loop: ``tf.GradientTape`` inside ``tf.function``, with checkpoints and resume.

Why a hand-written loop rather than ``model.fit``: the course teaches the ELBO's gradient step,
and the loop must resume bit-exactly after a Colab disconnect. Everything that determines the
next step lives in one ``tf.train.Checkpoint`` (weights, Adam slots, epoch counter and the
random generator that draws the reparameterization noise), and each epoch's shuffle order is
derived from ``(seed, epoch)``, so a resumed run takes exactly the steps the uninterrupted
run would have taken.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import keras

from data_prep.atomic import atomic_write_text
from vae_keras import checkpoint as ckpt_io
from vae_keras.config import VAEConfig
from vae_keras.errors import RunExists, TrainingDiverged
from vae_keras.losses import elbo_terms
from vae_keras.model import build_model


def fixed_latents(config: VAEConfig, n: int = 16) -> np.ndarray:
    """The latent vectors decoded after every epoch: the same for the whole run (GIF frames)."""
    return np.random.default_rng(config.seed).standard_normal((n, config.latent_dim)).astype(np.float32)


@dataclass
class Trainer:
    """Trains one :class:`~vae_keras.model.CVAE` on a prepared data set into ``run_dir``.

    Args:
        config: the run's configuration (ignored on resume: the saved one wins, except ``epochs``).
        data_dir: a prepared data set (``train/``, ``test/``, ``manifest.csv``).
        run_dir: output folder (see :mod:`vae_keras.checkpoint` for its layout).
        resume: continue the run in ``run_dir`` from its last complete checkpoint.
        minutes: stop at the first epoch end after this many minutes (equal-budget comparisons).
        progress: show a progress bar with the loss terms.
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
    """

    config: VAEConfig
    data_dir: str
    run_dir: str
    resume: bool = False
    minutes: Optional[float] = None
    progress: bool = True
    strategy: Optional[tf.distribute.Strategy] = None
    on_epoch_end: Optional[Callable[[dict], None]] = None
    history: list = field(default_factory=list)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.strategy = self.strategy or tf.distribute.get_strategy()
        has_run = (self.run_dir / ckpt_io.CONFIG_FILE).is_file()
        if has_run and not self.resume:
            raise RunExists(f"{self.run_dir} already holds a training run: pass --resume to continue it, "
                            "or choose another --out")
        if self.resume and has_run:
            saved = ckpt_io.load_config(self.run_dir)
            self.config = saved.replace(epochs=max(self.config.epochs, saved.epochs))
            self.history = ckpt_io.load_history(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.save(self.run_dir / ckpt_io.CONFIG_FILE)

        from vae_keras.data import load_split  # decoded once, uint8, reused every epoch

        cfg = self.config
        self.train_images, _ = load_split(self.data_dir, "train", image_size=cfg.image_size)
        try:
            self.test_images, _ = load_split(self.data_dir, "test", image_size=cfg.image_size)
        except ValueError:  # a data set without a test split still trains
            self.test_images = None

        with self.strategy.scope():
            keras.utils.set_random_seed(cfg.seed)
            self.model = build_model(cfg)
            self.optimizer = keras.optimizers.Adam(cfg.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.rng = tf.random.Generator.from_seed(cfg.seed)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                              epoch=self.epoch, rng=self.rng)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.run_dir / ckpt_io.CHECKPOINT_DIR),
                                                  max_to_keep=3)
        if self.resume and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            self.history = [h for h in self.history if h["epoch"] <= int(self.epoch.numpy())]
            print(f"Resuming {self.run_dir} from epoch {int(self.epoch.numpy())} "
                  f"({self.manager.latest_checkpoint})", file=sys.stderr)
        self._train_step = tf.function(self._step, jit_compile=cfg.jit_compile)
        self._eval_step = tf.function(self._eval, reduce_retracing=True)
        self.summary_writer = tf.summary.create_file_writer(str(self.run_dir / "logs"))

    # -- one step ------------------------------------------------------------------------------
    def _step(self, x):
        """One Adam step on a batch ``x`` (batch, S, S, 1); returns the summed loss terms."""
        eps = self.rng.normal(shape=(tf.shape(x)[0], self.config.latent_dim))
        with tf.GradientTape() as tape:
            recon, kl = elbo_terms(self.model, x, eps=eps, training=True)   # (batch,) each
            loss = tf.reduce_mean(recon + kl)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return tf.reduce_mean(recon), tf.reduce_mean(kl)

    def _eval(self, x, eps):
        recon, kl = elbo_terms(self.model, x, eps=eps, training=False)
        return tf.reduce_sum(recon), tf.reduce_sum(kl)

    # -- data ----------------------------------------------------------------------------------
    def _epoch_dataset(self, epoch: int) -> tf.data.Dataset:
        """The training batches of ``epoch``: order and flips fixed by ``(seed, epoch)``, so resume is exact."""
        from vae_keras.data import dataset_from_arrays

        cfg = self.config
        return dataset_from_arrays(self.train_images, batch_size=cfg.batch_size, shuffle=True, flip=cfg.flip,
                                   seed=cfg.seed, epoch=epoch)

    def evaluate(self, images=None, batch_size: int = 256) -> dict:
        """Mean single-sample ``recon`` and ``kl`` (nats/image) on ``images`` (default: test split)."""
        images = self.test_images if images is None else images
        if images is None or len(images) == 0:
            return {}
        rng = np.random.default_rng(12345)  # the same noise every epoch: comparable curves
        tot_r = tot_k = 0.0
        for i in range(0, len(images), batch_size):
            x = tf.cast(images[i:i + batch_size], tf.float32) / 255.0
            eps = rng.standard_normal((x.shape[0], self.config.latent_dim)).astype(np.float32)
            r, k = self._eval_step(x, eps)
            tot_r += float(r)
            tot_k += float(k)
        n = len(images)
        return {"test_loss": (tot_r + tot_k) / n, "test_recon": tot_r / n, "test_kl": tot_k / n}

    # -- the loop ------------------------------------------------------------------------------
    def fit(self) -> list:
        """Train until ``config.epochs`` (or the time budget); returns the history."""
        from vae_keras.visualize import image_grid

        cfg = self.config
        steps = math.ceil(len(self.train_images) / cfg.batch_size)
        z_fixed = fixed_latents(cfg)
        start = time.monotonic()
        samples_dir = self.run_dir / ckpt_io.SAMPLES_DIR
        while int(self.epoch.numpy()) < cfg.epochs:
            epoch = int(self.epoch.numpy()) + 1
            t0 = time.monotonic()
            if self.progress:
                print(f"Epoch {epoch}/{cfg.epochs}", file=sys.stderr)
            bar = keras.utils.Progbar(steps, verbose=1 if self.progress else 0, unit_name="batch")
            sums = np.zeros(2)
            for step, x in enumerate(self._epoch_dataset(epoch), start=1):
                recon, kl = (float(v) for v in self._train_step(x))
                if not (math.isfinite(recon) and math.isfinite(kl)):
                    last = self.manager.latest_checkpoint or "none (no epoch finished yet)"
                    raise TrainingDiverged(
                        f"loss became non-finite at epoch {epoch}, step {step} (recon={recon}, kl={kl}); "
                        f"stopped without saving. Last good checkpoint: {last}. Try a lower learning rate.")
                sums += (recon, kl)
                bar.update(step, values=[("loss", recon + kl), ("recon", recon), ("kl", kl)])
            record = {"epoch": epoch, "loss": float(sums.sum() / steps), "recon": float(sums[0] / steps),
                      "kl": float(sums[1] / steps)}
            record.update(self.evaluate())
            record["seconds"] = time.monotonic() - t0
            record["images_per_second"] = len(self.train_images) / record["seconds"]

            self.epoch.assign(epoch)
            image_grid(self.model.decode(z_fixed, apply_sigmoid=True).numpy(),
                       samples_dir / f"epoch_{epoch:04d}.png", ncols=4)
            self.history.append(record)
            # history first, then the checkpoint: a resumed run trims history to the checkpoint.
            atomic_write_text(self.run_dir / ckpt_io.HISTORY_FILE, json.dumps(self.history, indent=1))
            self.manager.save(checkpoint_number=epoch)
            with self.summary_writer.as_default(step=epoch):
                for key, value in record.items():
                    if key != "epoch":
                        tf.summary.scalar(key, value)
            if self.progress:
                test = f", test loss {record['test_loss']:.1f}" if "test_loss" in record else ""
                print(f"epoch {epoch}: loss {record['loss']:.1f}{test} ({record['seconds']:.1f}s)",
                      file=sys.stderr)
            if self.on_epoch_end:
                self.on_epoch_end(record)
            if self.minutes is not None and time.monotonic() - start >= 60 * self.minutes:
                print(f"Time budget of {self.minutes} min reached after epoch {epoch}.", file=sys.stderr)
                break
        self.summary_writer.flush()
        return self.history


def train(config: VAEConfig, data_dir, run_dir, **kwargs) -> Trainer:
    """Train ``config`` on ``data_dir`` into ``run_dir``; returns the finished :class:`Trainer`."""
    trainer = Trainer(config, data_dir, run_dir, **kwargs)
    trainer.fit()
    return trainer
