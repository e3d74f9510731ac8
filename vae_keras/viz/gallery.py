"""A static gallery of one training run: one ``index.html`` and its pictures, nothing else.

People judge a generative model by looking at it. :func:`build_gallery` writes, for one run
folder, a self-contained page (no server, no network, no fonts or scripts from anywhere) with
the run's configuration and data, real test images next to generated ones (per class for a
conditional model), reconstructions, the latent manifold, an interpolation strip, the training
GIF, the loss curves, the evaluation table of ``metrics.json`` and a memorisation check
(generated images next to their nearest training images).

Every picture is drawn by the library (:mod:`vae_keras.viz.figures`, :mod:`vae_keras.sampling.generate`);
this module only chooses what to show and writes the HTML. Files are written atomically and
``index.html`` last, so a page that exists always refers to pictures that exist.

Example:
    >>> build_gallery("runs/seed", "gallery/", data_dir="data/phantoms")   # -> gallery/index.html
"""
from __future__ import annotations

import html
import json
import math
import re
import time
from pathlib import Path
from typing import Optional

import numpy as np

from vae_keras.io.atomic import PathLike, atomic_write_bytes, atomic_write_text
from vae_keras.evaluation.metrics import nearest_neighbours
from vae_keras.models.priors import load_sampler
from vae_keras.training.checkpoint import load_history, load_run
from vae_keras.sampling.generate import reconstruct, sample_images
from vae_keras.models.priors import answers_labels, sample_label_mix
from vae_keras.viz.figures import image_grid, interpolation_strip, latent_manifold, make_gif, plot_history

INDEX = "index.html"
METRICS_FILE = "metrics.json"
RUN_INFO_FILE = "run_info.json"   # optional: {"data": ..., "device": ..., "command": ...}

#: One line per known measure of ``metrics.json`` (unknown keys are shown without one).
METRIC_EXPLANATIONS = {
    "neg_elbo_bpd": "Negative ELBO on the test split in bits per pixel: an upper bound on the model's "
                    "code length for real images (lower is better).",
    "iwae_nll_bpd": "Importance-weighted estimate of the test negative log-likelihood in bits per pixel; "
                    "tighter than the ELBO (lower is better).",
    "psnr": "Peak signal-to-noise ratio of test reconstructions against their inputs, in dB (higher is better).",
    "ssim": "Structural similarity of test reconstructions to their inputs, 0 to 1 (higher is better).",
    "sharpness_ratio": "Edge energy of generated images over that of real ones: 1 is as sharp as real, "
                       "below 1 is blurrier.",
    "dense_mass_ratio": "Amount of dark, dense material (metal, threats) in generated images over that in "
                        "real ones: 1 is the same amount.",
    "wasserstein1": "Wasserstein-1 distance between the pixel-intensity distributions of real and "
                    "generated images (lower is better).",
    "c2st_accuracy": "Accuracy of a classifier trained to tell real from generated images: 0.5 means "
                     "indistinguishable, 1 means trivially told apart.",
    "frechet_distance": "Fréchet distance between feature statistics of real and generated images "
                        "(lower is better).",
    "precision": "Share of generated images that lie on the real images' manifold: fidelity (higher is better).",
    "recall": "Share of real images covered by the generated images' manifold: diversity (higher is better).",
    "memorisation_ratio": "Distance from generated images to their nearest training image over the same "
                          "for held-out test images: well below 1 means the model copies training images.",
    "nll_elbo_bpd": "Negative ELBO on the test split in bits per pixel: an upper bound on the model's "
                    "code length for real images (lower is better).",
    "nll_iwae_bpd": "Importance-weighted (IWAE) estimate of the test negative log-likelihood in bits per "
                    "pixel; tighter than the ELBO (lower is better).",
    "recon_psnr": "Peak signal-to-noise ratio of test reconstructions against their inputs, in dB (higher is better).",
    "recon_ssim": "Structural similarity of test reconstructions to their inputs, 0 to 1 (higher is better).",
    "intensity_w1": "Wasserstein-1 distance between the pixel-intensity distributions of real and "
                    "generated images (lower is better).",
    "class_recognition": "How often a threat classifier finds the requested class in images generated for "
                         "it (conditional models; higher is better).",
    "class_recognition_mean": "Mean over the classes of how often the threat classifier finds the requested "
                              "class (higher is better).",
    "benign_no_threat_found": "Share of images generated as benign bags in which the threat classifier finds "
                              "no threat (higher is better).",
    "threat_classifier": "The threat classifier behind the feature-space measures (trained on the real data).",
    "iwae_k": "Importance samples per image of the IWAE bound.",
    "n_likelihood": "Test images the likelihood measures are averaged over.",
    "n_generated": "Generated images the sample measures are computed on.",
    "train_seconds": "Training time of the run, in seconds.",
    "evaluate_seconds": "Time the evaluation took, in seconds.",
    "per_class_accuracy": "How often a threat classifier finds the requested class in images generated "
                          "for it (conditional models; higher is better).",
    "class_accuracy": "How often a threat classifier finds the requested class in images generated "
                      "for it (conditional models; higher is better).",
}


