"""``evaluate RUN --data DATA``: measure a trained run (likelihood, sharpness, two-sample test, ...) -> RUN/metrics.json."""
from __future__ import annotations

from pathlib import Path

from vae_keras.cli.common import add_sampler_options, quiet_tensorflow, sampler_settings


def add_parser(sub):
    s = sub.add_parser("evaluate", help="measure a trained run: likelihood, sharpness, two-sample test, ...",
                       description="Compute on the test split: -ELBO and IWAE NLL (bits/dim), reconstruction "
                                   "PSNR/SSIM, and on N generated images: sharpness, dense-object mass and "
                                   "intensity W1 vs the real images, a classifier two-sample test, Frechet distance "
                                   "and precision/recall in a threat classifier's feature space, a memorisation "
                                   "ratio, and per-class recognition for a conditional run. Writes RUN/metrics.json.")
    s.add_argument("run", help="a run folder written by `train`")
    s.add_argument("--data", required=True, help="the prepared data set the run was trained on")
    s.add_argument("--n", type=int, default=500, help="generated images (default: 500)")
    s.add_argument("--k", type=int, default=64, help="importance samples of the IWAE bound (default: 64)")
    s.add_argument("--n-likelihood", type=int, default=256, help="test images for the likelihood (default: 256)")
    from vae_keras.samplers import sampler_names   # the registry (no TensorFlow)

    s.add_argument("--sampler", choices=sampler_names(), help="latent sampler (default: the run's)")
    add_sampler_options(s)   # the same sampler settings as `generate`: --steps, --guidance, --clip, ...
    s.add_argument("--temperature", type=float, default=1.0, help="sampler scale (default: 1)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--objects", metavar="OBJECT_RUN",
                   help="measure composites instead: the run's bags with threats from this object VAE "
                        "(writes RUN/metrics_objects_<name>.json)")
    s.add_argument("--quiet", action="store_true", help="no progress messages")
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    from vae_keras.evaluation.evaluate import METRICS_FILE, evaluate_run, format_table, objects_metrics_file
    from vae_keras.training.checkpoint import load_config
    from vae_keras.training.run import open_run, supported_options

    options = supported_options(load_config(args.run), sampler_settings(args), kind=args.sampler)
    run = open_run(args.run, sampler=args.sampler, **options)     # loaded once, with these settings
    metrics = evaluate_run(run, args.data, n=args.n, k=args.k, n_likelihood=args.n_likelihood,
                           seed=args.seed, temperature=args.temperature, progress=not args.quiet,
                           objects_run=args.objects)
    print(format_table(metrics))
    print(f"wrote {Path(args.run) / (objects_metrics_file(args.objects) if args.objects else METRICS_FILE)}")
