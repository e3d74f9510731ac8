"""The training loop: ``tf.GradientTape`` inside ``tf.function``, with checkpoints and resume.

Why a hand-written loop rather than ``model.fit``: the course teaches the ELBO's gradient step,
and the loop must resume bit-exactly after a Colab disconnect. Everything that determines the
next step lives in one ``tf.train.Checkpoint`` (weights, Adam slots, epoch counter and the
random generator that draws the reparameterization noise), and each epoch's shuffle order is
derived from ``(seed, epoch)``, so a resumed run takes exactly the steps the uninterrupted
run would have taken.

The improved configurations add, still inside that one step: the sigma-VAE's analytic variance
(its running average is a model weight, so it is checkpointed), a KL weight that warms up with
the optimizer's step counter (checkpointed too), free bits, the labels of a conditional
model, and for ``adversarial_weight`` > 0 a patch discriminator with its own optimizer (both in
the checkpoint; :mod:`vae_keras.models.adversarial`). After training, a ``gmm`` sampler is fitted to the aggregate posterior and saved next to
the checkpoints (:mod:`vae_keras.models.priors`).
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

from vae_keras.io.atomic import atomic_write_text
from vae_keras.training import checkpoint as ckpt_io
from vae_keras.models.adversarial import adaptive_weight, generator_loss, hinge_discriminator_loss, patch_discriminator
from vae_keras.config import VAEConfig
from vae_keras.errors import RunExists, TrainingDiverged
from vae_keras.models.losses import elbo_terms, free_bits_kl, loss_terms
from vae_keras.models.cvae import build_model
from vae_keras.data.pipeline import load_split
from vae_keras.training.distribute import set_precision
from vae_keras.data.pipeline import dataset_from_arrays
from vae_keras.viz.figures import image_grid
from vae_keras.models import priors as samplers


def fixed_latents(config: VAEConfig, n: int = 16) -> np.ndarray:
    """The latent vectors decoded after every epoch: the same for the whole run (GIF frames)."""
    return np.random.default_rng(config.seed).standard_normal((n, config.latent_dim)).astype(np.float32)


@dataclass
class Trainer:
    """Trains one :class:`~vae_keras.model.CVAE` on a prepared data set into ``run_dir``.

    Args:
        config: the run's configuration (ignored on resume: the saved one wins, except ``epochs``).
        data_dir: a prepared data set (``train/``, ``test/``, ``manifest.csv``).
        run_dir: output folder (see :mod:`vae_keras.training.checkpoint` for its layout).
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
    precision: str = "float32"
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


        cfg = self.config
        self.train_images, self.train_labels = load_split(self.data_dir, "train", image_size=cfg.image_size)
        try:
            self.test_images, self.test_labels = load_split(self.data_dir, "test", image_size=cfg.image_size)
        except ValueError:  # a data set without a test split still trains
            self.test_images = self.test_labels = None
        if cfg.conditional and self.train_labels.shape[1] != cfg.num_classes:
            raise ValueError(f"the data set has {self.train_labels.shape[1]} classes, the configuration "
                             f"num_classes={cfg.num_classes}")
        # what the model is conditioned on: the labels, or for a layout model the boxes' maps
        self.train_boxes = None
        self.train_conditions, self.test_conditions = self.train_labels, self.test_labels
        if cfg.layout:
            from vae_keras.data.layouts import load_layouts

            self.train_conditions, self.train_boxes = load_layouts(self.data_dir, "train", cfg.image_size,
                                                                   self.train_labels)   # (n, L, L, C) uint8
            if self.test_images is not None:
                self.test_conditions = load_layouts(self.data_dir, "test", cfg.image_size, self.test_labels)[0]
        # the seed's objective exactly (one-sample ELBO); everything else takes the general path
        self._plain = (cfg.likelihood == "bernoulli" and not cfg.analytic_kl and not cfg.conditional
                       and cfg.kl_warmup_epochs == 0 and cfg.adversarial_weight == 0)
        self._steps_per_epoch = math.ceil(len(self.train_images) / cfg.batch_size)


        self.precision = set_precision(self.precision, self.strategy)
        with self.strategy.scope():
            keras.utils.set_random_seed(cfg.seed)
            self.model = build_model(cfg)
            self.optimizer = keras.optimizers.Adam(cfg.learning_rate)
            if self.precision == "mixed_float16":  # float16 gradients underflow without loss scaling
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            parts = {}
            if cfg.adversarial_weight > 0:  # the patch discriminator and its own optimizer (VQGAN's betas)
                self.discriminator = patch_discriminator(cfg.image_size)
                self.d_optimizer = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5, beta_2=0.9)
                if self.precision == "mixed_float16":
                    self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
                self.d_optimizer.build(self.discriminator.trainable_variables)
                parts = dict(discriminator=self.discriminator, d_optimizer=self.d_optimizer)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epoch, **parts)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.run_dir / ckpt_io.CHECKPOINT_DIR),
                                                  max_to_keep=3)
        if self.resume and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            self.history = [h for h in self.history if h["epoch"] <= int(self.epoch.numpy())]
            print(f"Resuming {self.run_dir} from epoch {int(self.epoch.numpy())} "
                  f"({self.manager.latest_checkpoint})", file=sys.stderr)
        self._train_step = tf.function(self._distributed_step, jit_compile=cfg.jit_compile)
        self._eval_step = tf.function(self._eval, reduce_retracing=True)
        self.summary_writer = tf.summary.create_file_writer(str(self.run_dir / "logs"))

    # -- one step ------------------------------------------------------------------------------
    def kl_weight(self, step):
        """The KL weight (beta) at optimizer step ``step``: a linear warm-up over ``kl_warmup_epochs``."""
        warmup = self.config.kl_warmup_epochs * self._steps_per_epoch
        if warmup <= 0:
            return tf.constant(1.0)
        return tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(warmup))

    def _step(self, x, y, eps, adversarial=False):
        """One replica's share of an Adam step; returns its summed loss terms and example count.

        Args:
            x: this replica's images (local_batch, S, S, 1); y: labels (local_batch, C);
            eps: reparameterization noise (local_batch, latent_dim), drawn by the input pipeline
                for the whole global batch so that any number of replicas sees the same noise.
            adversarial: add the patch discriminator's loss (and take a discriminator step); a
                Python bool, so each setting is its own traced graph.

        The loss is the per-example loss summed over this replica's examples and divided by the
        *global* batch size (all-reduced, so a smaller last batch is weighted right); gradients
        summed over replicas are then exactly the single-device mean's.
        """
        cfg = self.config
        local_n = tf.cast(tf.shape(x)[0], tf.float32)
        global_n = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local_n)
        if self._plain:
            with tf.GradientTape() as tape:
                recon, kl = elbo_terms(self.model, x, eps=eps, training=True)   # (local_batch,) each
                loss = tf.reduce_sum(recon + kl) / global_n
                scaled = self.optimizer.scale_loss(loss)
            log_sigma = tf.zeros(())
        else:
            beta = self.kl_weight(self.optimizer.iterations)
            with tf.GradientTape(persistent=adversarial) as tape:
                recon, kl, kl_per_dim, log_sigma, x_mean = loss_terms(self.model, x, y=y, eps=eps, training=True,
                                                                      return_mean=True)
                # free bits act on this replica's batch-mean KL per dimension (the whole batch on one device)
                kl_term = (free_bits_kl(kl_per_dim, cfg.free_bits) * local_n if cfg.free_bits > 0
                           else tf.reduce_sum(kl))
                loss = (tf.reduce_sum(recon) + beta * kl_term) / global_n
                scaled = self.optimizer.scale_loss(loss)
                if adversarial:
                    g_loss = tf.reduce_sum(generator_loss(self.discriminator(x_mean, training=False))) / global_n
                    g_scaled = self.optimizer.scale_loss(g_loss)
        if adversarial:
            return self._adversarial_updates(tape, x, x_mean, scaled, g_scaled, global_n) + (
                tf.reduce_sum(recon), tf.reduce_sum(kl), local_n, log_sigma)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return tf.reduce_sum(recon), tf.reduce_sum(kl), local_n, log_sigma

    def _adversarial_updates(self, tape, x, x_mean, scaled, g_scaled, global_n):
        """The VAE step with the adaptive-weight adversarial term, then one discriminator step.

        Returns ``(discriminator loss, adaptive weight)`` of this replica (see :mod:`vae_keras.models.adversarial`).
        """
        last = self.model.decoder.layers[-1].kernel                      # the decoder's last kernel
        weight = self.config.adversarial_weight * adaptive_weight(tape.gradient(scaled, last),
                                                                  tape.gradient(g_scaled, last))
        grads = tape.gradient([scaled, g_scaled], self.model.trainable_variables,
                              output_gradients=[tf.ones_like(scaled), tf.ones_like(g_scaled) * weight])
        del tape
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        fake = tf.stop_gradient(x_mean)
        with tf.GradientTape() as d_tape:
            d_loss = tf.reduce_sum(hinge_discriminator_loss(self.discriminator(x, training=True),
                                                            self.discriminator(fake, training=True))) / global_n
            d_scaled = self.d_optimizer.scale_loss(d_loss)
        d_grads = d_tape.gradient(d_scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_variables))
        return d_loss, weight

    def _distributed_step(self, x, y, eps, adversarial=False):
        """Run :meth:`_step` on every replica; returns the global mean ``recon``, ``kl`` and ``log_sigma``
        (and, when ``adversarial``, the discriminator's loss and the adaptive weight)."""
        out = self.strategy.run(self._step, args=(x, y, eps), kwargs=dict(adversarial=adversarial))
        total = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)  # noqa: E731
        extra = ()
        if adversarial:
            d_loss, weight = out[:2]
            out = out[2:]
            extra = (total(d_loss), self.strategy.reduce(tf.distribute.ReduceOp.MEAN, weight, axis=None))
        recon, kl, n, log_sigma = out
        n = total(n)
        log_sigma = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, log_sigma, axis=None)
        if self.config.likelihood == "gaussian_sigma":  # running average of the optimal sigma, for evaluation
            w = tf.maximum(0.01, 1.0 / tf.cast(self.optimizer.iterations, tf.float32))
            self.model.log_sigma.assign((1.0 - w) * self.model.log_sigma + w * log_sigma)
        return (total(recon) / n, total(kl) / n, log_sigma) + extra

    def train_step(self, x, y=None, eps=None):
        """One optimisation step on an in-memory batch (benchmarks, notebooks); returns mean recon, kl, log_sigma.

        Args:
            x: images (batch, S, S, 1) float32 in [0, 1]; y: labels (batch, C), zeros when omitted;
            eps: reparameterization noise (batch, latent_dim), standard normal when omitted.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        n = tf.shape(x)[0]
        y = tf.zeros((n, self.config.num_classes)) if y is None else tf.convert_to_tensor(y, tf.float32)
        eps = tf.random.normal((n, self.config.latent_dim)) if eps is None else tf.convert_to_tensor(eps, tf.float32)
        return self._train_step(x, y, eps, adversarial=self.adversarial_at(int(self.epoch.numpy()) + 1))[:3]

    def adversarial_at(self, epoch: int) -> bool:
        """Whether the adversarial term is on in ``epoch`` (1-based)."""
        return self.config.adversarial_weight > 0 and epoch > self.config.adversarial_start_epoch

    def _eval(self, x, y, eps):
        if self._plain:
            recon, kl = elbo_terms(self.model, x, eps=eps, training=False)
        else:
            recon, kl, _, _ = loss_terms(self.model, x, y=y, eps=eps, training=False)
        return tf.reduce_sum(recon), tf.reduce_sum(kl)

    # -- data ----------------------------------------------------------------------------------
    def _epoch_dataset(self, epoch: int) -> tf.data.Dataset:
        """The training batches of ``epoch``: order and flips fixed by ``(seed, epoch)``, so resume is exact."""

        cfg = self.config
        ds = dataset_from_arrays(self.train_images, self.train_conditions, batch_size=cfg.batch_size, shuffle=True,
                                 flip=cfg.flip, seed=cfg.seed, epoch=epoch, with_labels=True)

        def add_noise(step, batch):  # eps for the whole global batch: the same for any replica count
            x, y = batch
            eps = tf.random.stateless_normal((tf.shape(x)[0], cfg.latent_dim),
                                             seed=tf.stack([tf.cast(cfg.seed * 100_003 + epoch, tf.int64), step]))
            return x, y, eps

        ds = ds.enumerate().map(add_noise, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        return self.strategy.experimental_distribute_dataset(ds)

    def evaluate(self, images=None, batch_size: int = 256, labels=None) -> dict:
        """Mean single-sample ``recon`` and ``kl`` (nats/image) on ``images`` (default: test split).

        ``labels`` are the model's conditions: multi-hot (n, C), or a layout model's maps.
        """
        if images is None:
            images, labels = self.test_images, self.test_conditions
        if images is None or len(images) == 0:
            return {}
        if labels is None:
            labels = np.zeros((len(images), self.config.num_classes), np.float32)
        if labels.dtype == np.uint8:                                     # layout maps
            labels = labels.astype(np.float32) / 255.0
        rng = np.random.default_rng(12345)  # the same noise every epoch: comparable curves
        tot_r = tot_k = 0.0
        for i in range(0, len(images), batch_size):
            x = tf.cast(images[i:i + batch_size], tf.float32) / 255.0
            eps = rng.standard_normal((x.shape[0], self.config.latent_dim)).astype(np.float32)
            r, k = self._eval_step(x, tf.constant(labels[i:i + batch_size], tf.float32), eps)
            tot_r += float(r)
            tot_k += float(k)
        n = len(images)
        return {"test_loss": (tot_r + tot_k) / n, "test_recon": tot_r / n, "test_kl": tot_k / n}

    # -- the loop ------------------------------------------------------------------------------
    def fit(self) -> list:
        """Train until ``config.epochs`` (or the time budget); returns the history."""

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
            adversarial = self.adversarial_at(epoch)
            adv_sums = np.zeros(2)                                   # discriminator loss, adaptive weight
            for step, (x, y, eps) in enumerate(self._epoch_dataset(epoch), start=1):
                recon, kl, log_sigma, *adv = (float(v) for v in self._train_step(x, y, eps, adversarial=adversarial))
                adv_sums += adv or (0.0, 0.0)
                if not (math.isfinite(recon) and math.isfinite(kl)):
                    last = self.manager.latest_checkpoint or "none (no epoch finished yet)"
                    raise TrainingDiverged(
                        f"loss became non-finite at epoch {epoch}, step {step} (recon={recon}, kl={kl}); "
                        f"stopped without saving. Last good checkpoint: {last}. Try a lower learning rate.")
                sums += (recon, kl)
                bar.update(step, values=[("loss", recon + kl), ("recon", recon), ("kl", kl)])
            record = {"epoch": epoch, "loss": float(sums.sum() / steps), "recon": float(sums[0] / steps),
                      "kl": float(sums[1] / steps)}
            if not self._plain:
                record["kl_weight"] = float(self.kl_weight(self.optimizer.iterations - 1))
            if adversarial:
                record["discriminator_loss"] = float(adv_sums[0] / steps)
                record["adversarial_weight"] = float(adv_sums[1] / steps)
            if cfg.likelihood == "gaussian_sigma":
                record["log_sigma"] = float(self.model.log_sigma.numpy())  # running optimum (last batch: log_sigma)
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
        self.fit_sampler()
        return self.history

    def fit_sampler(self):
        """Fit and save the run's latent sampler (``gmm``) and, when the data has labels, the label prior."""

        if self.config.conditional or self.train_labels.any():
            samplers.save_label_prior(self.run_dir, self.train_labels)
        if self.config.sampler == "gmm" and self.history:
            sampler = samplers.GMMSampler(self.model, n_components=self.config.gmm_components,
                                          seed=self.config.seed)
            sampler.fit(self.train_images, self.train_labels, conditions=self.train_conditions,
                        boxes=self.train_boxes)
            sampler.save(self.run_dir)


def train(config: VAEConfig, data_dir, run_dir, **kwargs) -> Trainer:
    """Train ``config`` on ``data_dir`` into ``run_dir``; returns the finished :class:`Trainer`."""
    trainer = Trainer(config, data_dir, run_dir, **kwargs)
    trainer.fit()
    return trainer