# -- reading a run ---------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def default_data_dir(run_dir: PathLike) -> Optional[Path]:
    """The data folder a run recorded (``run_info.json`` or ``config.json``), if it still exists."""
    run_dir = Path(run_dir)
    for name in (RUN_INFO_FILE, "config.json"):
        info = _read_json(run_dir / name) or {}
        for key in ("data", "data_dir"):
            if isinstance(info.get(key), str):
                for candidate in (Path(info[key]), run_dir / info[key]):
                    if (candidate / "manifest.csv").is_file():
                        return candidate
    return None


def flatten_metrics(metrics, prefix: str = "") -> list:
    """``metrics.json`` as ``[(key, value), ...]``: nested dicts become ``outer.inner`` keys."""
    items = []
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                items += flatten_metrics(value, name)
            else:
                items.append((name, value))
    elif metrics is not None:
        items.append((prefix or "value", metrics))
    return items


def explain_metric(key: str) -> str:
    """The one-line explanation of a measure, matched on its name or its last/first dotted part."""
    parts = key.split(".")
    for candidate in (key, parts[-1], parts[0]):
        if candidate in METRIC_EXPLANATIONS:
            return METRIC_EXPLANATIONS[candidate]
    return ""


def format_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)                                 # true / false / null, as in the JSON
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def metrics_rows(metrics) -> list:
    """``[(key, formatted value, explanation), ...]``; an explanation shared by consecutive keys
    (the parts of one nested measure) is given on the first of them only."""
    rows, previous = [], None
    for key, value in flatten_metrics(metrics):
        text = explain_metric(key)
        rows.append((key, format_value(value), "" if text == previous else text))
        previous = text
    return rows


def metrics_markdown(metrics) -> str:
    """The evaluation table as Markdown (``| measure | value | what it means |``)."""
    lines = ["| measure | value | what it means |", "| --- | ---: | --- |"]
    lines += [f"| `{key}` | {value} | {text} |" for key, value, text in metrics_rows(metrics)]
    return "\n".join(lines) + "\n"


# -- pictures ---------------------------------------------------------------------------------------
def _interleave_rows(top, bottom, ncols: int) -> np.ndarray:
    """Rows of ``top`` and ``bottom`` alternating: top[0:ncols], bottom[0:ncols], top[ncols:2ncols] ..."""
    rows = []
    for start in range(0, len(top), ncols):
        rows += [top[start:start + ncols], bottom[start:start + ncols]]
    return np.concatenate(rows)


def _load_run_sampler(run_dir: Path, model):
    """The run's latent sampler (its fitted mixture for ``gmm`` runs), or None (the prior) if missing."""

    try:
        return load_sampler(run_dir, model)
    except (FileNotFoundError, ValueError, OSError):
        return None


