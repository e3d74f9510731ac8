"""Latents from a ``latent`` run's learned prior: DDIM over the standardised latent maps, guided by labels.

The network and scheduler functions are :mod:`vae_keras.models.diffusion`'s; the prior's training
is :mod:`vae_keras.samplers.diffusion_training` (``RUN/prior/``). This module loads the trained
prior once and draws from it; its DDIM steps, guidance scale and clipping are settings of the
sampler (:meth:`~vae_keras.samplers.base.Sampler.configure`, or per call of :meth:`DiffusionSampler.sample`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from vae_keras.errors import ConfigError
from vae_keras.io.atomic import PathLike
from vae_keras.samplers.base import FitData, Sampler, SamplerOption, register
from vae_keras.samplers.labels import LabelPrior


@register
class DiffusionSampler(Sampler):
    """Latents from the run's learned prior: DDIM over the standardised latent maps, guided by labels.

    Loads ``RUN/prior/`` (written by :mod:`vae_keras.samplers.diffusion_training`): the U-Net's EMA
    weights and the per-channel mean and standard deviation of the training latents. A sample
    starts from ``temperature * eps`` (eps from ``default_rng(seed)``, so it does not depend on
    the batch), is denoised in ``steps`` DDIM steps (:func:`vae_keras.models.diffusion.ddim_sample`),
    then un-standardised and flattened to the autoencoder's latent vectors.

    Args:
        model: the trained ``latent`` CVAE; run_dir: its run folder.
        steps: DDIM steps (default: the configuration's ``ddim_steps``).
        guidance: classifier-free guidance scale (default: the configuration's ``guidance``).
        clip: each DDIM step's predicted latent clipped to +-this many standard deviations, 0 = off
            (default: the configuration's ``prior_clip``).
        clip_range: when > 0, instead of ``clip``, each channel is clipped to this multiple of its
            range in the standardised training latents (``RUN/prior/latent_stats.npz``'s ``low`` and ``high``);
            default: the configuration's ``prior_clip_range``. Why: one bound for every channel is too
            tight for some and too loose for others. A threat crop's latents pass +-3 in up to 5% of
            their positions (a handgun's darkest), so +-3 erases what makes it a handgun, while an
            unclipped prior overshoots one channel to 25 where its training latents end at 5.
        batch_size: latents denoised at once.
        label_prior: the run's :class:`~vae_keras.samplers.labels.LabelPrior` (a draw asked for no
            labels gets the training mix); None: read from ``run_dir`` once.
        network, stats: an EMA network and ``(mean, std)`` or ``(mean, std, (low, high))`` already in
            memory (the prior just trained); None: built and restored from ``RUN/prior/``.
    """

    name = "diffusion"
    conditions_on = "labels"
    options = (
        SamplerOption("steps", int, "DDIM steps of a `latent` run's diffusion prior (default: the run's, 25); fewer is "
                                    "faster, 50 gains little", "ddim_steps", minimum=1),
        SamplerOption("guidance", float, "classifier-free guidance scale of a `latent` run's prior (default: the run's, "
                                         "3): 0 ignores --label, 1 is plainly conditional, higher holds the asked-for "
                                         "threats more often", "guidance"),
        SamplerOption("clip", float, "a `latent` run's prior: each DDIM step's predicted latent is clipped to +-CLIP "
                                     "standard deviations (default: the run's, 3); 0 = off (sharper, but a "
                                     "short-trained prior drifts into dark blobs)", "prior_clip"),
        SamplerOption("clip_range", float, "a `latent` run's prior: clip each channel of the predicted latent to "
                                           "CLIP_RANGE times that channel's range in the training latents instead "
                                           "of +-CLIP (1 = their range; default: the run's, 0 = off)",
                      "prior_clip_range"),
    )

    def __init__(self, model, run_dir: PathLike, steps: Optional[int] = None, guidance: Optional[float] = None,
                 batch_size: int = 256, clip: Optional[float] = None, clip_range: Optional[float] = None,
                 label_prior=None, network=None, stats=None):
        super().__init__(model)
        cfg = model.config
        self.check_config(cfg)
        self.run_dir = Path(run_dir)
        self.latent_shape = cfg.latent_shape()
        self.num_classes = int(cfg.num_classes)
        self.target = cfg.prior_target                                  # what the U-Net predicts: eps or v
        self._settings_from(cfg, dict(steps=steps, guidance=guidance, clip=clip, clip_range=clip_range))
        self.batch_size = int(batch_size)
        self.label_prior = LabelPrior.load(self.run_dir) if label_prior is None else label_prior
        if network is None:
            network, stats = self._restore(cfg)
        self.network = network
        self.mean, self.std, *bounds = stats                                               # (c,) each
        #: the standardised training latents' per-channel (low, high); None for a prior saved without it
        self.latent_range = bounds[0] if bounds else None

    def _restore(self, cfg):
        """Build the U-Net and restore its EMA weights from ``RUN/prior/``: ``(network, (mean, std))``."""
        import tensorflow as tf

        from vae_keras.models import diffusion

        prior = self.run_dir / diffusion.PRIOR_DIR
        ckpt = tf.train.latest_checkpoint(str(prior / "checkpoints"))
        if ckpt is None or not (prior / diffusion.STATS_FILE).is_file():
            raise FileNotFoundError(f"{self.run_dir} has no trained prior ({diffusion.PRIOR_DIR}/): it is trained at "
                                    "the end of `train` (rerun it with --resume)")
        with np.load(prior / diffusion.STATS_FILE, allow_pickle=False) as f:
            stats = f["mean"].astype(np.float32), f["std"].astype(np.float32)
            if "low" in f:                                 # (priors trained before it was recorded lack it)
                stats += ((f["low"].astype(np.float32), f["high"].astype(np.float32)),)
        network = diffusion.build_unet(self.latent_shape, cfg.prior_widths, 1 + self.num_classes,
                                       self.num_classes if self.box_maps else 0, cfg.prior_attention)
        tf.train.Checkpoint(ema_network=network).restore(ckpt).expect_partial()
        return network, stats

    @classmethod
    def check_config(cls, config) -> None:
        if getattr(config, "architecture", "") != "latent":
            raise ConfigError("sampler='diffusion' needs architecture='latent' (the prior is a U-Net over the "
                              "spatial latent map)")
        side, down = config.latent_shape()[0], 2 ** (len(config.prior_widths) - 1)
        if side % down:
            raise ConfigError(f"the latent side {side} must be divisible by {down} for the prior's "
                              f"{len(config.prior_widths)} U-Net levels (prior_widths {config.prior_widths})")

    @classmethod
    def fit(cls, model, data: FitData, run_dir, *, resume: bool = False, minutes: Optional[float] = None,
            progress: bool = True, strategy=None, label_prior=None) -> "DiffusionSampler":
        """Train the prior over ``data``'s training latents (:class:`PriorTrainer`, ``RUN/prior/``) for at most
        ``minutes``, continuing an interrupted prior when ``resume`` and starting from ``data.init_from``'s
        prior when given; the sampler uses the EMA network as trained."""
        from vae_keras.samplers.diffusion_training import PriorTrainer

        trainer = PriorTrainer(model.config, model, data.images, data.labels, run_dir, resume=resume, minutes=minutes,
                               progress=progress, strategy=strategy, init_from=data.init_from,
                               maps=cls.training_maps(model.config, data))
        history = trainer.fit()
        cls.save_training_layouts(run_dir, data)
        sampler = cls(model, run_dir, label_prior=label_prior, network=trainer.ema_network,
                      stats=(trainer.mean, trainer.std, (trainer.low, trainer.high)))
        sampler.history = history
        return sampler

    #: whether the U-Net also takes a box map, one channel per class (:mod:`.box_diffusion`)
    box_maps = False

    @classmethod
    def training_maps(cls, config, data: FitData):
        """What the prior is conditioned on besides the labels, one map per training image: none here."""
        return None

    @classmethod
    def save_training_layouts(cls, run_dir, data: FitData) -> None:
        """Anything sampling needs from the training data besides the label mix: nothing here."""

    @classmethod
    def load(cls, run_dir, model, label_prior=None, **options) -> "DiffusionSampler":
        return cls(model, run_dir, label_prior=label_prior, **options)

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None, **options) -> np.ndarray:
        """``n`` latents (n, latent_dim) float32; ``labels`` (n, C) multi-hot; None: the training label mix
        (the run's label prior; the unconditional prior when it saved none). ``options``: ``steps``,
        ``guidance``, ``clip`` for this call (default: the sampler's)."""
        n = int(n)
        if labels is None and self.label_prior is not None:
            labels = self.label_prior.sample(n, seed)
        return self._denoise(n, temperature, seed, labels, None, options)

    def _clip_bounds(self, clip: float, clip_range: float):
        """What :func:`~vae_keras.models.diffusion.ddim_sample` clips to: ``clip``, or with ``clip_range`` > 0
        the per-channel ``(low, high)`` of the training latents times ``clip_range``."""
        if not clip_range:
            return clip
        if self.latent_range is None:
            raise ConfigError(f"{self.run_dir}'s prior was saved without its training latents' range, which "
                              "clip_range needs: vae_keras.samplers.diffusion_training.record_latent_range(model, "
                              "training images, RUN) records it without training (benchmarks/threats.py does)")
        low, high = self.latent_range
        return low * clip_range, high * clip_range

    def _denoise(self, n: int, temperature: float, seed: int, labels, maps, options: dict) -> np.ndarray:
        """DDIM from ``temperature * eps`` (eps from ``default_rng(seed)``) under ``labels`` (n, C) or None and
        box ``maps`` (n, h, w, C) or None -> un-standardised latents (n, latent_dim)."""
        from vae_keras.models import diffusion

        s = self._call_settings(options)
        condition = diffusion.condition_vectors(labels, n, self.num_classes)              # (n, 1 + C)
        noise = np.random.default_rng(seed).standard_normal((n,) + tuple(self.latent_shape)).astype(np.float32)
        noise *= temperature
        b = self.batch_size
        clip = self._clip_bounds(s["clip"], s["clip_range"])
        out = [diffusion.ddim_sample(self.network, noise[i:i + b], condition[i:i + b], s["steps"], s["guidance"],
                                     clip, maps=None if maps is None else maps[i:i + b],
                                     target=self.target).numpy()
               for i in range(0, n, b)]
        x0 = np.concatenate(out) if out else np.zeros((0,) + tuple(self.latent_shape), np.float32)
        return (x0 * self.std + self.mean).reshape(n, self.latent_dim).astype(np.float32)
