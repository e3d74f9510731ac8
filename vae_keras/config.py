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

QUICK_ENV = "XRAY_VAE_QUICK"


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
        likelihood: ``bernoulli`` (decoder outputs logits, the seed's choice).
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
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    flip: bool = False
    logvar_clip: float = 20.0
    seed: int = 0
    jit_compile: bool = False

    def __post_init__(self):
        self.encoder_filters = tuple(int(f) for f in self.encoder_filters)
        self.decoder_filters = tuple(int(f) for f in self.decoder_filters)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` with an actionable message for an impossible configuration."""
        stride = 2 ** len(self.encoder_filters)
        if len(self.encoder_filters) != len(self.decoder_filters):
            raise ValueError(
                f"encoder_filters {self.encoder_filters} and decoder_filters {self.decoder_filters} "
                "must have the same length (each halves / doubles the image side)")
        if self.image_size < stride or self.image_size % stride:
            raise ValueError(
                f"image_size must be a positive multiple of {stride} for {len(self.encoder_filters)} "
                f"stride-2 layers; got {self.image_size}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {self.batch_size}, {self.epochs}")
        if self.likelihood not in {"bernoulli"}:
            raise ValueError(f"likelihood must be 'bernoulli', got {self.likelihood!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["encoder_filters"] = list(self.encoder_filters)
        d["decoder_filters"] = list(self.decoder_filters)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown configuration key(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def load(cls, path) -> "VAEConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path) -> Path:
        from data_prep.atomic import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n")

    def replace(self, **changes) -> "VAEConfig":
        """A copy with ``changes`` applied (``None`` values are ignored, handy for CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


#: The seed project's network: Conv2D 32, 64 (3x3, stride 2) + Dense(2*latent); Dense +
#: Conv2DTranspose 64, 32 (stride 2) and 1; Bernoulli logits; Adam 1e-4; single-sample ELBO.
SEED = VAEConfig(name="seed")

NAMED_CONFIGS = {"seed": SEED}

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
        raise ValueError(f"unknown configuration {name!r}; choose one of {sorted(NAMED_CONFIGS)}")
    cfg = NAMED_CONFIGS[name]
    if quick_mode() if quick is None else quick:
        cfg = cfg.replace(**QUICK_OVERRIDES)
    return cfg.replace(**overrides)
