"""Pictures of a VAE: sample grids, the latent manifold, interpolations, samples per class, the
training GIF, loss curves, and the set every run ends with (:func:`finish_run_figures`).

Why no ``pyplot``: figures are built with :class:`matplotlib.figure.Figure` directly, so this
module never touches the global backend or figure list. Scripts and training loops save PNGs
without any display; a notebook shows a returned ``Figure`` inline when it is the cell's last
expression (or via ``display(fig)``), and functions that draw a single picture accept an ``ax``
to draw into a figure the caller owns.

Grids written every epoch are composed with numpy and saved with Pillow (milliseconds), not
with matplotlib (a tenth of a second or more).
"""
from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from vae_keras.evaluation.metrics import class_recognition
from vae_keras.io.atomic import PathLike, atomic_write_bytes, save_png_atomic
from vae_keras.io.images import tile_images
from vae_keras.io.manifest import CLASSES
from vae_keras.sampling.generate import decode_latents, interpolate, posterior_means, sample_images
from vae_keras.sampling.tip import project_labels


def _as_gray_batch(images, name="images") -> np.ndarray:
    """(n, H, W, 1) or (n, H, W) array/tensor in [0, 1] -> (n, H, W) float32."""
    arr = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be (n, H, W, 1) or (n, H, W) grayscale, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def _save_figure(fig, path: PathLike, dpi=100) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


# -- grids ---------------------------------------------------------------------------------------
def image_grid(images, path: Optional[PathLike] = None, ncols: Optional[int] = None,
               titles: Optional[Sequence[str]] = None, figsize=None, pad_value: float = 0.0) -> np.ndarray:
    """Tile images into one grayscale grid, separated by 1-pixel lines; optionally save it.

    Args:
        images: (n, H, W, 1) or (n, H, W), float in [0, 1] (or uint8).
        path: where to write the PNG (atomically); ``None`` only returns the grid.
        ncols: columns; default ``ceil(sqrt(n))``.
        titles: one caption per image. Then the PNG is a matplotlib figure with the captions
            (slower: for reports, not per-epoch grids); the returned array has no captions.
        figsize: matplotlib figure size in inches when ``titles`` are given.
        pad_value: gray level of the separator lines and empty cells (0 = black, visible on
            the bright X-ray background).

    Returns:
        the grid, float32 ``(rows*H + rows-1, ncols*W + ncols-1)`` in [0, 1].

    Example:
        >>> image_grid(np.zeros((16, 64, 64, 1)), ncols=4).shape
        (259, 259)
    """
    x = _as_gray_batch(images)                                   # (n, H, W)
    if len(x) == 0:
        raise ValueError("image_grid needs at least one image, got 0")
    grid = tile_images(x, ncols, pad_value)
    n, ncols = len(x), min(int(ncols) if ncols else math.ceil(math.sqrt(len(x))), len(x))
    nrows = math.ceil(n / ncols)
    if path is not None:
        if titles is None:
            save_png_atomic(path, grid)
        else:
            if len(titles) != n:
                raise ValueError(f"got {len(titles)} titles for {n} images")
            fig = _new_figure(figsize or (1.6 * ncols, 1.8 * nrows))
            axes = fig.subplots(nrows, ncols, squeeze=False)
            for i, ax in enumerate(axes.flat):
                ax.set_axis_off()
                if i < n:
                    ax.imshow(x[i], cmap="gray", vmin=0.0, vmax=1.0)
                    ax.set_title(str(titles[i]), fontsize=8)
            _save_figure(fig, path)
    return grid


