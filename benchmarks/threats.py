"""The threat generator (issue #23): train each configuration on threat crops for the same budget, score its crops.

For each configuration (default ``latent`` and ``threats``) this trains a run on an object set (threat
crops written by ``python -m vae_keras objects``; made from phantoms when ``--objects`` is missing) for
``--minutes`` (both stages together), then scores it with
:func:`vae_keras.evaluation.threats.score_threats` on the object set's held-out crops: the class asked
for (a CNN trained on the real training crops, over its recall on held-out real crops), sharpness,
the two-sample test, memorisation and crops per second. It writes a table with the command and the
load, and with ``--grid`` a PNG of 8 crops per class per configuration (phantom data only: never a
picture made from GDXray scans or from models trained on them).

    python benchmarks/threats.py --objects data/objects64 --minutes 10 --table figures/threats/threats.md --grid

A configuration whose run folder already holds a finished run is scored again without training
(``--runs``); so is one given as ``LABEL=RUN`` (e.g. a fine-tuned run; ``--steps`` rescores runs with fewer
DDIM steps, ``--clip 0`` without clipping, ``--clip-range 1`` clipping each channel to its training range).
``--init-from RUN`` starts each run trained here from RUN's weights (both stages): pre-trained on phantom
threats, fine-tuned on a data set's own crops (the table says so in its title)::

    python benchmarks/threats.py --objects data/gdxray_objects64 --configs threats --runs runs/threats_ft \
        --init-from runs/threats/threats --table figures/threats/threats_gdxray_finetuned.md
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


def make_objects(objects: Path, n_bags: int, bag_size: int) -> None:
    """Phantom bags at ``bag_size`` and their threats cut out into ``objects`` (canvas ``bag_size / 2``)."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.sampling.objects import write_object_dataset

    bags = objects.with_name(objects.name + "_bags")
    if not (bags / "manifest.csv").is_file():
        write_phantom_dataset(bags, n=n_bags, size=bag_size, seed=0, progress=False)
    write_object_dataset(bags, objects, bag_size, progress=False)


def parse_spec(spec: str):
    """One ``--configs`` entry -> ``(label, name, run, overrides)``.

    ``threats`` trains a named configuration; ``threats=RUN`` scores a run trained elsewhere (RUN may hold
    slashes; its own configuration is used, so the name before ``=`` is then only the row's label, and any
    label will do: ``v1=runs/old``); ``threats/batch_size=32/learning_rate=5e-4`` trains it with those fields
    changed, in a row labelled by the whole entry.
    """
    from vae_keras.config import VAEConfig

    first = spec.split("/")[0]
    if "=" in first:                                       # name=RUN
        name, _, run = spec.partition("=")
        return name, name, run, {}
    name, *settings = spec.split("/")
    return spec, name, "", VAEConfig.parse_settings(settings)


def recon_cell(scores: dict) -> str:
    """``sharpness / PSNR`` of the autoencoder's reconstructions, or ``-`` for a result scored before they were."""
    if "recon_sharpness_ratio" not in scores:
        return "-"
    return f"{scores['recon_sharpness_ratio']:.2f} / {scores['recon_psnr']:.1f}"


