"""Generative threat insertion: threats from an object VAE placed into real bags, with exact boxes.

Why: every reported gain from synthetic X-ray data keeps the real bags and synthesises only the
threat (threat image projection, simulated 3-D threats, GAN or diffusion items composited into
real scans: issue #15). Whole generated bags are still the weak part of our VAEs; a threat alone
is what the object VAE (:mod:`vae_keras.sampling.objects`) learns well. So this module takes a
folder of bags -- real benign scans, or phantoms -- and inserts *generated* threats into them:

1. draw one new object per requested class from the object VAE (empty draws are redrawn);
2. give it a realistic size: its longest side drawn from the object set's box statistics
   (:func:`object_scales`, fractions of the bag's side), else the size the VAE drew it at (the
   object VAE is trained at the bag's scale: its canvas is half the bag);
3. flip it and rotate it by any angle (:func:`rotate_transmission`);
4. place it where *every* pixel it darkens lies on the bag (:func:`placements`: never on the
   background, never on another inserted threat) and its box overlaps each box already in the
   image (the bag's own, the threats inserted before it) by an IoU of at most ``max_iou``
   (:func:`iou_ok`; 0: not at all), shrinking it if nothing fits;
5. combine by the Beer-Lambert product, ``I_new = I_bag * T``: the bag's clutter on top of or
   under the threat darkens it too, so it is partly occluded the way a real one would be;
6. its box is the tight footprint of the pixels it darkens (:func:`vae_keras.sampling.tip.footprint_box`).

    python -m vae_keras generate runs/objects --into data/phantoms --n 500 --label knife --format yolo --out OUT

Example:
    >>> images, labels, boxes, which = insert_threats(bags, object_model, [["knife"], ["handgun"]], seed=0)
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike
from vae_keras.io.detection import FORMATS, export_detection
from vae_keras.io.manifest import CLASSES, MANIFEST, read_manifest
from vae_keras.data.layouts import boxes_at_size
from vae_keras.data.pipeline import load_split
from vae_keras.sampling.objects import OBJECT_SCALE, generated_objects, open_objects
from vae_keras.sampling.tip import FOOTPRINT_TOL, bag_region, composite, footprint_box, resize_patch

#: Smallest size a threat is shrunk to (fraction of its drawn size) while looking for room in a bag.
MIN_SHRINK = 0.5
#: Random size jitter around the drawn size when there are no box statistics.
SIZE_JITTER = (0.85, 1.15)


# -- one threat: size and pose ----------------------------------------------------------------------
def _trim(t: np.ndarray) -> Optional[np.ndarray]:
    """Haze (``t > 1 - FOOTPRINT_TOL``) set to exactly 1, cropped to the footprint; None when empty."""
    t = np.where(t > 1.0 - FOOTPRINT_TOL, 1.0, np.clip(t, 1e-3, 1.0)).astype(np.float32)
    ys, xs = np.nonzero(t < 1.0)
    if len(xs) == 0:
        return None
    return np.ascontiguousarray(t[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def rotate_transmission(t: np.ndarray, degrees: float, flip: bool = False) -> Optional[np.ndarray]:
    """A transmission map flipped (left-right) and rotated by ``degrees`` (any angle), trimmed.

    The canvas grows to hold the whole rotated object; new pixels are 1 (nothing there).
    Returns None when the result darkens nothing.
    """
    from PIL import Image

    t = np.ascontiguousarray(t[:, ::-1] if flip else t, np.float32)
    img = Image.fromarray(t, mode="F").rotate(float(degrees), resample=Image.BILINEAR, expand=True, fillcolor=1.0)
    return _trim(np.asarray(img, np.float32))


def resize_longest(t: np.ndarray, side: float) -> Optional[np.ndarray]:
    """``t`` resized (aspect kept) so that its longest side is ``side`` pixels, trimmed; None when empty."""
    h, w = t.shape
    f = float(side) / max(h, w)
    nh, nw = max(1, int(round(h * f))), max(1, int(round(w * f)))
    return _trim(t if (nh, nw) == (h, w) else resize_patch(t, nh, nw))


def object_scales(object_data: PathLike) -> Dict[str, np.ndarray]:
    """Per class, the longest side of each threat of an object set, as a fraction of its bag's side.

    An object set (``python -m vae_keras objects``) centres each threat, at its size in the bag,
    on a canvas of ``bag / OBJECT_SCALE``; so ``box side / canvas / OBJECT_SCALE`` is the threat's
    size relative to the bag, whatever resolution either is used at.
    """
    out: Dict[str, list] = {}
    for row in read_manifest(Path(object_data) / MANIFEST):
        if row.split != "train":
            continue
        for b in row.boxes:
            x1, y1, x2, y2 = b["box"]
            canvas = _canvas_of(object_data, row)
            out.setdefault(b["label"], []).append(max(x2 - x1, y2 - y1) / canvas / OBJECT_SCALE)
    if not out:
        raise DataError(f"{object_data} has no boxed threat in its train split: not an object set")
    return {c: np.asarray(v, np.float32) for c, v in out.items()}


def _canvas_of(object_data, row) -> int:
    from PIL import Image

    with Image.open(Path(object_data) / row.path) as im:
        return int(im.size[0])


# -- where it may go -------------------------------------------------------------------------------
def placements(region: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Corners (y, x) where every pixel of ``mask`` (h, w) falls on ``region`` (H, W): bool (H-h+1, W-w+1).

    The count of mask pixels off the bag at every shift is one cross-correlation, done by FFT
    (a sliding window of a 70-pixel threat over a 224 bag would hold 470 MB).
    """
    H, W = region.shape
    h, w = mask.shape
    if h > H or w > W:
        return np.zeros((0, 0), bool)
    shape = (H + h, W + w)                                       # no wrap-around for the valid shifts
    off = np.fft.rfft2((~region).astype(np.float64), shape)
    m = np.fft.rfft2(mask.astype(np.float64), shape)
    count = np.fft.irfft2(off * np.conj(m), shape)[:H - h + 1, :W - w + 1]   # (H-h+1, W-w+1)
    return count < 0.5


