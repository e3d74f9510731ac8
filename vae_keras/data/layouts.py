"""Layout maps: where each threat is, as a small image with one channel per class.

A ``layout`` configuration conditions the VAE on *where* the threats are, not only on which
ones are present. Why: a conditional VAE given only the multi-hot label must carry each
object's position, size and pose through its latent vector, and at a CPU budget it does not
learn to (its samples and even its reconstructions hold dark blobs where the objects were;
figures/quality.notes.md). Given a map that says "a knife covers these cells", the decoder's
task at every scale is local, which convolutions learn quickly. Measured: the threats survive
reconstruction far better, but a box does not give a threat's pose, which the latent still
carries, so samples gain less (composite generation, :mod:`vae_keras.sampling.objects`, gains more).

The map of an image is ``(L, L, C)`` with ``L = S / LAYOUT_DOWNSAMPLE``: channel ``c`` of a cell
holds the fraction of the cell covered by boxes of class ``c`` (overlaps count once). An image
with labels but no boxes (a data set annotated per image) gets its classes' channels at 1
everywhere, "somewhere in this bag", which is also what a plain multi-hot label means to the
model (:meth:`vae_keras.model.CVAE.encode`). Stored as ``uint8`` (coverage x 255).

Example:
    >>> maps = rasterize([[{"label": "knife", "box": [8, 8, 24, 16]}]], [[0, 1, 0, 0]], 64)
    >>> maps.shape                                  # (1, 16, 16, 4)
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from vae_keras.io.manifest import CLASSES, split_rows

#: The layout map's side is the image side divided by this (16x16 cells at 64x64).
LAYOUT_DOWNSAMPLE = 4


def layout_side(image_size: int) -> int:
    """Side ``L`` of the layout maps of ``image_size`` images."""
    return max(1, int(image_size) // LAYOUT_DOWNSAMPLE)


def _coverage_1d(lo: float, hi: float, cells: int, cell: float) -> np.ndarray:
    """Fraction of each of ``cells`` intervals of length ``cell`` covered by [lo, hi) -> (cells,)."""
    edges = np.arange(cells + 1) * cell
    return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, cell) / cell


def rasterize(boxes_per_image: Sequence[Sequence[dict]], labels, image_size: int,
              classes: Sequence[str] = None, side: int = None) -> np.ndarray:
    """Boxes in image pixels (at ``image_size``) -> layout maps (n, L, L, C) uint8.

    Args:
        boxes_per_image: one list of ``{"label": class, "box": [x1, y1, x2, y2]}`` per image.
        labels: (n, C) multi-hot; a class labelled but without a box fills its channel.
        image_size: side of the images the boxes refer to.
        side: ``L``; default :func:`layout_side` (a box-conditioned prior uses its latent's side).
    """

    classes = tuple(classes or CLASSES)
    labels = np.asarray(labels, np.float32).reshape(len(boxes_per_image), len(classes))
    side = int(side) if side else layout_side(image_size)
    cell = int(image_size) / side
    maps = np.zeros((len(boxes_per_image), side, side, len(classes)), np.float32)
    for i, boxes in enumerate(boxes_per_image):
        boxed = set()
        for b in boxes:
            if b["label"] not in classes:
                continue
            c = classes.index(b["label"])
            x1, y1, x2, y2 = (float(v) for v in b["box"])
            cover = np.outer(_coverage_1d(y1, y2, side, cell), _coverage_1d(x1, x2, side, cell))  # (L, L)
            maps[i, :, :, c] = np.maximum(maps[i, :, :, c], cover)
            boxed.add(c)
        for c in np.flatnonzero(labels[i] > 0.5):
            if c not in boxed:                      # labelled, not boxed: anywhere
                maps[i, :, :, c] = 1.0
    return np.rint(maps * 255.0).astype(np.uint8)


def load_boxes(data_dir, split: str, image_size: int) -> list:
    """The boxes of one split at ``image_size``, one list per image in manifest order (as
    :func:`~vae_keras.data.load_split`); rasterize them with the split's labels for the layout maps."""

    return boxes_at_size(data_dir, split_rows(Path(data_dir), split), image_size)


def load_layouts(data_dir, split: str, image_size: int, labels) -> tuple:
    """``(maps (n, L, L, C) uint8, boxes)`` of one split: its boxes at ``image_size`` rasterized with
    its multi-hot ``labels`` (both in manifest order, as :func:`~vae_keras.data.load_split`)."""
    boxes = load_boxes(data_dir, split, image_size)
    return rasterize(boxes, labels, image_size), boxes


def pack_boxes(boxes_per_image: Sequence[Sequence[dict]], classes: Sequence[str] = None) -> np.ndarray:
    """Box lists -> one (m, 6) float32 array of ``[image index, class index, x1, y1, x2, y2]`` rows
    (saved in a run's ``.npz`` files, which never hold pickles)."""

    classes = tuple(classes or CLASSES)
    rows = [[i, classes.index(b["label"]), *map(float, b["box"])]
            for i, boxes in enumerate(boxes_per_image) for b in boxes if b["label"] in classes]
    return np.asarray(rows, np.float32).reshape(-1, 6)


def unpack_boxes(packed, indices: Sequence[int], classes: Sequence[str] = None) -> list:
    """The box lists of images ``indices`` from a :func:`pack_boxes` array (one list per index)."""

    classes = tuple(classes or CLASSES)
    packed = np.asarray(packed).reshape(-1, 6)
    return [[{"label": classes[int(r[1])], "box": [float(v) for v in r[2:]]} for r in packed[packed[:, 0] == i]]
            for i in indices]


def boxes_per_class(packed, layout_labels, key, rng, classes: Sequence[str] = None) -> list:
    """A layout for a label combination ``key`` (0/1 per class) that no training layout has: for each class
    in it, that class's boxes from a random training image whose row of ``layout_labels`` (n, C) marks the
    class (``rng.choice`` over those images in index order); a class no image has gets none."""
    classes = tuple(classes or CLASSES)
    boxes = []
    for c in np.flatnonzero(key):
        having = np.flatnonzero(np.asarray(layout_labels)[:, c])
        if len(having):
            i = int(rng.choice(having))
            boxes += [b for b in unpack_boxes(packed, [i], classes)[0] if b["label"] == classes[c]]
    return boxes


def flip_boxes(boxes: Sequence[dict], image_size: int) -> list:
    """Boxes of the horizontally mirrored image."""
    s = float(image_size)
    return [{"label": b["label"], "box": [s - b["box"][2], b["box"][1], s - b["box"][0], b["box"][3]]} for b in boxes]


def boxes_at_size(data_dir, rows, image_size: int) -> List[List[dict]]:
    """The manifest boxes of ``rows`` scaled to images loaded at ``image_size`` (``load_split(..., image_size)``)."""
    out = []
    for r in rows:
        f = int(image_size) / float(native_side(data_dir, r)) if r.boxes else 1.0
        out.append([{"label": b["label"], "box": [float(v) * f for v in b["box"]]} for b in r.boxes])
    return out


def native_side(data_dir, row) -> int:
    """The side of the file a manifest row's boxes refer to (read from the PNG header only)."""
    from PIL import Image

    with Image.open(Path(data_dir) / row.path) as im:
        return int(max(im.size))
