"""Import a folder of real X-ray scans into the prepared layout: ``prepare SRC OUT``.

One step takes any source folder (GDXray, SIXray, HUMS, a plain folder of images) to::

    OUT/train/*.png             # 8-bit grayscale, size x size, bright background
    OUT/test/*.png
    OUT/prepare_report.json     # counts, skipped files with reasons, warnings
    OUT/manifest.csv            # lists every PNG in train/ and test/ (vae_keras.io.folder)

Sections: limits and errors -> reading one image as grayscale -> letterbox -> annotations
(Pascal VOC XML, GDXray ground_truth.txt, YOLO txt, image-level labels CSV) -> finding the
images and splitting them -> ``prepare`` -> command line.

**Source kinds** are detected, not declared. Every image file under SRC is used (``.png .jpg
.jpeg .tif .tiff .bmp``, any case; hidden files and ``__MACOSX`` folders are ignored). An image
inside a folder named like ``B0046`` belongs to that GDXray *series* (one bag seen in many views);
when no folder names a series, a file named like GDXray's ``B0046_0001.png`` does (flat copies such
as ``dataset/JPEGImages/B0046_0001.png`` with ``dataset/Annotations/B0046_0001.xml``, so views of one
bag still stay on one side of the split). With any series the source is reported as ``gdxray``;
otherwise it is ``generic`` and every image is its own group. SIXray is a generic folder of
pseudo-colour JPEGs plus an optional labels CSV.

**Annotations** (boxes in source pixels; the first that exists for an image wins):

1. Pascal VOC XML beside the image (``B0046_0001.xml``) or in ``Annotations/`` next to a
   ``JPEGImages/`` or ``images/`` folder. Coordinates are 1-based inclusive like the VOC devkit
   (and TFDS' ``voc``): ``[xmin - 1, ymin - 1, xmax, ymax]``. When ``<size>`` disagrees with the
   real image size the boxes are rescaled to the real size.
2. YOLO txt beside the image (or in ``labels/`` next to ``images/``): ``class cx cy w h``
   normalised. Class indices name classes from ``yolo_classes`` or from a ``classes.txt``,
   ``*.names`` or ``data.yaml`` found in the label's folder or above it (up to SRC).
3. GDXray ``ground_truth.txt`` in the series folder: rows ``image_number x1 x2 y1 y2`` (note the
   column order; 1-based like MATLAB). The file has no class, so the class comes from ``gt_class``
   (``"handgun"`` for all, or ``"B0046=handgun,B0048=razor_blade"`` per series), else from a folder
   name on the way to the image (``Handgun/B0046/...``), else those boxes are dropped with a warning
   in the report: guessing "handgun" would silently mislabel knives and shuriken.

Class names go through :func:`vae_keras.io.manifest.canonical_class`; objects of classes we do not
model (wrench, pliers, ...) are dropped and counted in the report. Image-level labels from a
``labels_csv`` (SIXray: ``name,gun,knife,wrench,...``, a value > 0 means present) are added to the
labels found from boxes.

**Split**: train/test by group (series when known, else the image's relative path). Groups are
ordered by ``sha1(seed, group)`` and cut where the train side holds closest to
``1 - test_fraction`` of the images, with at least one group on each side when there are two or
more groups. The split depends only on the file names, never on ``hash()`` or on file order, and
is decided before decoding, so a corrupt file never moves another image across the split.

Example::

    report = prepare("Baggages", "data/gdxray", size=224)
    rows = read_manifest("data/gdxray/manifest.csv")
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
import unicodedata
import warnings
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from vae_keras.errors import XrayVaeError
from vae_keras.io.atomic import atomic_write_text
from vae_keras.io.folder import PREPARED, FolderInUse, OutputFolder
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import CLASSES, ManifestRow, canonical_class
from vae_keras.io.progress import Progress

# -- limits and errors ---------------------------------------------------------------------------
#: Images above this many pixels are refused from their header, before any pixel is decoded (a
#: 2688x2208 GDXray scan is 6 MP, SIXray's largest 5 MP; 100 MP is a 10,000 x 10,000 scan, 100 MB
#: as 8-bit). A 20,000 x 20,000 "decompression bomb" (400 MP, 1.2 GB as RGB) is refused in
#: milliseconds. Pillow's own limit (89 MP warning) is raised to this one while we read.
MAX_PIXELS = 100_000_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SERIES_RE = re.compile(r"^B\d{4}$", re.IGNORECASE)
#: A GDXray file name (``B0046_0001``, without its extension): series, then the view's number.
SERIES_FILE_RE = re.compile(r"^(B\d{4})_\d{4}$", re.IGNORECASE)
GROUND_TRUTH_NAMES = ("ground_truth.txt", "groundtruth.txt", "ground-truth.txt")
HIGH_BIT_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B")
REPORT_NAME = "prepare_report.json"
#: While writing, the manifest is rewritten (listing exactly the PNGs finished so far) at most
#: this often, so a killed ``prepare`` keeps what it did.
COMMIT_SECONDS = 1.0


class PrepareError(XrayVaeError, ValueError):
    """A problem the user can fix (missing folder, no usable image, bad argument).

    The command line prints the message as one ``error:`` line, without a traceback.
    """


class BadImageError(PrepareError):
    """One file that cannot be used as an image; ``reason`` says why in a few words."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


_LIMIT_LOCK = threading.Lock()
_LIMIT_USERS = 0
_LIMIT_SAVED = None


