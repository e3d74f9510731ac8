"""Threat image projection (TIP): real threat items composited into other bags, with exact boxes.

TIP is the standard way X-ray screening systems and the X-ray detection literature (Rogers et
al. 2016, Bhowmik et al. 2019) make labelled threat images: a threat item is cut from a
labelled scan and projected into another bag. In a transmission image the right way to combine
two objects is Beer-Lambert: attenuations add along the ray, so transmissions *multiply*::

    I = I0 * exp(-(mu_a t_a + mu_b t_b)) = I0 * T_a * T_b

So a cut-out becomes a transmission map relative to its local background, ``T = I / I_bg``
(clipped to ``(0, 1]``), and projecting it into a target bag is ``I_new = I_target * T``:
the threat darkens whatever lies under it, the way a real knife in that bag would.

Pure numpy (plus Pillow for resizing): every function is testable without TensorFlow.

Example:
    >>> crops = crops_from_prepared("data/phantoms", split="train", image_size=64)
    >>> rng = np.random.default_rng(0)
    >>> image, boxes = project(bag, crops[0], rng)    # bag (64, 64) in [0, 1]
    >>> boxes                                       # [{"label": "knife", "box": [x1, y1, x2, y2]}]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from vae_keras.errors import DataError
from vae_keras.data.layouts import boxes_at_size
from vae_keras.sampling.generate import sample_images

from vae_keras.io.manifest import CLASSES
from vae_keras.io.manifest import MANIFEST, read_manifest
from vae_keras.data.pipeline import load_split

#: Pixels at or above this fraction of the brightest value count as background (no bag).
BACKGROUND_LEVEL = 0.92
#: A pasted pixel whose transmission is below ``1 - FOOTPRINT_TOL`` belongs to the threat's box.
FOOTPRINT_TOL = 0.02


@dataclass
class ThreatCrop:
    """One threat item as a transmission map.

    Attributes:
        label: its class (one of :data:`vae_keras.io.manifest.CLASSES`).
        transmission: (h, w) float32 in (0, 1]: 1 = nothing there, 0.1 = 90% of the beam absorbed.
        source: where it was cut from (``train/phantom_000012.png#0``).
    """

    label: str
    transmission: np.ndarray
    source: str = ""


# -- cutting --------------------------------------------------------------------------------------
def _as_float_image(image) -> np.ndarray:
    """(H, W) or (H, W, 1), uint8 or float in [0, 1] -> (H, W) float32 in [0, 1]."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"expected one grayscale image (H, W) or (H, W, 1), got shape {a.shape}")
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def _int_box(box, height: int, width: int) -> Tuple[int, int, int, int]:
    """A float box [x1, y1, x2, y2] -> integer pixel bounds covering it, clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, y1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    x2, y2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
    return x1, y1, x2, y2


#: How a boxed threat is cut out of its bag (:func:`cut_threats`' keyword arguments):
#: ``"box"`` divides the box by one level (its border's 90th percentile) and keeps every pixel, so
#: the bag's clutter inside the box comes along, a textured rectangle; ``"alone"`` divides it by
#: the bag behind the threat as the border says it varies across the box (:func:`background_field`)
#: and drops what stays lighter than 0.85, so a faint razor blade stays and the bag's gradient and
#: light clutter go. Dark clutter overlapping the threat stays in both: nothing in one view tells
#: it from the threat.
CUTS = {"box": {}, "alone": {"field": True, "clean": 0.15}}


def background_field(a: np.ndarray, percentile: float = 80.0, window: float = 0.4) -> np.ndarray:
    """(h, w) estimate of the bag behind a boxed threat, from the box's border alone.

    Each of the four border lines is smoothed by a running ``percentile`` over ``window`` of its
    length (a tight box touches its threat on every side: the high percentile steps over those
    dark pixels), and the four lines are blended across the box by a Coons patch (bilinear
    transfinite interpolation), so a bag that darkens from one side to the other is divided out
    instead of leaving a grey wedge.

    Args:
        a: (h, w) float crop, the box plus a margin of bag.
    """
    a = np.asarray(a, np.float32)
    h, w = a.shape

    def smooth(line: np.ndarray) -> np.ndarray:                       # (n,) -> (n,)
        k = max(5, int(len(line) * window) | 1)
        padded = np.pad(line, k // 2, mode="edge")
        return np.percentile(np.lib.stride_tricks.sliding_window_view(padded, k), percentile, axis=1)

    top, bottom, left, right = smooth(a[0]), smooth(a[-1]), smooth(a[:, 0]), smooth(a[:, -1])
    u = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]            # (1, w)
    v = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]            # (h, 1)
    tl, tr = (top[0] + left[0]) / 2, (top[-1] + right[0]) / 2
    bl, br = (bottom[0] + left[-1]) / 2, (bottom[-1] + right[-1]) / 2
    field = ((1 - v) * top[None] + v * bottom[None] + (1 - u) * left[:, None] + u * right[:, None]
             - ((1 - u) * (1 - v) * tl + u * (1 - v) * tr + (1 - u) * v * bl + u * v * br))
    return np.maximum(field, 1e-3).astype(np.float32)


def transmission_of(crop, background: Optional[float] = None, percentile: float = 90.0,
                    clean: float = 0.0, field: bool = False) -> np.ndarray:
    """A crop's transmission relative to its local background: ``T = clip(I / I_bg, eps, 1)``.

    Args:
        crop: (h, w) image, uint8 or float in [0, 1].
        background: ``I_bg``; default the ``percentile``-th percentile of the crop's one-pixel
            border (the bag around the threat: brighter border pixels are where it is thinnest).
        clean: transmissions above ``1 - clean`` are set to exactly 1, which drops the faint bag
            texture that came along with the cut (0 keeps everything).
        field: divide by :func:`background_field` (a level that varies across the crop) instead of
            one level (``background`` must then be None).

    Returns:
        (h, w) float32 in (0, 1].
    """
    a = _as_float_image(crop)
    if a.size == 0:
        raise ValueError("empty crop")
    if field:
        if background is not None:
            raise ValueError("give a background level or field=True, not both")
        background = background_field(a)
    elif background is None:
        border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
        background = float(np.percentile(border, percentile))
    background = np.maximum(background, 1e-3)
    t = np.clip(a / background, 1e-3, 1.0).astype(np.float32)
    if clean > 0:
        t[t > 1.0 - clean] = 1.0
    return t


def cut_threats(image, boxes: Sequence[dict], source: str = "", scale: float = 1.0, min_side: int = 3,
                margin: int = 1, **kwargs) -> List[ThreatCrop]:
    """The threats of one labelled image as :class:`ThreatCrop` s.

    Args:
        image: (H, W[, 1]) image the boxes refer to (after any resize: see ``scale``).
        boxes: manifest boxes ``[{"label": "knife", "box": [x1, y1, x2, y2]}]``.
        scale: factor from the boxes' pixel coordinates to ``image`` (64 / 224 for a 224 set
            loaded at 64).
        min_side: boxes smaller than this (in pixels, after scaling) are skipped, and so are
            threats that darken no pixel by more than :data:`FOOTPRINT_TOL` (:func:`is_empty`).
        margin: pixels of bag kept around each box, so the border estimates the background.
        **kwargs: passed to :func:`transmission_of` (``percentile``, ``clean``, ``field``: one of
            :data:`CUTS`).
    """
    a = _as_float_image(image)
    h, w = a.shape
    crops = []
    for k, b in enumerate(boxes):
        if b.get("label") not in CLASSES:
            continue
        x1, y1, x2, y2 = _int_box([v * scale for v in b["box"]], h, w)
        if x2 - x1 < min_side or y2 - y1 < min_side:
            continue
        x1, y1 = max(0, x1 - margin), max(0, y1 - margin)
        x2, y2 = min(w, x2 + margin), min(h, y2 + margin)
        t = transmission_of(a[y1:y2, x1:x2], **kwargs)
        if is_empty(t):                                           # too faint to see: no box around nothing
            continue
        crops.append(ThreatCrop(b["label"], t, f"{source}#{k}"))
    return crops


def crops_from_prepared(data_dir, split: str = "train", image_size: Optional[int] = None,
                        indices: Optional[Sequence[int]] = None, **kwargs) -> List[ThreatCrop]:
    """Every boxed threat of a prepared data set's ``split`` (or of the rows ``indices`` of it).

    Images are decoded with :func:`vae_keras.data.load_split` (so ``image_size`` resizes like the
    training pipeline does) and the manifest's boxes are scaled to match.
    """

    images, _ = load_split(data_dir, split, image_size=image_size)          # (n, S, S, 1) uint8
    rows = [r for r in read_manifest(Path(data_dir) / MANIFEST) if r.split == split]  # load_split's order
    return crops_from_arrays(images, boxes_at_size(data_dir, rows, images.shape[1]), indices=indices,
                             sources=[r.path for r in rows], **kwargs)


def crops_from_arrays(images, boxes_per_image: Sequence[Sequence[dict]], native_sides=None,
                      indices: Optional[Sequence[int]] = None, sources=None, **kwargs) -> List[ThreatCrop]:
    """:func:`cut_threats` over a set: ``images`` (n, S, S[, 1]), one box list per image.

    ``native_sides[i]`` is the side the boxes of image ``i`` are given in (default ``S``).
    """
    images = np.asarray(images)
    size = images.shape[1]
    idx = range(len(images)) if indices is None else indices
    crops = []
    for i in idx:
        scale = 1.0 if native_sides is None else size / float(native_sides[i])
        crops += cut_threats(images[i], boxes_per_image[i], source=sources[i] if sources else str(i),
                             scale=scale, **kwargs)
    return crops


# -- projecting -----------------------------------------------------------------------------------
def resize_patch(t: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    out = np.asarray(Image.fromarray(t.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR), np.float32)
    return np.clip(out, 1e-3, 1.0)


def transform_crop(t: np.ndarray, rng: np.random.Generator, scale_range=(0.8, 1.25), rotate: bool = True,
                   flip: bool = True, max_side: Optional[int] = None) -> np.ndarray:
    """A random flip, rotation by a multiple of 90 degrees and rescale of a transmission map."""
    if flip and rng.random() < 0.5:
        t = t[:, ::-1]
    if rotate:
        t = np.rot90(t, int(rng.integers(4)))
    lo, hi = scale_range
    s = float(rng.uniform(lo, hi))
    h, w = t.shape
    if max_side is not None:                                      # never larger than the target
        s = min(s, max_side / max(h, w))
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    return np.ascontiguousarray(t) if (nh, nw) == (h, w) else resize_patch(np.ascontiguousarray(t), nh, nw)


def bag_region(image, level: float = BACKGROUND_LEVEL) -> np.ndarray:
    """Boolean (H, W) mask of the bag: pixels darker than ``level`` times the image's 99th percentile."""
    a = _as_float_image(image)
    return a < level * max(float(np.percentile(a, 99)), 1e-3)