# -- HTML -----------------------------------------------------------------------------------------
_CSS = """
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fbfbfa; --card: #fff; --muted: #5b6570; --line: #d8dde3; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ea; --bg: #15181b; --card: #1e2226; --muted: #a0a9b3; --line: #343a40; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
p { margin: .25rem 0 .75rem; }
.muted, figcaption { color: var(--muted); font-size: .9rem; }
nav ul { list-style: none; padding: 0; margin: .5rem 0; display: flex; flex-wrap: wrap; gap: .25rem 1rem; }
a { color: #2f6fb3; }
.cards { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 440px), 1fr)); align-items: start; }
.wide { grid-column: 1 / -1; }
figure { margin: 0; padding: .75rem; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
figure img { display: block; width: 100%; height: auto; background: #000; }
img.pixels { image-rendering: pixelated; }
figure.natural img { width: auto; max-width: 100%; margin: 0 auto; }
figcaption { margin-top: .5rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: var(--card); font-size: .92rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: .9em; }
.lightbox { position: fixed; inset: 0; z-index: 10; display: flex; align-items: center; justify-content: center;
            background: rgba(0, 0, 0, .88); cursor: zoom-out; padding: 1rem; }
.lightbox img { max-width: 100%; max-height: 100%; width: auto; height: auto; object-fit: contain; background: #000; }
.lightbox img.pixels { min-width: min(100%, 90vh); }
a.zoom { cursor: zoom-in; display: block; }
footer { margin: 2rem auto; }
"""

#: The lightbox: a click opens the picture over the page (Escape or a click closes it). Without
#: JavaScript the plain link still opens the file at full size.
_SCRIPT = """
document.addEventListener("click", function (e) {
  var a = e.target.closest && e.target.closest("a.zoom");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  var small = a.querySelector("img"), box = document.createElement("div"), img = new Image();
  box.className = "lightbox"; box.setAttribute("role", "dialog"); box.setAttribute("aria-modal", "true");
  box.setAttribute("aria-label", small.alt + " (click or press Escape to close)");
  img.src = a.getAttribute("href"); img.alt = small.alt; img.className = small.className;
  box.appendChild(img); box.tabIndex = -1;
  box.addEventListener("click", function () { box.remove(); a.focus(); });
  document.body.appendChild(box); box.focus();
});
document.addEventListener("keydown", function (e) {
  if (e.key === "Escape") document.querySelectorAll(".lightbox").forEach(function (b) { b.remove(); });
});
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


class _Page:
    """Collects the pictures (written at once) and the HTML of each section."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.sections = []                                       # (id, title, html)
        self.notes = []                                          # what could not be shown, and why

    def image_size(self, name: str):
        from PIL import Image

        with Image.open(self.out_dir / name) as im:
            return im.size

    def figure(self, name: str, alt: str, caption: str, pixels: bool = True, wide: bool = False) -> str:
        """A picture that opens at full size on click; ``pixels`` keeps small images crisp when enlarged."""
        w, h = self.image_size(name)
        classes = ' class="pixels"' if pixels else ""
        fig_class = " ".join(c for c, on in (("wide", wide), ("natural", not pixels)) if on)
        fig_attr = f' class="{fig_class}"' if fig_class else ""
        return (f'<figure{fig_attr}>'
                f'<a class="zoom" href="{_e(name)}"><img{classes} src="{_e(name)}" alt="{_e(alt)}" '
                f'width="{w}" height="{h}"></a><figcaption>{caption}</figcaption></figure>')

    def add(self, anchor: str, title: str, body: str):
        self.sections.append((anchor, title, body))

    def html(self, title: str, intro: str, footer: str) -> str:
        nav = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t, _ in self.sections)
        body = "\n".join(f'<section id="{a}" aria-labelledby="{a}-h"><h2 id="{a}-h">{_e(t)}</h2>\n{b}\n</section>'
                         for a, t, b in self.sections)
        return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f'<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n'
                f'<header><h1>{_e(title)}</h1>\n<p>{intro}</p>\n<nav aria-label="sections"><ul>{nav}</ul></nav></header>\n'
                f'<main>\n{body}\n</main>\n<footer class="muted">{footer}</footer>\n'
                f'<script>{_SCRIPT}</script>\n</body>\n</html>\n')


