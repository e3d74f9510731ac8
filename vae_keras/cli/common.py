"""What several subcommands share: quiet TensorFlow start-up, ``--quick`` help, config from flags, sampler options.

Only the standard library and :mod:`vae_keras.config` at import time, so ``--help`` stays fast;
the rest is imported inside the functions that need it.
"""
from __future__ import annotations

import os

from vae_keras.config import NAMED_CONFIGS, QUICK_ENV, VAEConfig, get_config
from vae_keras.errors import ConfigError

QUICK_HELP = f"shrink everything to run in minutes on 2 CPU cores (same as {QUICK_ENV}=1)"


def quiet_tensorflow():
    """TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is noise for a CLI user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def config_from_args(args):
    """The named configuration of ``--config`` with the ``train`` flags that were given applied.

    Raises:
        ConfigError: ``--latent-dim`` for ``latent``, whose latent size follows from the image size.
    """
    if args.latent_dim is not None and NAMED_CONFIGS[args.config].architecture == "latent":
        raise ConfigError(f"--latent-dim does not apply to --config {args.config}: its latent is a (S/f, S/f, 4) map "
                          "whose size follows from --image-size (64 px: 16x16x4)")
    flags = dict(image_size=args.image_size, latent_dim=args.latent_dim, batch_size=args.batch_size,
                 epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed,
                 jit_compile=args.jit_compile or None)
    given = {k: v for k, v in flags.items() if v is not None}           # a flag that was given wins over --set
    settings = VAEConfig.parse_settings(getattr(args, "set", None))
    return get_config(args.config, quick=args.quick or None, **{**settings, **given})


def add_sampler_options(parser) -> None:
    """``--sampler`` is not added here; this adds each registered sampler's settings (``--steps``,
    ``--guidance``, ``--clip`` of the diffusion prior, ...), so a new sampler's options appear by themselves."""
    from vae_keras.samplers import sampler_options   # no TensorFlow: the registry imports it lazily

    for opt in sampler_options():
        parser.add_argument(f"--{opt.name.replace('_', '-')}", dest=opt.name, type=opt.type, help=opt.help)


def sampler_settings(args) -> dict:
    """The sampler options given on the command line, by name (None where not given)."""
    from vae_keras.samplers import sampler_options

    return {opt.name: getattr(args, opt.name, None) for opt in sampler_options()}
