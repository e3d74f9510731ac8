"""Beat the seed: train every configuration for the same wall-clock budget, measure, tabulate.

For each configuration this trains a run on the same data for ``--minutes`` (whole epochs: it
stops at the first epoch end past the budget), evaluates it with
:func:`vae_keras.evaluate.evaluate_run` (test split; ``--n`` generated images) and writes

    figures/quality.md                     the table of every measure, the targets, the command
    figures/quality_samples_<config>.png   64 samples (a conditional run: one row per class); beside a
                                           table quality_<x>.md: quality_samples_<config>_<x>.png

The row ``composite`` is two VAEs sharing the same budget: bags from the ``--composite-bags``
configuration trained for ``--minutes`` minus ``--objects-minutes``, and threats from an object
VAE (:mod:`vae_keras.sampling.objects`) trained for ``--objects-minutes`` on the threats cut out of the
same training split; its likelihood and reconstruction columns are the bag run's, its sample
columns measure the composites.

The table is rewritten after every configuration, so an interrupted benchmark leaves a valid
(partial) table. Configurations with a ``gmm`` sampler (or ``latent``'s diffusion prior, with
``--prior-rows latent``) are also scored with the plain N(0, I) prior, to show what the ex-post
density (or the learned prior) buys. ``latent`` trains both of its stages within ``--minutes``.

    python benchmarks/quality.py --data data/phantoms64 --minutes 10
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conditions import describe_conditions, detect_gpus, load_average  # noqa: E402

#: (measure, test, description) of the first release's targets, checked against each improved configuration
#: (issue #14's goals, per budget, are quality_budget.py's goals()).
TARGETS = [
    ("sharpness_ratio", lambda v, s: v >= 0.6, "sharpness ratio >= 0.6"),
    ("dense_mass_ratio", lambda v, s: 0.7 <= v <= 1.3, "dense-object mass ratio in [0.7, 1.3]"),
    ("c2st_accuracy", lambda v, s: v <= 0.9, "two-sample test accuracy <= 0.9"),
    ("nll_iwae_bpd", lambda v, s: s is not None and v < s, "NLL (IWAE) bits/dim below seed's"),
    ("memorisation_ratio", lambda v, s: v >= 0.8, "memorisation ratio >= 0.8"),
    ("class_recognition_mean", lambda v, s: v >= 0.8, "class recognised in >= 80% of conditional samples"),
]


def grid_path(table: Path, name: str) -> Path:
    """Where a configuration's sample grid goes: beside the table and named after both, so that the
    tables of other budgets or sizes (``quality_128.md``) keep their own grids
    (``quality_samples_latent_128.png``) instead of overwriting the default table's."""
    return table.parent / f"quality_samples_{name}{table.stem.removeprefix('quality')}.png"


def sample_grid(run_dir: Path, path: Path, seed: int = 0):
    """64 samples of a run with its own sampler; a run that can be asked for a class gets 16 per class."""
    import numpy as np

    from vae_keras.io.manifest import CLASSES
    from vae_keras.sampling.generate import sample_images
    from vae_keras.training.run import open_run
    from vae_keras.viz.figures import image_grid

    run = open_run(run_dir)
    model, sampler = run.model, run.sampler
    if run.answers_labels:
        images = np.concatenate([sample_images(model, 16, seed=seed + i, labels=[c], sampler=sampler)
                                 for i, c in enumerate(CLASSES)])
    else:
        images = sample_images(model, 64, seed=seed, sampler=sampler)
    image_grid(images, path, ncols=8)


