"""The training loop: ``tf.GradientTape`` steps inside ``tf.function``, with checkpoints and resume.

Why a hand-written loop rather than ``model.fit``: the course teaches the ELBO's gradient step,
and the loop must resume bit-exactly after a Colab disconnect. Everything that determines the
next step is either in one ``tf.train.Checkpoint`` (weights, Adam slots and step counter, the
epoch counter; the discriminator and its optimizer when there is one) or derived from the
configuration: each epoch's shuffle order and flips from ``(seed, epoch)``, and the
reparameterization noise of each step from ``(seed, epoch, step)`` by a stateless draw. So a
resumed run takes exactly the steps the uninterrupted run would have taken.

A :class:`Trainer` is built in named pieces, run in this order by :meth:`Trainer.setup` (which
:meth:`Trainer.fit` and :meth:`Trainer.evaluate` call; constructing a ``Trainer`` reads and writes
nothing, and its data and model exist only after ``setup``):

1. :meth:`~Trainer.resolve_run`: the run folder's state (refuse to overwrite a run; on resume
   the saved configuration and history win);
2. :meth:`~Trainer.load_data`: the train and test splits (and layout maps), decoded once;
3. :meth:`~Trainer.build`: model, optimizers, the step for the configuration, the checkpoint;
4. :meth:`~Trainer.open_run_folder`: ``config.json``, the checkpoint manager, TensorBoard logs;
5. :meth:`~Trainer.restore`: the last checkpoint on resume, or another run's weights (``init_from``).

The steps themselves are in :mod:`vae_keras.training.steps`: the seed's single-sample ELBO
(:func:`~vae_keras.training.steps.elbo_step`), the improved configurations' weighted ELBO (KL
warm-up by the optimizer's step counter, free bits, the sigma-VAE's analytic variance whose running
average is a model weight, the labels of a conditional model), and for ``adversarial_weight`` > 0
the patch discriminator's term and step (:class:`~vae_keras.training.steps.AdversarialStep`).
After training, the configuration's sampler is fitted through the sampler registry
(:mod:`vae_keras.samplers`: nothing for ``normal``, a Gaussian mixture for ``gmm``, and for a
``latent`` run's ``diffusion`` sampler the second stage, its diffusion prior, for the rest of the
budget: the autoencoder gets ``vae_share`` of ``minutes``, 55%). Once the prior stage has begun the
autoencoder is final: ``resume`` continues whichever stage was interrupted. :meth:`Trainer.fit`
returns the trained :class:`~vae_keras.training.run.Run`. After each epoch the trainer calls its
``callbacks`` (by default :class:`~vae_keras.training.callbacks.SampleGrid`, the GIF's frames).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf
import keras

from vae_keras.config import VAEConfig
from vae_keras.data.layouts import load_boxes, load_layouts
from vae_keras.data.pipeline import dataset_from_arrays, load_split
from vae_keras.errors import DataError, RunExists, TrainingDiverged
from vae_keras.io.atomic import atomic_write_text
from vae_keras.io.manifest import MANIFEST, read_manifest
from vae_keras.models.adversarial import patch_discriminator
from vae_keras.models.cvae import build_model
from vae_keras.models.latent import latent_loss_terms
from vae_keras.models.losses import elbo_terms, loss_terms
from vae_keras.samplers import FitData, LabelPrior, NormalSampler, get_sampler
from vae_keras.samplers.diffusion_training import prior_started
from vae_keras.training import checkpoint as ckpt_io
from vae_keras.training.callbacks import SampleGrid
from vae_keras.training.distribute import set_precision
from vae_keras.training.run import Run
from vae_keras.training.steps import AdversarialStep, elbo_step, kl_weight, latent_step, weighted_elbo_step


def has_split(data_dir, split: str) -> bool:
    """Whether the prepared data set's manifest lists any image of ``split``."""
    return any(row.split == split for row in read_manifest(Path(data_dir) / MANIFEST))


