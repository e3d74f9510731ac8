"""A static gallery of one training run: one ``index.html`` and its pictures, nothing else.

People judge a generative model by looking at it. :func:`build_gallery` writes, for one run
folder, a self-contained page (no server, no network, no fonts or scripts from anywhere) with
the run's configuration and data, real test images next to generated ones (per class for a
conditional model), reconstructions, the latent manifold, an interpolation strip, the training
GIF, the loss curves, the evaluation table of ``metrics.json`` and a memorisation check
(generated images next to their nearest training images).

Every picture is drawn by the library (:mod:`vae_keras.viz.figures`, :mod:`vae_keras.sampling.generate`);
this module only chooses what to show and writes the HTML, one function per section. The page's
style and lightbox script are package data (``gallery.css``, ``gallery.js``), inlined so the page
stays one file. Files are written atomically and ``index.html`` last, so a page that exists always
refers to pictures that exist. Only inputs that may be missing on purpose (no data folder, no
``metrics.json``, no test split, no fitted sampler) leave a section out with a note; any other
failure is an error.

Example:
    >>> build_gallery("runs/seed", "gallery/", data_dir="data/phantoms")   # -> gallery/index.html
"""
from __future__ import annotations

import html
import json
import math
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from vae_keras.data.pipeline import load_split
from vae_keras.errors import DataError
from vae_keras.evaluation.measures import MEASURES
from vae_keras.evaluation.metrics import nearest_neighbours
from vae_keras.io.atomic import PathLike, atomic_write_bytes, atomic_write_text
from vae_keras.io.manifest import CLASSES, MANIFEST, read_manifest
from vae_keras.sampling.generate import reconstruct, sample_images
from vae_keras.training.run import Run, as_run
from vae_keras.viz.figures import (GIF_MAX_FRAMES, image_grid, interpolation_grid, latent_manifold, make_gif,
                                   plot_history)

INDEX = "index.html"
METRICS_FILE = "metrics.json"
RUN_INFO_FILE = "run_info.json"   # optional: {"data": ..., "device": ..., "command": ...}