def boxed_grid(images, boxes: Sequence[Sequence[dict]], path: Optional[PathLike] = None, ncols: int = 8,
               color=(220, 30, 30)) -> np.ndarray:
    """Tile images into an RGB grid with each image's boxes outlined: a look at a detection export.

    Args:
        images: (n, H, W, 1) or (n, H, W), float in [0, 1] (or uint8).
        boxes: per image, dicts with ``"box": [x1, y1, x2, y2]`` in pixels (``x2``, ``y2``
            exclusive, as the exports write them); outlines are clipped to the image.
        path: where to write the PNG (atomically); ``None`` only returns the grid.
        ncols: columns (fewer when there are fewer images).

    Returns:
        the grid, uint8 ``(rows*H + rows-1, ncols*W + ncols-1, 3)``, black separator lines.
    """
    x = _as_gray_batch(images)                                   # (n, H, W)
    n, h, w = x.shape
    if n == 0 or len(boxes) != n:
        raise ValueError(f"boxed_grid needs images and one box list per image, got {n} images, {len(boxes)} lists")
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    grid = np.zeros((nrows * (h + 1) - 1, ncols * (w + 1) - 1, 3), np.uint8)
    for i, (img, bs) in enumerate(zip(x, boxes)):
        cell = np.repeat(np.round(img * 255).astype(np.uint8)[..., None], 3, axis=-1)   # (H, W, 3)
        for b in bs:
            x1, y1, x2, y2 = (int(round(float(v))) for v in b["box"])
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2) - 1, min(h, y2) - 1
            if x2 < x1 or y2 < y1:
                continue
            cell[y1:y2 + 1, [x1, x2]] = color
            cell[[y1, y2], x1:x2 + 1] = color
        r, c = divmod(i, ncols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = cell
    if path is not None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(grid, mode="RGB").save(buf, format="PNG", compress_level=6)
        atomic_write_bytes(path, buf.getvalue())
    return grid


def most_active_dims(model, data, k: int = 2) -> np.ndarray:
    """The ``k`` latent dimensions whose posterior means vary most over ``data``, most active first.

    A dimension the encoder does not use collapses to the prior: its posterior mean is ~0 for
    every image, so its variance across images is ~0. The active ones carry the information.
    """
    means = posterior_means(model, data)                         # (n, latent_dim)
    return np.argsort(-means.var(axis=0), kind="stable")[:k]


def latent_manifold(model, path: Optional[PathLike] = None, n: int = 15, dims=None, data=None,
                    digit_size: Optional[int] = None, ax=None, figsize=(8, 8)) -> np.ndarray:
    """Decode a regular grid over two latent dimensions, as in the TensorFlow CVAE tutorial.

    The grid coordinates are the normal quantiles of ``linspace(0.05, 0.95, n)`` (``ndtri``),
    so equal steps in the picture are equal steps in prior probability mass. With
    ``latent_dim == 2`` both dimensions are used; otherwise ``dims``, or the two most active
    dimensions over ``data`` (a batch of real images), with the other dimensions held at the
    data's mean posterior mean (at 0 without data).

    Args:
        model: a CVAE (``encode``, ``decode``, ``latent_dim``).
        path: where to save the labelled figure (PNG); ``None`` to skip.
        n: grid points per side.
        dims: the two latent dimensions ``(horizontal, vertical)`` to vary.
        data: (m, S, S, 1) images in [0, 1], used to choose ``dims`` and the fixed values.
        digit_size: side of each decoded tile in the grid (resized); default the model's size.
        ax: a matplotlib Axes to draw into (e.g. in a notebook) instead of a new figure.
        figsize: size of the new figure when ``ax`` is None.

    Returns:
        the grid ``(n * digit_size, n * digit_size)`` float32 in [0, 1]; the horizontal axis
        increases left to right, the vertical one bottom to top.
    """
    latent_dim = int(model.latent_dim)
    if latent_dim < 2:
        raise ValueError(f"a 2-D latent manifold needs latent_dim >= 2, the model has {latent_dim}")
    if int(n) < 2:
        raise ValueError(f"n must be >= 2 grid points per side, got {n}")
    n = int(n)
    base = np.zeros(latent_dim, np.float32)
    means = posterior_means(model, data) if data is not None else None
    if dims is None:
        if latent_dim == 2:
            dims = (0, 1)
        elif means is not None:
            dims = tuple(int(d) for d in np.argsort(-means.var(axis=0), kind="stable")[:2])
        else:
            warnings.warn(f"latent_dim is {latent_dim} and no data was given to find the most active "
                          "dimensions: showing dims (0, 1); pass data= or dims=", stacklevel=2)
            dims = (0, 1)
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be two different indices in [0, {latent_dim}), got {dims}")
    if means is not None:
        base = means.mean(axis=0).astype(np.float32)

    grid = tf.math.ndtri(tf.linspace(0.05, 0.95, n)).numpy().astype(np.float32)   # (n,) z values
    z = np.tile(base, (n * n, 1))                                # (n*n, latent_dim)
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    z[:, dims[0]] = grid[cols.ravel()]                           # left -> right: increasing
    z[:, dims[1]] = grid[::-1][rows.ravel()]                     # top -> bottom: decreasing
    tiles = decode_latents(model, z)[..., 0]                     # (n*n, S, S)
    size = int(digit_size or tiles.shape[1])
    if size != tiles.shape[1]:
        tiles = tf.image.resize(tiles[..., None], (size, size), antialias=True).numpy()[..., 0]
    image = tiles.reshape(n, n, size, size).transpose(0, 2, 1, 3).reshape(n * size, n * size)
    image = np.clip(image, 0.0, 1.0)

    if ax is not None or path is not None:
        fig = None
        if ax is None:
            fig = _new_figure(figsize)
            ax = fig.add_subplot()
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        centers = np.arange(n) * size + (size - 1) / 2.0
        step = -(-n // 8)  # at most 8 labels per axis, so they never overlap
        ax.set_xticks(centers[::step], [f"{v:.2f}" for v in grid[::step]])
        ax.set_yticks(centers[::step], [f"{v:.2f}" for v in grid[::-1][::step]])
        ax.set_xlabel(f"z[{dims[0]}]")
        ax.set_ylabel(f"z[{dims[1]}]")
        fixed = "" if latent_dim == 2 else (
            f"; other dims at the data mean" if means is not None else "; other dims at 0")
        ax.set_title(f"Latent manifold over z[{dims[0]}], z[{dims[1]}] (latent_dim={latent_dim}{fixed})",
                     fontsize=10)
        if path is not None:
            _save_figure(ax.figure if fig is None else fig, path)
    return image


def interpolation_strip(model, x_a, x_b, path: Optional[PathLike] = None, steps: int = 8) -> np.ndarray:
    """Decode the straight line between the posterior means of two images; save it as one row.

    Returns:
        the strip ``(S, steps*S + steps-1)`` in [0, 1], ``x_a``'s end on the left.
    """

    frames = interpolate(model, x_a, x_b, steps)                 # (steps, S, S, 1)
    return image_grid(frames, path, ncols=steps)


# -- the training GIF ------------------------------------------------------------------------------
def _frame_label(path: Path, index: int) -> str:
    numbers = re.findall(r"\d+", Path(path).stem)
    return f"epoch {int(numbers[-1]) if numbers else index + 1}"


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` (H, W) uint8 with a white band underneath holding ``text`` in black."""
    from PIL import Image, ImageDraw

    band = 12
    canvas = Image.new("L", (frame.shape[1], frame.shape[0] + band), 255)
    canvas.paste(Image.fromarray(frame, mode="L"), (0, 0))
    ImageDraw.Draw(canvas).text((2, frame.shape[0]), text, fill=0)
    return np.asarray(canvas)


#: Frames of a training GIF at most: a long run's GIF shows this many epochs, evenly spaced (a
#: 63-epoch run's 64-bag grids made a 5.3 MB GIF; figures kept in git stay light).
GIF_MAX_FRAMES = 40


def make_gif(frame_paths: Sequence[PathLike], gif_path: PathLike, fps: float = 4,
             labels: Optional[Sequence[str]] = None, caption: bool = True,
             max_frames: Optional[int] = GIF_MAX_FRAMES) -> Path:
    """An animated, looping GIF of per-epoch grids, each captioned with its epoch.

    Args:
        frame_paths: PNGs in display order (e.g. ``samples/epoch_0001.png`` ...); frames of a
            different size are resized to the first one's.
        gif_path: output path, written atomically.
        fps: frames per second.
        labels: captions; default ``epoch N`` with N the last number in each file name.
        caption: draw the captions in a band under each frame.
        max_frames: keep at most this many frames, evenly spaced, the first and the last among
            them (captions keep their own epochs); ``None``: every frame.
    """
    from PIL import Image
    import imageio.v3 as iio

    frame_paths = [Path(p) for p in frame_paths]
    if not frame_paths:
        raise ValueError("make_gif needs at least one frame, got none")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if labels is not None and len(labels) != len(frame_paths):
        raise ValueError(f"got {len(labels)} labels for {len(frame_paths)} frames")
    if max_frames is not None and len(frame_paths) > max_frames:
        keep = np.unique(np.round(np.linspace(0, len(frame_paths) - 1, max(int(max_frames), 1))).astype(int))
        frame_paths = [frame_paths[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
    frames = []
    for i, p in enumerate(frame_paths):
        if not p.is_file():
            raise FileNotFoundError(f"GIF frame {p} does not exist")
        with Image.open(p) as im:
            im = im.convert("L")
            if frames and im.size != (frames[0].shape[1], frames[0].shape[0]):
                im = im.resize((frames[0].shape[1], frames[0].shape[0]), Image.Resampling.LANCZOS)
            frame = np.asarray(im, np.uint8)
        frames.append(frame)
    if caption:
        frames = [_caption(f, labels[i] if labels else _frame_label(p, i))
                  for i, (f, p) in enumerate(zip(frames, frame_paths))]
    data = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return atomic_write_bytes(gif_path, data)


# -- loss curves -------------------------------------------------------------------------------------
def plot_history(history: Sequence[dict], path: Optional[PathLike] = None, figsize=(10, 4)):
    """Loss curves per epoch in two panels: total and reconstruction (left), KL (right).

    The reconstruction term (thousands of nats per image) and the KL term (a few nats) differ
    by orders of magnitude, so they get separate axes. Test curves are dashed when present.

    Args:
        history: per-epoch dicts ``{"epoch", "loss", "recon", "kl", "test_loss", ...}``.
        path: where to save the PNG; ``None`` to only return the figure.

    Returns:
        the matplotlib ``Figure`` (a notebook displays it inline).
    """
    from matplotlib.ticker import MaxNLocator

    history = list(history)
    if not history:
        raise ValueError("history is empty: train for at least one epoch first")
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]

    def series(key):
        return [h.get(key, np.nan) for h in history] if any(key in h for h in history) else None

    fig = _new_figure(figsize)
    left, right = fig.subplots(1, 2)
    colors = {"loss": "C0", "recon": "C1", "kl": "C2"}
    for ax, keys, title in ((left, ("loss", "recon"), "Negative ELBO and reconstruction"),
                            (right, ("kl",), "KL term")):
        for key in keys:  # one colour per term; solid = train, dashed = test
            for prefix, style in (("", "-"), ("test_", "--")):
                values = series(prefix + key)
                if values is not None:
                    ax.plot(epochs, values, style, color=colors[key], marker="o", markersize=3,
                            label=f"{'test' if prefix else 'train'} {key}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.set_title(title)
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    if path is not None:
        _save_figure(fig, path)
    return fig


# -- what a trained run ends with ---------------------------------------------------------------------
def interpolation_grid(model, images, path: Optional[PathLike] = None, pairs: int = 4,
                       steps: int = 8) -> np.ndarray:
    """Rows of latent interpolations between real images, each framed by its two real end images.

    Row ``i`` is ``images[i]``, then ``steps`` decodings of the straight line between the
    posterior means of ``images[i]`` and ``images[pairs + i]``, then ``images[pairs + i]``. Unlike
    a manifold over two of many latent dimensions, every latent dimension takes part, so it shows
    what the model learned whatever its latent size: the ends show how much of a bag the code
    keeps, the steps whether the space between two bags decodes to bags.

    Args:
        images: (m, S, S, 1) or (m, S, S) in [0, 1] (or uint8), ``m >= 2 * pairs`` (fewer rows otherwise).
        path: where to write the PNG (atomically); ``None`` only returns the grid.

    Returns:
        the grid of :func:`image_grid`, ``rows x (steps + 2)`` tiles.
    """
    x = _as_gray_batch(images)[..., None]                        # (m, S, S, 1)
    pairs = min(int(pairs), len(x) // 2)
    if pairs < 1:
        raise ValueError(f"interpolation_grid needs at least 2 images, got {len(x)}")
    tiles = []
    for i in range(pairs):
        a, b = x[i], x[pairs + i]
        tiles += [a[None], interpolate(model, a, b, steps), b[None]]     # (1 + steps + 1, S, S, 1)
    return image_grid(np.concatenate(tiles), path, ncols=int(steps) + 2)


@dataclass
class ClassRows:
    """What :func:`class_samples` drew, row by row.

    Attributes:
        figure: the matplotlib ``Figure``.
        images: per row name (the classes, then ``"benign"``), its ``(n, S, S, 1)`` float32 images in [0, 1].
        boxes: per row name, one list of ``{"label", "box": [x1, y1, x2, y2]}`` per image: the exact box
            of each inserted threat (pixels, end exclusive); empty lists for the label-prior figure.
        kind: ``"composite"`` (threats multiplied into generated bags) or ``"label prior"``.
        found: with a classifier, per row the share of its images in which it finds the row's class
            (benign: in which it finds no threat); else None.
        real_recall: the classifier's own recall per class on real test images (its ``info``), to
            read ``found`` against; None when it has none.
    """

    figure: Any
    images: Dict[str, np.ndarray]
    boxes: Dict[str, list]
    kind: str
    found: Optional[Dict[str, float]] = None
    real_recall: Optional[Dict[str, float]] = None


def class_samples(model, sampler=None, path: Optional[PathLike] = None, n: int = 8, seed: int = 0,
                  threats: Optional[Sequence] = None, classifier=None, threats_from: str = "the training set"):
    """One row of ``n`` images per threat class and one of benign bags, each row labelled.

    Two ways to fill the rows:

    - **composite** (``threats`` given): ``n`` bags generated as benign (:func:`sample_images` with
      ``sampler``) are the benign row, unchanged; each threat row is the *same* bags with one threat
      of its class, drawn from ``threats``, multiplied in by Beer-Lambert
      (:func:`vae_keras.sampling.tip.project_labels`: random flip, quarter turn and scale, placed on
      the bag). Every class asked for is there by construction, its box is exact (the pixels the
      threat darkens) and framed in red one pixel outside it, so the frame hides none of it.
    - **label prior** (no ``threats``): each row asks the run for its class (a conditional model, or
      a sampler conditioned on labels: :attr:`vae_keras.training.run.Run.answers_labels`). On the
      quick demo's ``latent`` run its five rows were near copies (issue #23): the label did little.

    Args:
        model, sampler: the bag model and its latent sampler (default: the prior).
        path: where to write the PNG; None: only return.
        threats: :class:`~vae_keras.sampling.tip.ThreatCrop` s holding every class, e.g.
            ``tip.crops_from_prepared(DATA, "train", image_size=S, clean=OBJECT_CLEAN)``.
        classifier: a :class:`~vae_keras.evaluation.metrics.ThreatClassifier`: each row's label then
            says in how many of its images it finds the row's class (benign: no threat).
        threats_from: what ``threats`` are, for the figure's caption (e.g. "simulated threats cut
            from the training phantoms").

    Returns:
        :class:`ClassRows` (the figure, each row's images and boxes, the classifier's shares).

    Example:
        >>> crops = crops_from_prepared("data/phantoms", "train", image_size=64)
        >>> rows = class_samples(run.model, run.sampler, "class_samples.png", threats=crops)
        >>> rows.boxes["knife"][0]                      # [{"label": "knife", "box": [x1, y1, x2, y2]}]
    """
    names, n = [*CLASSES, "benign"], int(n)
    images, boxes = {}, {}
    if threats is not None:
        have = {t.label for t in threats}
        missing = [c for c in CLASSES if c not in have]
        if missing:
            raise ValueError(f"class_samples needs a threat of every class to insert, none of {missing} "
                             f"(it has {sorted(have)})")
        bags = sample_images(model, n, seed=seed, sampler=sampler, labels=[[] for _ in range(n)])  # (n, S, S, 1)
        for k, name in enumerate(CLASSES):
            images[name], _, boxes[name] = project_labels(bags, [[name]] * n, threats, seed=seed + 1 + k)
        images["benign"], boxes["benign"] = bags, [[] for _ in range(n)]
    else:
        for name in names:
            labels = [[] if name == "benign" else [name]] * n
            images[name] = sample_images(model, n, seed=seed, sampler=sampler, labels=labels)
            boxes[name] = [[] for _ in range(n)]
    found = real_recall = None
    if classifier is not None:
        found = class_recognition(classifier, {c: images[c] for c in CLASSES})
        found["benign"] = float(np.mean(np.all(classifier.predict(images["benign"]) < 0.5, axis=1)))
        real_recall = getattr(classifier, "info", {}).get("test_recall_per_class")

    fig = _new_figure((1.2 * n + 1.0, 1.25 * len(names) + (0.4 if threats is not None else 0.0)))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        frames = [[{"box": [x1 - 1, y1 - 1, x2 + 1, y2 + 1]} for x1, y1, x2, y2 in (b["box"] for b in bs)]
                  for bs in boxes[name]]                          # one pixel outside the exact box
        ax.imshow(boxed_grid(images[name], frames, ncols=n))          # (S, n*(S+1)-1, 3) uint8
        ax.set_xticks([])
        ax.set_yticks([])
        label = name.replace("_", " ")
        if found is not None:
            label += f"\n{found[name]:.0%} " + ("no threat" if name == "benign" else "found")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    if threats is not None:
        fig.suptitle(f"Benign: generated bags. Each class row: the same bags, one threat of its class multiplied in "
                     f"(Beer-Lambert; {threats_from}), its exact box framed in red", fontsize=9)
    if path is not None:
        _save_figure(fig, path)
    return ClassRows(fig, images, boxes, "composite" if threats is not None else "label prior", found, real_recall)


def finish_run_figures(run, data_images=None, seed: int = 0, class_rows: Optional[ClassRows] = None) -> list:
    """The figures every run ends with, written into its folder; returns the paths written.

    - ``training.gif``: the per-epoch sample grids of ``RUN/samples``;
    - ``loss_curves.png``: :func:`plot_history`;
    - ``latent_manifold.png`` for a 2-dimensional latent (the whole latent space on one grid);
      otherwise ``interpolations.png`` (:func:`interpolation_grid` over ``data_images``): a manifold
      over 2 of 64 dimensions decodes almost the same bag everywhere, so it would show nothing;
    - ``class_samples.png``: ``class_rows`` when given (e.g. the composite one
      :func:`vae_keras.viz.finish.finish_run` makes), else :func:`class_samples` from the label
      prior when the run can be asked for a class.

    Args:
        run: a trained :class:`~vae_keras.training.run.Run` (its model, sampler and history).
        data_images: (m, S, S, 1) real images in [0, 1] (see :func:`vae_keras.viz.finish.figure_images`).
        class_rows: a :class:`ClassRows` already drawn, saved as ``class_samples.png``.
    """
    run_dir, model, history = Path(run.run_dir), run.model, run.history
    written = []
    frames = sorted((run_dir / "samples").glob("epoch_*.png"))
    if frames:
        written.append(make_gif(frames, run_dir / "training.gif"))
    if history:
        plot_history(history, run_dir / "loss_curves.png")
        written.append(run_dir / "loss_curves.png")
    if int(model.latent_dim) == 2:
        latent_manifold(model, run_dir / "latent_manifold.png", data=data_images)
        written.append(run_dir / "latent_manifold.png")
    elif data_images is not None and len(data_images) >= 2:
        interpolation_grid(model, data_images, run_dir / "interpolations.png")
        written.append(run_dir / "interpolations.png")
    if class_rows is not None:
        written.append(_save_figure(class_rows.figure, run_dir / "class_samples.png"))
    elif run.answers_labels:
        class_samples(model, run.sampler, run_dir / "class_samples.png", seed=seed)
        written.append(run_dir / "class_samples.png")
    return written
