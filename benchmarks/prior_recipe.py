"""The diffusion prior's recipe at fixed work, and its budget curve (issue #25).

The ``latent`` default's autoencoder reconstructs well (28.9 dB at 64 px); its samples are blobs
because the prior, a small U-Net trained for minutes, is the weak stage. This benchmark holds the
autoencoder fixed and varies only the prior, at a fixed number of prior epochs (so machine load
changes its time, never its result):

1. trains one autoencoder (``--ae-epochs``) into ``OUT/autoencoder``, once;
2. ``--variants``: copies it per recipe variant (``OUT/<variant>``), trains that prior for
   ``--prior-epochs`` and measures it (``evaluate_run``'s sample measures: two-sample accuracy,
   sharpness, Frechet distance, memorisation, dense mass, class recognition);
3. ``--curve``: trains one variant's prior on and on, measuring it after each number of epochs in
   the list: the budget curve (where each measure stops improving).

Results go to ``OUT/results_<report name>.json`` (a finished point is not measured again: an interrupted
benchmark continues where it stopped) and to a Markdown table (and, for a curve, a PNG) with the
command, machine load and times.

    python benchmarks/prior_recipe.py --data data/phantoms64 --ae-epochs 60 --prior-epochs 60 \\
        --variants eps v v+minsnr attention wide --report figures/prior_recipe/recipe.md
    python benchmarks/prior_recipe.py --data data/phantoms64 --ae-epochs 60 --curve 30 60 120 200 300 \\
        --report figures/prior_recipe/curve.md
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conditions import describe_conditions, detect_gpus, load_average  # noqa: E402
from vae_keras.evaluation.measures import MEASURES  # noqa: E402  (pure Python: no TensorFlow)

#: The recipe's variants: configuration fields of the prior that differ from the ``latent`` default.
VARIANTS = {
    "eps": {},                                                            # today's default: predict the noise
    "v": {"prior_target": "v"},
    "eps+minsnr": {"prior_min_snr": 5.0},
    "v+minsnr": {"prior_target": "v", "prior_min_snr": 5.0},
    "attention": {"prior_attention": 4},
    "wide": {"prior_widths": (64, 128, 256)},
    "wide+attention": {"prior_widths": (64, 128, 256), "prior_attention": 4},
    "v+minsnr+attention": {"prior_target": "v", "prior_min_snr": 5.0, "prior_attention": 4},
    "lr1e-3": {"prior_learning_rate": 1e-3},
}
#: The table's columns (keys of ``evaluate_run``'s metrics) and the curve's panels.
COLUMNS = ("c2st_accuracy", "sharpness_ratio", "frechet_distance", "memorisation_ratio", "dense_mass_ratio",
           "precision", "recall", "class_recognition_mean", "benign_no_threat_found", "recon_psnr")
CURVE_PANELS = ("c2st_accuracy", "sharpness_ratio", "frechet_distance", "class_recognition_mean")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="a prepared data set (phantoms or prepared scans)")
    p.add_argument("--size", type=int, default=64, help="image side")
    p.add_argument("--ae-epochs", type=int, default=60, help="epochs of the shared autoencoder")
    p.add_argument("--ae-kl-weight", type=float, default=None,
                   help="the autoencoder's latent_kl_weight (default: the latent default's): a larger weight gives "
                        "the prior a latent nearer a unit Gaussian, easier to model, at some reconstruction cost")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=[],
                   help="recipe variants to train for --prior-epochs each")
    p.add_argument("--prior-epochs", type=int, default=60, help="prior epochs of each variant")
    p.add_argument("--curve", nargs="+", type=int, default=[],
                   help="prior epochs at which --curve-variant is measured (one run, trained on and on)")
    p.add_argument("--curve-variant", choices=sorted(VARIANTS), default="eps", help="the recipe the curve trains")
    p.add_argument("--prior-seed", type=int, default=None,
                   help="the priors' training seed (initialisation, noise, batches; default: the autoencoder's): "
                        "rerun a row with another to see the spread between seeds; rows are then named ROW/seedN")
    p.add_argument("--n", type=int, default=500, help="generated images per measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="build/prior_recipe", help="runs and results.json")
    p.add_argument("--report", default="figures/prior_recipe/recipe.md", help="Markdown table (and PNG for a curve)")
    args = p.parse_args(argv)
    if not args.variants and not args.curve:
        p.error("give --variants, --curve or both")
    return args


def autoencoder(args) -> Path:
    """``OUT/autoencoder``: the ``latent`` default trained ``--ae-epochs`` (its prior 1 epoch, replaced per variant)."""
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train

    run = Path(args.out) / "autoencoder"
    if not (run / "prior" / "checkpoints").is_dir():
        kl = {} if args.ae_kl_weight is None else {"latent_kl_weight": args.ae_kl_weight}
        config = get_config("latent", quick=False, image_size=args.size, epochs=args.ae_epochs, prior_epochs=1,
                            seed=args.seed, **kl)
        print(f"training the shared autoencoder: {args.ae_epochs} epochs -> {run}", file=sys.stderr)
        train(config, args.data, run, resume=run.is_dir(), progress=False, callbacks=())
    return run


def variant_run(base: Path, run: Path, variant: str, prior_seed: Optional[int] = None) -> Path:
    """A copy of the shared autoencoder run whose configuration has the variant's prior (trained with
    ``prior_seed``, default the autoencoder's seed) and no prior yet."""
    from vae_keras.training import checkpoint as ckpt_io

    if not (run / ckpt_io.CONFIG_FILE).is_file():
        tmp = run.with_name(run.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("prior", "samples", "logs", "metrics*.json"))
        seed = {} if prior_seed is None else {"seed": int(prior_seed)}
        config = ckpt_io.load_config(tmp).replace(**VARIANTS[variant], **seed)
        config.save(tmp / ckpt_io.CONFIG_FILE)
        tmp.rename(run)
    return run