def _table(rows, header=None, numeric_col: Optional[int] = None) -> str:
    head = "<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in header) + "</tr></thead>" if header else ""
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if i == 0:
                cells.append(f'<th scope="row">{cell}</th>')
            else:
                number = i == numeric_col and re.fullmatch(r"-?[\d,.]+(e[+-]?\d+)?|nan", str(cell))
                cells.append(f'<td{" class=num" if number else ""}>{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="table-wrap"><table>{head}<tbody>{"".join(body)}</tbody></table></div>'


# -- the gallery ------------------------------------------------------------------------------------
def build_gallery(run_dir: PathLike, out_dir: PathLike, data_dir: Optional[PathLike] = None,
                  metrics_path: Optional[PathLike] = None, n: int = 32, seed: int = 0,
                  title: Optional[str] = None) -> Path:
    """Write the gallery of a trained run into ``out_dir`` (``index.html`` + PNG/GIF files).

    Args:
        run_dir: a run folder written by ``train`` (``config.json``, ``checkpoints/``, ``history.json``).
        out_dir: output folder (created; files of the same names are replaced).
        data_dir: the prepared data set for real test images, reconstructions and the nearest
            training images; default the one the run recorded (``run_info.json``), if any.
            Without data those sections are left out with a note.
        metrics_path: an evaluation ``metrics.json``; default ``run_dir/metrics.json`` when present.
        n: images per sample grid (real and generated).
        seed: seed of the latent draws (the same seed gives the same page).
        title: page title; default ``xray-vae gallery: <run folder name>``.

    Returns:
        the path of ``index.html``.
    """

    t0 = time.monotonic()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1 image per grid, got {n}")
    config, model = load_run(run_dir)
    history = load_history(run_dir)
    info = _read_json(run_dir / RUN_INFO_FILE) or {}
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir(run_dir)
    if metrics_path is not None and not Path(metrics_path).is_file():
        raise FileNotFoundError(f"metrics file {metrics_path} does not exist")
    metrics_path = Path(metrics_path) if metrics_path is not None else run_dir / METRICS_FILE
    metrics = _read_json(metrics_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = _Page(out_dir)
    size = int(config.image_size)
    ncols = 8 if n >= 8 else n

    train_x = test_x = test_labels = None
    if data_dir is not None:
        from vae_keras.data.pipeline import load_split

        train_x, _ = load_split(data_dir, "train", image_size=size)         # (m, S, S, 1) uint8
        try:
            test_x, test_labels = load_split(data_dir, "test", image_size=size)
        except ValueError:                                                  # no test split: use train
            test_x, test_labels = load_split(data_dir, "train", image_size=size)
        test_x = test_x.astype(np.float32) / 255.0

    # -- run and data
    seconds = sum(float(h.get("seconds", 0.0)) for h in history)
    last = history[-1] if history else {}
    run_rows = [("run folder", _e(run_dir.resolve().name)),
                ("configuration", f"<code>{_e(config.name)}</code>"),
                ("image size", f"{size} &times; {size}"),
                ("latent size", _e(config.latent_dim)),
                ("epochs trained", f"{len(history)} of {config.epochs}" + (
                    f" (a {format_value(info['budget_minutes'])}-minute time budget)"
                    if info.get("budget_minutes") and len(history) < config.epochs else "")),
                ("training time", f"{seconds / 60:.1f} min ({last.get('images_per_second', float('nan')):.0f} images/s in the last epoch)" if history else "not recorded"),
                ("device", _e(info.get("device", "not recorded"))),
                ("last epoch loss", _e(f"{last['loss']:.2f} nats/image (recon {last.get('recon', float('nan')):.2f}, "
                                       f"KL {last.get('kl', float('nan')):.2f})") if "loss" in last else "n/a"),
                ("last test loss", _e(f"{last['test_loss']:.2f} nats/image") if "test_loss" in last else "n/a")]
    if data_dir is not None:
        run_rows += [("data", f"<code>{_e(data_dir)}</code>"),
                     ("images", f"{len(train_x):,} train / {len(test_x):,} test")]
    else:
        run_rows.append(("data", "not given: pass <code>--data DATA</code> for real images, reconstructions "
                                 "and nearest neighbours"))
    if info.get("command"):
        run_rows.append(("command", f"<code>{_e(info['command'])}</code>"))
    config_rows = [(f"<code>{_e(k)}</code>", f"<code>{_e(format_value(v))}</code>")
                   for k, v in sorted(config.to_dict().items())]
    page.add("run", "Run and data",
             '<div class="cards"><div>' + _table(run_rows) + '</div><div><h3>config.json</h3>'
             + _table(config_rows) + "</div></div>")

    # -- real and generated
    sampler = _load_run_sampler(run_dir, model)
    by_class = answers_labels(config, sampler)
    if sampler is None or config.sampler == "normal":
        drawn_from = "draws from the prior N(0, I)"
    else:
        drawn_from = "draws from the Gaussian mixture fitted to the training codes"
    if by_class:  # any class mix, with the training split's frequencies (a conditional model's default)
        generated = sample_images(model, n, seed=seed, sampler=sampler, labels=sample_label_mix(run_dir, n, seed))
    else:
        generated = sample_images(model, n, seed=seed, sampler=sampler)    # (n, S, S, 1)
    image_grid(generated, out_dir / "generated.png", ncols=ncols)
    figs = []
    if test_x is not None:
        image_grid(test_x[:n], out_dir / "real.png", ncols=ncols)
        figs.append(page.figure("real.png", f"{min(n, len(test_x))} real test images",
                                "Real test images (not seen in training)."))
    figs.append(page.figure("generated.png", f"{n} generated images",
                            f"Generated: {n} {drawn_from}, decoded (seed {seed})"
                            f"{'; classes drawn with the training frequencies' if by_class else ''}. Compare "
                            "the bag outlines, the clutter and the dark dense objects with the real ones."))
    body = '<div class="cards">' + "".join(figs) + "</div>"
    if by_class:
        from vae_keras.io.manifest import CLASSES

        per_class = []
        for cls in (*CLASSES, ""):
            name = cls or "benign"
            samples = sample_images(model, ncols, seed=seed, sampler=sampler, labels=[[cls] if cls else []] * ncols)
            image_grid(samples, out_dir / f"generated_{name}.png", ncols=ncols)
            pair = [page.figure(f"generated_{name}.png", f"generated images of class {name}",
                                f"Generated, asked for <b>{_e(name)}</b>.")]
            if test_x is not None:
                has = (test_labels[:, CLASSES.index(cls)] > 0) if cls else (test_labels.sum(1) == 0)
                if has.any():
                    image_grid(test_x[has][:ncols], out_dir / f"real_{name}.png", ncols=ncols)
                    pair.insert(0, page.figure(f"real_{name}.png", f"real test images of class {name}",
                                               f"Real test images with <b>{_e(name)}</b>."))
            per_class.append(f'<h3>{_e(name)}</h3><div class="cards">{"".join(pair)}</div>')
        body += "".join(per_class)
    page.add("samples", "Real and generated images", body)

    conditional = bool(getattr(config, "conditional", False))

    def drawn(what: str, draw) -> bool:
        """Run ``draw()``; for a conditional model a picture the library cannot draw becomes a note."""
        if not conditional:
            draw()
            return True
        import tensorflow as tf

        try:
            draw()
            return True
        except (TypeError, ValueError, tf.errors.OpError) as e:
            page.notes.append(f"The {what} is not available for this conditional model: {e}")
            return False

    # -- reconstructions and interpolation
    k = min(2 * ncols, len(test_x)) if test_x is not None else 0
    recon = []
    if k and drawn("reconstruction", lambda: recon.append(reconstruct(model, test_x[:k]))):
        image_grid(_interleave_rows(test_x[:k], recon[0], ncols), out_dir / "reconstructions.png", ncols=ncols)
        figs = [page.figure("reconstructions.png", "test images and their reconstructions",
                            "Reconstructions: each row of test images is followed by its reconstruction "
                            "(the decoded posterior mean). Blur shows what the latent code cannot hold.")]
        b = int(np.argmax(((test_x - test_x[0]) ** 2).reshape(len(test_x), -1).sum(1)))  # most different
        if len(test_x) >= 2 and drawn("interpolation", lambda: interpolation_strip(
                model, test_x[0], test_x[b], out_dir / "interpolation.png", steps=10)):
            figs.append(page.figure("interpolation.png", "latent interpolation between two test images",
                                    "Interpolation: the straight line between the latent codes of two test "
                                    "images, decoded in 10 steps. Smooth changes mean a well-ordered latent space.",
                                    wide=True))
        page.add("reconstructions", "Reconstructions and interpolation",
                 '<div class="cards">' + "".join(figs) + "</div>")

    # -- latent space, training
    figs = []
    data = None if train_x is None else train_x[:256].astype(np.float32) / 255.0
    if int(config.latent_dim) >= 2 and drawn("latent manifold", lambda: latent_manifold(
            model, out_dir / "latent_manifold.png", n=15, data=data)):
        dims_note = ("both latent dimensions" if config.latent_dim == 2 else
                     "the two most active latent dimensions (others at the data mean)" if data is not None else
                     "latent dimensions 0 and 1 (others at 0)")
        figs.append(page.figure("latent_manifold.png", "the 2-D latent manifold",
                                f"Latent manifold: a 15 &times; 15 grid over {dims_note}, spaced by prior "
                                "probability mass and decoded. Look for gradual changes in shape and content.",
                                pixels=False))
    frames = sorted((run_dir / "samples").glob("epoch_*.png"))
    if (run_dir / "training.gif").is_file():
        atomic_write_bytes(out_dir / "training.gif", (run_dir / "training.gif").read_bytes())
    elif frames:
        make_gif(frames, out_dir / "training.gif")
    if (out_dir / "training.gif").is_file():
        figs.append(page.figure("training.gif", "animation of 16 fixed latent vectors decoded after each epoch",
                                f"Training: the same 16 latent vectors decoded after each of the {len(frames)} "
                                "epochs. Bags should emerge from blur and then only sharpen."))
    if history:
        plot_history(history, out_dir / "loss_curves.png")
        figs.append(page.figure("loss_curves.png", "loss curves: reconstruction and KL per epoch",
                                "Loss per epoch, train (solid) and test (dashed): the reconstruction term and the "
                                "negative ELBO (left), the KL term (right). A test curve rising away from the "
                                "train curve means overfitting.", pixels=False, wide=True))
    if figs:
        page.add("training", "Latent space and training", '<div class="cards">' + "".join(figs) + "</div>")

    # -- evaluation
    if metrics is not None:
        rows = [(f"<code>{_e(k)}</code>", _e(v), _e(text)) for k, v, text in metrics_rows(metrics)]
        page.add("evaluation", "Evaluation",
                 f'<p class="muted">From <code>{_e(metrics_path.name)}</code>.</p>'
                 + _table(rows, header=("measure", "value", "what it means"), numeric_col=1))

    # -- memorisation
    if train_x is not None:
        k = min(2 * ncols, n)
        idx, dist = nearest_neighbours(generated[:k], train_x)
        _, test_dist = nearest_neighbours(test_x[:k], train_x)
        image_grid(_interleave_rows(generated[:k], train_x[idx].astype(np.float32) / 255.0, ncols),
                   out_dir / "nearest_neighbours.png", ncols=ncols)
        ratio = float(np.median(dist) / max(float(np.median(test_dist)), 1e-12))
        verdict = ("well below 1: look for copies of training images" if ratio < 0.5 else
                   "no sign of copying" if ratio >= 0.8 else "somewhat close to the training images")
        page.add("memorisation", "Memorisation check",
                 '<div class="cards">' + page.figure("nearest_neighbours.png", "generated images above their nearest training images",
                             "Each row of generated images is followed by the training image nearest to each "
                             "(L2 distance in pixel space).") + "</div>"
                 + f"<p>Median RMS pixel distance to the nearest training image: generated "
                   f"{np.median(dist):.3f}, held-out test images {np.median(test_dist):.3f}; ratio "
                   f"<b>{ratio:.2f}</b> ({verdict}). A model that memorises produces near-copies, "
                   "closer to the training set than unseen real images are."
                 + (f" On more images, <code>metrics.json</code> gives a memorisation ratio of "
                    f"{format_value(metrics['memorisation_ratio'])}." if isinstance(metrics, dict)
                    and "memorisation_ratio" in metrics else "") + "</p>")

    if page.notes:
        page.add("notes", "Not shown", "<ul>" + "".join(f"<li>{_e(note)}</li>" for note in page.notes) + "</ul>")
    title = title or f"xray-vae gallery: {run_dir.resolve().name}"
    intro = (f"A <code>{_e(config.name)}</code> VAE trained for {len(history)} epoch(s) on "
             f"{size}&times;{size} X-ray baggage images. Click any picture to see it at full size.")
    footer = (f"Built by <code>python -m vae_keras gallery</code> in {time.monotonic() - t0:.0f} s. "
              "Every file of this page is local: nothing is loaded from the network.")
    return atomic_write_text(out_dir / INDEX, page.html(title, intro, footer))    # last: refers to existing files