@contextlib.contextmanager
def _pillow_pixel_limit():
    """Raise ``Image.MAX_IMAGE_PIXELS`` to :data:`MAX_PIXELS` while we read (thread-safe, nested).

    We check the size ourselves right after the header is read, so the bomb guard stays; Pillow's
    own lower limit would otherwise warn about legitimate 89-100 MP scans.
    """
    global _LIMIT_USERS, _LIMIT_SAVED
    with _LIMIT_LOCK:
        if _LIMIT_USERS == 0:
            _LIMIT_SAVED = Image.MAX_IMAGE_PIXELS
            if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
                Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        _LIMIT_USERS += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _LIMIT_USERS -= 1
            if _LIMIT_USERS == 0:
                Image.MAX_IMAGE_PIXELS = _LIMIT_SAVED


# -- reading one image as grayscale --------------------------------------------------------------
def _open_checked(path: Path) -> Image.Image:
    """Open ``path`` lazily (header only) and check it is a non-empty image below the pixel limit."""
    try:
        nbytes = path.stat().st_size
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except OSError as e:
        raise BadImageError(path, f"cannot read the file ({e.strerror or e})") from None
    if nbytes == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise BadImageError(path, f"not an image (Pillow cannot identify the format; {nbytes} bytes)") from None
    except Image.DecompressionBombError as e:  # Pillow's guard (twice its limit): a header size far above ours
        raise BadImageError(path, f"image too large ({e}); the limit is {MAX_PIXELS / 1e6:.0f} MP "
                                  "(data_prep.prepare.MAX_PIXELS)") from None
    except PermissionError:
        raise BadImageError(path, "cannot read the file (permission denied)") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
        raise BadImageError(path, f"unreadable image header ({type(e).__name__}: {e})") from None
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise BadImageError(path, f"image has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        im.close()
        raise BadImageError(path, f"image too large: {w}x{h} = {w * h / 1e6:.0f} MP, above the "
                                  f"{MAX_PIXELS / 1e6:.0f} MP limit (data_prep.prepare.MAX_PIXELS)")
    return im


def probe_size(path) -> Tuple[int, int]:
    """``(width, height)`` of an image from its header (cheap); raises :class:`BadImageError`."""
    with _pillow_pixel_limit():
        im = _open_checked(Path(path))
        try:
            return im.size
        finally:
            im.close()


def _scale_high_bit(a: np.ndarray, window=None) -> np.ndarray:
    """16/32-bit or float pixels -> uint8 by a window ``(low, high)`` or the image's own min..max."""
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., 0]
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
    else:
        finite = a if a.dtype.kind in "iu" else a[np.isfinite(a)]
        if finite.size == 0:
            return np.full(a.shape, 255, np.uint8)
        lo, hi = float(finite.min()), float(finite.max())
        if hi <= lo:  # a flat image has nothing but background
            return np.full(a.shape, 255, np.uint8)
    out = np.empty(a.shape, np.uint8)
    gain = 255.0 / (hi - lo)
    for r in range(0, a.shape[0], 512):  # row blocks: a 400 MP scan never needs 1.6 GB of float32
        block = (a[r:r + 512].astype(np.float32) - lo) * gain
        np.nan_to_num(block, copy=False, nan=255.0)
        out[r:r + 512] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return out


