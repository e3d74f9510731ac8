"""Do the phantoms look like real scans, in numbers? The statistics table of issue #13.

For each image side (64 and 224 by default) the phantoms are rendered as ``python -m vae_keras
phantoms OUT --size S`` writes them (8-bit PNG grey levels, so the same rounding) and measured
like the real GDXray baggage scans in ``shared/REAL_DATA.md`` (290 scans with threats, prepared by
``prepare``: aspect kept, white padding, LANCZOS resize):

- pixel quantiles 5 / 25 / 50 / 75 / 95 % of each image, then the mean over images;
- dense fraction (pixels < 0.3) and near-white fraction (pixels > 0.9);
- Laplacian variance (5-point kernel on [0, 1] pixels, inside the border) per image: its mean and
  its 10th / 50th / 90th percentiles over images (sharpness: noise, edges and fine structure);
- mean gradient magnitude (``numpy.gradient``), per image, then the mean.

Run from the repository root::

    python benchmarks/phantom_stats.py                       # the default preset, writes figures/phantom_stats.md
    python benchmarks/phantom_stats.py --preset belt --out -  # print only
    python benchmarks/phantom_stats.py --baseline "old phantoms=/tmp/old{size}"  # add a measured folder

``--baseline NAME=DIR`` adds a column measured on a prepared folder (``{size}`` in DIR is
replaced by the side): your own scans after ``prepare --size S``, or phantoms written by an older
version of the generator. The goal (issue #13) is every statistic of the default preset within 25%
of the real value, the quantiles within 0.08, at 64 and at 224.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_prep.phantoms import PRESETS, render_phantom  # noqa: E402

QUANTILES = (5, 25, 50, 75, 95)

#: Real GDXray baggage scans (290 with threats), from shared/REAL_DATA.md / issue #13.
REAL: Dict[int, Dict[str, float]] = {
    64: {"q5": 0.075, "q25": 0.565, "q50": 0.933, "q75": 0.976, "q95": 1.000, "dense": 0.130,
         "white": 0.534, "lap_var": 0.0475, "lap_p10": 0.023, "lap_p50": 0.046, "lap_p90": 0.074, "grad": 0.056},
    224: {"q5": 0.067, "q25": 0.576, "q50": 0.941, "q75": 0.976, "q95": 1.000, "dense": 0.133,
          "white": 0.540, "lap_var": 0.0133, "lap_p10": 0.0066, "lap_p50": 0.0135, "lap_p90": 0.0194, "grad": 0.026},
}

#: Rows of the table: (key, label, kind) -- kind "q" is judged by absolute difference, "rel" by ratio.
ROWS = [(f"q{q}", f"pixel quantile {q} %", "q") for q in QUANTILES] + [
    ("dense", "dense fraction (< 0.3)", "rel"),
    ("white", "near-white fraction (> 0.9)", "rel"),
    ("lap_var", "Laplacian variance, mean", "rel"),
    ("lap_p10", "Laplacian variance, 10th pct of images", "info"),
    ("lap_p50", "Laplacian variance, median image", "info"),
    ("lap_p90", "Laplacian variance, 90th pct of images", "info"),
    ("grad", "mean gradient magnitude", "rel"),
]


def image_stats(image: np.ndarray) -> Dict[str, float]:
    """The per-image statistics of a ``(H, W)`` image in ``[0, 1]``."""
    x = np.asarray(image, np.float64)
    out = {f"q{q}": v for q, v in zip(QUANTILES, np.percentile(x, QUANTILES))}
    out["dense"] = float(np.mean(x < 0.3))
    out["white"] = float(np.mean(x > 0.9))
    lap = x[1:-1, :-2] + x[1:-1, 2:] + x[:-2, 1:-1] + x[2:, 1:-1] - 4.0 * x[1:-1, 1:-1]  # (H-2, W-2)
    out["lap_var"] = float(lap.var())
    gy, gx = np.gradient(x)
    out["grad"] = float(np.hypot(gx, gy).mean())
    return out


def summarise(per_image: List[Dict[str, float]]) -> Dict[str, float]:
    """Means over images, and the 10/50/90th percentiles of the Laplacian variance."""
    out = {k: float(np.mean([s[k] for s in per_image])) for k in per_image[0]}
    lap = [s["lap_var"] for s in per_image]
    out["lap_p10"], out["lap_p50"], out["lap_p90"] = (float(v) for v in np.percentile(lap, (10, 50, 90)))
    return out


def as_written(image: np.ndarray) -> np.ndarray:
    """The grey levels a PNG written by ``phantoms`` holds (8-bit rounding), back in [0, 1]."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255) / 255.0


def phantom_stats(n: int, size: int, seed: int = 0, preset: Optional[str] = None,
                  benign_fraction: float = 0.0) -> Dict[str, float]:
    """Statistics of the first ``n`` phantoms of the set ``seed`` at ``size``.

    ``benign_fraction`` is 0 by default: the real scans measured all carry a threat."""
    kwargs = {} if preset is None else {"preset": preset}
    return summarise([image_stats(as_written(render_phantom(seed, i, size, benign_fraction, **kwargs)[0]))
                      for i in range(n)])