def write_table(path: Path, results: dict, args, command: str, started: str, conditions: str):
    """Write the benchmark's markdown table; ``conditions`` is :func:`conditions.describe_conditions`'s sentence."""
    from vae_keras.evaluation.measures import MEASURES, TABLE

    seed = results.get("seed")
    lines = [
        "# Quality of the configurations at an equal training budget",
        "",
        f"Made by `{command}` on {started} (UTC). {conditions} Each configuration trained for "
        f"{args.minutes:g} min of wall clock (whole epochs) on `{args.data}` at {args.size}x{args.size}; "
        f"measures on the test split, {args.n} generated images, IWAE with k={args.k} on {args.n_likelihood} "
        "test images. `python -m vae_keras evaluate RUN --data DATA` computes the same numbers for any run.",
        "",
        "| configuration | epochs | " + " | ".join(c.title for c in TABLE) + " |",
        "| --- | --- | " + " | ".join("---" for _ in TABLE) + " |",
    ]
    for name, m in results.items():
        lines.append(f"| {name} | {m.get('epochs', '-')} | "
                     + " | ".join(c.format(m.get(c.key)) for c in TABLE) + " |")
    lines += ["", "Bits/dim: 8-bit pixels, each model's decoder read as a density on [0, 1] (the Bernoulli "
              "decoders as continuous Bernoulli, the Gaussian ones with their running optimal sigma); "
              "lower is better. Sharpness, dense-mass and memorisation ratios: generated / real (1 is ideal); "
              "2-sample acc.: 0.5 is ideal; Frechet distance, precision and recall in the feature space of a "
              "small threat classifier trained on the real training split.", ""]
    cond = {n: m for n, m in results.items() if "class_recognition" in m}
    per_class, benign = MEASURES["class_recognition"], MEASURES["benign_no_threat_found"]
    if cond:
        clf = next(iter(cond.values())).get("threat_classifier", {})
        lines += ["## Class-conditional generation", "",
                  "Fraction of samples generated for a class in which the threat classifier finds that class, "
                  "next to the classifier's recall of the class on *real* test images (its ceiling). Unconditional "
                  "runs are asked for a class through their mixture sampler alone (latents of training bags "
                  "with that class); `conditional` also feeds the label to its decoder, `layout` the boxes of a training "
                  "layout with that class; `composite` projects a threat of that class made by the object VAE.", "",
                  "| configuration | " + " | ".join(clf.get("classes", [])) + f" | {benign.title} |",
                  "| --- | " + " | ".join("---" for _ in clf.get("classes", [])) + " | --- |"]
        for n, m in cond.items():
            lines.append(f"| {n} | " + " | ".join(per_class.format(v) for v in m["class_recognition"].values())
                         + f" | {benign.format(m.get(benign.key))} |")
        rec = clf.get("test_recall_per_class", {})
        lines.append("| classifier on real test images | " + " | ".join(per_class.format(rec.get(c))
                                                                          for c in clf.get("classes", [])) + " | - |")
        lines.append("")
    lines += ["## The first release's targets (each improved configuration vs `seed` at the same budget; issue #14's "
              "goals: `benchmarks/quality_budget.py`'s goal table)", "",
              "| configuration | " + " | ".join(d for _, _, d in TARGETS) + " |",
              "| --- | " + " | ".join("---" for _ in TARGETS) + " |"]
    for name, m in results.items():
        if name == "seed":
            continue
        cells = []
        for key, ok, _ in TARGETS:
            v = m.get(key)
            if v is None:
                cells.append("n/a")
            else:
                s = seed.get(key) if seed else None
                cells.append(("reached" if ok(v, s) else "**missed**") + f" ({v:.3g})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Sample grids: " + ", ".join(f"`{grid_path(path, n).as_posix()}`"
                                                  for n in results if " " not in n), ""]
    if path.with_suffix(".notes.md").is_file():
        lines += [path.with_suffix(".notes.md").read_text(encoding="utf-8")]
    from vae_keras.io.atomic import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")