def _to_gray_u8(im: Image.Image, window=None) -> np.ndarray:
    """A decoded Pillow image of any mode -> (H, W) uint8 with the background bright."""
    mode = im.mode
    if mode in HIGH_BIT_MODES or mode.startswith("I;"):
        return _scale_high_bit(np.asarray(im), window)
    if mode == "L":
        return np.array(im, np.uint8)
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode in ("LA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode != "RGBA" and mode != "RGB":
        try:  # CMYK, YCbCr, RGBX, HSV, ...: via RGB, then luminance below
            im = im.convert("RGB")
        except (ValueError, OSError):
            im = im.convert("L")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    # ITU-R 601 luminance; its weights sum to one, so equal channels give that channel exactly.
    return np.array(im.convert("L"), np.uint8)


def _decode(path: Path, window=None, draft_size: Optional[int] = None):
    """Decode ``path`` -> ``(gray uint8 (H, W), (sx, sy))``; ``sx, sy`` map source pixels to it."""
    with _pillow_pixel_limit():
        im = _open_checked(path)
        try:
            sx = sy = 1.0
            if draft_size and im.format == "JPEG":
                orig_w, orig_h = im.size
                res = im.draft("L" if im.mode in ("L", "RGB") else None, (draft_size, draft_size))
                if res is not None:
                    _, box = res  # (0, 0, W / scale, H / scale): source pixels -> decoded pixels
                    sx, sy = box[2] / orig_w, box[3] / orig_h
            try:
                im.load()
                gray = _to_gray_u8(im, window)
            except MemoryError:
                raise BadImageError(path, "out of memory while decoding") from None
            except BadImageError:
                raise
            except Exception as e:  # noqa: BLE001
                text = str(e) or type(e).__name__
                if "truncated" in text.lower() or isinstance(e, (EOFError, SyntaxError)):
                    raise BadImageError(path, f"truncated or corrupt image data ({text})") from None
                raise BadImageError(path, f"cannot decode image ({type(e).__name__}: {text})") from None
            return gray, (sx, sy)
        finally:
            im.close()


def load_grayscale(path, window=None) -> np.ndarray:
    """Read any image file as an ``(H, W)`` uint8 grayscale array with a bright background.

    Modes and what happens to them:

    - ``L``: used as is. ``1`` (bilevel): 0/255.
    - ``I;16``, ``I;16B``, ``I`` (16-bit TIFF/PNG, values up to ~60,000) and ``F``: scaled
      linearly by the image's own min..max to 0..255 (the default: every scanner has its own
      range, and raw transmission keeps the background bright), or by a fixed ``window=(low,
      high)`` with values outside clipped (use it to keep intensities comparable across images).
      A flat image becomes white. ``window`` is ignored for 8-bit images.
    - ``RGB``: ITU-R 601 luminance (0.299 R + 0.587 G + 0.114 B). Equal channels give exactly that
      channel; SIXray-style pseudo-colour becomes its brightness.
    - ``RGBA``, ``LA``, ``P`` with transparency: composited onto white first, since the X-ray
      background is white; ``P`` without transparency goes through RGB.
    - ``CMYK`` and other colour modes: via RGB, then luminance.

    Multi-frame files (TIFF stacks) use the first frame. EXIF orientation is not applied, so
    annotations stay in the stored pixel grid.

    Args:
        path: the image file.
        window: optional ``(low, high)`` intensity window for high-bit-depth images.

    Returns:
        ``(H, W)`` uint8 array.

    Raises:
        BadImageError (a :class:`PrepareError`): empty, truncated, non-image, too large or
        unreadable file; the message names the file and the reason.

    Example::

        gray = load_grayscale("HUMS/bag_001_high.tif")   # I;16 -> uint8, min..max stretched
    """
    window = _check_window(window)
    return _decode(Path(path), window)[0]


def _check_window(window):
    if window is None:
        return None
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise PrepareError(f"window must be two numbers (low, high), got {window!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise PrepareError(f"window must satisfy low < high (both finite), got ({lo}, {hi})")
    return lo, hi


# -- letterbox ------------------------------------------------------------------------------------
def letterbox(image: np.ndarray, size: int, boxes=None, fill: int = 255):
    """Resize to ``size x size`` keeping the aspect ratio; pad the short side with ``fill``, centred.

    The longer side becomes ``size`` (Pillow LANCZOS, with ``reducing_gap`` so huge scans are first
    reduced by an integer factor, which is fast and alias-free). Nothing is cropped.

    Args:
        image: ``(H, W)`` or ``(H, W, 1)`` uint8 (or float in [0, 1]) grayscale image.
        size: side of the square output.
        boxes: optional list of ``{"label": ..., "box": [x1, y1, x2, y2]}`` dicts or of plain
            ``[x1, y1, x2, y2]`` lists, in ``image`` pixels (x right, y down, exclusive ends).
        fill: padding value, 255 = white X-ray background.

    Returns:
        ``(out, boxes)``: ``(size, size)`` uint8 and the boxes in output pixels, in the same form
        as given. Each box is clipped to the image, then scaled and shifted like the pixels and
        rounded outwards to integers; boxes with no area inside the image are dropped.

    Example::

        out, b = letterbox(np.zeros((200, 400), np.uint8), 100, [[40, 20, 120, 100]])
        # out.shape == (100, 100); the image fills rows 25..75; b == [[10, 30, 30, 50]]
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise PrepareError(f"size must be a positive integer, got {size!r}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise PrepareError(f"letterbox expects a (H, W) grayscale image, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    h, w = a.shape
    scale = size / max(h, w)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    if (nw, nh) != (w, h):
        resized = np.asarray(Image.fromarray(a, "L").resize((nw, nh), Image.Resampling.LANCZOS,
                                                             reducing_gap=3.0))
    else:
        resized = a
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size), fill, np.uint8)
    out[y0:y0 + nh, x0:x0 + nw] = resized  # (size, size)

    sx, sy = nw / w, nh / h
    new_boxes = []
    for b in boxes or []:
        coords = b["box"] if isinstance(b, Mapping) else b
        x1, y1, x2, y2 = (float(v) for v in coords)
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
        y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
        if x2 <= x1 or y2 <= y1:
            continue
        t = [math.floor(round(x1 * sx + x0, 6)), math.floor(round(y1 * sy + y0, 6)),
             math.ceil(round(x2 * sx + x0, 6)), math.ceil(round(y2 * sy + y0, 6))]
        t = [min(max(t[0], x0), x0 + nw), min(max(t[1], y0), y0 + nh),
             min(max(t[2], x0), x0 + nw), min(max(t[3], y0), y0 + nh)]
        if t[2] <= t[0] or t[3] <= t[1]:
            continue
        new_boxes.append({**b, "box": t} if isinstance(b, Mapping) else t)
    return out, new_boxes


# -- annotations -----------------------------------------------------------------------------------
class _Notes:
    """Collects what the annotation readers dropped, for the report."""

    def __init__(self):
        self.dropped = collections.Counter()  # source class name -> objects dropped
        self.warnings: List[str] = []
        self._seen = set()

    def warn(self, text: str):
        if text not in self._seen:
            self._seen.add(text)
            self.warnings.append(text)


def _num(text) -> float:
    return float(str(text).strip())


def read_voc_xml(path, notes: Optional[_Notes] = None, image_size=None) -> List[dict]:
    """Boxes of a Pascal VOC XML file, in 0-based source pixels, our class names only.

    ``image_size=(W, H)``: the real image size; boxes are rescaled when the XML's ``<size>``
    disagrees (an annotation made on a resized copy).
    """
    notes = notes or _Notes()
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        notes.warn(f"{path}: unreadable VOC XML ({e}); its boxes are ignored")
        return []
    fx = fy = 1.0
    size = root.find("size")
    if image_size is not None and size is not None:
        try:
            xw, xh = _num(size.findtext("width")), _num(size.findtext("height"))
            if xw > 0 and xh > 0 and (round(xw), round(xh)) != tuple(image_size):
                fx, fy = image_size[0] / xw, image_size[1] / xh
        except (TypeError, ValueError):
            pass
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        label = canonical_class(name)
        if label is None:
            notes.dropped[name or "<no name>"] += 1
            continue
        bb = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (_num(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            notes.warn(f"{path}: an object {name!r} without a valid <bndbox> was ignored")
            continue
        boxes.append({"label": label, "box": [(x1 - 1) * fx, (y1 - 1) * fy, x2 * fx, y2 * fy]})
    return boxes


def read_ground_truth(path) -> Dict[int, List[List[float]]]:
    """GDXray ``ground_truth.txt``: ``{image_number: [[x1, y1, x2, y2], ...]}`` in 0-based pixels.

    Rows are ``image_number x1 x2 y1 y2`` (whitespace, comma or semicolon separated; the column
    order is x1, x2, y1, y2, 1-based inclusive like MATLAB). Lines that are not five numbers
    (headers, comments) are ignored.
    """
    out: Dict[int, List[List[float]]] = collections.defaultdict(list)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = [p for p in re.split(r"[\s,;]+", line.strip()) if p]
            if len(parts) < 5:
                continue
            try:
                n, x1, x2, y1, y2 = (float(p) for p in parts[:5])
            except ValueError:
                continue
            if n != int(n):
                continue
            x1, x2 = sorted((x1, x2))
            y1, y2 = sorted((y1, y2))
            out[int(n)].append([x1 - 1, y1 - 1, x2, y2])
    return dict(out)


def read_yolo_txt(path, classes: Sequence[str], image_size, notes: Optional[_Notes] = None) -> List[dict]:
    """YOLO label file (``class cx cy w h``, normalised) -> boxes in source pixels, our classes only."""
    notes = notes or _Notes()
    w, h = image_size
    boxes = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5:
                continue
            try:
                cx, cy, bw, bh = (float(p) for p in parts[1:5])
            except ValueError:
                continue
            token = parts[0]
            try:
                idx = int(float(token))
                name = classes[idx] if 0 <= idx < len(classes) else None
            except ValueError:
                name = token
            if name is None:
                notes.warn(f"{path}: class index {token} is outside the classes list ({len(classes)} names)")
                continue
            label = canonical_class(name)
            if label is None:
                notes.dropped[name] += 1
                continue
            boxes.append({"label": label, "box": [(cx - bw / 2) * w, (cy - bh / 2) * h,
                                                  (cx + bw / 2) * w, (cy + bh / 2) * h]})
    return boxes


def read_class_list(path) -> List[str]:
    """Class names of a YOLO data set: ``classes.txt`` / ``*.names`` (one per line) or ``data.yaml``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() not in (".yaml", ".yml"):
        return [line.strip() for line in text.splitlines() if line.strip()]
    m = re.search(r"^names\s*:\s*\[(.*?)\]", text, re.MULTILINE | re.DOTALL)
    if m:  # names: [a, 'b']
        return [s.strip().strip("'\"") for s in m.group(1).split(",") if s.strip()]
    names, in_names = {}, False
    for line in text.splitlines():
        if re.match(r"^names\s*:\s*$", line):
            in_names = True
            continue
        if in_names:
            item = re.match(r"^\s+-\s*(.+?)\s*$", line) or re.match(r"^\s+(\d+)\s*:\s*(.+?)\s*$", line)
            if not item:
                if line.strip() and not line.startswith((" ", "\t")):
                    break
                continue
            key, value = (len(names), item.group(1)) if item.re.groups == 1 else (int(item.group(1)), item.group(2))
            names[key] = value.strip("'\"")
    return [names[k] for k in sorted(names)]


def read_labels_csv(path) -> Dict[str, List[str]]:
    """Image-level labels: ``{file stem: [our classes]}`` from a CSV like SIXray's.

    The name column is ``name``/``filename``/``file``/``image``/``id`` (else the first column);
    every other column named after a class (``gun`` -> handgun, ``knife`` -> knife) counts as
    present when its value is a number > 0 or true/yes. Columns of other classes are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise PrepareError(f"labels CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise PrepareError(f"labels CSV {path} is empty")
        lower = [h.strip().lower() for h in header]
        name_col = next((lower.index(k) for k in ("name", "filename", "file", "image", "image_name", "id")
                         if k in lower), 0)
        class_cols = [(i, canonical_class(h)) for i, h in enumerate(header) if i != name_col]
        class_cols = [(i, c) for i, c in class_cols if c is not None]
        labels: Dict[str, List[str]] = {}
        for rec in reader:
            if len(rec) <= name_col or not rec[name_col].strip():
                continue
            present = set()
            for i, cls in class_cols:
                v = rec[i].strip().lower() if i < len(rec) else ""
                try:
                    on = float(v) > 0
                except ValueError:
                    on = v in ("true", "yes", "y")
                if on:
                    present.add(cls)
            stem = Path(rec[name_col].strip()).stem if Path(rec[name_col].strip()).suffix.lower() \
                in IMAGE_EXTENSIONS else Path(rec[name_col].strip()).name
            labels[stem] = [c for c in CLASSES if c in present]
    if not class_cols:
        raise PrepareError(f"labels CSV {path} has no column for a class we model {CLASSES}; "
                           f"columns: {header}")
    return labels


def _parse_gt_class(gt_class) -> Tuple[Optional[str], Dict[str, str]]:
    """``"handgun"`` / ``"B0046=handgun,B0048=razor_blade"`` / mapping -> (default, per series)."""
    if gt_class is None or gt_class == "":
        return None, {}
    items = gt_class.items() if isinstance(gt_class, Mapping) else \
        [tuple(p.split("=", 1)) if "=" in p else (None, p) for p in str(gt_class).split(",") if p.strip()]
    default, per_series = None, {}
    for series, name in items:
        cls = canonical_class(str(name))
        if cls is None:
            raise PrepareError(f"gt_class: unknown class {name!r}; expected one of {CLASSES}")
        if series is None or str(series).strip() in ("", "*"):
            default = cls
        else:
            per_series[str(series).strip().upper()] = cls
    return default, per_series


# -- finding the images and splitting them ---------------------------------------------------------
@dataclass
class SourceImage:
    """One image file found under SRC, with its annotations in source pixels."""

    path: Path                 # absolute
    rel: str                   # relative to SRC, POSIX separators
    series: str = ""           # GDXray series (B0046) or ""
    size: Tuple[int, int] = (0, 0)  # (width, height) from the header
    boxes: List[dict] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    split: str = ""
    out_name: str = ""         # train/B0046_0001_1a2b3c4d.png

    @property
    def group(self) -> str:
        return f"series:{self.series}" if self.series else f"file:{self.rel}"


@dataclass
class SourcePlan:
    """What :func:`scan_source` found: the usable images (split assigned) and what it skipped."""

    src: Path
    kind: str
    images: List[SourceImage]
    skipped: List[dict]
    notes: _Notes
    found: int


def _display(text: str) -> str:
    """A file name as text that can always be printed and written as UTF-8.

    File names that are not valid UTF-8 (archives made on old Windows) reach Python with lone
    surrogates; their bytes are shown as ``\\xe9`` escapes instead of crashing the CSV and JSON.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _stable_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _ascii_name(text: str, limit: int = 60) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("._-")[:limit].strip("._-")


def assign_splits(group_sizes: Mapping[str, int], test_fraction: float = 0.3, seed: int = 0) -> Dict[str, str]:
    """``{group: "train" | "test"}``: groups in ``sha1(seed, group)`` order, cut nearest the target.

    With two or more groups and ``0 < test_fraction < 1`` both sides get at least one group.
    """
    keys = sorted(group_sizes, key=lambda k: (_stable_hash(f"{seed}\0{k}"), k))
    if test_fraction <= 0 or test_fraction >= 1 or not keys:
        return {k: ("test" if test_fraction >= 1 else "train") for k in keys}
    total = sum(group_sizes[k] for k in keys)
    target = total * (1.0 - test_fraction)
    cum = [0]
    for k in keys:
        cum.append(cum[-1] + group_sizes[k])
    allowed = range(1, len(keys)) if len(keys) >= 2 else range(0, 2)
    cut = min(allowed, key=lambda i: (abs(cum[i] - target), i))
    return {k: ("train" if i < cut else "test") for i, k in enumerate(keys)}


def _walk_images(src: Path, exclude: Optional[Path], unreadable: Optional[list] = None):
    """Image files (sorted) and an index ``{folder: {lower-case name: path}}`` of every file.

    Folders that cannot be listed are appended to ``unreadable`` as ``(path, reason)``.
    """
    images, index = [], {}

    def onerror(e: OSError):
        if unreadable is not None:
            unreadable.append((Path(e.filename or src), f"cannot list the folder ({e.strerror or e})"))

    for dirpath, dirnames, filenames in os.walk(src, onerror=onerror):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n != "__MACOSX"
                             and (exclude is None or (d / n).resolve() != exclude))
        index[d] = {n.lower(): d / n for n in filenames}
        for n in sorted(filenames):
            if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS):
                images.append(d / n)
    return images, index


