"""One dataclass configures a run; it is saved as ``config.json`` next to the run's checkpoints.

Named configurations live in :data:`NAMED_CONFIGS`. ``seed`` reproduces the 2021 MSc project's
network exactly (the reference every improvement is measured against).

Quick mode (``XRAY_VAE_QUICK=1`` in the environment, or ``--quick`` on the command line) shrinks
a run so that it finishes in minutes on 2 CPU cores; without it the defaults are the full
224x224 run meant for a Colab GPU.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from vae_keras.errors import ConfigError
from vae_keras.io.atomic import atomic_write_text

QUICK_ENV = "XRAY_VAE_QUICK"
LIKELIHOODS = ("bernoulli", "gaussian_sigma")
ARCHITECTURES = ("seed", "resnet", "latent")


def quick_mode() -> bool:
    """True when ``XRAY_VAE_QUICK`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class VAEConfig:
    """Everything that defines a training run (model, objective, optimiser, data).

    Attributes:
        name: the named configuration this was derived from (``seed``, ...).
        image_size: side of the square grayscale input; must be divisible by 4.
        latent_dim: size of the latent vector z.
        encoder_filters: filters of the strided 3x3 conv layers of the encoder.
        decoder_filters: filters of the strided transposed convs of the decoder
            (a final stride-1 transposed conv to 1 channel follows).
        likelihood: ``bernoulli`` (decoder outputs logits, the seed's choice) or ``gaussian_sigma``
            (the sigma-VAE of Rybkin et al. 2021: a Gaussian decoder whose mean is the sigmoid of
            the output and whose shared variance is the analytic optimum, the batch's MSE).
        architecture: ``seed`` (plain strided convs, the 2021 network), ``resnet`` (a stride-2
            conv per scale with ``res_blocks`` residual blocks per scale, mirrored in the decoder) or
            ``latent`` (a *spatial* latent map (S/f, S/f, ``latent_channels``), norm-free residual
            blocks, resize + conv upsampling: :mod:`vae_keras.models.latent`). For ``latent`` the
            ``encoder_filters`` are the widths of the levels (full size, S/2, ...; the last repeats
            when f needs more levels) and ``latent_dim`` is derived: (S/f)^2 * latent_channels.
        latent_channels: channels c of the spatial latent map (``latent`` only).
        latent_factor: downsampling factor f of the spatial latent, a power of 2; 0 = from the image
            size (4 below 128 px, 8 from 128 px: 64 -> 16x16, 224 -> 28x28), see :meth:`spatial_factor`.
        laplacian_weight: weight of the L1 loss on the Laplacian of the reconstruction next to the
            pixel L1 (``latent`` only; it beat a patch GAN at a 20-minute CPU budget, issue #14).
        pixel_l2_weight: weight of a squared-error term next to the pixel L1 (``latent`` only). On
            mostly-empty images (threat crops on a light background) the L1's optimum at the start is
            the median, the empty background: the decoder then sits at a constant for epochs. The
            squared error pulls towards the mean, which has the dark shapes in it.
        latent_kl_weight: weight of the mean KL per latent element in the ``latent`` objective
            (1e-4 keeps about 5 nats per element: an informative latent the prior must then learn).
        res_blocks: residual blocks per scale (``resnet`` only).
        analytic_kl: use the closed-form Gaussian KL instead of the seed's one-sample estimate.
        kl_warmup_epochs: the KL weight rises linearly from 0 to 1 over this many epochs
            (per step; 0 = no warm-up, the seed's choice).
        free_bits: nats per latent dimension below which the batch-mean KL of that dimension is
            not penalised (Kingma et al. 2016; 0 = off). Needs ``analytic_kl``.
        adversarial_weight: weight of the adversarial patch loss on the reconstructions, relative to
            the reconstruction loss's gradient at the decoder's last layer (VQGAN's adaptive weight,
            :mod:`vae_keras.models.adversarial`); 0 = off.
        adversarial_start_epoch: epochs of plain VAE training before the discriminator joins.
        conditional: feed the multi-hot threat labels to encoder and decoder (a conditional VAE).
        layout: condition on layout maps instead, where each threat is (boxes rasterized to an
            (S/4, S/4, classes) map, :mod:`vae_keras.data.layouts`), injected at every decoder scale.
            Needs ``conditional`` and the ``resnet`` architecture.
        num_classes: length of the label vector (the manifest's classes).
        sampler: how ``generate`` draws latents: the name of a registered sampler
            (:mod:`vae_keras.samplers`): ``normal`` (the prior N(0, I)), ``gmm`` (a Gaussian mixture
            fitted to the aggregate posterior after training, Ghosh et al. 2020) or ``diffusion``
            (a ``latent`` run's learned prior). Each sampler checks that it fits the rest of the
            configuration when a run is trained or opened.
        gmm_components: mixture components of the ``gmm`` sampler.
        prior_widths: widths of the levels of the ``diffusion`` sampler's U-Net
            (:mod:`vae_keras.models.diffusion`; one residual block per level).
        prior_attention: heads of a self-attention layer at the U-Net's lowest resolution (0 = none).
        prior_target: what the U-Net predicts: ``eps`` (the noise) or ``v`` (the velocity
            ``signal * eps - noise * x0``, Salimans & Ho 2022).
        prior_min_snr: gamma of min-SNR loss weighting (Hang et al. 2023; 5 in the paper); 0 = plain MSE.
        prior_epochs: epochs of the prior stage over the training latents; 0 = 10 x ``epochs``.
        prior_batch_size, prior_learning_rate: the prior stage's batch size and Adam learning rate.
        prior_ema: decay of the prior's exponential moving average of weights (with warm-up); the
            EMA weights are the ones sampled from.
        label_dropout: probability that the prior sees no labels in a training example (what
            classifier-free guidance needs: one network, conditional and unconditional).
        ddim_steps: DDIM steps of a sample (``generate --steps``).
        guidance: classifier-free guidance scale (``generate --guidance``): 0 = unconditional,
            1 = conditional, above 1 = pushed further toward the requested labels.
        prior_clip: each DDIM step's predicted latent is clipped to +-this many standard deviations
            (0 = off; see :func:`vae_keras.models.diffusion.ddim_sample`).
        prior_clip_range: when > 0, each channel of the predicted latent is clipped to this multiple of
            its range in the training latents instead (``generate --clip-range``; 0 = off, ``prior_clip``).
        vae_share: share of a ``--minutes`` budget that trains the autoencoder; the rest trains
            the diffusion prior (two-stage runs only).
        learning_rate: Adam learning rate.
        batch_size: global batch size.
        epochs: number of passes over the training split.
        flip: random horizontal flips in the input pipeline.
        logvar_clip: the encoder's log-variance is clipped to [-clip, clip] so exp() cannot overflow.
        seed: random seed for weights, shuffling and the fixed latent grid.
        jit_compile: compile the train step with XLA (slower on CPU, measured; off by default).
    """

    name: str = "seed"
    image_size: int = 224
    latent_dim: int = 2
    encoder_filters: tuple = (32, 64)
    decoder_filters: tuple = (64, 32)
    likelihood: str = "bernoulli"
    architecture: str = "seed"
    res_blocks: int = 1
    analytic_kl: bool = False
    kl_warmup_epochs: float = 0.0
    free_bits: float = 0.0
    adversarial_weight: float = 0.0
    adversarial_start_epoch: int = 0
    conditional: bool = False
    layout: bool = False
    num_classes: int = 4
    sampler: str = "normal"
    gmm_components: int = 10
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    flip: bool = False
    logvar_clip: float = 20.0
    seed: int = 0
    jit_compile: bool = False
    latent_channels: int = 4
    latent_factor: int = 0
    laplacian_weight: float = 0.0
    pixel_l2_weight: float = 0.0
    latent_kl_weight: float = 1e-4
    prior_widths: tuple = (48, 96, 160)
    prior_attention: int = 0
    prior_target: str = "eps"
    prior_min_snr: float = 0.0
    prior_epochs: int = 0
    prior_batch_size: int = 64
    prior_learning_rate: float = 5e-4
    prior_ema: float = 0.999
    label_dropout: float = 0.1
    ddim_steps: int = 25
    guidance: float = 3.0
    prior_clip: float = 3.0
    prior_clip_range: float = 0.0
    vae_share: float = 0.55

    def __post_init__(self):
        self.encoder_filters = tuple(int(f) for f in self.encoder_filters)
        self.decoder_filters = tuple(int(f) for f in self.decoder_filters)
        self.prior_widths = tuple(int(f) for f in self.prior_widths)
        if self.architecture == "latent" and self.image_size >= 1 and self.latent_channels >= 1:
            f = self.spatial_factor()
            if f >= 1 and self.image_size % f == 0:   # else validate() says what is wrong
                self.latent_dim = (self.image_size // f) ** 2 * int(self.latent_channels)
        self.validate()

    def spatial_factor(self) -> int:
        """The spatial latent's downsampling factor f: ``latent_factor``, or 4 below 128 px and 8 from 128 px."""
        if self.latent_factor:
            return int(self.latent_factor)
        return 4 if self.image_size < 128 else 8

    def latent_shape(self) -> tuple:
        """``(S/f, S/f, c)`` of a ``latent`` configuration's latent map."""
        side = self.image_size // self.spatial_factor()
        return (side, side, int(self.latent_channels))

    def prior_epoch_count(self) -> int:
        """Epochs of the prior stage: ``prior_epochs``, or 10 x ``epochs`` when it is 0."""
        return int(self.prior_epochs) if self.prior_epochs else 10 * int(self.epochs)

    def validate(self) -> None:
        """Raise ``ValueError`` with an actionable message for an impossible configuration."""
        stride = 2 ** len(self.encoder_filters)
        if len(self.encoder_filters) != len(self.decoder_filters):
            raise ConfigError(
                f"encoder_filters {self.encoder_filters} and decoder_filters {self.decoder_filters} "
                "must have the same length (each halves / doubles the image side)")
        if self.architecture == "latent":
            self._validate_latent()
        elif self.image_size < stride or self.image_size % stride:
            raise ConfigError(
                f"image_size must be a positive multiple of {stride} for {len(self.encoder_filters)} "
                f"stride-2 layers; got {self.image_size}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.batch_size < 1 or self.epochs < 0:
            raise ConfigError(f"batch_size must be >= 1 and epochs >= 0, got {self.batch_size}, {self.epochs}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not isinstance(self.sampler, str) or not self.sampler.isidentifier():
            raise ConfigError(f"sampler must be the name of a sampler (normal, gmm, diffusion, ...), got {self.sampler!r}")
        if self.res_blocks < 0 or self.kl_warmup_epochs < 0 or self.free_bits < 0:
            raise ConfigError(f"res_blocks, kl_warmup_epochs and free_bits must be >= 0, got "
                             f"{self.res_blocks}, {self.kl_warmup_epochs}, {self.free_bits}")
        if self.adversarial_weight < 0 or self.adversarial_start_epoch < 0:
            raise ConfigError(f"adversarial_weight and adversarial_start_epoch must be >= 0, got "
                             f"{self.adversarial_weight}, {self.adversarial_start_epoch}")
        if self.free_bits > 0 and not self.analytic_kl:
            raise ConfigError("free_bits needs analytic_kl=True (free bits act on each dimension's closed-form KL)")
        if self.layout and not (self.conditional and self.architecture == "resnet"):
            raise ConfigError("layout=True needs conditional=True and architecture='resnet' (layout maps are "
                             "injected at each scale of the residual decoder)")
        if self.num_classes < 1 or self.gmm_components < 1:
            raise ConfigError(f"num_classes and gmm_components must be >= 1, got {self.num_classes}, "
                             f"{self.gmm_components}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if (not self.prior_widths or min(self.prior_widths) < 1 or self.prior_epochs < 0
                or self.prior_batch_size < 1 or self.prior_learning_rate <= 0):
            raise ConfigError(f"prior_widths must be positive, prior_epochs >= 0, prior_batch_size >= 1 and "
                             f"prior_learning_rate > 0; got {self.prior_widths}, {self.prior_epochs}, "
                             f"{self.prior_batch_size}, {self.prior_learning_rate}")
        if self.prior_attention < 0 or self.prior_min_snr < 0 or self.prior_target not in ("eps", "v"):
            raise ConfigError(f"prior_attention and prior_min_snr must be >= 0 and prior_target 'eps' or 'v'; got "
                             f"{self.prior_attention}, {self.prior_min_snr}, {self.prior_target!r}")
        if not (0 <= self.prior_ema < 1 and 0 <= self.label_dropout <= 1 and 0 < self.vae_share <= 1):
            raise ConfigError(f"prior_ema must be in [0, 1), label_dropout in [0, 1], vae_share in (0, 1]; got "
                             f"{self.prior_ema}, {self.label_dropout}, {self.vae_share}")
        if self.ddim_steps < 1 or self.guidance < 0 or self.prior_clip < 0 or self.prior_clip_range < 0:
            raise ConfigError(f"ddim_steps must be >= 1, guidance, prior_clip and prior_clip_range >= 0, got "
                             f"{self.ddim_steps}, {self.guidance}, {self.prior_clip}, {self.prior_clip_range}")

    def _validate_latent(self) -> None:
        """The spatial-latent architecture's own rules (f a power of 2 dividing the side, c >= 1, unconditional)."""
        f = self.spatial_factor()
        if f < 2 or f & (f - 1):
            raise ConfigError(f"latent_factor must be 0 (from the image size) or a power of 2 >= 2, got {f}")
        if self.image_size < f or self.image_size % f:
            raise ConfigError(f"image_size must be a positive multiple of the latent factor {f}; got {self.image_size}")
        if self.latent_channels < 1:
            raise ConfigError(f"latent_channels must be >= 1, got {self.latent_channels}")
        if self.conditional or self.layout:
            raise ConfigError("architecture='latent' is unconditional: its diffusion prior takes the labels "
                             "(classifier-free guidance); set conditional=False and layout=False")
        if self.laplacian_weight < 0 or self.latent_kl_weight < 0 or self.pixel_l2_weight < 0:
            raise ConfigError(f"laplacian_weight, latent_kl_weight and pixel_l2_weight must be >= 0, got "
                             f"{self.laplacian_weight}, {self.latent_kl_weight}, {self.pixel_l2_weight}")

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["encoder_filters"] = list(self.encoder_filters)
        d["decoder_filters"] = list(self.decoder_filters)
        d["prior_widths"] = list(self.prior_widths)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown configuration key(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def load(cls, path) -> "VAEConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path) -> Path:

        return atomic_write_text(path, self.to_json() + "\n")

    def replace(self, **changes) -> "VAEConfig":
        """A copy with ``changes`` applied (``None`` values are ignored, handy for CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def parse_settings(cls, pairs) -> dict:
        """``["prior_target=v", "prior_widths=64,128,256", "flip=false"]`` -> field values, each typed as
        the field's default (``train --set``: any field without a flag of its own).

        Raises:
            ConfigError: not ``KEY=VALUE``, an unknown field, or a value that does not parse.
        """
        defaults = cls()
        out = {}
        for pair in pairs or ():
            key, sep, text = str(pair).partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not hasattr(defaults, key):
                known = ", ".join(f.name for f in dataclasses.fields(cls))
                raise ConfigError(f"--set expects KEY=VALUE with KEY a configuration field ({known}); got {pair!r}")
            kind = type(getattr(defaults, key))
            try:
                if kind is tuple:
                    value = tuple(int(v) for v in text.split(",") if v.strip())
                elif kind is bool:
                    if text.strip().lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                        raise ValueError(text)
                    value = text.strip().lower() in {"1", "true", "yes", "on"}
                else:
                    value = kind(text)
            except ValueError:
                raise ConfigError(f"--set {key}: {text!r} is not a {kind.__name__} "
                                  f"(default {getattr(defaults, key)!r})") from None
            out[key] = value
        return out


#: The seed project's network: Conv2D 32, 64 (3x3, stride 2) + Dense(2*latent); Dense +
#: Conv2DTranspose 64, 32 (stride 2) and 1; Bernoulli logits; Adam 1e-4; single-sample ELBO.
SEED = VAEConfig(name="seed")

#: Deeper residual encoder/decoder (32-64-128 channels, one residual block per scale), 64 latent
#: dimensions, closed-form KL with warm-up and free bits; still the seed's Bernoulli decoder.
RESNET = SEED.replace(name="resnet", architecture="resnet", encoder_filters=(32, 64, 128),
                      decoder_filters=(128, 64, 32), res_blocks=1, latent_dim=64, learning_rate=1e-3,
                      analytic_kl=True, kl_warmup_epochs=5, free_bits=0.05, flip=True)

#: ``resnet`` with the sigma-VAE's Gaussian decoder (analytic optimal shared variance) and latents
#: drawn from a Gaussian mixture fitted to the aggregate posterior.
SIGMA = RESNET.replace(name="sigma", likelihood="gaussian_sigma", sampler="gmm")

#: ``sigma`` with an adversarial patch loss on its reconstructions from epoch 6 (VQGAN's adaptive
#: weight): sharper edges and texture than the pixel loss alone gives.
ADVERSARIAL = SIGMA.replace(name="adversarial", adversarial_weight=0.5, adversarial_start_epoch=5)

#: ``adversarial`` conditioned on the multi-hot threat labels (``generate --label knife``).
CONDITIONAL = ADVERSARIAL.replace(name="conditional", conditional=True)

#: ``conditional`` told *where* each threat is: layout maps of the boxes at every decoder scale, so
#: the objects need not pass through the latent vector (``generate --label knife`` draws a training
#: layout with a knife, and the export gets its boxes).
LAYOUT = CONDITIONAL.replace(name="layout", layout=True)

#: The threat-object VAE of composite generation (:mod:`vae_keras.sampling.objects`): ``conditional`` with a
#: 32-dimensional latent, trained on the threats alone (``python -m vae_keras objects``), at half the
#: bags' side (``--size 32`` for 64x64 bags).
OBJECTS = CONDITIONAL.replace(name="objects", latent_dim=32)

#: Two stages (issue #14): an autoencoder with a *spatial* latent (64 -> 16x16x4, 224 -> 28x28x4; norm-free
#: residual blocks widths 16/32/64, resize + conv upsampling, pixel L1 + Laplacian L1, KL weight 1e-4 on the
#: mean KL per element), then a small DDIM U-Net learns the prior over its standardised latents, guided by the
#: labels (:mod:`vae_keras.models.diffusion`, :mod:`vae_keras.samplers.diffusion_training`). Samples: ``generate --steps
#: --guidance``. N(0, I) is the wrong prior for a spatial latent (its draws decode to noise textures).
LATENT = SEED.replace(name="latent", architecture="latent", encoder_filters=(16, 32, 64),
                      decoder_filters=(64, 32, 16), likelihood="gaussian_sigma", analytic_kl=True,
                      laplacian_weight=1.0, latent_kl_weight=1e-4, learning_rate=5e-4, flip=True,
                      sampler="diffusion")

#: The threat generator (issue #23): the ``latent`` recipe on threat crops alone (an object set written by
#: ``python -m vae_keras objects``: 64x64 canvases, one threat each), whose samples are transmission maps the
#: Beer-Lambert insertion uses (``generate RUN --into BAGS``). A crop is one high-contrast silhouette, far
#: easier than a bag; what matters is that the class asked for is the one drawn, hence a stronger guidance
#: (4 rather than 3) and an even split of the budget between the stages. Measured: benchmarks/threats.py.
#: Its autoencoder learns with a squared-error term, batches of 16 and twice the learning rate: with the
#: ``latent`` autoencoder's settings it sat at the empty background for its first 3-4 epochs (and for good
#: at 2e-3). Fine-tuned on real GDXray crops from phantom threats, this recipe doubled the crops' sharpness
#: (0.24 -> 0.49 of real) and drew every class at >= 0.86 of real crops' recognition, where knives had
#: been 0.45 (docs/own_scans.md, figures/threats/). The Laplacian term weighs 3 rather than 1: on real crops the
#: autoencoder limited the samples' sharpness, and x3 took fine-tuned GDXray crops from 0.49 to 0.73 of real
#: sharpness and handguns from 0.86 to 0.95 of real crops' recognition (knives 1.02 -> 0.73, 24 test knives;
#: figures/threats/threats_gdxray_finetuned_lap3.md). Its prior trains on batches of 16, not 64: as many epochs in
#: the same minutes, so four times the steps; fine-tuned GDXray knives went from 0.44 to 1.21 of real recognition
#: and the two-sample accuracy from 0.85 to 0.76. And its DDIM steps clip each latent channel to 0.75 of that
#: channel's range in the training latents, not to +-3 for all: a threat's darkest latents pass +-3, so the
#: single clip erased phantom handguns and shuriken (0.00 and 0.02 of real recognition); clipped per channel they
#: are 1.08 and 0.71, and GDXray crops are recognised at >= 0.91 of real for every class at 0.79 of real
#: sharpness (figures/threats/batch16/).
THREATS = LATENT.replace(name="threats", image_size=64, guidance=4.0, vae_share=0.5, pixel_l2_weight=1.0,
                         laplacian_weight=3.0, batch_size=16, learning_rate=1e-3, prior_batch_size=16,
                         prior_clip_range=0.75)

#: Bags laid out by boxes (issue #23): ``latent`` whose diffusion prior is also conditioned on a box map at the
#: latent's side (:mod:`vae_keras.samplers.box_diffusion`), trained on the boxes the data set carries;
#: ``generate --label knife`` then draws a training layout holding a knife and writes its boxes.
BOXES = LATENT.replace(name="boxes", sampler="box_diffusion")

NAMED_CONFIGS = {"seed": SEED, "resnet": RESNET, "sigma": SIGMA, "adversarial": ADVERSARIAL,
                 "conditional": CONDITIONAL, "layout": LAYOUT, "objects": OBJECTS, "latent": LATENT,
                 "threats": THREATS, "boxes": BOXES}

#: The configuration recommended for new runs: the best measured at equal budgets (figures/quality_v3/quality.md,
#: 20 CPU minutes at 64 px: Frechet 294 against adversarial's 472, reconstruction 28.9 against 19.1 dB, the
#: class asked for recognised far more often); ``seed`` stays the reference.
DEFAULT_CONFIG = "latent"

#: What quick mode changes (applied on top of any named configuration).
QUICK_OVERRIDES = dict(image_size=64, epochs=3, batch_size=32)


def get_config(name: str = "seed", quick: Optional[bool] = None, **overrides) -> VAEConfig:
    """The named configuration, shrunk in quick mode, with explicit ``overrides`` applied last.

    Args:
        name: a key of :data:`NAMED_CONFIGS`.
        quick: force quick mode on/off; ``None`` reads ``XRAY_VAE_QUICK``.
        **overrides: field values; ``None`` values are ignored.
    """
    if name not in NAMED_CONFIGS:
        raise ConfigError(f"unknown configuration {name!r}; choose one of {sorted(NAMED_CONFIGS)}")
    cfg = NAMED_CONFIGS[name]
    if quick_mode() if quick is None else quick:
        cfg = cfg.replace(**QUICK_OVERRIDES)
    return cfg.replace(**overrides)