def box_iou(a, b) -> float:
    """Intersection over union of two boxes ``[x1, y1, x2, y2]`` (end exclusive); 0 when either is empty."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, iw) * max(0.0, ih)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def iou_ok(ys: np.ndarray, xs: np.ndarray, h: int, w: int, boxes: Sequence, max_iou: float) -> np.ndarray:
    """Which corners (``ys``, ``xs``) put an ``h`` x ``w`` box at IoU <= ``max_iou`` with every one of
    ``boxes`` (``[x1, y1, x2, y2]``): bool like ``xs``. ``max_iou`` 0 means no overlap at all
    (touching edges are allowed: their intersection has no area)."""
    keep = np.ones(len(xs), bool)
    x1, y1 = xs.astype(np.float64), ys.astype(np.float64)
    for bx1, by1, bx2, by2 in boxes:
        inter = np.clip(np.minimum(x1 + w, bx2) - np.maximum(x1, bx1), 0, None) * \
            np.clip(np.minimum(y1 + h, by2) - np.maximum(y1, by1), 0, None)
        union = h * w + (bx2 - bx1) * (by2 - by1) - inter
        keep &= inter <= max_iou * union + 1e-9 * (max_iou > 0)
    return keep


def _place(region, t, rng, avoid: Sequence = (), max_iou: float = 0.0) -> Optional[tuple]:
    """A random corner for ``t`` fully on ``region`` whose box overlaps each box of ``avoid`` by at
    most ``max_iou`` (:func:`iou_ok`), shrinking ``t`` down to :data:`MIN_SHRINK`; or None."""
    side = max(t.shape)
    f = 1.0
    while f >= MIN_SHRINK:
        tt = t if f == 1.0 else resize_longest(t, max(2.0, side * f))
        if tt is not None:
            ys, xs = np.nonzero(placements(region, tt < 1.0))
            box = footprint_box(tt, 0, 0)                 # the box it will get, relative to its corner
            if len(xs) and len(avoid) and box is not None:
                keep = iou_ok(ys + box[1], xs + box[0], box[3] - box[1], box[2] - box[0], avoid, max_iou)
                ys, xs = ys[keep], xs[keep]
            if len(xs):
                k = int(rng.integers(len(xs)))
                return tt, int(xs[k]), int(ys[k])
        f *= 0.85
    return None


def _place_threats(floats, regions, bag_boxes, threats, rng, tries: int, max_iou: float) -> Optional[tuple]:
    """All of ``threats`` (``(class, transmission)`` pairs) in one bag, tried in up to ``tries`` random
    bags: ``(image (S, S), its boxes, bag index)``, or None when no bag tried had room for them all."""
    for _ in range(max(1, int(tries))):
        j = int(rng.integers(len(floats)))
        img, region = floats[j].copy(), regions[j].copy()
        these = [dict(b) for b in bag_boxes[j]] if bag_boxes is not None else []
        if max_iou == 0:                                      # not a pixel over the bag's own (a fast pre-filter)
            for x1, y1, x2, y2 in (b["box"] for b in these):
                region[max(0, int(np.floor(y1))):int(np.ceil(y2)), max(0, int(np.floor(x1))):int(np.ceil(x2))] = False
        for c, t in threats:
            spot = _place(region, t, rng, avoid=[b["box"] for b in these], max_iou=max_iou)
            if spot is None:
                break
            tt, x, y = spot
            img = composite(img, tt, x, y)
            these.append({"label": c, "box": footprint_box(tt, x, y)})
            region[max(0, y - 1):y + tt.shape[0] + 1, max(0, x - 1):x + tt.shape[1] + 1] = False  # no overlap
        else:
            return img, these, j
    return None


# -- the images ------------------------------------------------------------------------------------
def _draw_crops(crops, counts: Dict[str, int], seed: int) -> list:
    """``counts[c]`` threats of each class ``c`` drawn at random (with replacement) from ``crops``."""
    rng = np.random.default_rng(seed)
    out = []
    for c in sorted(counts):
        these = [cr for cr in crops if cr.label == c]
        if not these:
            raise DataError(f"no {c} among the {len(crops)} threats given to insert (they have: "
                            f"{sorted({cr.label for cr in crops})})")
        out += [these[int(k)] for k in rng.integers(len(these), size=int(counts[c]))]
    return out


def insert_threats(bags, object_model, labels_per_image: Sequence[Sequence[str]], seed: int = 0,
                   scales: Optional[Dict[str, np.ndarray]] = None, bag_boxes: Optional[Sequence[Sequence[dict]]] = None,
                   temperature: float = 1.0, sampler=None, batch_size: int = 64, rotate: bool = True,
                   object_name: str = "objects", tries: int = 20, stats: Optional[dict] = None,
                   max_iou: float = 0.0, fewer_if_no_room: bool = False):
    """Images made of a bag from ``bags`` with one generated threat per class named for it.

    Args:
        bags: (m, S, S[, 1]) bags, uint8 or float in [0, 1] (benign ones, unless ``bag_boxes`` says
            what they already hold). Each output image takes a bag drawn at random.
        object_model: an object VAE's model (``open_objects(RUN).model``, :mod:`vae_keras.sampling.objects`),
            or a list of :class:`~vae_keras.sampling.tip.ThreatCrop` s to draw the threats from at
            random (e.g. the phantom renderer's threats: the simulated-threats recipe of AXIS).
        labels_per_image: the classes of each output image, e.g. ``[["knife"], [], ["gun", "knife"]]``
            (an empty list gives the bag as it is: a negative).
        scales: per class, threat sizes as fractions of the bag's side (:func:`object_scales`); each
            threat's longest side is one of them drawn at random. Default: the size the object VAE
            drew it at, jittered by :data:`SIZE_JITTER`.
        bag_boxes: the boxes the bags already have: kept in the output, and a new threat's box
            overlaps each of them by an IoU of at most ``max_iou``.
        max_iou: the most a new threat's box may overlap any other box of its image, the bag's own
            or another new one (intersection over union; default 0: not at all, and a new threat
            then darkens no pixel inside a box the bag holds). New threats never darken the same pixel.
        rotate: flip and rotate each threat by a random angle (else it is inserted as drawn).
        tries: bags to try for one image before giving up (a bag too small for its threats).
        fewer_if_no_room: when no bag of ``tries`` has room for all of an image's threats, drop its
            last threat and try again (down to one) instead of raising: for a few small real bags
            that already hold large threats, where one unlucky pair would stop a whole pool. The
            image's labels and boxes are those of the threats it got. Counted in ``stats["dropped"]``.
        stats: updated in place with the object VAE's ``drawn``/``rejected`` counts and, with
            ``fewer_if_no_room``, the ``dropped`` threats.

    Returns:
        ``(images (n, S, S, 1) float32 in [0, 1], labels (n, C) float32, boxes: n lists of
        {"label", "box"}, bag_index (n,) int)``; boxes are tight, end exclusive, and every pixel
        a threat darkens lies on the bag (:func:`vae_keras.sampling.tip.bag_region`).

    Raises:
        DataError: an unknown class, no bags, or no bag with room for a threat after ``tries`` bags.
    """
    if not 0.0 <= float(max_iou) < 1.0:
        raise DataError(f"max_iou is the most a new threat's box may overlap an existing one, in [0, 1); got {max_iou}")
    bags = np.asarray(bags)
    if bags.ndim == 4:
        bags = bags[..., 0]
    if len(bags) == 0:
        raise DataError("no bags to insert threats into")
    floats = bags.astype(np.float32) / 255.0 if bags.dtype == np.uint8 else bags.astype(np.float32)
    unknown = sorted({c for names in labels_per_image for c in names} - set(CLASSES))
    if unknown:
        raise DataError(f"unknown class(es) {unknown}; known: {CLASSES}")
    size = int(floats.shape[1])
    counts: Dict[str, int] = {}
    for names in labels_per_image:
        for c in names:
            counts[c] = counts.get(c, 0) + 1
    if isinstance(object_model, (list, tuple)):           # given threats: one drawn per request
        crops = _draw_crops(object_model, counts, seed)
    else:                     # one new object per requested threat, on the canvas of this bag size (its learned scale)
        crops = generated_objects(object_model, counts, size, seed=seed, temperature=temperature, sampler=sampler,
                                  batch_size=batch_size, name=object_name, stats=stats) if counts else []
    pool = {c: [cr for cr in crops if cr.label == c] for c in counts}
    used = {c: 0 for c in counts}
    regions = [bag_region(b) for b in floats]
    rng = np.random.default_rng(seed)
    n = len(labels_per_image)
    images = np.empty((n, size, size, 1), np.float32)
    labels = np.zeros((n, len(CLASSES)), np.float32)
    boxes, which = [], np.empty(n, np.int64)
    for i, names in enumerate(labels_per_image):
        threats = []
        for c in names:                                   # size and pose, once per threat
            t = pool[c][used[c]].transmission
            used[c] += 1
            if scales is not None and c in scales and len(scales[c]):
                side = float(rng.choice(scales[c])) * size
            else:
                side = max(t.shape) * float(rng.uniform(*SIZE_JITTER))
            posed = resize_longest(t, max(2.0, min(side, size - 2)))
            if rotate and posed is not None:
                posed = rotate_transmission(posed, float(rng.uniform(0, 360)), flip=bool(rng.random() < 0.5))
            threats.append((c, t if posed is None else posed))    # faded away when resized: as drawn
        placed = _place_threats(floats, regions, bag_boxes, threats, rng, tries, float(max_iou))
        while placed is None and fewer_if_no_room and len(threats) > 1:
            threats = threats[:-1]                            # no bag had room for all: one threat fewer
            if stats is not None:
                stats["dropped"] = stats.get("dropped", 0) + 1
            placed = _place_threats(floats, regions, bag_boxes, threats, rng, tries, float(max_iou))
        if placed is None:
            raise DataError(f"no room for {names} inside any of {tries} bags tried (threats go only where every "
                            f"pixel they darken lies on the bag, their boxes overlapping others by an IoU of at most "
                            f"{max_iou:g}): use larger bags, fewer threats per image or a larger max_iou")
        img, these, j = placed
        images[i, ..., 0] = img
        for b in these:
            labels[i, CLASSES.index(b["label"])] = 1.0
        boxes.append(these)
        which[i] = j
    return images, labels, boxes, which


def insert_into(objects, bags_dir: PathLike, n: int, out_dir: PathLike, labels=None,
                fmt: str = "yolo", seed: int = 0, temperature: float = 1.0, split: Optional[str] = None,
                image_size: Optional[int] = None, benign_only: bool = True, object_data: Optional[PathLike] = None,
                batch_size: int = 64, overwrite: bool = True, max_iou: float = 0.0):
    """``generate OBJECT_RUN --into BAGS``: ``n`` bags of a prepared folder with generated threats, exported.

    Args:
        objects: the threat generator: an object run (``train --config objects``), as a
            :class:`~vae_keras.training.run.Run` (used as it is, sampler settings included) or its folder.
        bags_dir: a prepared folder (``prepare`` of real scans, or ``phantoms``).
        labels: the classes every image gets (``["knife"]``), or one list per image; ``None``: one
            threat per image, classes drawn with the object run's training frequencies.
        split: the manifest split the bags come from; default every split.
        image_size: side to load the bags at; default their own (they must then agree).
        benign_only: only bags whose manifest lists no threat (the default); ``False`` takes every
            bag, its own boxes kept in the export (GDXray-style sets have no benign bag), except a
            bag that lists a threat without a box (an unlabelled positive).
        max_iou: the most a new threat's box may overlap any other box of its image, the bag's own
            or another new one (IoU; default 0: not at all).
        object_data: the object set the run was trained on: threat sizes from its boxes
            (:func:`object_scales`); default the sizes the object VAE draws.

    Returns:
        the manifest rows written to ``out_dir/manifest.csv``.
    """
    if fmt not in FORMATS:
        raise DataError(f"format must be one of {FORMATS}, got {fmt!r}")
    bags_dir = Path(bags_dir)
    if not (bags_dir / MANIFEST).is_file():
        raise DataError(f"{bags_dir} is not a prepared folder (no {MANIFEST}): make one with `prepare` or `phantoms`")
    rows = read_manifest(bags_dir / MANIFEST)
    splits = [split] if split else sorted({r.split for r in rows})
    images, kept, kept_boxes = [], [], []
    for s in splits:
        x, _ = load_split(bags_dir, s, image_size=image_size)                 # (m, S, S, 1) uint8
        srows = [r for r in rows if r.split == s]
        boxes = boxes_at_size(bags_dir, srows, x.shape[1])
        for k, r in enumerate(srows):
            if benign_only and r.labels:
                continue
            if not benign_only and set(r.labels) - {b["label"] for b in boxes[k]}:
                continue                                  # a threat without a box: an unlabelled positive
            images.append(x[k])
            kept.append(r)
            kept_boxes.append(boxes[k])
    if not images:
        raise DataError(f"{bags_dir} has no {'benign ' if benign_only else ''}bag"
                        f"{' in split ' + split if split else ''} to insert threats into")
    objects = open_objects(objects)
    n = int(n)
    if labels is None:
        per = objects.label_mix(n, seed) or [[CLASSES[k % len(CLASSES)]] for k in range(n)]
    elif labels and isinstance(labels[0], (list, tuple)):
        per = [list(v) for v in labels]
    else:
        per = [list(labels) for _ in range(n)]
    scales = object_scales(object_data) if object_data is not None else None
    out, lab, boxes, which = insert_threats(np.stack(images), objects.model, per, seed=seed, scales=scales,
                                            bag_boxes=None if benign_only else kept_boxes, temperature=temperature,
                                            sampler=objects.sampler, batch_size=batch_size, object_name=objects.name,
                                            max_iou=max_iou)
    sources = [f"insert:{kept[j].path}+objects:{objects.name}:{seed}:{i}" for i, j in enumerate(which)]
    per_out = [sorted({b["label"] for b in bs}) for bs in boxes]
    return export_detection(out_dir, out, boxes, labels=per_out, fmt=fmt, sources=sources, overwrite=overwrite,
                            batch_size=batch_size)