# -- reading a run ---------------------------------------------------------------------------------
def _read_json(path: Path):
    """The JSON in ``path``, or None when there is no such file (a broken one is an error)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{path} is not valid JSON ({e}): fix or remove it") from None


def default_data_dir(run_dir: PathLike) -> Optional[Path]:
    """The data folder a run recorded (``run_info.json`` or ``config.json``), if it still exists."""
    run_dir = Path(run_dir)
    for name in (RUN_INFO_FILE, "config.json"):
        info = _read_json(run_dir / name) or {}
        for key in ("data", "data_dir"):
            if isinstance(info.get(key), str):
                for candidate in (Path(info[key]), run_dir / info[key]):
                    if (candidate / MANIFEST).is_file():
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
    """The one-line explanation of a measure (:data:`vae_keras.evaluation.measures.MEASURES`), matched on
    its name, then its first dotted part (``threat_classifier.epochs`` is the classifier's, not the run's),
    then its last; ``""`` for a key the registry does not know."""
    parts = key.split(".")
    for candidate in (key, parts[0], parts[-1]):
        if candidate in MEASURES:
            return MEASURES[candidate].explanation
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


# -- HTML -----------------------------------------------------------------------------------------
def _package_text(name: str) -> str:
    """A text file shipped beside this module (``gallery.css``, ``gallery.js``)."""
    return resources.files("vae_keras.viz").joinpath(name).read_text(encoding="utf-8")


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

    def cards(self, anchor: str, title: str, figures, after: str = ""):
        """A section of figures side by side (``figures``: HTML of :meth:`figure`), with text after."""
        self.add(anchor, title, '<div class="cards">' + "".join(figures) + "</div>" + after)

    def html(self, title: str, intro: str, footer: str) -> str:
        nav = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t, _ in self.sections)
        body = "\n".join(f'<section id="{a}" aria-labelledby="{a}-h"><h2 id="{a}-h">{_e(t)}</h2>\n{b}\n</section>'
                         for a, t, b in self.sections)
        return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f'<title>{_e(title)}</title>\n<style>\n{_package_text("gallery.css")}</style>\n</head>\n<body>\n'
                f'<header><h1>{_e(title)}</h1>\n<p>{intro}</p>\n<nav aria-label="sections"><ul>{nav}</ul></nav></header>\n'
                f'<main>\n{body}\n</main>\n<footer class="muted">{footer}</footer>\n'
                f'<script>\n{_package_text("gallery.js")}</script>\n</body>\n</html>\n')


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


# -- what the page is built from ----------------------------------------------------------------------
@dataclass
class RunInputs:
    """A trained run and what the gallery shows beside it; ``notes`` says what is missing, and why."""

    run: Run                                    # the run, loaded once (model, sampler, label mix)
    info: dict
    data_dir: Optional[Path] = None
    train_x: Optional[np.ndarray] = None        # (m, S, S, 1) uint8
    test_x: Optional[np.ndarray] = None         # (k, S, S, 1) float32 in [0, 1]: real images not trained on
    test_labels: Optional[np.ndarray] = None    # (k, C) multi-hot
    metrics: Optional[dict] = None
    metrics_path: Optional[Path] = None
    notes: list = field(default_factory=list)

    # the run's parts, as the sections read them
    run_dir = property(lambda self: self.run.run_dir)
    config = property(lambda self: self.run.config)
    model = property(lambda self: self.run.model)
    history = property(lambda self: self.run.history)
    sampler = property(lambda self: self.run.sampler)


def read_inputs(run, data_dir: Optional[PathLike] = None,
                metrics_path: Optional[PathLike] = None) -> RunInputs:
    """The run (a :class:`~vae_keras.training.run.Run`, or a run folder opened here), its data set and its
    ``metrics.json``.

    What may be missing on purpose becomes a note: no data folder (given or recorded), no test
    split, no ``metrics.json`` at the default place, no fitted sampler file. Everything else (no
    run, a metrics file that was asked for but does not exist, broken files) raises.
    """
    if metrics_path is not None and not Path(metrics_path).is_file():
        raise FileNotFoundError(f"metrics file {metrics_path} does not exist")
    run = as_run(run, missing_sampler="prior")   # e.g. a run interrupted before its mixture was fitted: the prior
    run_dir, config = run.run_dir, run.config
    g = RunInputs(run=run, info=_read_json(run_dir / RUN_INFO_FILE) or {}, notes=list(run.notes))
    g.metrics_path = Path(metrics_path) if metrics_path is not None else run_dir / METRICS_FILE
    g.metrics = _read_json(g.metrics_path)
    if g.metrics is None:
        g.notes.append(f"No evaluation table: {g.metrics_path.name} does not exist (run `python -m vae_keras "
                       "evaluate RUN --data DATA` first).")
    g.data_dir = Path(data_dir) if data_dir is not None else default_data_dir(run_dir)
    if g.data_dir is None:
        return g
    size = int(config.image_size)
    g.train_x, _ = load_split(g.data_dir, "train", image_size=size)                # (m, S, S, 1) uint8
    if any(row.split == "test" for row in read_manifest(g.data_dir / MANIFEST)):
        test_x, g.test_labels = load_split(g.data_dir, "test", image_size=size)
    else:
        g.notes.append(f"{g.data_dir} has no test split: the 'real' images shown are training images.")
        test_x, g.test_labels = load_split(g.data_dir, "train", image_size=size)
    g.test_x = test_x.astype(np.float32) / 255.0
    return g


# -- the sections ---------------------------------------------------------------------------------------
def run_section(page: _Page, g: RunInputs):
    """The run's facts (configuration, time, device, last losses) and its ``config.json``."""
    size = int(g.config.image_size)
    seconds = sum(float(h.get("seconds", 0.0)) for h in g.history)
    last = g.history[-1] if g.history else {}
    budget = g.info.get("budget_minutes")
    rows = [("run folder", _e(g.run_dir.resolve().name)),
            ("configuration", f"<code>{_e(g.config.name)}</code>"),
            ("image size", f"{size} &times; {size}"),
            ("latent size", _e(g.config.latent_dim)),
            ("epochs trained", f"{len(g.history)} of {g.config.epochs}" + (
                f" (a {format_value(budget)}-minute time budget)" if budget and len(g.history) < g.config.epochs
                else "")),
            ("training time", f"{seconds / 60:.1f} min ({last.get('images_per_second', float('nan')):.0f} images/s "
                              "in the last epoch)" if g.history else "not recorded"),
            ("device", _e(g.info.get("device", "not recorded"))),
            ("last epoch loss", _e(f"{last['loss']:.2f} nats/image (recon {last.get('recon', float('nan')):.2f}, "
                                   f"KL {last.get('kl', float('nan')):.2f})") if "loss" in last else "n/a"),
            ("last test loss", _e(f"{last['test_loss']:.2f} nats/image") if "test_loss" in last else "n/a")]
    if g.data_dir is not None:
        rows += [("data", f"<code>{_e(g.data_dir)}</code>"),
                 ("images", f"{len(g.train_x):,} train / {len(g.test_x):,} test")]
    else:
        rows.append(("data", "not given: pass <code>--data DATA</code> for real images, reconstructions "
                             "and nearest neighbours"))
    if g.info.get("command"):
        rows.append(("command", f"<code>{_e(g.info['command'])}</code>"))
    config_rows = [(f"<code>{_e(k)}</code>", f"<code>{_e(format_value(v))}</code>")
                   for k, v in sorted(g.config.to_dict().items())]
    page.add("run", "Run and data", '<div class="cards"><div>' + _table(rows) + '</div><div><h3>config.json</h3>'
             + _table(config_rows) + "</div></div>")