def composite_row(args, data: Path, table: Path) -> dict:
    """The same budget split in two: the ``--composite-bags`` configuration trained for ``--minutes``
    minus ``--objects-minutes``, and an object VAE trained ``--objects-minutes`` on the threats of
    ``data`` (:mod:`vae_keras.sampling.objects`); measured on the composites."""
    import numpy as np

    from vae_keras.io.manifest import CLASSES
    from vae_keras.config import get_config
    from vae_keras.evaluation.evaluate import evaluate_run, objects_metrics_file
    from vae_keras.evaluation.measures import format_table
    from vae_keras.sampling.objects import composite_samples, object_canvas, open_objects, train_object_vae
    from vae_keras.training.run import open_run
    from vae_keras.training.trainer import Trainer
    from vae_keras.viz.figures import image_grid

    bags = Path(args.runs) / "composite_bags"
    objects = Path(args.runs) / "composite_objects"
    side = object_canvas(args.size)
    object_data = data.with_name(f"{data.name}_objects{side}")
    saved = bags / objects_metrics_file(objects)
    if saved.is_file():
        metrics = json.loads(saved.read_text())
    else:
        if not (bags / "history.json").is_file():
            t0 = time.monotonic()
            config = get_config(args.composite_bags, quick=False, image_size=args.size, epochs=100_000)
            trainer = Trainer(config, str(data), str(bags), minutes=args.minutes - args.objects_minutes,
                              progress=False)
            trainer.fit()
            print(f"composite bags: trained {len(trainer.history)} epochs in {time.monotonic() - t0:.0f}s",
                  file=sys.stderr)
        if not (objects / "history.json").is_file():
            t0 = time.monotonic()
            trainer = train_object_vae(data, object_data, objects, args.size, args.objects_minutes)
            print(f"objects: trained {len(trainer.history)} epochs in {time.monotonic() - t0:.0f}s", file=sys.stderr)
        metrics = evaluate_run(open_run(bags), data, n=args.n, k=args.k, n_likelihood=args.n_likelihood,
                               objects_run=objects)
    hist = json.loads((objects / "history.json").read_text())
    metrics["epochs"] = f"{metrics.get('epochs', '-')} + {len(hist)}"       # bags + objects
    print(f"== composite\n{format_table(metrics)}", file=sys.stderr)
    bag_run, object_run = open_run(bags), open_objects(objects)
    per = [[c] for c in CLASSES for _ in range(16)]
    images = composite_samples(bag_run.model, object_run.model, per, seed=0, bag_sampler=bag_run.sampler,
                               object_sampler=object_run.sampler)[0]
    image_grid(np.asarray(images), grid_path(table, "composite"), ncols=8)
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/phantoms64", help="prepared data (rendered as phantoms if missing)")
    p.add_argument("--configs", nargs="+",
                   default=["seed", "resnet", "sigma", "adversarial", "conditional", "layout", "composite"],
                   help="named configurations, and `composite` (the --composite-bags run's bags with an object "
                        "VAE's threats)")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per configuration")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n-phantoms", type=int, default=3000)
    p.add_argument("--n", type=int, default=500, help="generated images per evaluation")
    p.add_argument("--k", type=int, default=64, help="importance samples of the IWAE bound")
    p.add_argument("--n-likelihood", type=int, default=256, help="test images for the likelihood")
    p.add_argument("--runs", default="runs/quality", help="where the runs go (an existing run is resumed)")
    p.add_argument("--table", default="figures/quality.md")
    p.add_argument("--composite-bags", default="adversarial",
                   help="the configuration of the `composite` row's bags (trained --minutes minus --objects-minutes)")
    p.add_argument("--objects-minutes", type=float, default=3.0,
                   help="the part of the `composite` row's budget that trains its object VAE (default: 3)")
    p.add_argument("--ddim-steps", nargs="*", type=int, default=[10, 50],
                   help="a latent run is also scored with these DDIM step counts (its own: 25; default: 10 50)")
    p.add_argument("--prior-clips", nargs="*", type=float, default=[0.0],
                   help="a latent run is also scored with its DDIM predictions clipped to these many standard "
                        "deviations (its own: 3; default: 0 = no clipping)")
    p.add_argument("--prior-rows", nargs="*", default=["sigma"],
                   help="gmm or diffusion-prior (latent) configurations also scored with the N(0, I) prior "
                        "(default: sigma)")
    args = p.parse_args(argv)
    load_start = load_average()
    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")

    from vae_keras.config import get_config
    from vae_keras.evaluation.evaluate import evaluate_run, objects_metrics_file
    from vae_keras.evaluation.measures import format_table
    from vae_keras.training.run import open_run
    from vae_keras.training.trainer import Trainer

    data = Path(args.data)
    if not (data / "manifest.csv").is_file():
        from data_prep.phantoms import write_phantom_dataset

        write_phantom_dataset(data, n=args.n_phantoms, size=args.size, seed=0, progress=False)
    table = Path(args.table)
    results, loads, gpus = {}, {}, detect_gpus()

    def conditions() -> str:  # what was measured so far: the device, the load around each run
        return describe_conditions(gpus, os.cpu_count(), platform.processor() or platform.machine(),
                                   (load_start, load_average()), loads)

    for name in args.configs:
        run = Path(args.runs) / name
        opened = None                                  # the run loaded once, for every setting scored below
        t0, load0 = time.monotonic(), load_average()
        if name == "composite":
            row = f"composite ({args.composite_bags} + objects)"
            runs = Path(args.runs)
            reused = (runs / "composite_bags" / objects_metrics_file(runs / "composite_objects")).is_file()
            results[row] = composite_row(args, data, table)
            loads[row] = (None, None) if reused else (load0, load_average())
            write_table(table, results, args, command, started, conditions())
            continue
        if not (run / "metrics.json").is_file():
            if not (run / "history.json").is_file():  # a run trained before is only evaluated again
                config = get_config(name, quick=False, image_size=args.size, epochs=100_000)
                trainer = Trainer(config, str(data), str(run), minutes=args.minutes, progress=False)
                opened = trainer.fit()
                print(f"{name}: trained {len(trainer.history)} epochs in {time.monotonic() - t0:.0f}s",
                      file=sys.stderr)
            opened = opened or open_run(run)
            metrics = evaluate_run(opened, data, n=args.n, k=args.k, n_likelihood=args.n_likelihood)
        else:                                  # measured by an earlier invocation: its load is unknown
            metrics = json.loads((run / "metrics.json").read_text())
            load0 = None
        results[name] = metrics
        print(f"== {name}\n{format_table(metrics)}", file=sys.stderr)
        sample_grid(run, grid_path(table, name))
        def scored(path: Path, **setting) -> dict:     # the run scored with another sampler setting, kept in path
            nonlocal opened
            if path.is_file():
                return json.loads(path.read_text())
            opened = opened or open_run(run)
            row = evaluate_run(opened, data, n=args.n, k=args.k, n_likelihood=args.n_likelihood, save=False, **setting)
            path.write_text(json.dumps(row, indent=1) + "\n")
            return row

        if metrics.get("sampler") in ("gmm", "diffusion") and name in args.prior_rows:
            results[f"{name} (N(0,I) sampler)"] = scored(run / "metrics_normal_sampler.json", sampler="normal")
        for steps in (args.ddim_steps if metrics.get("sampler") == "diffusion" else []):
            results[f"{name} (DDIM {steps} steps)"] = scored(run / f"metrics_ddim{steps}.json", steps=steps)
        for clip in (args.prior_clips if metrics.get("sampler") == "diffusion" else []):
            row = scored(run / f"metrics_clip{clip:g}.json", clip=clip)
            results[f"{name} (clip {clip:g} sd)" if clip else f"{name} (no clip)"] = row
        loads[name] = (load0, load_average() if load0 is not None else None)
        write_table(table, results, args, command, started, conditions())
    print(f"wrote {table}", file=sys.stderr)


if __name__ == "__main__":
    main()