def folder_stats(folder: Path, n: int) -> Dict[str, float]:
    """Statistics of up to ``n`` PNGs of a prepared folder (``*/*.png``, sorted)."""
    from PIL import Image

    files = sorted(Path(folder).glob("*/*.png"))[:n]
    if not files:
        raise SystemExit(f"no PNG files under {folder}/*/")
    return summarise([image_stats(np.asarray(Image.open(f).convert("L"), np.float64) / 255.0) for f in files])


def verdict(key: str, kind: str, value: float, real: float) -> str:
    """'ok' / 'MISS' against the goal (quantiles within 0.08, the rest within 25%)."""
    if kind == "q":
        return f"{value - real:+.3f} {'ok' if abs(value - real) <= 0.08 else 'MISS'}"
    if kind == "rel":
        r = value / real
        return f"x{r:.2f} {'ok' if 0.75 <= r <= 1.25 else 'MISS'}"
    return f"x{value / real:.2f}"


def fmt(key: str, v: float) -> str:
    return f"{v:.4f}" if key.startswith("lap") else f"{v:.3f}"


def table(size: int, columns: Dict[str, Dict[str, float]], judged: str) -> List[str]:
    """Markdown rows: statistic | real | each column | the judged column against real."""
    real = REAL[size]
    names = list(columns)
    lines = [f"| statistic ({size}x{size}) | real GDXray | " + " | ".join(names) + f" | {judged} vs real |",
             "|---|---:|" + "---:|" * len(names) + "---|"]
    for key, label, kind in ROWS:
        cells = [fmt(key, columns[c][key]) for c in names]
        lines.append(f"| {label} | {fmt(key, real[key])} | " + " | ".join(cells)
                     + f" | {verdict(key, kind, columns[judged][key], real[key])} |")
    return lines


def contact_sheet(path: Path, size: int = 224, n: int = 6, seed: int = 0) -> None:
    """A PNG of ``n`` phantoms per preset (one row each, preset names in the margin), boxes drawn."""
    from PIL import Image, ImageDraw

    pad, label_w = 4, 70
    names = sorted(PRESETS, key=lambda p: p != "gdxray")
    sheet = Image.new("RGB", (label_w + n * (size + pad), len(names) * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, preset in enumerate(names):
        y = r * (size + pad)
        draw.text((4, y + size // 2), preset, fill="black")
        for c in range(n):
            image, _, boxes = render_phantom(seed, c, size, preset=preset)
            tile = Image.fromarray((as_written(image) * 255).astype(np.uint8), "L").convert("RGB")
            x = label_w + c * (size + pad)
            sheet.paste(tile, (x, y))
            for b in boxes:
                x1, y1, x2, y2 = b["box"]
                draw.rectangle([x + x1, y + y1, x + x2 - 1, y + y2 - 1], outline=(230, 40, 40))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help="framing preset to measure (default: the generator's default)")
    parser.add_argument("--sizes", default="64,224", help="image sides, comma-separated (default: 64,224)")
    parser.add_argument("--n", type=int, default=300, help="images per size (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benign-fraction", type=float, default=0.0,
                        help="share of bags without a threat (default: 0, like the real scans measured)")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=DIR",
                        help="add a column measured on a prepared folder ({size} in DIR is replaced)")
    parser.add_argument("--note", default="", help="a sentence for the markdown file (how the baselines were made)")
    parser.add_argument("--out", default=str(ROOT / "figures" / "phantom_stats.md"),
                        help="markdown file to write ('-' = print only)")
    parser.add_argument("--sheet", metavar="PNG", help="also write a contact sheet of both presets (224 px, boxes in red)")
    args = parser.parse_args(argv)
    if args.sheet:
        contact_sheet(Path(args.sheet))
    sizes = [int(s) for s in args.sizes.split(",")]
    unknown = [s for s in sizes if s not in REAL]
    if unknown:
        parser.error(f"no real statistics for sizes {unknown}; known: {sorted(REAL)}")
    name = f"phantoms ({args.preset or 'default'} preset)"
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    lines = ["# Phantom statistics against real scans (issue #13)", "",
             "Real column: 290 GDXray baggage scans with threats, prepared by `prepare` (see `shared/REAL_DATA.md`). "
             "Phantoms as `python -m vae_keras phantoms OUT --size S` writes them (8-bit), mean over images, "
             f"{args.benign_fraction:.0%} of them without a threat. "
             "Goal: quantiles within 0.08 of real, the other statistics within 25% (x0.75 to x1.25).", ""]
    for size in sizes:
        columns = {}
        for spec in args.baseline:
            bname, _, folder = spec.partition("=")
            columns[bname] = folder_stats(Path(folder.replace("{size}", str(size))), args.n)
        columns[name] = phantom_stats(args.n, size, args.seed, args.preset, args.benign_fraction)
        if args.benign_fraction != 0.3:  # what `phantoms` writes by default (30% without a threat), for reference
            columns["same, 30% benign"] = phantom_stats(args.n, size, args.seed, args.preset, 0.3)
        lines += table(size, columns, name) + [""]
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--note" in shown:  # (the note is printed below the table, not in the command)
        i = shown.index("--note")
        del shown[i:i + 2]
    cmd = "python benchmarks/phantom_stats.py " + " ".join(shlex.quote(a) for a in shown) + \
        (" --note ..." if args.note else "")
    lines.append(f"Made by `{cmd.strip()}` ({args.n} images per size, seed {args.seed}, "
                 f"{time.perf_counter() - start:.0f} s, load average {load0:.1f}).")
    if args.note:
        lines += ["", args.note]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