def samples_section(page: _Page, g: RunInputs, n: int, seed: int, ncols: int) -> np.ndarray:
    """Real test images next to generated ones, and per class for a run that can be asked for one.

    Returns:
        the ``n`` generated images (n, S, S, 1), for the memorisation check.
    """
    by_class = g.run.answers_labels
    drawn_from = ("draws from the prior N(0, I)" if g.sampler.name == "normal"
                  else "latents denoised by the learned diffusion prior (DDIM)" if g.sampler.name == "diffusion"
                  else "draws from the Gaussian mixture fitted to the training codes")
    labels = g.run.label_mix(n, seed)                                     # the training split's class mix
    generated = sample_images(g.model, n, seed=seed, sampler=g.sampler, labels=labels)    # (n, S, S, 1)
    image_grid(generated, page.out_dir / "generated.png", ncols=ncols)
    figs = []
    if g.test_x is not None:
        image_grid(g.test_x[:n], page.out_dir / "real.png", ncols=ncols)
        figs.append(page.figure("real.png", f"{min(n, len(g.test_x))} real test images",
                                "Real test images (not seen in training)."))
    figs.append(page.figure("generated.png", f"{n} generated images",
                            f"Generated: {n} {drawn_from}, decoded (seed {seed})"
                            f"{'; classes drawn with the training frequencies' if by_class else ''}. Compare "
                            "the bag outlines, the clutter and the dark dense objects with the real ones."))
    per_class = "".join(_class_pair(page, g, cls, seed, ncols) for cls in (*CLASSES, "")) if by_class else ""
    page.cards("samples", "Real and generated images", figs, after=per_class)
    return generated


def _class_pair(page: _Page, g: RunInputs, cls: str, seed: int, ncols: int) -> str:
    """Generated images asked for class ``cls`` ("" = benign), beside real test images of that class."""
    name = cls or "benign"
    samples = sample_images(g.model, ncols, seed=seed, sampler=g.sampler, labels=[[cls] if cls else []] * ncols)
    image_grid(samples, page.out_dir / f"generated_{name}.png", ncols=ncols)
    pair = [page.figure(f"generated_{name}.png", f"generated images of class {name}",
                        f"Generated, asked for <b>{_e(name)}</b>.")]
    if g.test_x is not None:
        has = (g.test_labels[:, CLASSES.index(cls)] > 0) if cls else (g.test_labels.sum(1) == 0)
        if has.any():
            image_grid(g.test_x[has][:ncols], page.out_dir / f"real_{name}.png", ncols=ncols)
            pair.insert(0, page.figure(f"real_{name}.png", f"real test images of class {name}",
                                       f"Real test images with <b>{_e(name)}</b>."))
    return f'<h3>{_e(name)}</h3><div class="cards">{"".join(pair)}</div>'


