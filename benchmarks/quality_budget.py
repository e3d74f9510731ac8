"""How quality grows with the training budget: one configuration's measures after several budgets.

Reads the ``metrics.json`` that ``benchmarks/quality.py`` (or ``python -m vae_keras evaluate``)
wrote in runs of the same configuration trained for different ``--minutes`` (or any metrics JSON
file, e.g. a run scored with another sampler setting), and draws each measure against the budget
with the goal of issue #14 beside it, so a user can judge what a longer run (or a Colab GPU's
hour) will buy. ``SERIES:MINUTES=PATH`` puts a point in a named series (one line each). Writes a
PNG and a Markdown table with the command.

    python benchmarks/quality_budget.py 10=runs/quality_v3_10/latent 20=runs/quality_v3/latent \\
        40=runs/quality_v3_40/latent --out figures/quality_v3/budget.png
"""

import argparse
import datetime
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vae_keras.evaluation.measures import MEASURES  # noqa: E402  (pure Python: no TensorFlow)

#: (the measure, its goal lines) of the table's columns and the plot's panels; labels, formats and
#: directions are the registry's (:mod:`vae_keras.evaluation.measures`), the goals issue #14's.
PANELS = ((MEASURES["sharpness_ratio"], (0.6, 0.8)),
          (MEASURES["c2st_accuracy"], (0.7,)),
          (MEASURES["frechet_distance"], (43.0,)),
          (MEASURES["memorisation_ratio"], (0.9,)),
          (MEASURES["dense_mass_ratio"], (0.8, 1.25)),
          (MEASURES["recon_psnr"], ()))


def read_runs(pairs):
    """``["[SERIES:]MINUTES=RUN_OR_JSON", ...]`` -> [(series, minutes, metrics dict)] sorted by series, minutes."""
    rows = []
    for pair in pairs:
        key, _, run = pair.partition("=")
        series, _, minutes = key.rpartition(":")
        if not run:
            raise SystemExit(f"expected [SERIES:]MINUTES=RUN, got {pair!r}")
        path = Path(run) if run.endswith(".json") else Path(run) / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: evaluate the run first (python -m vae_keras evaluate RUN --data DATA)")
        rows.append((series, float(minutes), json.loads(path.read_text(encoding="utf-8"))))
    return sorted(rows, key=lambda r: (r[0], r[1]))


def goals(m: dict, minutes: float) -> list:
    """Issue #14's goals for one run: ``[(goal, value, reached)]`` (the sharpness goal is 0.8 from 40 minutes)."""
    out = []
    name = {key: measure.full_name for key, measure in MEASURES.items()}
    sharp = 0.8 if minutes >= 40 else 0.6
    if "sharpness_ratio" in m:
        out.append((f"{name['sharpness_ratio']} >= {sharp}", m["sharpness_ratio"], m["sharpness_ratio"] >= sharp))
    if "c2st_accuracy" in m:
        out.append((f"{name['c2st_accuracy']} <= 0.7", m["c2st_accuracy"], m["c2st_accuracy"] <= 0.7))
    if "memorisation_ratio" in m:
        out.append((f"{name['memorisation_ratio']} >= 0.9", m["memorisation_ratio"], m["memorisation_ratio"] >= 0.9))
    if "dense_mass_ratio" in m:
        out.append((f"{name['dense_mass_ratio']} in [0.8, 1.25]", m["dense_mass_ratio"],
                    0.8 <= m["dense_mass_ratio"] <= 1.25))
    recall = m.get("threat_classifier", {}).get("test_recall_per_class", {})
    for c, v in sorted(m.get("class_recognition", {}).items()):
        if recall.get(c, 0.0) >= 0.5:                       # classes the classifier itself finds in real images
            out.append((f"{c} {name['class_recognition']} >= 70%", v, v >= 0.7))
    if "benign_no_threat_found" in m:
        out.append((f"{name['benign_no_threat_found']} >= 95%", m["benign_no_threat_found"],
                    m["benign_no_threat_found"] >= 0.95))
    return out


