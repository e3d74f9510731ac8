"""The second stage of a ``latent`` run: train the diffusion prior over the frozen autoencoder's latents.

Run by :meth:`vae_keras.samplers.diffusion.DiffusionSampler.fit`, which the trainer calls after the
autoencoder (or alone on ``--resume`` once the autoencoder's stage is over). Its state lives in ``RUN/prior/``::

    RUN/prior/latent_stats.npz    # per-channel mean and std of the training posterior means, and the range
                                  # of the standardised ones (written first)
    RUN/prior/checkpoints/        # the U-Net, its EMA copy, Adam (slots, step) and the epoch counter
    RUN/prior/history.json        # one dict per finished epoch (loss, ema decay, seconds)
    RUN/prior/logs/               # TensorBoard event files

The training latents are the posterior means of the training images (and of their mirror images
when the configuration flips), standardised per channel. Each step draws its diffusion times,
noise and label drop-outs statelessly from ``(seed, epoch, step)`` and each epoch's order from
``(seed, epoch)``, so, as in the first stage, a resumed prior takes exactly the steps the
uninterrupted one would have taken (identical weights). The loss is the mean squared error of
the predicted noise (or velocity, ``prior_target``), each example weighted by min-SNR when
``prior_min_snr`` is set; the EMA decay rises as ``min(ema, (1 + k) / (10 + k))`` at step k (warm-up).

Runs under the first stage's ``tf.distribute`` strategy: the diffusion times, noise and label
drop-outs are drawn once for the global batch, and each replica takes its slice of it, so a
MirroredStrategy run takes the same steps as a single-device one (tested on two logical CPUs).
"""
from __future__ import annotations

import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf
import keras

from vae_keras.config import VAEConfig
from vae_keras.errors import ConfigError, TrainingDiverged
from vae_keras.io.atomic import atomic_write_bytes, atomic_write_text
from vae_keras.models import diffusion
from vae_keras.models.encode import posterior_means

HISTORY_FILE = "history.json"


def posterior_latents(model, images: np.ndarray, flip: bool = False, batch_size: int = 256) -> np.ndarray:
    """Posterior means of ``images`` (n, S, S, 1) uint8 as maps (n[*2], h, w, c); with ``flip`` the mirrored images follow."""
    shape = model.config.latent_shape()
    parts = [posterior_means(model, images, batch_size=batch_size)]
    if flip:
        parts.append(posterior_means(model, images[:, :, ::-1], batch_size=batch_size))
    return np.concatenate(parts).reshape((-1,) + tuple(shape))      # (n, h, w, c)


def latent_stats(latents: np.ndarray) -> tuple:
    """Per-channel mean and std of latent maps (n, h, w, c) -> ``(mean, std)``, (c,) float32 each."""
    mean = latents.mean(axis=(0, 1, 2)).astype(np.float32)
    std = np.maximum(latents.std(axis=(0, 1, 2)), 1e-6).astype(np.float32)
    return mean, std


def latent_range(standardised: np.ndarray) -> tuple:
    """Per-channel minimum and maximum of standardised latent maps (n, h, w, c) -> ``(low, high)``, (c,) each:
    the bounds of :class:`~vae_keras.samplers.diffusion.DiffusionSampler`'s ``clip_range``."""
    return (standardised.min(axis=(0, 1, 2)).astype(np.float32),
            standardised.max(axis=(0, 1, 2)).astype(np.float32))


def save_stats(path: Path, mean: np.ndarray, std: np.ndarray, low=None, high=None) -> tuple:
    """``(mean, std)`` and, when given, the standardised latents' range ``low``, ``high`` written to ``path``
    (atomically); returns ``(mean, std)``."""
    buf = io.BytesIO()
    np.savez(buf, mean=mean, std=std, **({} if low is None else {"low": low, "high": high}))
    atomic_write_bytes(path, buf.getvalue())
    return mean, std