def footprint_box(t: np.ndarray, x: int, y: int, tol: float = FOOTPRINT_TOL) -> Optional[List[int]]:
    """The box [x1, y1, x2, y2] (exclusive end) of the pixels of ``t`` pasted at (x, y) that attenuate.

    The box is tight: it holds pixels with ``t < 1 - tol`` and each of its four edges touches one.
    None when no pixel attenuates (an empty object has no box: callers reject it).
    """
    ys, xs = np.nonzero(t < 1.0 - tol)
    if len(xs) == 0:
        return None
    return [int(x + xs.min()), int(y + ys.min()), int(x + xs.max() + 1), int(y + ys.max() + 1)]


def is_empty(t: np.ndarray, tol: float = FOOTPRINT_TOL) -> bool:
    """Whether a transmission map darkens no pixel by more than ``tol`` (nothing to label)."""
    return not bool(np.any(np.asarray(t) < 1.0 - tol))


def composite(target, t: np.ndarray, x: int, y: int, tol: float = FOOTPRINT_TOL) -> np.ndarray:
    """Beer-Lambert: ``target`` (H, W) in [0, 1] times the transmission ``t`` placed with its corner at (x, y).

    Pixels of ``t`` at or above ``1 - tol`` count as "nothing there" (transmission 1): they lie
    outside the threat's :func:`footprint_box`, and a labelled box must hold every pixel the
    threat changes, so the faint halo a cut-out carries from its bag is not pasted.
    """
    out = _as_float_image(target).copy()
    h, w = t.shape
    if x < 0 or y < 0 or y + h > out.shape[0] or x + w > out.shape[1]:
        raise ValueError(f"a {h}x{w} patch at ({x}, {y}) does not fit a {out.shape[0]}x{out.shape[1]} image")
    out[y:y + h, x:x + w] *= np.where(t < 1.0 - tol, t, 1.0)
    return out