def train_prior(run: Path, data, epochs: int) -> list:
    """Train (or continue) the run's prior up to ``epochs`` epochs; returns the prior's history."""
    from vae_keras.training import checkpoint as ckpt_io
    from vae_keras.training.trainer import train

    config = ckpt_io.load_config(run).replace(prior_epochs=epochs)
    return train(config, data, run, resume=True, progress=False, callbacks=()).prior_history


def measure(run: Path, args) -> dict:
    """The sample measures of the run as it stands (its EMA prior, the run's DDIM settings)."""
    from vae_keras.evaluation.evaluate import evaluate_run

    return evaluate_run(run, args.data, n=args.n, k=8, n_likelihood=32, seed=args.seed, progress=False, save=False)


def point(results: dict, key: str, run: Path, epochs: int, variant: str, args) -> None:
    """Train ``run``'s prior to ``epochs``, measure it and store the row under ``key`` (skipped when stored)."""
    if key in results:
        return
    load_start, t0 = load_average(), time.monotonic()
    history = train_prior(run, args.data, epochs)
    t1 = time.monotonic()
    metrics = measure(run, args)
    row = {k: metrics.get(k) for k in COLUMNS}
    row.update(variant=variant, prior_epochs=epochs, overrides={k: list(v) if isinstance(v, tuple) else v
                                                                for k, v in VARIANTS[variant].items()},
               prior_train_seconds=float(sum(h["seconds"] for h in history)),
               latents_per_second=history[-1]["latents_per_second"] if history else None,
               wall_seconds=t1 - t0, evaluate_seconds=time.monotonic() - t1,
               load=[load_start, load_average()], class_recognition=metrics.get("class_recognition"))
    results[key] = row
    print(f"{key}: " + ", ".join(f"{k} {row[k]:.3f}" for k in COLUMNS if isinstance(row[k], float)), file=sys.stderr)


def write_report(path: Path, results: dict, args, command: str, started: str, start_load) -> None:
    """The Markdown table of every stored row (and the curve's PNG beside it)."""
    from vae_keras.io.atomic import atomic_write_text

    head = ["row", "recipe (vs latent default)", "prior epochs", "prior train s", "load (start -> end)"]
    head += [MEASURES[k].label + MEASURES[k].arrow if k in MEASURES else k for k in COLUMNS]
    lines = ["# The diffusion prior's recipe at fixed work", "",
             f"Made by `{command}` (started {started} UTC). "
             + describe_conditions(detect_gpus(), os.cpu_count(), platform.machine(), (start_load, load_average()),
                                   {k: tuple(r["load"]) for k, r in results.items()})
             + f" One autoencoder ({args.ae_epochs} epochs at {args.size} px on `{args.data}`"
             + ("" if args.ae_kl_weight is None else f", latent_kl_weight {args.ae_kl_weight:g}")
             + ") shared by every row; "
             "each row trains only the prior, for a fixed number of epochs, so load changes its time and not its "
             f"result. Measures on {args.n} generated images against the test split (`evaluate_run`).", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key, r in results.items():
        recipe = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "default (eps, no attention)"
        load = " -> ".join("-" if v is None else f"{v:.1f}" for v in r["load"])
        cells = [key, recipe, str(r["prior_epochs"]), f"{r['prior_train_seconds']:.0f}", load]
        cells += ["-" if r.get(k) is None else (f"{r[k]:.1f}" if k == "frechet_distance" else f"{r[k]:.3f}")
                  for k in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(path, "\n".join(lines) + "\n")
    curve = [r for k, r in results.items() if k.startswith("curve:")]
    if len(curve) >= 2:
        plot_curve(curve, path.with_suffix(".png"))


def plot_curve(rows: list, out: Path) -> None:
    """One panel per measure against the prior's epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["prior_epochs"])
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4 * len(CURVE_PANELS), 3.4))
    for ax, key in zip(axes, CURVE_PANELS):
        pts = [(r["prior_epochs"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), "o-")
        ax.set_title(MEASURES[key].label + MEASURES[key].arrow if key in MEASURES else key, fontsize=10)
        ax.set_xlabel("prior epochs")
        ax.set_xscale("log")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    command = "python benchmarks/prior_recipe.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    started = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
    start_load = load_average()
    out, report = Path(args.out), Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    store = out / f"results_{report.stem}.json"     # one per report: a curve and variants may share OUT
    results = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else {}

    from vae_keras.io.atomic import atomic_write_text

    def save():
        atomic_write_text(store, json.dumps(results, indent=1))
        write_report(report, results, args, command, started, start_load)

    base = autoencoder(args)
    tag = "" if args.prior_seed is None else f"/seed{args.prior_seed}"     # a row's name; "_seedN" its folder's
    for variant in args.variants:
        point(results, f"{variant}@{args.prior_epochs}{tag}",
              variant_run(base, out / (variant + tag.replace("/", "_")), variant, args.prior_seed),
              args.prior_epochs, variant, args)
        save()
    if args.curve:
        run = variant_run(base, out / (f"curve_{args.curve_variant}" + tag.replace("/", "_")), args.curve_variant,
                          args.prior_seed)
        for epochs in sorted(args.curve):
            point(results, f"curve:{args.curve_variant}@{epochs}{tag}", run, epochs, args.curve_variant, args)
            save()


if __name__ == "__main__":
    main()
