"""Do our synthetic images help a threat classifier? The augmentation benchmark.

A small multi-label CNN (handgun, knife, razor blade, shuriken; ``vae_keras.evaluation.metrics``'
``ThreatClassifier``) is trained from scratch, with the same recipe and the same number of Adam
steps, on a small real training subset and on that subset plus each kind of extra data:

    real           the subset alone (fraction of the training split, drawn per seed)
    classic        + flips, 90-degree rotations, crops, exposure/thickness changes, noise (on the fly)
    vae            + synthetic images from the conditional VAE trained on the subset only
                     (labels drawn with the subset's label frequencies)
    tip            + threat image projection: the subset's boxed threats cut out and composited
                     (Beer-Lambert, multiplicatively) into the subset's bags
    hybrid         + VAE-generated benign bags with the subset's real threats projected into them
                     (the export's hybrid mode: exact boxes)
    classic+vae    vae with classic augmentation on every batch
    classic+tip    tip with classic augmentation on every batch
    composite      + VAE-generated benign bags with VAE-generated threats projected into them: an
                     object VAE (``vae_keras.sampling.objects``) trained ``--object-minutes`` on the subset's
                     threats alone (no real pixel in any synthetic image; exact boxes)

Synthetic images are added at ``--synthetic-ratio`` per real image (2: a subset of 140 gets 280).
Scored on the whole real test split: per-class AUROC and average precision (keras.metrics.AUC),
mean and standard deviation over ``--seeds`` seeds (the seed draws the subset, trains the VAE and
the classifier). Results go to ``OUT/results.json`` after every (fraction, seed), so a killed run
continues where it stopped; ``--report`` writes the markdown table and the plot.

    python benchmarks/augmentation.py --data data/phantoms64_aug --size 64 \\
        --fractions 0.1,0.25 --seeds 3 --vae-minutes 2 --classifier-steps 500 \\
        --out build/augmentation --report figures/augmentation.md
    python benchmarks/augmentation.py --quick --data DATA --out build/aug_quick     # minutes, for tests

Any prepared folder works (``python -m vae_keras prepare SRC OUT``): boxes are needed for the
TIP and hybrid arms (arms without boxes available are reported as skipped).
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from vae_keras.io.atomic import atomic_write_text  # noqa: E402
from vae_keras.io.manifest import CLASSES, read_manifest  # noqa: E402

ARMS = ("real", "classic", "vae", "tip", "hybrid", "classic+vae", "classic+tip", "composite")
NEEDS_VAE = {"vae", "hybrid", "classic+vae", "composite"}
NEEDS_BOXES = {"tip", "hybrid", "classic+tip"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a prepared data set (train/ test/ manifest.csv)")
    p.add_argument("--out", default="build/augmentation", help="work folder: VAE runs, results.json")
    p.add_argument("--size", type=int, default=64, help="image side for VAE and classifier (default 64)")
    p.add_argument("--fractions", default="0.1,0.25", help="real training subsets, fractions of the train split")
    p.add_argument("--seeds", type=int, default=3, help="repetitions (subset, VAE and classifier seeds 0..k-1)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms, from {', '.join(ARMS)}")
    p.add_argument("--synthetic-ratio", type=float, default=2.0, help="synthetic images per real image (default 2)")
    p.add_argument("--vae-config", default="conditional", help="named VAE configuration (default conditional)")
    p.add_argument("--vae-minutes", type=float, default=2.0, help="training budget of each VAE (minutes)")
    p.add_argument("--object-minutes", type=float, default=1.0,
                   help="training budget of the composite arm's object VAE (minutes)")
    p.add_argument("--classifier-steps", type=int, default=500, help="Adam steps of every classifier")
    p.add_argument("--batch-size", type=int, default=32, help="classifier batch size")
    p.add_argument("--width", type=int, default=16, help="classifier base width (metrics.small_cnn)")
    p.add_argument("--report", help="write the markdown table here (and a PNG plot next to it)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from OUT/results.json as it stands (also mid-run)")
    p.add_argument("--quick", action="store_true", help="a minutes-long run: 1 fraction (0.25), 1 seed, "
                                                        "0.3 VAE minutes, 100 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.fractions, args.seeds, args.vae_minutes, args.classifier_steps = "0.25", 1, 0.3, 100
        args.object_minutes = 0.2
    args.fractions = [float(f) for f in str(args.fractions).split(",") if f.strip()]
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad:
        p.error(f"unknown arm(s) {bad}; choose from {ARMS}")
    if not all(0 < f <= 1 for f in args.fractions):
        p.error("fractions must be in (0, 1]")
    return args


# -- building blocks --------------------------------------------------------------------------------
def train_vae(subset_dir: Path, run_dir: Path, args, seed: int):
    """The conditional VAE on the subset only, for ``--vae-minutes``; returns (model, sampler, label prior)."""
    from vae_keras.training.checkpoint import load_run
    from vae_keras.config import get_config
    from vae_keras.models.priors import load_sampler, sample_label_prior
    from vae_keras.training.trainer import train

    if (run_dir / "sampler_done").is_file():
        _, model = load_run(run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = get_config(args.vae_config, quick=False, image_size=args.size, epochs=100_000, seed=seed)
        model = train(cfg, subset_dir, run_dir, minutes=args.vae_minutes, progress=False).model
        atomic_write_text(run_dir / "sampler_done", "1\n")
    return model, load_sampler(run_dir, model), (lambda n, s: sample_label_prior(run_dir, n, s))


def train_objects(subset_dir: Path, work: Path, args, seed: int):
    """The object VAE on the subset's threats only, for ``--object-minutes``; returns (model, sampler)."""
    from vae_keras.sampling.objects import load_objects, train_object_vae

    run_dir = work / "objects"
    if not (run_dir / "sampler_done").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        train_object_vae(subset_dir, work / "objects_data", run_dir, args.size, args.object_minutes, seed=seed)
        atomic_write_text(run_dir / "sampler_done", "1\n")
    return load_objects(run_dir)