def markdown(rows, command: str) -> str:
    """The table: one row per budget, the measures and the class recognition of each class."""
    classes = sorted({c for _, _, m in rows for c in m.get("class_recognition", {})})
    per_class, benign = MEASURES["class_recognition"], MEASURES["benign_no_threat_found"]
    head = (["series", "minutes", "epochs (autoencoder)", "DDIM steps / guidance / clip"] + [c.label for c, _ in PANELS]
            + [f"{c} {per_class.title}" for c in classes] + [benign.title])
    lines = ["# Quality against the training budget", "",
             f"Made by `{command}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} (UTC) from "
             "the runs' `metrics.json` (each run trained alone on the 2-core CPU; see the quality tables beside "
             "this file for the load).", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for series, minutes, m in rows:
        cells = [series or "-", f"{minutes:g}", str(m.get("epochs", "-")),
                 " / ".join(f"{m[k]:g}" if k in m else "-" for k in ("ddim_steps", "guidance", "prior_clip"))]
        cells += [c.format(m.get(c.key)) for c, _ in PANELS]
        cells += [per_class.format(m.get("class_recognition", {}).get(c)) for c in classes]
        cells.append(benign.format(m.get(benign.key)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Issue #14's goals", "",
              "Sharpness >= 0.6 at 20 minutes and >= 0.8 at 40; class recognition only for the classes whose real "
              "test images the classifier itself recalls at >= 0.5. (The Frechet goal, below the composite's 43, was "
              "set on the first phantoms; these phantoms' distances are not comparable: see the quality tables.)", "",
              "| series | minutes | goal | value | |", "| --- | --- | --- | --- | --- |"]
    for series, minutes, m in rows:
        for goal, value, ok in goals(m, minutes):
            lines.append(f"| {series or '-'} | {minutes:g} | {goal} | {value:.3f} | {'reached' if ok else '**missed**'} |")
    return "\n".join(lines) + "\n"


def plot(rows, out: Path) -> None:
    """One panel per measure (goal lines dashed) and one for the class recognition per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({series for series, _, _ in rows})
    minutes = sorted({m for _, m, _ in rows})
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for ax, (measure, goals_) in zip(axes.flat, PANELS):
        key = measure.key
        for k, name in enumerate(names):
            pts = [(m, r[key]) for s, m, r in rows if s == name and key in r]
            if pts:
                ax.plot(*zip(*pts), "o-", color=f"C{k}", label=name or None)
        for goal in goals_:
            ax.axhline(goal, ls="--", c="tab:green", lw=1)
        ax.set_title(measure.label + measure.arrow, fontsize=10)
        ax.set_xlabel("training minutes (both stages)")
        ax.set_xticks(minutes)
        if any(names) and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax = axes.flat[len(PANELS)]
    classes = sorted({c for _, _, m in rows for c in m.get("class_recognition", {})})
    styles = ["o-", "s--", "^:", "d-."]
    for j, c in enumerate(classes):
        for k, name in enumerate(names):
            pts = [(m, r["class_recognition"][c]) for s, m, r in rows if s == name and c in r.get("class_recognition", {})]
            if pts:
                ax.plot(*zip(*pts), styles[k % len(styles)], color=f"C{j}", label=f"{c} {name}".strip())
    ax.axhline(0.7, ls="--", c="tab:green", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"asked-for class {MEASURES['class_recognition'].full_name}{MEASURES['class_recognition'].arrow}",
                 fontsize=10)
    ax.set_xlabel("training minutes (both stages)")
    ax.set_xticks(minutes)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    axes.flat[-1].axis("off")
    fig.suptitle(f"{rows[0][2].get('config', '?')} at {rows[0][2].get('image_size', '?')} px: quality against the "
                 "budget (dashed: issue #14's goals)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(out)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="MINUTES=RUN", help="a run of the configuration and its budget")
    p.add_argument("--out", default="figures/quality_budget.png", help="the plot; the table goes beside it (.md)")
    args = p.parse_args(argv)
    rows = read_runs(args.runs)
    out = Path(args.out)
    command = "python benchmarks/quality_budget.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    plot(rows, out)
    table = out.with_suffix(".md")
    tmp = table.with_suffix(".md.tmp")
    tmp.write_text(markdown(rows, command), encoding="utf-8")
    tmp.replace(table)
    print(f"wrote {out} and {table}", file=sys.stderr)


if __name__ == "__main__":
    main()
