"""The committed figures: train one configuration on the phantom set, evaluate it, build its gallery.

Run from the repository root (``make figures`` does exactly this)::

    python scripts/make_figures.py --config latent --minutes 20 --image-size 64 --out figures

or build them from a run trained elsewhere (on a GPU, or by ``benchmarks/quality.py`` on a quiet
machine), skipping the rendering and the training::

    python scripts/make_figures.py --from-run runs/quality_v3/latent --data data/phantoms64_v2 --out figures

Steps: render the phantom set (1,877 bags, kept under ``--work`` and reused), train the
configuration from scratch for at most ``--minutes`` (the budget of the committed figures: about
20 minutes on a 2-core CPU), finish the run as ``train`` does (its figures) and evaluate it
(:func:`vae_keras.viz.finish.finish_run`), and write into ``--out``:

    OUT/gallery/              the gallery (python -m vae_keras gallery), self-contained
    OUT/interpolations.png    the headline figures, copied from the gallery for the README
    OUT/latent_manifold.png   (a 2-d latent space only)
    OUT/training.gif
    OUT/generated.png, OUT/real.png, OUT/generated_<class>.png (conditional models)
    OUT/loss_curves.png
    OUT/run_quality.md        the evaluation table of this run (figures/quality.md is the benchmark's)
    OUT/run/                  config.json, history.json, run_info.json, metrics.json of the run

The run itself (checkpoints, logs) stays under ``--work`` (``build/figures``, not committed).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vae_keras.config import DEFAULT_CONFIG  # noqa: E402
from vae_keras.io.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402

HEADLINE = ("interpolations.png", "latent_manifold.png", "training.gif", "generated.png", "real.png", "loss_curves.png")
SIZE_LIMIT = 15 * 2 ** 20


def describe_device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return "GPU: " + ", ".join(names)
    return f"CPU ({os.cpu_count()} cores)"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def training_seconds(run: Path) -> float:
    """Seconds the run trained: its epochs', and its diffusion prior's for a two-stage run (``prior/``)."""
    from vae_keras.training.checkpoint import load_history

    return sum(float(h.get("seconds", 0.0)) for d in (run, run / "prior") if (d / "history.json").is_file()
               for h in load_history(d))


def train_fresh(args, work: Path):
    """Render the phantoms (or reuse them) and train ``--config`` from scratch for ``--minutes``:
    ``(the trained Run, data)``."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.config import get_config
    from vae_keras.io.manifest import read_manifest
    from vae_keras.training.trainer import train

    data = work / f"phantoms_{args.n_phantoms}_{args.image_size}_seed{args.seed}"
    run = work / f"run_{args.config}_{args.image_size}"
    manifest = data / "manifest.csv"
    if manifest.is_file() and len(read_manifest(manifest)) == args.n_phantoms:
        print(f"[1/4] reusing the phantom set {data}", file=sys.stderr)
    else:
        print(f"[1/4] rendering {args.n_phantoms} phantoms at {args.image_size}x{args.image_size} into {data}",
              file=sys.stderr)
        write_phantom_dataset(data, n=args.n_phantoms, size=args.image_size, seed=args.seed,
                              progress=not args.quiet)
    print(f"[2/4] training {args.config} for at most {args.minutes} min into {run}", file=sys.stderr)
    if run.exists() and not args.resume:
        shutil.rmtree(run)                                       # the committed figures come from one fresh run
    config = get_config(args.config, quick=False, image_size=args.image_size, epochs=args.epochs, seed=args.seed)
    trainer = train(config, data, run, resume=args.resume, minutes=args.minutes, progress=not args.quiet)
    return trainer.run, data


