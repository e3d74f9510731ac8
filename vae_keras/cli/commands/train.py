"""``train DATA --out RUN``: train a configuration on a prepared data set, with checkpoints and ``--resume``."""
from __future__ import annotations

from vae_keras.cli.common import QUICK_HELP, config_from_args, quiet_tensorflow
from vae_keras.config import DEFAULT_CONFIG, NAMED_CONFIGS


def add_parser(sub):
    s = sub.add_parser("train", help="train a VAE configuration on a prepared data set",
                       description="Train with a tf.GradientTape loop; writes RUN/config.json, a checkpoint every "
                                   "epoch, history.json, TensorBoard logs (RUN/logs) and a sample grid per epoch. "
                                   "--resume continues an interrupted run from its last complete checkpoint. "
                                   "--config latent trains two stages: the spatial-latent autoencoder for 55% of "
                                   "--minutes, then its diffusion prior (RUN/prior/) for the rest; --resume continues "
                                   "whichever stage was interrupted (once the prior began, the autoencoder is final).")
    s.add_argument("data", help="prepared data folder (from `phantoms` or `prepare`)")
    s.add_argument("--out", required=True, help="run folder (checkpoints, config, history, figures)")
    s.add_argument("--config", default=DEFAULT_CONFIG, choices=sorted(NAMED_CONFIGS),
                   help=f"named configuration (default: {DEFAULT_CONFIG}, the best measured in "
                        "figures/quality_v3/quality.md; "
                        "seed: the 2021 project's network, the reference)")
    s.add_argument("--epochs", type=int, help="number of epochs (default: the configuration's)")
    s.add_argument("--image-size", type=int, help="image side, divisible by 4 (default: 224; 64 in quick mode)")
    s.add_argument("--latent-dim", type=int, help="latent dimensions (default: the configuration's)")
    s.add_argument("--batch-size", type=int, help="batch size (default: 32)")
    rates = ", ".join(f"{name} {cfg.learning_rate:g}" for name, cfg in NAMED_CONFIGS.items())
    s.add_argument("--learning-rate", type=float, help=f"Adam learning rate (default: the configuration's: {rates})")
    s.add_argument("--seed", type=int, help="random seed (default: 0)")
    s.add_argument("--minutes", type=float, help="stop at the first epoch end after this many minutes (latent: both "
                                                  "stages together, split 55/45)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--init-from", metavar="RUN",
                   help="start from the weights of another run (fine-tuning, e.g. on a few hundred real scans after "
                        "pre-training on phantoms); it must have the same architecture, image size, latent size, "
                        "likelihood and conditioning. The optimizer and epoch count start fresh")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="any other configuration field (vae_keras.config.VAEConfig), repeatable: e.g. --set "
                        "prior_target=v --set prior_attention=4 --set prior_widths=64,128,256 (docs/quality.md)")
    s.add_argument("--jit-compile", action="store_true", help="compile the step with XLA (faster on GPU, slower on CPU)")
    s.add_argument("--strategy", default="auto", choices=("auto", "default", "mirrored", "multiworker", "tpu"),
                   help="tf.distribute strategy: auto = a TPU if attached, else all GPUs when there are several, "
                        "else one device; multiworker reads TF_CONFIG (default: auto)")
    s.add_argument("--precision", default="float32", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                   help="numeric precision; auto = mixed_bfloat16 on TPU, mixed_float16 on GPU, float32 on CPU "
                        "(default: float32)")
    s.add_argument("--deterministic", action="store_true",
                   help="enable TensorFlow op determinism: a rerun or resumed run gives bit-identical weights")
    s.add_argument("--quick", action="store_true", help=QUICK_HELP)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)
    return s


def run(args):
    from vae_keras.io.manifest import split_rows

    config = config_from_args(args)          # a bad flag or a missing data set: refused before TensorFlow loads
    split_rows(args.data, "train")
    quiet_tensorflow()
    from vae_keras.training.distribute import select_strategy
    from vae_keras.training.trainer import train
    from vae_keras.viz.finish import finish_run

    if args.deterministic:  # bit-exact reruns (and resumes) on the same machine, a little slower
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    trainer = train(config, args.data, args.out, resume=args.resume, minutes=args.minutes,
                    progress=not args.quiet, strategy=select_strategy(args.strategy), precision=args.precision,
                    init_from=args.init_from)
    finish_run(trainer.run, args.data, seed=trainer.config.seed)
    last = trainer.history[-1] if trainer.history else {}
    unit = "(pixel + Laplacian L1 + weighted KL)" if trainer.config.architecture == "latent" else "nats/image"
    prior = trainer.prior_history
    prior = f"; prior: {len(prior)} epoch(s), last loss {prior[-1]['loss']:.4f}" if prior else ""
    print(f"trained {trainer.config.name} for {len(trainer.history)} epoch(s) into {args.out}; "
          f"last loss {last.get('loss', float('nan')):.2f} {unit}{prior}")