def _series_of(rel_parts: Sequence[str], src: Path) -> str:
    """The GDXray series of an image: the nearest ``Bxxxx`` folder, else a ``Bxxxx_nnnn`` file name."""
    for part in reversed([src.name, *rel_parts[:-1]]):
        if SERIES_RE.match(part):
            return part.upper()
    m = SERIES_FILE_RE.match(Path(rel_parts[-1]).stem)
    return m.group(1).upper() if m else ""


def _find_class_list(start: Path, src: Path, index) -> Optional[Path]:
    d = start
    while True:
        names = index.get(d, {})
        for n in ("classes.txt", "obj.names", "data.yaml", "dataset.yaml"):
            if n in names:
                return names[n]
        for n, p in names.items():
            if n.endswith(".names"):
                return p
        if d == src or d.parent == d:
            return None
        d = d.parent


def _imap_bounded(fn, items: Sequence, workers: int) -> Iterator[tuple]:
    """``(item, result, error)`` in input order, at most ``4 * workers`` tasks in flight."""
    def call(x):
        try:
            return fn(x), None
        except BadImageError as e:
            return None, e

    if workers <= 1:
        for x in items:
            yield (x, *call(x))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = collections.deque()
        it = iter(items)
        for x in it:
            pending.append((x, pool.submit(call, x)))
            if len(pending) >= 4 * workers:
                x0, fut = pending.popleft()
                yield (x0, *fut.result())
        while pending:
            x0, fut = pending.popleft()
            yield (x0, *fut.result())


