"""Labelled export for detectors: images + labels as YOLO, Pascal VOC or our CSV manifest.

Layouts (``OUT`` is the output folder; every format also writes ``OUT/manifest.csv``, the
project's manifest, which lists exactly the complete image+label pairs):

- ``yolo``: ``OUT/images/NAME.png``, ``OUT/labels/NAME.txt`` (one ``class cx cy w h`` line per
  box, normalised to [0, 1]; an empty file is a negative image), ``OUT/classes.txt`` and
  ``OUT/data.yaml`` (Ultralytics style: ``path``, ``train``, ``val``, ``nc``, ``names``);
- ``voc``: ``OUT/images/NAME.png``, ``OUT/annotations/NAME.xml`` (``<object><name><bndbox>``,
  1-based inclusive pixel coordinates as in VOC);
- ``csv``: ``OUT/images/NAME.png`` and the manifest (labels and JSON boxes).

**Boxes.** A ``layout`` run draws each threat where its layout's boxes are, so its samples are
exported with those boxes, in any format. Other runs' images have image-level labels only:
nobody knows where the knife they were asked for is. Detectors read a missing box as "no object here", so writing such an image to
YOLO or VOC with an empty box list would teach them the opposite of the truth. Therefore
:func:`export_detection` *refuses* (:class:`~vae_keras.errors.DataError`) a yolo/voc export of an image whose labels
are not all covered by boxes; benign images (no labels) are fine and become negatives. For
detector training use the **hybrid** mode (:func:`vae_keras.sampling.tip.hybrid_samples`): a benign bag from the VAE
with real threat items projected into it (:mod:`vae_keras.sampling.tip`), whose boxes are exact.

**Atomic.** The folder is :class:`vae_keras.io.folder.OutputFolder`'s: each batch is written
under hidden temporary names, flushed, listed in the manifest, then renamed: label files
first, images second. A killed export leaves only complete files, every image listed, at most
a few label files without an image (which detectors ignore) and hidden ``.tmp`` files; the
next export into the folder removes them.

Example:
    >>> rows = export_detection("export/", images, boxes, fmt="yolo")
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence
from xml.sax.saxutils import escape

import numpy as np

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike, atomic_write_text
from vae_keras.io.folder import GENERATED, OutputFolder
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import CLASSES, ManifestRow

FORMATS = ("yolo", "voc", "csv")
#: Where every format's images go (``generate`` without ``--format`` too).
IMAGES_DIR = "images"
LABEL_DIRS = {"yolo": "labels", "voc": "annotations", "csv": None}
NAME = "sample_{:06d}"


# -- label files -----------------------------------------------------------------------------------
def yolo_text(boxes: Sequence[dict], width: int, height: int) -> str:
    """YOLO label text: ``class cx cy w h`` per box, normalised, class = index in :data:`CLASSES`."""
    lines = []
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b["box"])
        lines.append(f"{CLASSES.index(b['label'])} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return "".join(line + "\n" for line in lines)


def parse_yolo(text: str, width: int, height: int) -> List[dict]:
    """Boxes back from :func:`yolo_text` (pixel ``[x1, y1, x2, y2]``, end exclusive)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        c, cx, cy, w, h = int(parts[0]), *(float(p) for p in parts[1:])
        out.append({"label": CLASSES[c], "box": [(cx - w / 2) * width, (cy - h / 2) * height,
                                                 (cx + w / 2) * width, (cy + h / 2) * height]})
    return out


def voc_xml(filename: str, boxes: Sequence[dict], width: int, height: int) -> str:
    """Pascal VOC XML of one image; boxes go from our 0-based end-exclusive pixels to VOC's 1-based inclusive."""
    objects = []
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b["box"])
        objects.append(
            "  <object>\n"
            f"    <name>{escape(b['label'])}</name>\n    <pose>Unspecified</pose>\n"
            "    <truncated>0</truncated>\n    <difficult>0</difficult>\n"
            "    <bndbox>\n"
            f"      <xmin>{round(x1) + 1}</xmin>\n      <ymin>{round(y1) + 1}</ymin>\n"
            f"      <xmax>{round(x2)}</xmax>\n      <ymax>{round(y2)}</ymax>\n"
            "    </bndbox>\n  </object>\n")
    return ("<annotation>\n"
            f"  <folder>{IMAGES_DIR}</folder>\n  <filename>{escape(filename)}</filename>\n"
            "  <source><database>xray-vae synthetic</database></source>\n"
            f"  <size>\n    <width>{width}</width>\n    <height>{height}</height>\n    <depth>1</depth>\n  </size>\n"
            "  <segmented>0</segmented>\n" + "".join(objects) + "</annotation>\n")


def data_yaml() -> str:
    """Ultralytics ``data.yaml`` for an export folder (train and val both point at ``images``)."""
    names = ", ".join(CLASSES)
    return (f"# written by vae_keras.sampling.export: {len(CLASSES)} threat classes\n"
            f"path: .\ntrain: {IMAGES_DIR}\nval: {IMAGES_DIR}\nnc: {len(CLASSES)}\nnames: [{names}]\n")