def copy_finished_run(source: Path, data: Path, work: Path):
    """Copy a finished run into ``work`` (its figures are written beside its checkpoints, not into the
    original) and open it: ``(the Run, data)``."""
    from vae_keras.errors import DataError
    from vae_keras.io.manifest import MANIFEST
    from vae_keras.training.checkpoint import CONFIG_FILE, load_config
    from vae_keras.training.run import open_run

    if not (source / CONFIG_FILE).is_file():
        raise DataError(f"{source} is not a training run (no {CONFIG_FILE})")
    if not (data / MANIFEST).is_file():
        raise DataError(f"{data} is not a prepared data set (no {MANIFEST})")
    run = work / f"run_{load_config(source).name}_from_{source.name}"
    print(f"[1/4] copying the finished run {source} into {run}", file=sys.stderr)
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(source, run)
    print("[2/4] training nothing (--from-run)", file=sys.stderr)
    return open_run(run), data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"named configuration (default: {DEFAULT_CONFIG})")
    p.add_argument("--minutes", type=float, default=20.0, help="training time budget (default: 20)")
    p.add_argument("--epochs", type=int, default=200, help="epoch cap; the time budget usually stops first")
    p.add_argument("--image-size", type=int, default=64, help="image side (default: 64; 224 on a GPU)")
    p.add_argument("--n-phantoms", type=int, default=1877, help="phantom bags (default: 1877, as the seed project)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantoms, the weights and the samples")
    p.add_argument("--work", default="build/figures", help="data and run folder (not committed)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--resume", action="store_true", help="continue the run in --work instead of starting afresh")
    p.add_argument("--from-run", metavar="RUN",
                   help="train nothing: copy this finished run into --work and build the figures from it "
                        "(--config, --minutes, --epochs, --image-size and the phantom options are then the run's)")
    p.add_argument("--data", help="with --from-run: the prepared data set the run was trained on (required)")
    p.add_argument("--two-sample-steps", type=int, default=300, metavar="N",
                   help="Adam steps per fold of the evaluation's two-sample test (default: 300; fewer is quicker "
                        "and a weaker test, for a smoke run only)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.from_run and not args.data:
        p.error("--from-run needs --data: the data set the run was trained on (its real images and the evaluation)")

    from vae_keras.viz.finish import finish_run
    from vae_keras.viz.gallery import METRICS_FILE, RUN_INFO_FILE, build_gallery, metrics_markdown

    t0 = time.monotonic()
    work, out = Path(args.work), Path(args.out)
    if args.from_run:
        trained, data = copy_finished_run(Path(args.from_run), Path(args.data), work)
    else:
        trained, data = train_fresh(args, work)
    run, history = trained.run_dir, trained.history
    args.config, args.image_size = trained.config.name, trained.config.image_size   # the run's, also for --from-run
    command = "python scripts/make_figures.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    info = {"data": str(data), "device": describe_device(), "command": command,
            "budget_minutes": None if args.from_run else args.minutes,
            "training_minutes": round(training_seconds(run) / 60, 1)}
    if args.from_run:
        info["from_run"] = args.from_run
    atomic_write_text(run / RUN_INFO_FILE, json.dumps(info, indent=1) + "\n")

    print("[3/4] the run's figures and its evaluation (as `train` and `evaluate` write them)", file=sys.stderr)
    finish_run(trained, data, seed=args.seed, evaluate=True, progress=not args.quiet,
               two_sample_steps=args.two_sample_steps)

    print(f"[4/4] building the gallery in {out / 'gallery'}", file=sys.stderr)
    if (out / "gallery").is_dir():
        shutil.rmtree(out / "gallery")                           # no pictures left over from an older run
    index = build_gallery(trained, out / "gallery", data_dir=data, seed=args.seed)
    for name in [*HEADLINE, *sorted(p.name for p in index.parent.glob("generated_*.png"))]:
        if (index.parent / name).is_file():
            atomic_write_bytes(out / name, (index.parent / name).read_bytes())
    for name in ("config.json", "history.json", RUN_INFO_FILE, METRICS_FILE):
        if (run / name).is_file():
            atomic_write_bytes(out / "run" / name, (run / name).read_bytes())
    metrics_file = run / METRICS_FILE
    if metrics_file.is_file():
        atomic_write_text(out / "run_quality.md",
                          f"# Evaluation of `{args.config}` ({len(history)} epochs, "
                          f"{args.image_size}x{args.image_size})\n\n"
                          + metrics_markdown(json.loads(metrics_file.read_text(encoding="utf-8"))))

    size = folder_size(out)
    print(f"figures of {args.config} ({len(history)} epochs) written to {out} "
          f"({size / 2 ** 20:.1f} MB) in {(time.monotonic() - t0) / 60:.1f} min; open {index}", file=sys.stderr)
    if size > SIZE_LIMIT:
        print(f"warning: {out} is over {SIZE_LIMIT / 2 ** 20:.0f} MB: use a smaller --image-size", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from vae_keras.errors import XrayVaeError

    try:
        sys.exit(main())
    except XrayVaeError as err:                                  # a bad --from-run or --data: one clear line
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