def scan_source(src, *, test_fraction: float = 0.3, seed: int = 0, labels_csv=None, gt_class=None,
                yolo_classes=None, exclude=None, workers: Optional[int] = None,
                progress: Optional[Progress] = None) -> SourcePlan:
    """Find the images under ``src``, read their annotations and assign train/test.

    Files whose header is unusable (empty, not an image, too large) are skipped here, before
    the split; truncated pixel data is only found when decoding (see :func:`render_image`).

    Raises:
        PrepareError: ``src`` is missing or not a folder, or holds no usable image.
    """
    progress = progress or Progress(False)
    src = Path(src)
    if not src.exists():
        raise PrepareError(f"source folder not found: {src}")
    if not src.is_dir():
        raise PrepareError(f"source is not a folder: {src}")
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise PrepareError(f"test_fraction must be in [0, 1], got {test_fraction}")
    src = src.resolve()
    gt_default, gt_per_series = _parse_gt_class(gt_class)
    csv_labels = read_labels_csv(labels_csv) if labels_csv else None
    if isinstance(yolo_classes, (str, os.PathLike)):
        yolo_classes = read_class_list(yolo_classes)
    exclude = Path(exclude).resolve() if exclude is not None else None

    unreadable: List[tuple] = []
    paths, index = _walk_images(src, exclude, unreadable)
    notes, skipped, images = _Notes(), [], []
    for folder, reason in unreadable:
        if folder == src:
            raise PrepareError(f"cannot read the source folder {_display(str(src))}: {reason}")
        rel = _display(folder.relative_to(src).as_posix()) + "/"
        skipped.append({"path": rel, "reason": reason})
        progress.message(f"skipped {rel}: {reason}")
    if not paths:
        raise PrepareError(f"no image files ({' '.join(IMAGE_EXTENSIONS)}) under {_display(str(src))}")

    workers = workers or min(8, os.cpu_count() or 1)
    for i, (p, size, err) in enumerate(_imap_bounded(probe_size, paths, workers), 1):
        rel = _display(p.relative_to(src).as_posix())
        if err is not None:
            skipped.append({"path": rel, "reason": err.reason})
            progress.message(f"skipped {rel}: {err.reason}")
        else:
            parts = rel.split("/")
            images.append(SourceImage(path=p, rel=rel, series=_series_of(parts, src), size=size))
        progress.update(f"checking {i}/{len(paths)} files ({len(skipped)} skipped)")
    progress.update(f"checking {len(paths)}/{len(paths)} files ({len(skipped)} skipped)", force=True)
    if not images:
        first = f" (first: {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise PrepareError(f"no usable image under {_display(str(src))}: all {len(paths)} image file(s) "
                           f"were skipped{first}")

    # Annotations, in source pixels.
    gt_cache: Dict[Path, Optional[dict]] = {}
    class_list_cache: Dict[Path, Optional[List[str]]] = {}
    not_in_csv = 0
    for im in images:
        d, stem = im.path.parent, im.path.stem
        names = index.get(d, {})
        voc = names.get(stem.lower() + ".xml")
        if voc is None and d.name.lower() in ("jpegimages", "images"):
            voc = index.get(d.parent / "Annotations", {}).get(stem.lower() + ".xml") or \
                index.get(d.parent / "annotations", {}).get(stem.lower() + ".xml")
        yolo = names.get(stem.lower() + ".txt")
        if yolo is None:
            rel_parts = list(im.path.relative_to(src).parts)
            if "images" in rel_parts[:-1]:
                j = len(rel_parts) - 2 - rel_parts[:-1][::-1].index("images")
                lab_dir = src.joinpath(*rel_parts[:j], "labels", *rel_parts[j + 1:-1])
                yolo = index.get(lab_dir, {}).get(stem.lower() + ".txt")
        if voc is not None:
            im.boxes = read_voc_xml(voc, notes, image_size=im.size)
        elif yolo is not None and yolo.name.lower() not in GROUND_TRUTH_NAMES:
            classes = yolo_classes
            if classes is None:
                if yolo.parent not in class_list_cache:
                    found = _find_class_list(yolo.parent, src, index)
                    class_list_cache[yolo.parent] = read_class_list(found) if found else None
                classes = class_list_cache[yolo.parent]
            if classes is None:
                notes.warn(f"YOLO label files found (e.g. {yolo.relative_to(src).as_posix()}) but no "
                           "classes list (classes.txt, *.names, data.yaml): their boxes are ignored; "
                           "pass yolo_classes / --yolo-classes")
            else:
                im.boxes = read_yolo_txt(yolo, classes, im.size, notes)
        elif im.series:
            # A series taken from the file name has no series folder, hence no ground_truth.txt.
            series_dir = next((a for a in [im.path.parent, *im.path.parents] if a.name.upper() == im.series), None)
            if series_dir is not None and series_dir not in gt_cache:
                gt_path = next((index.get(series_dir, {}).get(n) for n in GROUND_TRUTH_NAMES
                                if n in index.get(series_dir, {})), None)
                gt_cache[series_dir] = read_ground_truth(gt_path) if gt_path else None
            gt = gt_cache.get(series_dir)
            m = re.search(r"(\d+)$", stem)
            rows = gt.get(int(m.group(1)), []) if (gt and m) else []
            if rows:
                cls = gt_per_series.get(im.series) or gt_default or _class_from_folders(im, src)
                if cls is None:
                    notes.warn(f"{im.series}: ground_truth.txt has boxes but no class; they are dropped "
                               f"(pass gt_class / --gt-class, e.g. '{im.series}=handgun')")
                else:
                    im.boxes = [{"label": cls, "box": r} for r in rows]
        labels = {b["label"] for b in im.boxes}
        if csv_labels is not None:
            if stem in csv_labels:
                labels.update(csv_labels[stem])
            else:
                not_in_csv += 1
        im.labels = [c for c in CLASSES if c in labels]
    if not_in_csv:
        notes.warn(f"{not_in_csv} image(s) are not in the labels CSV; they get no image-level labels")

    splits = assign_splits(collections.Counter(im.group for im in images), test_fraction, seed)
    used = set()
    for im in images:
        im.split = splits[im.group]
        parts = im.rel.split("/")
        prefix = im.series or (_ascii_name(parts[-2]) if len(parts) > 1 else "")
        stem = _ascii_name(Path(parts[-1]).stem) or "image"
        base = stem if (not prefix or stem.upper().startswith(prefix.upper())) else f"{prefix}_{stem}"
        digest = _stable_hash(im.rel)
        name = f"{base}_{digest[:8]}.png"
        if name.lower() in used:  # two relative paths with the same 8-digit hash: take more digits
            name = f"{base}_{digest[:20]}.png"
        used.add(name.lower())
        im.out_name = f"{im.split}/{name}"
    kind = "gdxray" if any(im.series for im in images) else "generic"
    return SourcePlan(src=src, kind=kind, images=images, skipped=skipped, notes=notes, found=len(paths))