def reconstructions_section(page: _Page, g: RunInputs, ncols: int):
    """Test images above their reconstructions, and interpolations between test images (needs data)."""
    k = min(2 * ncols, len(g.test_x))
    recon = reconstruct(g.model, g.test_x[:k])                             # (k, S, S, 1)
    image_grid(_interleave_rows(g.test_x[:k], recon, ncols), page.out_dir / "reconstructions.png", ncols=ncols)
    figs = [page.figure("reconstructions.png", "test images and their reconstructions",
                        "Reconstructions: each row of test images is followed by its reconstruction "
                        "(the decoded posterior mean). Blur shows what the latent code cannot hold.")]
    if len(g.test_x) >= 2:
        interpolation_grid(g.model, g.test_x[:8], page.out_dir / "interpolations.png", pairs=4, steps=8)
        figs.append(page.figure("interpolations.png", "latent interpolations between pairs of test images",
                                "Interpolations: each row starts and ends with a real test image; between them, "
                                "8 decoded points on the straight line between their latent codes. Bags all "
                                "along the way mean a well-ordered latent space; the decoded ends show what the "
                                "code keeps of each image.", wide=True))
    page.cards("reconstructions", "Reconstructions and interpolations", figs)


def training_section(page: _Page, g: RunInputs):
    """The 2-D latent manifold (2-dimensional latents only), the training GIF and the loss curves."""
    figs = []
    if int(g.config.latent_dim) == 2:      # over 2 of more dimensions the grid decodes nearly one bag
        data = None if g.train_x is None else g.train_x[:256].astype(np.float32) / 255.0
        latent_manifold(g.model, page.out_dir / "latent_manifold.png", n=15, data=data)
        figs.append(page.figure("latent_manifold.png", "the 2-D latent manifold",
                                "Latent manifold: a 15 &times; 15 grid over both latent dimensions, spaced by "
                                "prior probability mass and decoded. Look for gradual changes in shape and "
                                "content.", pixels=False))
    frames = sorted((g.run_dir / "samples").glob("epoch_*.png"))
    if (g.run_dir / "training.gif").is_file():
        atomic_write_bytes(page.out_dir / "training.gif", (g.run_dir / "training.gif").read_bytes())
    elif frames:
        make_gif(frames, page.out_dir / "training.gif")
    if (page.out_dir / "training.gif").is_file():
        figs.append(page.figure("training.gif", "animation of 16 fixed latent vectors decoded after each epoch",
                                f"Training: the same 16 latent vectors decoded after each of the {len(frames)} "
                                f"epochs (at most {GIF_MAX_FRAMES} of them, evenly spaced). Bags should emerge from "
                                "blur and then only sharpen."))
    if g.history:
        plot_history(g.history, page.out_dir / "loss_curves.png")
        figs.append(page.figure("loss_curves.png", "loss curves: reconstruction and KL per epoch",
                                "Loss per epoch, train (solid) and test (dashed): the reconstruction term and the "
                                "negative ELBO (left), the KL term (right). A test curve rising away from the "
                                "train curve means overfitting.", pixels=False, wide=True))
    if figs:
        page.cards("training", "Latent space and training", figs)


def evaluation_section(page: _Page, g: RunInputs):
    """The table of ``metrics.json``, one explained line per measure."""
    rows = [(f"<code>{_e(k)}</code>", _e(v), _e(text)) for k, v, text in metrics_rows(g.metrics)]
    page.add("evaluation", "Evaluation", f'<p class="muted">From <code>{_e(g.metrics_path.name)}</code>.</p>'
             + _table(rows, header=("measure", "value", "what it means"), numeric_col=1))