def record_latent_range(model, train_images, run_dir) -> tuple:
    """Write the standardised training latents' range into a prior's ``latent_stats.npz`` saved without it
    (priors trained before it was recorded), training nothing; returns ``(low, high)``, (c,) each.

    ``model``: the run's trained autoencoder; ``train_images``: (n, S, S, 1) uint8, the split the prior
    trained on (with mirror images when the configuration flips, as :class:`PriorTrainer` encodes them).

    Raises:
        ValueError: these latents' statistics are not the stored ones (another autoencoder or data).
    """
    path = Path(run_dir) / diffusion.PRIOR_DIR / diffusion.STATS_FILE
    latents = posterior_latents(model, train_images, flip=model.config.flip)
    mean, std = latent_stats(latents)
    if not same_stats(path, mean, std):
        raise ValueError(f"the training latents of {run_dir} are not those its prior was trained on (their statistics "
                         "differ from prior/latent_stats.npz): pass the run's own training images")
    with np.load(path, allow_pickle=False) as f:
        mean, std = f["mean"], f["std"]
    low, high = latent_range((latents - mean) / std)
    save_stats(path, mean, std, low, high)
    return low, high


def same_stats(path: Path, mean: np.ndarray, std: np.ndarray, tol: float = 1e-2) -> bool:
    """Whether the latent statistics stored at ``path`` are ``(mean, std)`` (within ``tol`` of the std):
    the prior stored beside them was trained on these latents. An autoencoder that changed since (a
    new run in an old folder) encodes the same images elsewhere, far beyond ``tol``."""
    if not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as f:                       # as DiffusionSampler reads them
        old_mean, old_std = f["mean"], f["std"]
    if old_mean.shape != mean.shape:
        return False
    scale = np.maximum(std, 1e-6)
    return bool(np.all(np.abs(old_mean - mean) <= tol * scale) and np.all(np.abs(old_std - std) <= tol * scale))