@dataclass
class Trainer:
    """Trains one :class:`~vae_keras.models.cvae.CVAE` on a prepared data set into ``run_dir``.

    Constructing a ``Trainer`` only records its arguments; :meth:`setup` (run by :meth:`fit` and
    :meth:`evaluate`, or called directly) loads the data, builds the model and opens the run folder.
    Its ``model``, ``train_images`` and the other built attributes exist from then on.

    Args:
        config: the run's configuration (ignored on resume: the saved one wins, except ``epochs``).
        data_dir: a prepared data set (``train/``, ``test/``, ``manifest.csv``); without a test
            split the run trains without test evaluation (said once on stderr).
        run_dir: output folder (see :mod:`vae_keras.training.checkpoint` for its layout).
        resume: continue the run in ``run_dir`` from its last complete checkpoint.
        minutes: stop at the first epoch end after this many minutes (equal-budget comparisons).
        progress: show a progress bar with the loss terms.
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
        precision: a Keras dtype policy name (:func:`~vae_keras.training.distribute.set_precision`).
        on_epoch_end: called with each epoch's history record.
        callbacks: called as ``callback(trainer, record)`` after each epoch; default
            ``(SampleGrid(),)``, the per-epoch sample grid (:mod:`vae_keras.training.callbacks`).
        init_from: a trained run whose latest weights start this run, both stages (the model and a
            learned sampler such as the diffusion prior; fine-tuning; the
            configurations must agree on the architecture, see
            :func:`~vae_keras.training.checkpoint.init_from_run`). The optimizer and epoch counter
            start fresh. Ignored when resuming a run that already has a checkpoint.

    Example:
        >>> trainer = Trainer(get_config("seed", quick=True), "DATA", "RUN")   # nothing read yet
        >>> run = trainer.fit()                                  # a Run: run.model, run.sampler, run.history
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
    init_from: Optional[str] = None
    callbacks: Optional[Sequence[Callable]] = None

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.callbacks = (SampleGrid(),) if self.callbacks is None else tuple(self.callbacks)
        self.run: Optional[Run] = None          # the trained run, once fit() has finished
        self.prior_history: list = []           # a trained sampler's epochs (a latent run's diffusion prior)
        self._ready = False

    # -- setup, in named pieces ----------------------------------------------------------------
    def setup(self) -> "Trainer":
        """Load the data, build the model and open the run folder (once); returns ``self``."""
        if not self._ready:
            self.resolve_run()
            self.load_data()
            self.build()
            self.open_run_folder()
            self.restore()
            self._ready = True
        return self

    def resolve_run(self) -> None:
        """Refuse to overwrite a run; on resume, take the saved configuration and history.

        Also checks ``init_from`` (when it will be used) before anything is written.
        """
        has_run = (self.run_dir / ckpt_io.CONFIG_FILE).is_file()
        if has_run and not self.resume:
            raise RunExists(f"{self.run_dir} already holds a training run: pass --resume to continue it, "
                            "or choose another --out")
        if self.resume and has_run:
            saved = ckpt_io.load_config(self.run_dir)
            asked = self.config
            self.config = saved.replace(epochs=max(asked.epochs, saved.epochs))
            if asked.prior_epochs and saved.prior_epochs:         # more prior epochs may be asked for too
                self.config = self.config.replace(prior_epochs=max(asked.prior_epochs, saved.prior_epochs))
            self.history = ckpt_io.load_history(self.run_dir)
        if self.init_from is not None and not (self.resume and ckpt_io.latest_checkpoint(self.run_dir)):
            ckpt_io.check_init_source(self.init_from, self.config)
        get_sampler(self.config.sampler, self.config)             # an unknown or unfitting sampler: refused now

    def load_data(self) -> None:
        """Decode the train and test splits once (uint8), with what the model is conditioned on.

        A data set without a test split trains without test evaluation; any other problem with
        the test split (missing or unreadable images, ...) is an error.
        """
        cfg = self.config
        self.train_images, self.train_labels = load_split(self.data_dir, "train", image_size=cfg.image_size)
        if cfg.conditional and self.train_labels.shape[1] != cfg.num_classes:
            raise DataError(f"the data set has {self.train_labels.shape[1]} classes, the configuration "
                            f"num_classes={cfg.num_classes}")
        if has_split(self.data_dir, "test"):
            self.test_images, self.test_labels = load_split(self.data_dir, "test", image_size=cfg.image_size)
        else:
            print(f"note: {self.data_dir} has no test split: training without test evaluation", file=sys.stderr)
            self.test_images = self.test_labels = None
        # what the model is conditioned on: the labels, or for a layout model the boxes' maps
        self.train_boxes = None
        self.train_conditions, self.test_conditions = self.train_labels, self.test_labels
        if cfg.layout:
            self.train_conditions, self.train_boxes = load_layouts(self.data_dir, "train", cfg.image_size,
                                                                   self.train_labels)   # (n, L, L, C) uint8
            if self.test_images is not None:
                self.test_conditions = load_layouts(self.data_dir, "test", cfg.image_size, self.test_labels)[0]
        elif get_sampler(cfg.sampler).conditions_on == "boxes":           # a prior told where the threats are
            self.train_boxes = load_boxes(self.data_dir, "train", cfg.image_size)
        self._steps_per_epoch = math.ceil(len(self.train_images) / cfg.batch_size)

    def build(self) -> None:
        """Model, optimizer(s), epoch counter, the step of the configuration and the checkpoint."""
        cfg = self.config
        # the seed's objective exactly (one-sample ELBO); everything else takes the weighted step
        self._plain = (cfg.likelihood == "bernoulli" and not cfg.analytic_kl and not cfg.conditional
                       and cfg.kl_warmup_epochs == 0 and cfg.adversarial_weight == 0)
        self.strategy = self.strategy or tf.distribute.get_strategy()
        self.precision = set_precision(self.precision, self.strategy)
        with self.strategy.scope():
            keras.utils.set_random_seed(cfg.seed)
            self.model = build_model(cfg)
            self.optimizer = self._adam(cfg.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            parts = {}
            if cfg.adversarial_weight > 0:  # the patch discriminator and its own optimizer (VQGAN's betas)
                self.discriminator = patch_discriminator(cfg.image_size)
                self.d_optimizer = self._adam(cfg.learning_rate, beta_1=0.5, beta_2=0.9)
                self.d_optimizer.build(self.discriminator.trainable_variables)
                self._adversarial_step = AdversarialStep(self.discriminator, self.d_optimizer,
                                                         cfg.adversarial_weight)
                parts = dict(discriminator=self.discriminator, d_optimizer=self.d_optimizer)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epoch, **parts)
        # autograph=False: the steps have no tensor-dependent Python control flow, and converting them
        # doubled the time to trace them (most of a short training's time)
        self._train_step = tf.function(self._distributed_step, jit_compile=cfg.jit_compile, autograph=False)
        self._eval_step = tf.function(self._eval, reduce_retracing=True, autograph=False)

    def _adam(self, learning_rate, **kwargs):
        """Adam, wrapped for loss scaling under ``mixed_float16`` (float16 gradients underflow without it)."""
        optimizer = keras.optimizers.Adam(learning_rate, **kwargs)
        if self.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def open_run_folder(self) -> None:
        """Create ``run_dir`` with ``config.json``; open the checkpoint manager and the TensorBoard writer."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.save(self.run_dir / ckpt_io.CONFIG_FILE)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.run_dir / ckpt_io.CHECKPOINT_DIR),
                                                  max_to_keep=3)
        self.summary_writer = tf.summary.create_file_writer(str(self.run_dir / "logs"))

    def restore(self) -> None:
        """On resume, restore the last complete checkpoint; else start from ``init_from``'s weights if given."""
        if self.resume and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            self.history = [h for h in self.history if h["epoch"] <= int(self.epoch.numpy())]
            print(f"Resuming {self.run_dir} from epoch {int(self.epoch.numpy())} "
                  f"({self.manager.latest_checkpoint})", file=sys.stderr)
        elif self.init_from is not None:
            source = ckpt_io.init_from_run(self.init_from, self.config, self.model,
                                           discriminator=getattr(self, "discriminator", None))
            print(f"Starting {self.run_dir} from the weights of {source}", file=sys.stderr)

    # -- one step ------------------------------------------------------------------------------
    def kl_weight(self, step):
        """The KL weight (beta) at optimizer step ``step``: a linear warm-up over ``kl_warmup_epochs``."""
        return kl_weight(step, self.config.kl_warmup_epochs * self._steps_per_epoch)

    def _replica_step(self, x, y, eps, adversarial=False):
        """One replica's share of a step; returns its summed ``recon``, ``kl``, example count and ``log_sigma``
        (and, when ``adversarial``, the discriminator's loss and the adaptive weight).

        Args:
            x: this replica's images (local_batch, S, S, 1); y: labels (local_batch, C);
            eps: reparameterization noise (local_batch, latent_dim), drawn by the input pipeline
                for the whole global batch so that any number of replicas sees the same noise.
            adversarial: use the adversarial step; a Python bool, so each setting is its own graph.
        """
        local_n = tf.cast(tf.shape(x)[0], tf.float32)
        global_n = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local_n)
        extra = ()
        if self._plain:
            recon, kl = elbo_step(self.model, self.optimizer, x, eps, global_n)
            log_sigma = tf.zeros(())
        else:
            beta = self.kl_weight(self.optimizer.iterations)
            step = self._adversarial_step if adversarial else weighted_elbo_step
            if self.config.architecture == "latent":
                step = latent_step
            recon, kl, log_sigma, *extra = step(self.model, self.optimizer, x, y, eps, global_n, beta,
                                                self.config.free_bits)
        return (tf.reduce_sum(recon), tf.reduce_sum(kl), local_n, log_sigma, *extra)

    def _distributed_step(self, x, y, eps, adversarial=False):
        """Run :meth:`_replica_step` on every replica; returns the global mean ``recon``, ``kl`` and
        ``log_sigma`` (and, when ``adversarial``, the discriminator's loss and the adaptive weight)."""
        out = self.strategy.run(self._replica_step, args=(x, y, eps), kwargs=dict(adversarial=adversarial))
        total = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)  # noqa: E731
        mean = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)  # noqa: E731
        recon, kl, n, log_sigma, *adv = out
        extra = (total(adv[0]), mean(adv[1])) if adversarial else ()
        n = total(n)
        log_sigma = mean(log_sigma)
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
        self.setup()
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
        elif self.config.architecture == "latent":
            recon, kl, _, _ = latent_loss_terms(self.model, x, eps=eps, training=False)
        else:
            recon, kl, _, _ = loss_terms(self.model, x, y=y, eps=eps, training=False)
        return tf.reduce_sum(recon), tf.reduce_sum(kl)

    # -- data ----------------------------------------------------------------------------------
    def _epoch_dataset(self, epoch: int) -> tf.data.Dataset:
        """The batches of ``epoch`` with their noise, all fixed by ``(seed, epoch, step)``: resume is exact."""
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
        Returns ``{}`` when there is nothing to evaluate (no test split).
        """
        self.setup()
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
    def fit(self) -> Run:
        """Train until ``config.epochs`` (or the time budget), then fit the sampler; returns the trained :class:`Run`.

        A two-stage (``diffusion`` sampler) run gives the autoencoder ``vae_share`` of ``minutes`` and
        its prior the rest (:meth:`fit_sampler`); the autoencoder's stage is skipped once the prior's began.
        """
        self.setup()
        start = time.monotonic()
        two_stage = self.config.sampler == "diffusion"
        budget = self.minutes if self.minutes is None or not two_stage else self.minutes * self.config.vae_share
        frozen = two_stage and prior_started(self.run_dir)
        if frozen and int(self.epoch.numpy()) < self.config.epochs:
            print(f"note: the prior stage of {self.run_dir} has begun, so its autoencoder is final at epoch "
                  f"{int(self.epoch.numpy())}: continuing the prior", file=sys.stderr)
        while int(self.epoch.numpy()) < self.config.epochs and not frozen:
            epoch = int(self.epoch.numpy()) + 1
            record = self.train_epoch(epoch)
            self.end_epoch(record)
            if budget is not None and time.monotonic() - start >= 60 * budget:
                print(f"Time budget of {budget:.3g} min reached after epoch {epoch}.", file=sys.stderr)
                break
        self.summary_writer.flush()
        left = None if self.minutes is None else self.minutes - (time.monotonic() - start) / 60.0
        self.run = Run(self.run_dir, self.config, self.model, sampler=self.fit_sampler(minutes=left),
                       label_prior=self.label_prior, history=self.history)
        return self.run

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training split, then the test evaluation; returns the epoch's history record.

        Raises:
            TrainingDiverged: a loss became non-finite (nothing of this epoch is saved).
        """
        cfg = self.config
        steps = self._steps_per_epoch
        t0 = time.monotonic()
        if self.progress:
            print(f"Epoch {epoch}/{cfg.epochs}", file=sys.stderr)
        bar = keras.utils.Progbar(steps, verbose=1 if self.progress else 0, unit_name="batch")
        sums = np.zeros(2)
        adversarial = self.adversarial_at(epoch)
        adv_sums = np.zeros(2)                                   # discriminator loss, adaptive weight
        batches = self._epoch_dataset(epoch)
        # one trace for any batch size (the batch dimension is None here): the epoch's last, smaller batch
        # would otherwise trace the whole step a second time
        self._train_step.get_concrete_function(*batches.element_spec, adversarial=adversarial)
        for step, (x, y, eps) in enumerate(batches, start=1):
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
        return record

    def end_epoch(self, record: dict) -> None:
        """Keep a finished epoch: the callbacks (the sample grid), ``history.json``, then the checkpoint, TensorBoard."""
        epoch = record["epoch"]
        self.epoch.assign(epoch)
        for callback in self.callbacks:
            callback(self, record)
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
            print(f"epoch {epoch}: loss {record['loss']:.1f}{test} ({record['seconds']:.1f}s)", file=sys.stderr)
        if self.on_epoch_end:
            self.on_epoch_end(record)

    def fit_sampler(self, minutes: Optional[float] = None):
        """Fit, save and return the configuration's sampler (:mod:`vae_keras.samplers`; a ``diffusion`` prior
        trains for at most ``minutes``) and, when the data has labels, save the label prior.

        Before the first epoch there is nothing to fit: the sampler is then loaded as the run left it.
        """
        self.setup()
        self.label_prior = None
        if self.config.conditional or self.train_labels.any():
            self.label_prior = LabelPrior.from_labels(self.train_labels)
            self.label_prior.save(self.run_dir)
        cls = get_sampler(self.config.sampler, self.config)
        if not self.history:                                # no epoch yet (epochs=0): nothing to fit
            try:
                return cls.load(self.run_dir, self.model, label_prior=self.label_prior)
            except FileNotFoundError:
                return NormalSampler(self.model)
        data = FitData(self.train_images, self.train_labels, conditions=self.train_conditions, boxes=self.train_boxes,
                       init_from=None if self.init_from is None else str(self.init_from))
        self.sampler = cls.fit(self.model, data, self.run_dir, resume=self.resume, minutes=minutes,
                               progress=self.progress, strategy=self.strategy, label_prior=self.label_prior)
        self.prior_history = self.sampler.history           # a trained sampler's epochs (the diffusion prior's)
        return self.sampler


def train(config: VAEConfig, data_dir, run_dir, **kwargs) -> Trainer:
    """Train ``config`` on ``data_dir`` into ``run_dir``; returns the finished :class:`Trainer` (its ``run``
    is the trained :class:`~vae_keras.training.run.Run`).

    ``kwargs`` are :class:`Trainer`'s (``resume``, ``minutes``, ``progress``, ``strategy``,
    ``precision``, ``on_epoch_end``, ``init_from``, ``callbacks``).
    """
    trainer = Trainer(config, data_dir, run_dir, **kwargs)
    trainer.fit()
    return trainer