def memorisation_section(page: _Page, g: RunInputs, generated: np.ndarray, ncols: int):
    """Generated images above their nearest training images, and the distance ratio to held-out images."""
    k = min(2 * ncols, len(generated))
    idx, dist = nearest_neighbours(generated[:k], g.train_x)
    _, test_dist = nearest_neighbours(g.test_x[:k], g.train_x)
    image_grid(_interleave_rows(generated[:k], g.train_x[idx].astype(np.float32) / 255.0, ncols),
               page.out_dir / "nearest_neighbours.png", ncols=ncols)
    ratio = float(np.median(dist) / max(float(np.median(test_dist)), 1e-12))
    verdict = ("well below 1: look for copies of training images" if ratio < 0.5 else
               "no sign of copying" if ratio >= 0.8 else "somewhat close to the training images")
    more = (f" On more images, <code>metrics.json</code> gives a memorisation ratio of "
            f"{format_value(g.metrics['memorisation_ratio'])}."
            if isinstance(g.metrics, dict) and "memorisation_ratio" in g.metrics else "")
    page.cards("memorisation", "Memorisation check",
               [page.figure("nearest_neighbours.png", "generated images above their nearest training images",
                            "Each row of generated images is followed by the training image nearest to each "
                            "(L2 distance in pixel space).")],
               after=f"<p>Median RMS pixel distance to the nearest training image: generated "
                     f"{np.median(dist):.3f}, held-out test images {np.median(test_dist):.3f}; ratio "
                     f"<b>{ratio:.2f}</b> ({verdict}). A model that memorises produces near-copies, "
                     f"closer to the training set than unseen real images are.{more}</p>")


# -- the gallery ------------------------------------------------------------------------------------
def check_grid_size(n: int) -> None:
    """The gallery's ``n`` images per grid must be at least 1 (checked before a run is loaded)."""
    if int(n) < 1:
        raise DataError(f"n must be >= 1 image per grid, got {n}")


def build_gallery(run, out_dir: PathLike, data_dir: Optional[PathLike] = None,
                  metrics_path: Optional[PathLike] = None, n: int = 32, seed: int = 0,
                  title: Optional[str] = None) -> Path:
    """Write the gallery of a trained run into ``out_dir`` (``index.html`` + PNG/GIF files).

    Args:
        run: a trained :class:`~vae_keras.training.run.Run`, or a run folder written by ``train``
            (``config.json``, ``checkpoints/``, ``history.json``), opened here.
        out_dir: output folder (created; files of the same names are replaced).
        data_dir: the prepared data set for real test images, reconstructions and the nearest
            training images; default the one the run recorded (``run_info.json``), if any.
            Without data those sections are left out with a note.
        metrics_path: an evaluation ``metrics.json``; default ``RUN/metrics.json`` when present.
        n: images per sample grid (real and generated).
        seed: seed of the latent draws (the same seed gives the same page).
        title: page title; default ``xray-vae gallery: <run folder name>``.

    Returns:
        the path of ``index.html``.

    Raises:
        DataError: ``n`` < 1, or a broken ``metrics.json`` / ``run_info.json``.
        FileNotFoundError: no run in ``run``'s folder, or no ``metrics_path`` file.
    """
    t0 = time.monotonic()
    check_grid_size(n)
    g = read_inputs(run, data_dir, metrics_path)
    page = _Page(Path(out_dir))
    page.out_dir.mkdir(parents=True, exist_ok=True)
    page.notes += g.notes
    ncols = min(8, int(n))

    run_section(page, g)
    generated = samples_section(page, g, int(n), seed, ncols)
    if g.test_x is not None:
        reconstructions_section(page, g, ncols)
    training_section(page, g)
    if g.metrics is not None:
        evaluation_section(page, g)
    if g.train_x is not None:
        memorisation_section(page, g, generated, ncols)
    if page.notes:
        page.add("notes", "Not shown", "<ul>" + "".join(f"<li>{_e(note)}</li>" for note in page.notes) + "</ul>")

    title = title or f"xray-vae gallery: {g.run_dir.resolve().name}"
    intro = (f"A <code>{_e(g.config.name)}</code> VAE trained for {len(g.history)} epoch(s) on "
             f"{g.config.image_size}&times;{g.config.image_size} X-ray baggage images. Click any picture to see "
             "it at full size.")
    footer = (f"Built by <code>python -m vae_keras gallery</code> in {time.monotonic() - t0:.0f} s. "
              "Every file of this page is local: nothing is loaded from the network.")
    return atomic_write_text(page.out_dir / INDEX, page.html(title, intro, footer))   # last: refers to existing files