# -- the export ------------------------------------------------------------------------------------
def check_boxes(labels_per_image, boxes_per_image, fmt):
    """yolo/voc need every labelled class of an image covered by a box (see the module docstring)."""
    if fmt == "csv":
        return
    for i, (names, boxes) in enumerate(zip(labels_per_image, boxes_per_image)):
        unboxed = sorted(set(names) - {b["label"] for b in boxes})
        if unboxed:
            raise DataError(
                f"image {i} is labelled {sorted(names)} but has no box for {unboxed}: VAE-generated images carry "
                f"image-level labels only, and a {fmt} file without a box tells a detector there is no object. "
                "Use the hybrid mode (real threats projected into generated bags: tip_data=/--tip DATA), "
                "or --format csv for image-level labels")


def export_detection(out_dir: PathLike, images, boxes: Optional[Sequence[Sequence[dict]]] = None,
                     labels: Optional[Sequence[Sequence[str]]] = None, fmt: str = "yolo",
                     sources: Optional[Sequence[str]] = None, overwrite: bool = True,
                     batch_size: int = 64, fallbacks: Optional[Sequence[str]] = None) -> List[ManifestRow]:
    """Write images with their labels in a detector's format (see the module docstring for layouts).

    Args:
        out_dir: output folder (created).
        images: (n, S, S[, 1]) uint8 or float in [0, 1].
        boxes: one list of ``{"label": ..., "box": [x1, y1, x2, y2]}`` per image (pixels, end
            exclusive); ``None`` = no boxes (image-level labels only: ``csv`` format only,
            unless every image is benign).
        labels: one list of class names per image; default the classes of its boxes.
        fmt: ``yolo``, ``voc`` or ``csv``.
        sources: the manifest's ``source`` per image (how it was made).
        overwrite: replace an earlier export in ``out_dir`` (never a real data set's folder).
        fallbacks: the manifest's ``fallback`` per image (see :mod:`vae_keras.io.manifest`).

    Returns:
        the manifest rows (paths ``images/sample_000000.png``, split ``generated``).

    Raises:
        DataError: unknown format, or a labelled image without boxes in yolo/voc.
    """
    if fmt not in FORMATS:
        raise DataError(f"format must be one of {FORMATS}, got {fmt!r}")
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] != 1:
        raise DataError(f"images must be (n, H, W) or (n, H, W, 1) grayscale, got shape {images.shape}")
    n, height, width = images.shape[:3]
    boxes = [[] for _ in range(n)] if boxes is None else [list(b) for b in boxes]
    if labels is None:
        labels = [sorted({b["label"] for b in bs}, key=CLASSES.index) for bs in boxes]
    labels = [list(ls) for ls in labels]
    if len(boxes) != n or len(labels) != n:
        raise DataError(f"need one box list and one label list per image: {n} images, {len(boxes)} box lists, "
                         f"{len(labels)} label lists")
    unknown = sorted({l for ls in labels for l in ls} | {b["label"] for bs in boxes for b in bs})
    unknown = [u for u in unknown if u not in CLASSES]
    if unknown:
        raise DataError(f"unknown class(es) {unknown}; known: {CLASSES}")
    check_boxes(labels, boxes, fmt)

    out_dir = Path(out_dir)
    folder = OutputFolder(out_dir, GENERATED, overwrite).open()
    label_dir = LABEL_DIRS[fmt]
    if fmt == "yolo":
        atomic_write_text(out_dir / "classes.txt", "".join(c + "\n" for c in CLASSES))
        atomic_write_text(out_dir / "data.yaml", data_yaml())

    rows = [ManifestRow(path=f"{IMAGES_DIR}/{NAME.format(i)}.png", split="generated", labels=labels[i],
                        boxes=[{"label": b["label"], "box": [float(v) for v in b["box"]]} for b in boxes[i]],
                        source=sources[i] if sources is not None else "",
                        fallback=fallbacks[i] if fallbacks is not None else "")
            for i in range(n)]
    for start in range(0, n, int(batch_size)):
        end = min(n, start + int(batch_size))
        label_rels, image_rels = [], []
        try:
            for i in range(start, end):
                image_rels.append(rows[i].path)
                folder.temporary(rows[i].path).write_bytes(png_bytes(images[i]))
                if fmt == "yolo":
                    text = yolo_text(boxes[i], width, height)
                elif fmt == "voc":
                    text = voc_xml(Path(rows[i].path).name, boxes[i], width, height)
                else:
                    continue
                ext = ".txt" if fmt == "yolo" else ".xml"
                label_rels.append(f"{label_dir}/{NAME.format(i)}{ext}")
                folder.temporary(label_rels[-1]).write_text(text, encoding="utf-8")
            folder.publish(rows[:end], label_rels + image_rels)   # labels first: never an image without its label
        except BaseException:
            folder.discard(label_rels + image_rels)
            raise
    return rows