def names_of(y) -> list:
    return [[c for c, v in zip(CLASSES, row) if v > 0.5] for row in y]


def run_one(args, fraction, seed, train_set, test_set, work: Path) -> list:
    """Every arm for one (fraction, seed): returns one record per arm."""
    import keras

    from vae_keras.sampling import tip
    from vae_keras.evaluation.augmentation import classic_augment, score, subset_dataset, train_classifier
    from vae_keras.sampling.generate import sample_images
    from vae_keras.sampling.objects import composite_samples

    x, y, rows = train_set
    x_test, y_test = test_set
    k = max(4, int(round(fraction * len(x))))
    idx = np.sort(np.random.default_rng(1000 + seed).permutation(len(x))[:k])
    xs, ys = x[idx].astype(np.float32) / 255.0, y[idx]                       # (k, S, S, 1) in [0, 1]
    n_syn = int(round(args.synthetic_ratio * k))
    crops = tip.crops_from_arrays(x[idx], [rows[i].boxes for i in idx], [rows[i].native for i in idx])
    tag = f"f{fraction:g}-s{seed}"
    pools, timing = {}, {}

    if NEEDS_VAE & set(args.arms):
        t0 = time.monotonic()
        sub_dir = subset_dataset(args.data, [rows[i].row for i in idx], work / tag / "data")
        model, sampler, label_prior = train_vae(sub_dir, work / tag / "vae", args, seed)
        timing["vae_train_s"] = time.monotonic() - t0
        syn_labels = label_prior(n_syn, seed)                                  # (n, C) subset frequencies
        per = names_of(syn_labels)
        if {"vae", "classic+vae"} & set(args.arms):
            pools["vae"] = (sample_images(model, n_syn, seed=seed, labels=per, sampler=sampler), syn_labels)
        if "hybrid" in args.arms and crops:
            pools["hybrid"] = tip.project_labels(sample_images(model, n_syn, seed=seed + 1, sampler=sampler),
                                                 per, crops, seed=seed)[:2]
        if "composite" in args.arms and crops:
            t0 = time.monotonic()
            objects, object_sampler = train_objects(sub_dir, work / tag, args, seed)
            pools["composite"] = composite_samples(model, objects, per, seed=seed + 2, bag_sampler=sampler,
                                                   object_sampler=object_sampler)[:2]
            timing["objects_train_s"] = time.monotonic() - t0
        del model
        keras.backend.clear_session()
    if NEEDS_BOXES & set(args.arms) and crops:
        ti, tl, _, _ = tip.tip_images(x[idx], crops, n_syn, seed=seed, bag_boxes=[rows[i].boxes_scaled for i in idx])
        pools["tip"] = (ti, tl)

    records = []
    for arm in args.arms:
        source = arm.replace("classic+", "") if arm not in ("real", "classic") else None
        if source is not None and source not in pools:
            print(f"  {tag} {arm}: skipped (no {'boxes' if source != 'vae' else 'VAE'})", file=sys.stderr)
            continue
        xa, ya = (xs, ys) if source is None else (np.concatenate([xs, pools[source][0]]),
                                                  np.concatenate([ys, pools[source][1]]))
        t0 = time.monotonic()
        clf = train_classifier(xa, ya, steps=args.classifier_steps, seed=seed, batch_size=args.batch_size,
                               augment=classic_augment if arm.startswith("classic") else None, width=args.width)
        s = score(clf, x_test, y_test)
        rec = {"fraction": fraction, "seed": seed, "arm": arm, "real_images": int(k),
               "synthetic_images": 0 if source is None else int(len(pools[source][0])),
               "seconds": time.monotonic() - t0, **s, **timing}
        records.append(rec)
        print(f"  {tag} {arm:12s} mean AUROC {s['mean_auroc']:.3f}  mAP {s['mAP']:.3f}  ({rec['seconds']:.0f} s)",
              file=sys.stderr, flush=True)
        del clf
        keras.backend.clear_session()
    return records