class PriorTrainer:
    """Trains the latent diffusion prior of a trained ``latent`` autoencoder into ``run_dir/prior``.

    Args:
        config: the run's configuration (``prior_*``, ``label_dropout``, ``seed``, ``flip``).
        model: the trained autoencoder (frozen: only its encoder's posterior means are used).
        train_images: (n, S, S, 1) uint8; train_labels: (n, C) multi-hot.
        run_dir: the run folder. resume: continue from ``prior/checkpoints``.
        minutes: stop at the first epoch end after this many minutes (None: ``config.prior_epoch_count()``).
        progress: print a line per epoch.
        strategy: the ``tf.distribute.Strategy`` (default: the current one); each replica trains on
            its slice of every global batch.
        maps: box maps (n, h, w, C) at the latent's side, uint8 coverage (x 255) or [0, 1] floats: the prior is
            then conditioned on where the threats are as well (:mod:`vae_keras.samplers.box_diffusion`);
            None: on the labels only.
        init_from: a run whose prior starts this one (its networks' latest weights; a fresh optimizer and
            epoch counter), unless ``resume`` finds a checkpoint of this prior: pre-train on phantom
            threats, fine-tune on a data set's own. A run without a prior checkpoint leaves the
            networks as initialised. The latents are standardised by this data's statistics.

    Example:
        >>> PriorTrainer(config, model, train_images, train_labels, "RUN").fit()   # the prior's history
    """

    def __init__(self, config: VAEConfig, model, train_images, train_labels, run_dir, resume: bool = False,
                 minutes: Optional[float] = None, progress: bool = True,
                 strategy: Optional[tf.distribute.Strategy] = None, init_from=None, maps=None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model = model
        self.dir = Path(run_dir) / diffusion.PRIOR_DIR
        self.resume = resume
        self.minutes = minutes
        self.progress = progress
        self.dir.mkdir(parents=True, exist_ok=True)
        latents = posterior_latents(model, train_images, flip=config.flip)
        labels = np.asarray(train_labels, np.float32)
        self.labels = np.concatenate([labels, labels]) if config.flip else labels          # (n, C)
        self.maps = None
        if maps is not None:
            maps = np.asarray(maps)
            maps = maps.astype(np.float32) / 255.0 if maps.dtype == np.uint8 else maps.astype(np.float32)
            if maps.shape[:3] != (len(labels),) + tuple(config.latent_shape()[:2]):
                raise ValueError(f"maps must be (n, h, w, C) at the latent's side {config.latent_shape()[:2]}, "
                                 f"one per image; got {maps.shape}")
            self.maps = np.concatenate([maps, maps[:, :, ::-1]]) if config.flip else maps   # (n, h, w, C)
        stats_path = self.dir / diffusion.STATS_FILE
        mean, std = latent_stats(latents)
        #: a prior in this folder trained on another autoencoder's latents: not resumed (issue #25's notes:
        #: a notebook's box prior resumed over an autoencoder retrained since, and drew nonsense)
        self.stale = bool(resume and (self.dir / "checkpoints").is_dir()
                          and not same_stats(stats_path, mean, std))
        if self.stale and progress:
            print(f"note: {self.dir} holds a prior trained on another autoencoder's latents (their statistics "
                  "differ): training it afresh", file=sys.stderr)
        self.latents = ((latents - mean) / std).astype(np.float32)                         # standardised
        self.low, self.high = latent_range(self.latents)                                   # (c,) each
        self.mean, self.std = save_stats(stats_path, mean, std, self.low, self.high)
        keras.utils.set_random_seed(config.seed)
        widths, cond_dim = config.prior_widths, 1 + self.labels.shape[1]
        with self.strategy.scope():                      # variables mirrored on every replica
            map_channels = 0 if self.maps is None else self.maps.shape[-1]
            heads = config.prior_attention
            self.network = diffusion.build_unet(config.latent_shape(), widths, cond_dim, map_channels, heads)
            self.ema_network = diffusion.build_unet(config.latent_shape(), widths, cond_dim, map_channels, heads)
            self.ema_network.set_weights(self.network.get_weights())
            self.optimizer = keras.optimizers.Adam(config.prior_learning_rate)
            self.optimizer.build(self.network.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="prior_epoch")
        self.checkpoint = tf.train.Checkpoint(network=self.network, ema_network=self.ema_network,
                                              optimizer=self.optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.dir / "checkpoints"), max_to_keep=2)
        self.summary_writer = tf.summary.create_file_writer(str(self.dir / "logs"))
        self.history = []
        self.init_from = None                              # the checkpoint this prior started from, if any
        if resume and self.manager.latest_checkpoint and not self.stale:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            path = self.dir / HISTORY_FILE
            saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
            self.history = [h for h in saved if h["epoch"] <= int(self.epoch.numpy())]
        elif init_from is not None:
            self.init_from = self._start_from(init_from)
        self._step = tf.function(self._train_step, autograph=False)   # no tensor-dependent Python control flow

    def _start_from(self, source_run) -> Optional[str]:
        """Copy the latest prior weights of ``source_run`` into both networks; returns the checkpoint (None: none).

        Raises:
            ConfigError: the source's U-Net has another shape (latent shape, widths or classes).
        """
        latest = tf.train.latest_checkpoint(str(Path(source_run) / diffusion.PRIOR_DIR / "checkpoints"))
        if latest is None:
            return None
        source = tf.train.Checkpoint(network=self.network, ema_network=self.ema_network)
        try:
            source.restore(latest).assert_existing_objects_matched().expect_partial()
        except (ValueError, AssertionError) as err:
            raise ConfigError(f"--init-from {source_run}: its diffusion prior does not fit this run's "
                              f"(latent shape, prior widths and classes must match): {err}") from err
        return latest

    def _train_step(self, x0, condition, maps, seed):
        """One Adam step on the (min-SNR weighted) MSE of the predicted noise or velocity of a global batch
        (b, h, w, c); returns the loss and the EMA decay.

        ``maps``: the batch's box maps (b, h, w, C), dropped with the labels (the null condition), or
        None for a prior without them.

        The random draws are made here, once for the global batch; each replica then takes rows
        ``[i * b // n, (i + 1) * b // n)`` of it, and its loss is weighted by its share of the rows,
        so the replicas' summed gradients are the gradient of the global batch's mean loss.
        """
        cfg = self.config
        b = tf.shape(x0)[0]
        seeds = tf.random.experimental.stateless_split(seed, 3)
        t = tf.random.stateless_uniform((b,), seed=seeds[0])                               # diffusion times
        noise = tf.random.stateless_normal(tf.shape(x0), seed=seeds[1])
        keep = tf.cast(tf.random.stateless_uniform((b, 1), seed=seeds[2]) >= cfg.label_dropout, tf.float32)
        condition = condition * keep                                                       # dropped: null
        if maps is not None:
            maps = maps * keep[:, :, None, None]                                           # (b, h, w, C)
        noise_rates, signal_rates = diffusion.diffusion_schedule(t)
        x_t = diffusion.add_noise(x0, noise, t)
        levels = tf.square(noise_rates)[:, None]
        rates = noise_rates[:, None, None, None], signal_rates[:, None, None, None]
        target = diffusion.training_target(x0, noise, *rates, cfg.prior_target)              # (b, h, w, c)
        weights = diffusion.min_snr_weights(noise_rates, signal_rates, cfg.prior_min_snr, cfg.prior_target)

        def replica_step(x_t, levels, condition, target):
            ctx = tf.distribute.get_replica_context()
            i, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
            rows = slice(i * b // n, (i + 1) * b // n)                                     # this replica's share
            share = tf.cast((i + 1) * b // n - i * b // n, tf.float32) / tf.cast(b, tf.float32)
            inputs = [x_t[rows], levels[rows], condition[rows]] + ([] if maps is None else [maps[rows]])
            with tf.GradientTape() as tape:
                pred = self.network(inputs, training=True)
                per_example = tf.reduce_mean(tf.square(pred - target[rows]), axis=[1, 2, 3])     # (b / n,)
                loss = tf.reduce_mean(weights[rows] * per_example) * share
            grads = tape.gradient(loss, self.network.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.network.trainable_variables))
            return loss

        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                    self.strategy.run(replica_step, args=(x_t, levels, condition, target)), axis=None)
        k = tf.cast(self.optimizer.iterations, tf.float32)
        decay = tf.minimum(cfg.prior_ema, (1.0 + k) / (10.0 + k))
        for w, ema in zip(self.network.weights, self.ema_network.weights):                # cross-replica
            ema.assign(decay * ema + (1.0 - decay) * w)
        return loss, decay

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training latents in the order of ``(seed, epoch)``; returns the history record."""
        cfg = self.config
        t0 = time.monotonic()
        n = len(self.latents)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        conditions = diffusion.condition_vectors(self.labels, n, self.labels.shape[1])
        losses, decay = [], 0.0
        spec = lambda a: tf.TensorSpec((None,) + a.shape[1:], a.dtype)     # noqa: E731  (batch dimension open)
        # one trace for any batch size: the epoch's last, smaller batch would otherwise trace a second step
        self._step.get_concrete_function(spec(self.latents), spec(conditions),
                                         None if self.maps is None else spec(self.maps),
                                         tf.TensorSpec((2,), tf.int64))
        for step, i in enumerate(range(0, n, cfg.prior_batch_size)):
            idx = order[i:i + cfg.prior_batch_size]
            maps = None if self.maps is None else tf.constant(self.maps[idx])
            loss, decay = self._step(tf.constant(self.latents[idx]), tf.constant(conditions[idx]), maps,
                                     tf.constant([cfg.seed * 100_003 + epoch, step], tf.int64))
            losses.append(float(loss))
            if not math.isfinite(losses[-1]):
                raise TrainingDiverged(f"the prior's loss became non-finite at epoch {epoch}, step {step + 1}; "
                                       "try a lower prior_learning_rate")
        seconds = time.monotonic() - t0
        return {"epoch": epoch, "loss": float(np.mean(losses)), "ema_decay": float(decay), "seconds": seconds,
                "latents_per_second": n / max(seconds, 1e-9)}

    def fit(self) -> list:
        """Train until ``config.prior_epoch_count()`` epochs or the time budget; returns the prior's history."""
        epochs = self.config.prior_epoch_count()
        start = time.monotonic()
        while int(self.epoch.numpy()) < epochs:
            epoch = int(self.epoch.numpy()) + 1
            record = self.train_epoch(epoch)
            self.epoch.assign(epoch)
            self.history.append(record)
            atomic_write_text(self.dir / HISTORY_FILE, json.dumps(self.history, indent=1))
            self.manager.save(checkpoint_number=epoch)
            with self.summary_writer.as_default(step=epoch):
                for key, value in record.items():
                    if key != "epoch":
                        tf.summary.scalar(f"prior/{key}", value)
            if self.progress:
                print(f"prior epoch {epoch}/{epochs}: loss {record['loss']:.4f} ({record['seconds']:.1f}s)",
                      file=sys.stderr)
            if self.minutes is not None and time.monotonic() - start >= 60 * self.minutes:
                print(f"Prior time budget of {self.minutes:.2f} min reached after epoch {epoch}.", file=sys.stderr)
                break
        self.summary_writer.flush()
        return self.history


def prior_started(run_dir) -> bool:
    """Whether a run's prior stage has begun (its latent statistics are written): the autoencoder is then final."""
    return (Path(run_dir) / diffusion.PRIOR_DIR / diffusion.STATS_FILE).is_file()