def project(target, crop: ThreatCrop, rng: np.random.Generator, region: Optional[np.ndarray] = None,
            scale_range=(0.8, 1.25), rotate: bool = True, flip: bool = True,
            tries: int = 20) -> Tuple[np.ndarray, List[dict]]:
    """Project one threat into ``target`` at a random place inside the bag.

    Args:
        target: (H, W[, 1]) bag, uint8 or float in [0, 1].
        crop: the threat (its transmission map).
        rng: numpy random generator (flip, rotation, scale, position).
        tries: transforms to try when a rescale leaves no attenuating pixel (a faint, thin item).
        region: boolean (H, W) mask of allowed centres; default :func:`bag_region` of ``target``
            (the whole image when it has no bag, e.g. a blank one).

    Returns:
        ``(image (H, W) float32 in [0, 1], [{"label": ..., "box": [x1, y1, x2, y2]}])``; the box is
        the footprint of the pixels the threat darkens, in pixels, end exclusive (numpy slices):
        tight (:func:`footprint_box`).

    Raises:
        DataError: the crop darkens nothing (an empty object must not become a labelled box).
    """
    img = _as_float_image(target)
    H, W = img.shape
    if is_empty(crop.transmission):
        raise DataError(f"threat crop {crop.source or crop.label!r} darkens no pixel: it would be a box around nothing")
    for _ in range(max(1, int(tries))):                           # a rescale can fade a faint, thin item away
        t = transform_crop(crop.transmission, rng, scale_range, rotate, flip, max_side=min(H, W))
        if not is_empty(t):
            break
    else:
        raise DataError(f"threat crop {crop.source or crop.label!r} fades away when rescaled ({tries} tries)")
    h, w = t.shape
    if region is None:
        region = bag_region(img)
    # corners whose patch lies on the bag: its centre and its four corners (else its centre only,
    # else anywhere the patch fits), so that a threat does not hang out of the bag
    centre = region[h // 2:H - h + h // 2 + 1, w // 2:W - w + w // 2 + 1]
    inside = (centre & region[:H - h + 1, :W - w + 1] & region[h - 1:, :W - w + 1]
              & region[:H - h + 1, w - 1:] & region[h - 1:, w - 1:])
    ys, xs = np.nonzero(inside if inside.any() else centre)
    if len(xs) == 0:
        ys, xs = np.mgrid[0:H - h + 1, 0:W - w + 1].reshape(2, -1)
    k = int(rng.integers(len(xs)))
    x, y = int(xs[k]), int(ys[k])
    return composite(img, t, x, y), [{"label": crop.label, "box": footprint_box(t, x, y)}]


def tip_images(bags, crops: Sequence[ThreatCrop], n: int, seed: int = 0, threats=(1, 2),
               bag_boxes: Optional[Sequence[Sequence[dict]]] = None, classes: Optional[Sequence[str]] = None,
               **kwargs):
    """``n`` TIP images: each a random bag of ``bags`` with 1-2 random threats projected into it.

    Args:
        bags: (m, S, S[, 1]) target bags (uint8 or [0, 1]).
        crops: the threat items to project.
        threats: (min, max) number of threats per image.
        bag_boxes: the boxes the bags already have (kept in the output, so a bag that held a
            knife still says so); default none (benign bags).
        classes: only project crops of these classes (e.g. ``["knife"]``); default all.
        **kwargs: passed to :func:`project` (``scale_range``, ``rotate``, ``flip``).

    Returns:
        ``(images (n, S, S, 1) float32 in [0, 1], labels (n, C) multi-hot float32,
        boxes: n lists of {"label", "box"}, bag_index (n,) int)``.
    """
    bags = np.asarray(bags)
    if classes is not None:
        unknown = sorted(set(classes) - set(CLASSES))
        if unknown:
            raise DataError(f"unknown class(es) {unknown}; known: {CLASSES}")
        crops = [c for c in crops if c.label in classes]
    if not len(crops):
        raise DataError("no threat crops to project: the data set has no boxes"
                        + (f" of class(es) {list(classes)}" if classes is not None else ""))
    if len(bags) == 0:
        raise ValueError("no target bags to project threats into")
    rng = np.random.default_rng(seed)
    size = bags.shape[1:3]
    images = np.empty((int(n), *size, 1), np.float32)
    labels = np.zeros((int(n), len(CLASSES)), np.float32)
    boxes, which = [], np.empty(int(n), np.int64)
    for i in range(int(n)):
        j = int(rng.integers(len(bags)))
        img = _as_float_image(bags[j])
        region = bag_region(img)
        these = [dict(b) for b in bag_boxes[j]] if bag_boxes is not None else []
        for _ in range(int(rng.integers(threats[0], threats[1] + 1))):
            img, new = project(img, crops[int(rng.integers(len(crops)))], rng, region=region, **kwargs)
            these += new
        images[i, ..., 0] = img
        for b in these:
            labels[i, CLASSES.index(b["label"])] = 1.0
        boxes.append(these)
        which[i] = j
    return images, labels, boxes, which


def crops_by_class(crops: Sequence[ThreatCrop]) -> dict:
    """``{class: [crops]}`` for the classes that have at least one crop."""
    out: dict = {}
    for c in crops:
        out.setdefault(c.label, []).append(c)
    return out


def project_labels(bags, labels_per_image: Sequence[Sequence[str]], crops: Sequence[ThreatCrop], seed: int = 0,
                   one_each: bool = False, **kwargs):
    """Bag ``i`` gets one projected threat of each class named in ``labels_per_image[i]``.

    The hybrid export: ``bags`` are benign (e.g. VAE-generated), the threats real, so every
    image has exact boxes; an empty label list leaves the bag as it is (a negative example).
    Threats are drawn at random from ``crops``; with ``one_each`` they are used in order, each
    once while they last (generated threats, one made per request: :mod:`vae_keras.sampling.objects`).

    Returns:
        ``(images (n, S, S, 1) float32 in [0, 1], labels (n, C) float32, boxes: n lists)``.
    """
    bags = np.asarray(bags)
    if len(labels_per_image) != len(bags):
        raise ValueError(f"need one label list per bag: {len(bags)} bags, {len(labels_per_image)} label lists")
    by_class = crops_by_class(crops)
    wanted = sorted({name for names in labels_per_image for name in names})
    missing = [name for name in wanted if name not in by_class]
    if missing:
        raise DataError(f"no boxed {missing} item in the threat source to project (it has: {sorted(by_class)})")
    rng = np.random.default_rng(seed)
    images = np.empty((len(bags), *bags.shape[1:3], 1), np.float32)
    labels = np.zeros((len(bags), len(CLASSES)), np.float32)
    boxes = []
    used = {name: 0 for name in by_class}
    for i, names in enumerate(labels_per_image):
        img = _as_float_image(bags[i])
        region = bag_region(img)
        these = []
        for name in names:
            pool = by_class[name]
            k = used[name] % len(pool) if one_each else int(rng.integers(len(pool)))
            used[name] += 1
            img, new = project(img, pool[k], rng, region=region, **kwargs)
            these += new
            labels[i, CLASSES.index(name)] = 1.0
        images[i, ..., 0] = img
        boxes.append(these)
    return images, labels, boxes


# -- the hybrid mode ----------------------------------------------------------------------------
def hybrid_samples(model, labels_per_image: Sequence[Sequence[str]], crops, seed: int = 0,
                   temperature: float = 1.0, sampler=None, batch_size: int = 64, **kwargs):
    """Benign bags from the VAE with real threat items projected into them (exact boxes).

    Args:
        model: a trained CVAE (a conditional one is asked for benign bags; an unconditional
            one's samples are used as they are).
        labels_per_image: the classes each image must contain (one projected item per class);
            an empty list gives a plain generated bag (a negative).
        crops: :class:`vae_keras.tip.ThreatCrop` s, e.g. ``tip.crops_from_prepared(DATA, "train")``.
        **kwargs: passed to :func:`vae_keras.tip.project` (``scale_range``, ``rotate``, ``flip``).

    Returns:
        ``(images (n, S, S, 1) float32, labels (n, C) float32, boxes: n lists)``.
    """
    n = len(labels_per_image)
    bags = sample_images(model, n, temperature=temperature, seed=seed, batch_size=batch_size,
                         labels=[[] for _ in range(n)], sampler=sampler)     # (n, S, S, 1), benign
    return project_labels(bags, labels_per_image, crops, seed=seed, **kwargs)