def table(results: dict, args, command: str, started: str, conditions: str) -> str:
    from vae_keras.evaluation.threats import goals_met
    from vae_keras.io.manifest import CLASSES

    start = f", starting from {args.init_from}" if getattr(args, "init_from", None) else ""
    lines = [f"# Threat generators: {args.minutes:g} minutes of training on threat crops{start}", "",
             f"Command (started {started} UTC): `{command}`", "", conditions, "",
             "Each generator draws crops of each class; a CNN trained on the real training crops judges them. "
             "`found` is its rate on generated crops, `recall` on held-out real crops, `ratio` the first "
             "over the second (goal >= 0.9 for every class). Sharpness and memorisation: generated / real "
             "(1 is ideal); two-sample: 0.5 = indistinguishable. `AE recon`: the autoencoder's reconstructions of the "
             "held-out crops (sharpness ratio / PSNR dB), the sharpest the prior could draw: when it is low the "
             "autoencoder limits the generator, when it is high and `sharpness` low, the prior does.", "",
             "| generator | epochs (AE + prior) | " + " | ".join(f"{c} found / recall / ratio" for c in CLASSES)
             + " | sharpness | two-sample | memorisation | crops/s | AE recon |",
             "| --- | --- | " + " | ".join("---" for _ in CLASSES) + " | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cells = []
        for c in CLASSES:
            v = r["per_class"].get(c)
            cells.append(f"{v['found']:.2f} / {v['recall']:.2f} / {v['ratio']:.2f}" if v else "-")
        lines.append(f"| {name} | {r.get('epochs', '-')} | " + " | ".join(cells)
                     + f" | {r['sharpness_ratio']:.2f} | {r['c2st_accuracy']:.2f} | {r['memorisation_ratio']:.2f} "
                     f"| {r['crops_per_second']:.0f} | {recon_cell(r)} |")
    lines += ["", "Goals (issue #23, 64 px, 10 CPU minutes):", ""]
    lines += ["| generator | " + " | ".join(goals_met(next(iter(results.values())))) + " |",
              "| --- | " + " | ".join("---" for _ in goals_met(next(iter(results.values())))) + " |"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join("met" if ok else "missed" for ok in goals_met(r).values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", default="data/objects64", help="an object set (made from phantoms if missing)")
    p.add_argument("--n-bags", type=int, default=1877, help="phantom bags to cut threats from, when made here")
    p.add_argument("--bag-size", type=int, default=128, help="bag side when made here (crops: half of it)")
    p.add_argument("--configs", default="latent,threats",
                   help="comma-separated configurations, or LABEL=RUN to score a run trained elsewhere; "
                        "name/KEY=VALUE/... trains the configuration with those fields changed (a row of its "
                        "own, e.g. threats/pixel_l2_weight=0/batch_size=32 for an earlier recipe)")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per configuration (default 10)")
    p.add_argument("--n-per-class", type=int, default=100, help="generated crops per class (default 100)")
    p.add_argument("--steps", type=int, help="DDIM steps of every generator's samples (default: each run's own, 25); "
                                             "fewer is faster: the crops/s goal against the rest")
    p.add_argument("--clip", type=float, help="clip each DDIM step's predicted latent to +-CLIP standard deviations, "
                                              "0 = off (default: each run's own, 3)")
    p.add_argument("--clip-range", type=float, help="clip each channel of the predicted latent to this multiple of its "
                                                    "range in the training latents instead (1 = their range, 0 = off)")
    p.add_argument("--init-from", help="start every run trained here from this run's weights (fine-tuning)")
    p.add_argument("--runs", default="runs/threats", help="run folders (not committed)")
    p.add_argument("--table", default="figures/threats/threats.md", help="the table to write")
    p.add_argument("--grid", action="store_true", help="also write 8 crops per class per generator beside the table "
                                                        "(phantom data only)")
    args = p.parse_args(argv)
    command = "python benchmarks/threats.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")

    import numpy as np

    from vae_keras.config import get_config
    from vae_keras.evaluation.threats import score_threats
    from vae_keras.io.atomic import atomic_write_text
    from vae_keras.io.manifest import CLASSES
    from vae_keras.sampling.generate import sample_images
    from vae_keras.training.run import open_run
    from vae_keras.training.trainer import Trainer
    from vae_keras.viz.figures import image_grid

    objects, table_path = Path(args.objects), Path(args.table)
    if not (objects / "manifest.csv").is_file():
        make_objects(objects, args.n_bags, args.bag_size)
    load_start, gpus, loads, results = load_average(), detect_gpus(), {}, {}
    sampling = {key: value for key, value in (("steps", args.steps), ("clip", args.clip), ("clip_range", args.clip_range))
                if value is not None}
    for spec in args.configs.split(","):
        label, name, given, overrides = parse_spec(spec)
        slug = label.replace("/", "_")                     # the row's run folder and grid file name
        run_dir = Path(given) if given else Path(args.runs) / slug
        load0, t0 = load_average(), time.monotonic()
        if (run_dir / "history.json").is_file():
            run = open_run(run_dir)
        else:
            config = get_config(name, quick=False, image_size=64, epochs=100_000).replace(**overrides)
            run = Trainer(config, str(objects), str(run_dir), minutes=args.minutes, progress=False,
                          init_from=args.init_from).fit()
            print(f"{label}: trained in {time.monotonic() - t0:.0f}s", file=sys.stderr)
        if args.clip_range and getattr(run.sampler, "latent_range", ()) is None:   # a prior saved without it
            from vae_keras.data.pipeline import load_split
            from vae_keras.samplers.diffusion_training import record_latent_range

            record_latent_range(run.model, load_split(objects, "train", image_size=run.config.image_size)[0], run_dir)
            run = open_run(run_dir)
        if sampling:
            run = run.with_sampler(**sampling)             # the same model, its sampler reconfigured in memory
        scores = score_threats(run, objects, n_per_class=args.n_per_class)
        prior_file = run_dir / "prior" / "history.json"
        prior_epochs = len(json.loads(prior_file.read_text())) if prior_file.is_file() else 0
        scores["epochs"] = f"{len(run.history)} + {prior_epochs}"
        results[label] = scores
        loads[label] = (load0, load_average())
        print(f"== {label}: {json.dumps(scores, default=float)}", file=sys.stderr, flush=True)
        atomic_write_text(table_path.with_suffix(".json"), json.dumps(results, indent=1, default=float) + "\n")
        conditions = describe_conditions(gpus, os.cpu_count(), platform.processor() or platform.machine(),
                                         (load_start, load_average()), loads)
        atomic_write_text(table_path, table(results, args, command, started, conditions))
        if args.grid:
            crops = np.concatenate([sample_images(run.model, 8, seed=1, labels=[c], sampler=run.sampler)
                                    for c in CLASSES])
            image_grid(crops, table_path.with_name(f"{table_path.stem}_{slug}.png"), ncols=8)
    print(f"wrote {table_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