def _class_from_folders(im: SourceImage, src: Path) -> Optional[str]:
    """A class named by a folder between SRC and the image (``Handgun/B0046/...``), if any."""
    for part in reversed([src.name, *im.rel.split("/")[:-1]]):
        for token in [part, *re.split(r"[\s_\-]+", part)]:
            cls = canonical_class(token) or (canonical_class(token[:-1]) if token.lower().endswith("s") else None)
            if cls:
                return cls
    return None


def render_image(item: SourceImage, size: int = 224, window=None) -> Tuple[np.ndarray, List[dict]]:
    """Decode one source image and letterbox it: ``((size, size) uint8, boxes in output pixels)``."""
    gray, (sx, sy) = _decode(item.path, window, draft_size=size)
    boxes = [{"label": b["label"], "box": [b["box"][0] * sx, b["box"][1] * sy, b["box"][2] * sx, b["box"][3] * sy]}
             for b in item.boxes]
    return letterbox(gray, size, boxes)


# -- prepare ---------------------------------------------------------------------------------------
def prepare(src, out, size: int = 224, test_fraction: float = 0.3, seed: int = 0, window=None,
            labels_csv=None, progress: bool = True, *, gt_class=None, yolo_classes=None,
            workers: Optional[int] = None) -> dict:
    """Import every image under ``src`` into the prepared layout in ``out``.

    Args:
        src: source folder (GDXray ``Baggages``, a SIXray folder, any tree of images).
        out: output folder; ``out/train``, ``out/test``, ``out/manifest.csv`` and
            ``out/prepare_report.json`` are (over)written. PNGs a previous run listed in its
            manifest and this run no longer produces are removed; nothing else is touched.
        size: side of the square output images (letterboxed, white padding).
        test_fraction: share of images in the test split (by series when known).
        seed: salt of the split hash (0 gives the documented, reproducible split).
        window: ``(low, high)`` for 16-bit images instead of each image's own min..max.
        labels_csv: image-level labels CSV (SIXray style ``name,gun,knife,...``).
        progress: show a one-line counter on stderr.
        gt_class: class of GDXray ``ground_truth.txt`` boxes (``"handgun"`` or
            ``"B0046=handgun,B0048=razor_blade"``); see the module docstring.
        yolo_classes: class names for YOLO label indices (a list or a classes file).
        workers: decoding threads (default ``min(8, CPUs)``).

    Returns:
        The report dict, also written to ``out/prepare_report.json``: ``written``, ``train``,
        ``test``, ``skipped_count``, ``skipped`` (``[{"path", "reason"}]``), ``kind``, ``labels``
        (images per class), ``dropped_objects``, ``warnings``, ...

    Raises:
        PrepareError: missing source folder, no usable image, invalid argument.

    Each unusable file prints one ``skipped PATH: REASON`` line on stderr and is listed in the
    report; all good files are kept.

    Interruption: ``out`` is the one safe output folder (:mod:`vae_keras.io.folder`): a previous
    run's manifest is first replaced by an empty one and its PNGs removed; then PNGs are written
    under temporary names (``train/.NAME.png.tmp``), flushed, listed in the manifest and renamed
    into place batch by batch (every :data:`COMMIT_SECONDS`). A ``prepare`` killed at any moment
    leaves only complete PNGs, each listed in the manifest; a kill between a batch's manifest
    and its renames leaves that batch's PNGs under their (complete) temporary names. Rerunning
    it removes the leftovers and redoes the import.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise PrepareError(f"size must be a positive integer, got {size!r}")
    window = _check_window(window)
    out = Path(out)
    if Path(src).exists() and out.resolve() == Path(src).resolve():
        raise PrepareError(f"OUT must be a different folder from SRC (both are {src})")
    bar = Progress(progress)
    try:
        plan = scan_source(src, test_fraction=test_fraction, seed=seed, labels_csv=labels_csv,
                           gt_class=gt_class, yolo_classes=yolo_classes, exclude=out, workers=workers,
                           progress=bar)
    except PrepareError:
        bar.done()
        raise
    workers = workers or min(8, os.cpu_count() or 1)
    folder = _start_output(out)

    def work(item: SourceImage) -> Tuple[ManifestRow, str]:
        image, boxes = render_image(item, size, window)  # (size, size) uint8
        tmp = folder.temporary(item.out_name)            # renamed once the manifest lists it
        try:
            tmp.write_bytes(png_bytes(image))
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise PrepareError(f"cannot write {out / item.out_name}: {e.strerror or e}") from None
        row = ManifestRow(path=item.out_name, split=item.split, labels=list(item.labels), boxes=boxes,
                          series=item.series, source=item.rel)
        return row, item.out_name

    rows, skipped, batch = [], list(plan.skipped), []
    last_commit = time.monotonic()

    def commit():
        nonlocal last_commit
        folder.publish(rows, batch)                      # the manifest lists them, then they appear
        batch.clear()
        last_commit = time.monotonic()

    n = len(plan.images)
    try:
        with contextlib.closing(_imap_bounded(work, plan.images, workers)) as results:
            for i, (item, result, err) in enumerate(results, 1):
                if err is not None:
                    skipped.append({"path": item.rel, "reason": err.reason})
                    bar.message(f"skipped {item.rel}: {err.reason}")
                else:
                    row, rel = result
                    rows.append(row)
                    batch.append(rel)
                    if time.monotonic() - last_commit >= COMMIT_SECONDS:
                        commit()
                bar.update(f"preparing {i}/{n} images ({len(skipped)} skipped)")
        if batch:
            commit()
    except OSError as e:
        raise PrepareError(f"cannot write into {out}: {e.strerror or e}") from None
    finally:
        folder.remove_temporaries()    # of images decoded but not yet listed (an error or Ctrl-C)
        bar.done()
    bar.update(f"preparing {n}/{n} images ({len(skipped)} skipped)", force=True)
    bar.done()

    skipped.sort(key=lambda s: s["path"])
    report = _report(plan, rows, skipped, out, size, test_fraction, seed, window)
    atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    if not rows:
        raise PrepareError(f"no usable image under {_display(str(plan.src))}: all {plan.found} image file(s) "
                           f"were skipped (first: {skipped[0]['path']}: {skipped[0]['reason']}); "
                           f"see {out / REPORT_NAME}")
    return report


def _start_output(out: Path) -> OutputFolder:
    """``out`` as the one safe output folder (:class:`vae_keras.io.folder.OutputFolder`), opened.

    A previous run's manifest is replaced by an empty one, then the PNGs it lists directly
    under ``out/train`` or ``out/test`` are removed, and our leftover temporary files; nothing
    else in ``out`` is touched. A folder whose manifest is not a prepared data set's (a
    generated export's, an unreadable one) is refused.
    """
    try:
        return OutputFolder(out, PREPARED, overwrite=True).open()
    except FolderInUse as e:
        raise PrepareError(str(e)) from None
    except OSError as e:
        raise PrepareError(f"cannot write the output folder {out}: {e.strerror or e}") from None


def _report(plan: SourcePlan, rows, skipped, out, size, test_fraction, seed, window) -> dict:
    per_class = collections.Counter(c for r in rows for c in r.labels)
    n_train = sum(r.split == "train" for r in rows)
    if rows and 0 < test_fraction < 1 and n_train in (0, len(rows)):
        plan.notes.warn(f"the {'test' if n_train else 'train'} split is empty: all usable images are in one "
                        "group (series) or the other side's files were unreadable")
    series = {s: sorted({r.series for r in rows if r.split == s and r.series}) for s in ("train", "test")}
    return {
        "src": str(plan.src),
        "out": str(Path(out)),
        "kind": plan.kind,
        "size": size,
        "test_fraction": test_fraction,
        "seed": seed,
        "intensity": (f"window {window[0]:g}..{window[1]:g}" if window else "per-image min..max")
        + " for 16-bit images; luminance for colour",
        "found": plan.found,
        "written": len(rows),
        "train": n_train,
        "test": len(rows) - n_train,
        "series": {"train": len(series["train"]), "test": len(series["test"])},
        "labels": {c: per_class.get(c, 0) for c in CLASSES},
        "images_with_boxes": sum(bool(r.boxes) for r in rows),
        "boxes": sum(len(r.boxes) for r in rows),
        "dropped_objects": dict(sorted(plan.notes.dropped.items())),
        "warnings": plan.notes.warnings,
        "skipped_count": len(skipped),
        "skipped": skipped,
    }


# -- command line ------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``prepare`` flags, for ``python -m data_prep.prepare`` and the project CLI."""
    parser.add_argument("src", help="source folder (GDXray Baggages, SIXray, any tree of images)")
    parser.add_argument("out", help="output folder (train/, test/, manifest.csv)")
    parser.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of images in test (default 0.3)")
    parser.add_argument("--seed", type=int, default=0, help="salt of the split hash (default 0)")
    parser.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="fixed intensity window for 16-bit images (default: each image's own min..max)")
    parser.add_argument("--labels-csv", help="image-level labels CSV (SIXray style: name,gun,knife,...)")
    parser.add_argument("--gt-class", help="class of GDXray ground_truth.txt boxes: 'handgun' or "
                                           "'B0046=handgun,B0048=razor_blade' (default: from folder names, "
                                           "else those boxes are dropped)")
    parser.add_argument("--yolo-classes", help="classes file for YOLO label indices (default: classes.txt, "
                                               "*.names or data.yaml found beside the labels)")
    parser.add_argument("--workers", type=int, help="decoding threads (default min(8, CPUs))")
    parser.add_argument("--quiet", action="store_true", help="no progress counter")
    return parser


def prepare_from_args(args: argparse.Namespace) -> dict:
    """Run :func:`prepare` with the flags of :func:`add_arguments` and print a one-line summary."""
    # Pillow's warnings (oversized image, corrupt EXIF of a truncated JPEG, ...) would reach the user
    # as Python warnings with a source line; a bad file gets its own "skipped" line instead.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    report = prepare(args.src, args.out, size=args.size, test_fraction=args.test_fraction, seed=args.seed,
                     window=args.window, labels_csv=args.labels_csv, progress=not args.quiet,
                     gt_class=args.gt_class, yolo_classes=args.yolo_classes, workers=args.workers)
    print(f"prepared {report['written']} images ({report['train']} train / {report['test']} test, "
          f"{report['kind']} source) into {_display(str(args.out))}; skipped {report['skipped_count']}"
          f" (details in {_display(str(Path(args.out) / REPORT_NAME))})")
    return report


def main(argv=None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="python -m data_prep.prepare",
                                                   description=__doc__.split("\n\n")[0]))
    try:
        prepare_from_args(parser.parse_args(argv))
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