class _Row:
    """A train row with its boxes scaled to the loaded size."""

    def __init__(self, row, native: int, size: int):
        self.row, self.native = row, native
        self.boxes = row.boxes
        f = size / float(native)
        self.boxes_scaled = [{"label": b["label"], "box": [v * f for v in b["box"]]} for b in row.boxes]


def load_train_rows(data_dir: Path, size: int):
    from vae_keras.data.layouts import native_side

    rows = [r for r in read_manifest(data_dir / "manifest.csv") if r.split == "train"]
    return [_Row(r, native_side(data_dir, r), size) for r in rows]


# -- the report ------------------------------------------------------------------------------------
def summarize(records) -> list:
    """One dict per (fraction, arm): mean and std over seeds of every score."""
    out = []
    keys = sorted({(r["fraction"], r["arm"]) for r in records}, key=lambda t: (t[0], ARMS.index(t[1])))
    for fraction, arm in keys:
        rs = [r for r in records if r["fraction"] == fraction and r["arm"] == arm]
        base = [r for r in records if r["fraction"] == fraction and r["arm"] == "real"]
        d = {"fraction": fraction, "arm": arm, "n": len(rs), "real_images": rs[0]["real_images"],
             "synthetic_images": rs[0]["synthetic_images"]}
        for key in ("mean_auroc", "mAP"):
            v = np.array([r[key] for r in rs])
            d[key], d[key + "_std"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
            if base:  # paired difference to the real-only arm of the same seed
                by_seed = {r["seed"]: r[key] for r in base}
                diff = np.array([r[key] - by_seed[r["seed"]] for r in rs if r["seed"] in by_seed])
                d[key + "_gain"] = float(diff.mean())
                d[key + "_gain_std"] = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        for key in ("auroc", "ap"):
            d[key] = {c: float(np.nanmean([r[key][c] for r in rs])) for c in CLASSES}
        out.append(d)
    return out


def markdown_table(summary) -> str:
    head = ("| subset | seeds | arm | real + synthetic | mean AUROC | mAP | mAP gain vs real | "
            + " | ".join(f"AP {c}" for c in CLASSES) + " |\n")
    head += "|" + " --- |" * (7 + len(CLASSES)) + "\n"
    lines = []
    for d in summary:
        gain = "" if d["arm"] == "real" else f"{d.get('mAP_gain', float('nan')):+.3f} ± {d.get('mAP_gain_std', 0):.3f}"
        lines.append(f"| {d['fraction']:.0%} | {d['n']} | {d['arm']} | {d['real_images']} + {d['synthetic_images']} | "
                     f"{d['mean_auroc']:.3f} ± {d['mean_auroc_std']:.3f} | {d['mAP']:.3f} ± {d['mAP_std']:.3f} | "
                     f"{gain} | " + " | ".join(f"{d['ap'][c]:.2f}" for c in CLASSES) + " |")
    return head + "\n".join(lines) + "\n"


def plot(summary, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted({d["fraction"] for d in summary})
    arms = [a for a in ARMS if any(d["arm"] == a for d in summary)]
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=100)
    width = 0.8 / len(arms)
    for j, arm in enumerate(arms):
        xs, ms, es = [], [], []
        for i, f in enumerate(fractions):
            d = next((d for d in summary if d["fraction"] == f and d["arm"] == arm), None)
            if d:
                xs.append(i + (j - (len(arms) - 1) / 2) * width)
                ms.append(d["mAP"])
                es.append(d["mAP_std"])
        ax.bar(xs, ms, width, yerr=es, capsize=2, label=arm, color=f"C{j}")
    ax.set_xticks(range(len(fractions)), [f"{f:.0%} of train" for f in fractions])
    ax.set_ylabel("test mAP (mean ± std over seeds)")
    ax.set_title("Threat classifier trained on a real subset plus extra data", fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


NOTES_MARKER = "<!-- notes: written by hand, kept when the report is regenerated -->"


def best_arms(summary) -> str:
    """One sentence per subset size: the arm with the highest mean mAP and its paired gain."""
    out = []
    for f in sorted({d["fraction"] for d in summary}):
        best = max((d for d in summary if d["fraction"] == f), key=lambda d: d["mAP"])
        gain = f" ({best['mAP_gain']:+.3f} ± {best['mAP_gain_std']:.3f} over `real`)" if "mAP_gain" in best \
            and best["arm"] != "real" else ""
        out.append(f"{f:.0%} subset: `{best['arm']}`, mAP {best['mAP']:.3f}{gain}")
    return "Best mean mAP: " + "; ".join(out) + ".\n"


def write_report(records, meta, path: Path) -> Path:
    summary = summarize(records)
    png = plot(summary, path.with_suffix(".png"))
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else NOTES_MARKER + "\n"
    text = (f"# Augmentation benchmark\n\nMade by:\n\n```bash\n{meta['command']}\n```\n\n"
            f"Data `{meta['data']}` ({meta['train_images']} train / {meta['test_images']} test images at "
            f"{meta['size']}x{meta['size']}); {meta['seeds']} seeds; every classifier "
            f"{meta['classifier_steps']} Adam steps of batch {meta['batch_size']} (width {meta['width']}); "
            f"each VAE `{meta['vae_config']}` trained {meta['vae_minutes']} min on the subset only; "
            f"{meta['synthetic_ratio']:g} synthetic images per real one"
            + (f"; the composite arm's object VAE trained {meta['object_minutes']} min on the subset's threats"
               if "object_minutes" in meta else "")
            + ". Scores on the whole test split; "
            f"± is the standard deviation over seeds; the gain is the paired difference to `real` "
            f"(same seed, same subset). Wall time {meta['minutes']:.0f} min on {meta['machine']}.\n\n"
            + markdown_table(summary) + "\n" + best_arms(summary) + f"\n![mAP per arm]({png.name})\n\n" + notes)
    atomic_write_text(path, text)
    return path


# -- main ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from vae_keras.data.pipeline import load_split

    data = Path(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    x, y = load_split(data, "train", image_size=args.size)                    # (n, S, S, 1) uint8
    x_test, y_test = load_split(data, "test", image_size=args.size)
    rows = load_train_rows(data, args.size)
    results_path = out / "results.json"
    state = json.loads(results_path.read_text()) if results_path.is_file() else {"records": [], "minutes": 0.0}
    settings = {k: getattr(args, k) for k in ("data", "size", "synthetic_ratio", "vae_config", "vae_minutes",
                                              "classifier_steps", "batch_size", "width")}
    if "composite" in args.arms:
        settings["object_minutes"] = args.object_minutes
    if args.report_only and state.get("settings"):
        settings = state["settings"]                 # report what was run, whatever the flags say now
    elif state.get("settings") not in (None, settings):
        print(f"error: {results_path} was made with other settings {state['settings']}; use another --out",
              file=sys.stderr)
        return 2
    state["settings"] = settings
    print(f"{len(x)} train / {len(x_test)} test images; test positives per class "
          f"{dict(zip(CLASSES, y_test.sum(0).astype(int).tolist()))}", file=sys.stderr)
    for fraction in ([] if args.report_only else args.fractions):
        for seed in range(args.seeds):
            done = {r["arm"] for r in state["records"] if r["fraction"] == fraction and r["seed"] == seed}
            if set(args.arms) <= done:
                continue
            print(f"fraction {fraction:g}, seed {seed}", file=sys.stderr, flush=True)
            recs = run_one(args, fraction, seed, (x, y, rows), (x_test, y_test), out)
            state["records"] = [r for r in state["records"] if not (r["fraction"] == fraction and r["seed"] == seed)]
            state["records"] += recs
            state["minutes"] = state.get("minutes", 0.0) + (time.monotonic() - start) / 60
            start = time.monotonic()
            atomic_write_text(results_path, json.dumps(state, indent=1))
    records = [r for r in state["records"] if r["fraction"] in args.fractions and r["arm"] in args.arms]
    print(markdown_table(summarize(records)))
    if args.report:
        flags = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"]
        command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/augmentation.py", *flags])
        meta = {**settings, "command": command, "train_images": len(x), "test_images": len(x_test),
                "seeds": len({r["seed"] for r in records}),
                "minutes": state.get("minutes", 0.0), "machine": f"{os.cpu_count()} CPU cores"}
        print(f"wrote {write_report(records, meta, Path(args.report))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
