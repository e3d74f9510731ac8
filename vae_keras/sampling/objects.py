"""Composite generation: a VAE of the threat objects alone, projected into VAE-generated bags.

Why: a whole-bag VAE at a CPU budget learns the bag, its outline and its clutter, and turns the
threats into dark blobs, already in reconstruction (figures/quality.notes.md): an object of a
few hundred pixels is a small part of the likelihood of a 64x64 bag, and its position, pose and
shape must all pass through one latent vector. A second, small conditional VAE trained on the
threats *alone* (each boxed threat of the training split cut out as a transmission map and
centred on an empty canvas) has only the shape to learn, and learns it in minutes. X-ray
images compose exactly: the transmission of a bag with an object in it is the product of the
two (Beer-Lambert), which is what threat image projection (:mod:`vae_keras.sampling.tip`) does with
real items. Here both parts are generated, so every composite is a new bag with a new
knife, and its box is exact.

The object canvas is half the bag's side (:data:`OBJECT_SCALE`): an object keeps its size
relative to the bag whatever resolution the object VAE is trained at.

    python -m vae_keras objects DATA OBJECTS --size 64     # the threats of DATA, canvas 32x32
    python -m vae_keras objects CROPS OBJECTS --size 64    # or a folder of crops: CROPS/handgun/*.png, ...
    python -m vae_keras train OBJECTS --config objects --image-size 32 --minutes 3 --out runs/objects
    python -m vae_keras generate runs/bags --objects runs/objects --label knife --format yolo --out OUT

An object set comes from either of two sources, told apart by what the folder holds
(:func:`source_kind`): a **prepared data set** (it has a ``manifest.csv``; every boxed threat is
cut out of its bag, :func:`write_object_dataset`) or a **folder of threat crops** with one
subfolder per class (``handgun/ knife/ razor_blade/ shuriken/``, any subset, names through
:func:`~vae_keras.io.manifest.canonical_class`), the way crop collections come
(:func:`write_crop_dataset`: each crop divided by its own background, sized by a stated rule,
bad files skipped and counted).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from vae_keras.errors import DataError
from vae_keras.config import get_config
from vae_keras.io.atomic import PathLike
from vae_keras.io.folder import FolderKind, OutputFolder
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import CLASSES, MANIFEST, ManifestRow, canonical_class
from vae_keras.sampling import tip
from vae_keras.sampling.generate import sample_images
from vae_keras.sampling.tip import FOOTPRINT_TOL, ThreatCrop, hybrid_samples, resize_patch
from vae_keras.training.run import Run, as_run
from vae_keras.training.trainer import train

#: The object canvas is the bag image's side divided by this.
OBJECT_SCALE = 2
#: Object images store ``transmission x OBJECT_LEVEL``: an empty canvas is 0.92, not 1. Why: a
#: decoder whose sigmoid must output exactly 1 over most of the image drives its logits to +inf,
#: where the gradient vanishes; trained on a canvas of 1 the object VAE stalled at the mean image
#: (test loss flat for 6 epochs, measured), on 0.92 it learns from the third epoch.
OBJECT_LEVEL = 0.92
#: Transmissions above ``1 - OBJECT_CLEAN`` in a cut-out threat are set to 1: the faint bag clutter
#: inside its box is dropped, so the object VAE learns the threat, not a grey rectangle around it.
OBJECT_CLEAN = 0.4
#: How :func:`write_object_dataset` cuts a prepared set's boxed threats (``cut=``): ``"box"`` drops
#: every transmission above ``1 - OBJECT_CLEAN`` of one background level (phantom threats are dense,
#: and it keeps them whole; a faint real razor blade vanishes with the clutter), ``"alone"`` is
#: :data:`vae_keras.sampling.tip.CUTS`' (the bag behind the threat divided out as it varies).
OBJECT_CUTS = {"box": {"clean": OBJECT_CLEAN}, "alone": tip.CUTS["alone"]}
_SOURCE_PREFIX = "crop:"
#: An object set's folder: train/ and test/, every row cut from a boxed threat (source ``crop:...``).
OBJECT_SET = FolderKind(name="an object set", ours=lambda rows: all(r.source.startswith(_SOURCE_PREFIX) for r in rows),
                        subdirs=("train", "test"), pattern=r"[a-z_]+_\d{6}\.png")


def object_canvas(bag_size: int) -> int:
    """Side of the object canvas for bags of ``bag_size`` pixels."""
    return max(8, int(bag_size) // OBJECT_SCALE)


def _on_canvas(t: np.ndarray, side: int) -> np.ndarray:
    """A transmission map centred on a (side, side) canvas of ones (shrunk to fit when larger)."""

    h, w = t.shape
    if max(h, w) > side:
        f = side / float(max(h, w))
        t = resize_patch(t, max(1, int(round(h * f))), max(1, int(round(w * f))))
        h, w = t.shape
    canvas = np.ones((side, side), np.float32)
    y, x = (side - h) // 2, (side - w) // 2
    canvas[y:y + h, x:x + w] = t
    return canvas


def source_kind(path: PathLike) -> str:
    """What an ``objects`` source folder is: ``"prepared"`` (it has a ``manifest.csv``) or
    ``"crops"`` (no manifest, but subfolders: one per class).

    Raises:
        DataError: ``path`` is no folder, or holds neither a manifest nor a subfolder.
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        return "prepared"
    if path.is_dir() and any(d.is_dir() and not _hidden(d.name) for d in path.iterdir()):
        return "crops"
    raise DataError(f"{path} is neither a prepared data set (no {MANIFEST}) nor a folder of threat crops "
                    f"(no class subfolders such as handgun/ or knife/)")


def write_object_dataset(data_dir: PathLike, out_dir: PathLike, bag_size: int, progress: bool = True,
                         stats: Optional[dict] = None, cut: str = "box", **crop_options) -> list:
    """Cut every boxed threat of a prepared data set into a prepared data set of objects.

    Each threat of ``data_dir`` (images loaded at ``bag_size``) becomes a transmission map
    (:func:`vae_keras.tip.cut_threats`, faint clutter dropped: :data:`OBJECT_CLEAN`) centred on a transparent canvas of ``bag_size / 2``
    pixels, saved as a PNG (``transmission x OBJECT_LEVEL``) labelled with its class, in the split
    of the image it came from.

    When ``data_dir`` is a folder of threat crops rather than a prepared set (:func:`source_kind`),
    this is :func:`write_crop_dataset` (``stats`` and ``crop_options`` are its keyword arguments).
    ``cut`` (one of :data:`OBJECT_CUTS`) is how a prepared set's threats are cut from their bags.

    ``out_dir`` is the one safe output folder (:mod:`vae_keras.io.folder`): an earlier object set
    there is replaced, any other data set refused; a killed run leaves only listed, complete PNGs.

    Returns:
        the manifest rows written to ``out_dir/manifest.csv``.

    Raises:
        FolderInUse (a ``FileExistsError``): ``out_dir`` holds a data set that is not an object set.
        DataError: ``data_dir`` has no boxed threat; crop options given for a prepared set.
    """

    if cut not in OBJECT_CUTS:
        raise DataError(f"unknown cut {cut!r}: one of {', '.join(OBJECT_CUTS)}")
    if source_kind(data_dir) == "crops":
        if cut != "box":
            raise DataError(f"{data_dir} is a folder of threat crops: a cut ({cut}) only applies to a prepared set's "
                            "boxed threats (a crop is divided by its own background level)")
        return write_crop_dataset(data_dir, out_dir, bag_size, progress=progress, stats=stats, **crop_options)
    given = [_CROP_OPTIONS.get(k, k) for k, v in sorted(crop_options.items()) if v is not None]
    if given:
        raise DataError(f"{data_dir} is a prepared data set (it has a {MANIFEST}): {', '.join(given)} only apply "
                        "to a folder of threat crops (its threats keep their size in their bags and their split)")
    folder = OutputFolder(out_dir, OBJECT_SET, overwrite=True).open()     # refuses any other data set
    side = object_canvas(bag_size)
    rows: list = []
    for split in ("train", "test"):
        try:
            crops = tip.crops_from_prepared(data_dir, split, image_size=int(bag_size), **OBJECT_CUTS[cut])
        except ValueError:                      # no such split
            continue
        if progress:
            print(f"{split}: {len(crops)} threats -> {Path(out_dir) / split} ({side}x{side})", file=sys.stderr)
        _publish_split(folder, split, crops, side, rows)
    if not rows:
        raise DataError(f"{data_dir} has no boxed threat to cut out (its manifest has no boxes)")
    return rows


#: :func:`write_crop_dataset`'s options and their command-line names (for messages).
_CROP_OPTIONS = {"fraction": "--crop-fraction", "bag_pixels": "--crop-bag-size", "test_fraction": "--test-fraction",
                 "seed": "--seed"}


def _publish_split(folder: OutputFolder, split: str, crops: Sequence[ThreatCrop], side: int, rows: list) -> None:
    """Each crop (a transmission map at the bag's scale) centred on a ``side`` canvas and published
    in one batch as ``split/CLASS_nnnnnn.png``; its row (class, box on the canvas) appended to ``rows``."""
    batch = []
    try:
        for k, crop in enumerate(crops):
            canvas = _on_canvas(crop.transmission, side)
            box = tip.footprint_box(canvas, 0, 0)                      # where the threat is on its canvas
            if box is None:                                            # faded away when shrunk: no empty box
                continue
            rel = f"{split}/{crop.label}_{k:06d}.png"
            batch.append(rel)
            folder.temporary(rel).write_bytes(png_bytes(canvas * OBJECT_LEVEL))
            rows.append(ManifestRow(path=rel, split=split, labels=[crop.label],
                                    boxes=[{"label": crop.label, "box": box}], source=_SOURCE_PREFIX + crop.source))
        folder.publish(rows, batch)                                    # one batch per split
    except BaseException:
        folder.discard(batch)
        raise


# -- a folder of threat crops -------------------------------------------------------------------
#: Default size of a class's threat, as its longest side over the bag's side: the median box of
#: the phantom renderer (300 phantoms at 128 px, seed 0; 10th-90th percentile in brackets):
#: handgun 0.34 (0.29-0.44), knife 0.34 (0.28-0.44), razor blade 0.10 (0.09-0.11), shuriken
#: 0.19 (0.15-0.23). A crop carries no size of its threat in a bag, so this is the size it is
#: given; the same scale as an object set cut from phantoms, so a threat generator pre-trained on
#: phantom threats and fine-tuned on crops (``--init-from``) sees each class at one size.
CROP_SIDES = {"handgun": 0.34, "knife": 0.34, "razor_blade": 0.10, "shuriken": 0.19}
#: Within a class, a crop's size follows its pixel size relative to the class's median crop,
#: limited to this range around :data:`CROP_SIDES` (a crop cut with a wide margin stays sane).
CROP_SPREAD = (0.67, 1.5)
#: Background level of a crop: this percentile of its border band (:func:`crop_background`).
CROP_BACKGROUND_PERCENTILE = 90.0
#: A file named like GDXray's ``B0046_0001...`` belongs to series ``B0046``: its crops stay on one
#: side of the split (views of one bag are near copies).
_SERIES = re.compile(r"^(B\d{4})(?:_|$)", re.IGNORECASE)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def read_crop(path: PathLike) -> np.ndarray:
    """One crop file as an (H, W) grayscale array whose ratios are the scanner's (any scale).

    8-bit and colour files are read by :func:`data_prep.prepare.load_grayscale` (``L`` as is,
    ``RGB``/palette by luminance, ``RGBA`` composited onto white: a transparent margin is empty
    field). 16-bit and float files (``I;16``, ``I``, ``F``) are taken raw, not min..max stretched
    as ``load_grayscale`` does for whole scans: the stretch maps the darkest pixel to 0, so
    ``crop / background`` would become ``(v - min) / (bg - min)`` and every threat would look
    denser than it is; raw counts are proportional to the transmitted intensity.

    Raises:
        BadImageError (a ``ValueError``): empty, truncated, corrupt, non-image or too large file.
    """
    from PIL import Image

    from data_prep.prepare import HIGH_BIT_MODES, load_grayscale

    gray = load_grayscale(path)                   # validates the file; a bad one raises BadImageError
    with Image.open(path) as im:
        if not (im.mode in HIGH_BIT_MODES or im.mode.startswith("I;")):
            return gray
        a = np.asarray(im).astype(np.float32)                               # (H, W) raw counts
    a = a[..., 0] if a.ndim == 3 else a
    return np.clip(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def crop_background(a: np.ndarray, percentile: float = CROP_BACKGROUND_PERCENTILE) -> float:
    """The background level of a crop: a high percentile of its border band (1-2% of its side).

    Why the border and a high percentile: a crop collection cuts each threat with a margin of the
    scanner's empty field, so most border pixels are background; where the threat (or a strap,
    or the next item) touches the edge the border is darker, which the percentile ignores while
    those pixels are fewer than ``100 - percentile`` % of it. Not the maximum: sensor noise and
    JPEG ringing make single pixels brighter than the field, and a background divided by them
    would stay a faint grey square. Not a fixed white: the field is the scanner's light grey
    (200-240 of 255), and that grey must come out as transmission 1.
    """
    a = np.asarray(a, np.float32)
    h, w = a.shape
    band = max(1, min(h, w) // 50)
    border = np.concatenate([a[:band].ravel(), a[-band:].ravel(), a[:, :band].ravel(), a[:, -band:].ravel()])
    return float(np.percentile(border, percentile))


def crop_transmission(a: np.ndarray) -> Optional[np.ndarray]:
    """A crop (any scale) -> its transmission, trimmed to the threat; None when nothing is darker.

    ``T = clip(crop / background, 1e-3, 1)`` (:func:`crop_background`), then faint clutter
    (``T > 1 - OBJECT_CLEAN``) set to 1 as :func:`write_object_dataset` does, and the crop trimmed
    to the pixels darker than ``1 - FOOTPRINT_TOL`` (a margin does not count in its size).
    """
    a = np.asarray(a)
    background = crop_background(a)
    if not background > 0:
        return None
    t = tip.transmission_of(a.astype(np.float32) / np.float32(background), background=1.0, clean=OBJECT_CLEAN)
    ys, xs = np.nonzero(t < 1.0 - FOOTPRINT_TOL)
    if len(xs) == 0:
        return None
    return np.ascontiguousarray(t[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def crop_sides(labels: Sequence[str], longest_px: Sequence[float], fraction: Optional[float] = None,
               bag_pixels: Optional[float] = None) -> np.ndarray:
    """The longest side each crop gets, as a fraction of the bag's side (at most 1 / OBJECT_SCALE).

    Three rules, by which argument is given:

    - default: the class's size :data:`CROP_SIDES`, times the crop's pixel size over the median
      of its class's crops (limited to :data:`CROP_SPREAD`): each class at the phantom
      threats' scale, and a collection's larger handguns stay larger than its smaller ones;
    - ``fraction``: every crop the same, ``fraction`` of the bag's side (the most detail a canvas
      holds is ``1 / OBJECT_SCALE`` = 0.5: the threat fills it);
    - ``bag_pixels``: the crops keep their pixel scale, cut from scans ``bag_pixels`` wide (when a
      collection says what its scans were): ``longest_px / bag_pixels``.
    """
    longest = np.asarray(longest_px, np.float64)
    top = 1.0 / OBJECT_SCALE
    if fraction is not None and bag_pixels is not None:
        raise DataError("give a crop size as a fraction of the bag or the crops' bag size in pixels, not both")
    if fraction is not None:
        if not 0.0 < float(fraction) <= top:
            raise DataError(f"the crop fraction is the threat's longest side over the bag's side, in (0, {top}]; "
                            f"got {fraction}")
        return np.full(len(longest), float(fraction))
    if bag_pixels is not None:
        if not float(bag_pixels) > 0:
            raise DataError(f"the crops' bag size must be a positive number of pixels, got {bag_pixels}")
        return np.minimum(longest / float(bag_pixels), top)
    out = np.empty(len(longest))
    labels = list(labels)
    for c in set(labels):
        k = np.array([lab == c for lab in labels])
        rel = np.clip(longest[k] / np.median(longest[k]), *CROP_SPREAD)
        out[k] = np.minimum(CROP_SIDES[c] * rel, top)
    return out


def _class_folders(crops_dir: Path) -> Tuple[Dict[str, List[Path]], int]:
    """``({class: [folder, ...]}, skipped)`` of a crops folder; folders of other names are reported
    (one line each on stderr) and skipped."""
    found: Dict[str, List[Path]] = {}
    skipped = 0
    for d in sorted(p for p in crops_dir.iterdir() if p.is_dir() and not _hidden(p.name)):
        c = canonical_class(d.name)
        if c is None:
            print(f"objects: skipped folder {d.name}/: not a threat class we model ({', '.join(CLASSES)})",
                  file=sys.stderr)
            skipped += 1
            continue
        found.setdefault(c, []).append(d)
    return found, skipped


def write_crop_dataset(crops_dir: PathLike, out_dir: PathLike, bag_size: int, test_fraction: Optional[float] = None,
                       seed: Optional[int] = None, fraction: Optional[float] = None,
                       bag_pixels: Optional[float] = None, progress: bool = True,
                       stats: Optional[dict] = None) -> list:
    """An object set from a folder of threat crops, one subfolder per class.

    ``crops_dir/handgun/*.png`` (any subset of the classes; folder names through
    :func:`~vae_keras.io.manifest.canonical_class`, so ``Handgun/`` and ``razor blade/`` work;
    others are reported and skipped; files in nested folders count too): PNG, JPEG, TIFF or BMP of
    any size and mode (:func:`read_crop`), each one threat on the scanner's light background.
    Each crop becomes an object like those :func:`write_object_dataset` cuts from bags: its
    transmission (:func:`crop_transmission`: divided by its own background level, faint clutter
    dropped), resized with its aspect kept to the longest side :func:`crop_sides` gives it
    (``fraction`` / ``bag_pixels``; default each class at the phantom threats' size), centred on
    the ``bag_size / 2`` canvas.

    **Split**: per class, by :func:`data_prep.prepare.assign_splits` (``sha1(seed, group)``, the
    same rule as ``prepare``; ``test_fraction`` default 0.3, ``seed`` default 0), the group being
    the file's GDXray series (``B0046_...``) when its name has one, else its path. It depends only
    on the file names and is decided before any file is read, so a bad file moves no other crop.

    **Bad files** (empty, corrupt, unreadable, or darker nowhere than their border) are skipped with
    one line each on stderr, never fatal; ``stats`` (updated in place) gets ``read``, ``skipped``
    (a list of ``(path, reason)``) and ``folders_skipped``.

    Returns:
        the manifest rows written to ``out_dir/manifest.csv``.

    Raises:
        DataError: no class folder, or no usable crop in any of them (nothing is written then).
        FolderInUse (a ``FileExistsError``): ``out_dir`` holds a data set that is not an object set.
    """
    from data_prep.prepare import IMAGE_EXTENSIONS, PrepareError, assign_splits

    crops_dir = Path(crops_dir)
    if not crops_dir.is_dir():
        raise DataError(f"{crops_dir} is not a folder of threat crops (no such folder)")
    test_fraction = 0.3 if test_fraction is None else float(test_fraction)
    if not 0.0 <= test_fraction <= 1.0:
        raise DataError(f"test_fraction must be in [0, 1], got {test_fraction}")
    seed = 0 if seed is None else int(seed)
    stats = stats if stats is not None else {}
    stats.update(read=0, skipped=[], folders_skipped=0)
    folders, stats["folders_skipped"] = _class_folders(crops_dir)
    if not folders:
        raise DataError(f"{crops_dir} has no class folder: name its subfolders after the classes "
                        f"({', '.join(CLASSES)}), one threat crop per image file")
    # 1. the files and their split, from the names alone
    files: List[Tuple[str, Path, str]] = []                          # (class, file, split)
    for c in sorted(folders):
        found = sorted({f for d in folders[c] for f in d.rglob("*") if f.is_file()
                        and f.suffix.lower() in IMAGE_EXTENSIONS
                        and not any(_hidden(part) for part in f.relative_to(crops_dir).parts)})
        group = {f: _group_of(f, crops_dir) for f in found}
        sizes: Dict[str, int] = {}
        for g in group.values():
            sizes[g] = sizes.get(g, 0) + 1
        split_of = assign_splits(sizes, test_fraction, seed)
        files += [(c, f, split_of[group[f]]) for f in found]
    # 2. each file read and divided by its background; bad ones skipped
    kept: List[Tuple[str, np.ndarray, str, str]] = []                # (class, transmission, source, split)
    for c, f, split in files:
        rel = f.relative_to(crops_dir).as_posix()
        try:
            t = crop_transmission(read_crop(f))
        except (PrepareError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or str(e)
            t = None
        else:
            reason = "nothing in it is darker than its border (no threat on the background)"
        if t is None:
            stats["skipped"].append((rel, reason))
            print(f"objects: skipped {rel}: {reason}", file=sys.stderr)
            continue
        kept.append((c, t, rel, split))
    stats["read"] = len(kept)
    if not kept:
        raise DataError(f"{crops_dir} has no usable threat crop ({len(files)} image files in "
                        f"{', '.join(sorted(folders))}/, {len(stats['skipped'])} skipped)")
    # 3. sized by the rule, centred on the canvas, published per split
    side = object_canvas(bag_size)
    sides = crop_sides([k[0] for k in kept], [max(k[1].shape) for k in kept], fraction=fraction,
                       bag_pixels=bag_pixels)
    per_split: Dict[str, List[ThreatCrop]] = {"train": [], "test": []}
    for (c, t, rel, split), s in zip(kept, sides):
        target = max(2, int(round(s * int(bag_size))))                # longest side in canvas pixels
        h, w = t.shape
        f = target / float(max(h, w))
        t = resize_patch(t, max(1, int(round(h * f))), max(1, int(round(w * f))))
        per_split[split].append(ThreatCrop(c, t, rel))
    folder = OutputFolder(out_dir, OBJECT_SET, overwrite=True).open()     # refuses any other data set
    rows: list = []
    for split in ("train", "test"):
        if progress:
            counts = ", ".join(f"{c} {sum(cr.label == c for cr in per_split[split])}" for c in sorted(folders))
            print(f"{split}: {len(per_split[split])} crops ({counts}) -> {Path(out_dir) / split} ({side}x{side})",
                  file=sys.stderr)
        if per_split[split]:
            _publish_split(folder, split, per_split[split], side, rows)
    if progress and stats["skipped"]:
        print(f"objects: skipped {len(stats['skipped'])} of {len(files)} files (one line each above)", file=sys.stderr)
    return rows


def _group_of(f: Path, crops_dir: Path) -> str:
    m = _SERIES.match(f.stem)
    return m.group(1).upper() if m else f.relative_to(crops_dir).as_posix()


def _object_crop(sample: np.ndarray, side: int):
    """An object VAE's sample (s, s) -> its transmission at the bag's canvas ``side``, haze set to
    exactly 1 and trimmed to its footprint; None when it darkens nothing (an empty object)."""
    t = sample / OBJECT_LEVEL                                           # back to transmission
    t = t if t.shape[0] == side else resize_patch(np.clip(t, 1e-3, 1.0), side, side)
    t = np.where(t > 1.0 - FOOTPRINT_TOL, 1.0, np.clip(t, 1e-3, 1.0)).astype(np.float32)
    ys, xs = np.nonzero(t < 1.0)
    if len(xs) == 0:
        return None
    return np.ascontiguousarray(t[max(0, ys.min() - 1):ys.max() + 2, max(0, xs.min() - 1):xs.max() + 2])


def generated_objects(model, counts: Dict[str, int], bag_size: int, seed: int = 0, temperature: float = 1.0,
                      sampler=None, batch_size: int = 64, name: str = "objects", max_rounds: int = 10,
                      stats: Optional[dict] = None) -> list:
    """``counts[c]`` new threats of each class ``c`` from an object VAE, as :class:`~vae_keras.tip.ThreatCrop` s.

    Each sample is rescaled to the bag's object canvas (``bag_size / 2``), its near-transparent
    haze set to exactly 1 (so no faint square is pasted), and trimmed to its footprint. A sample
    that darkens nothing (an undertrained object VAE draws some) is **rejected** and replaced by
    a new draw (another seed), up to ``max_rounds`` rounds: a composite never carries a box
    around nothing. Rejections are counted in ``stats`` (``{"drawn": ..., "rejected": ...}``,
    updated in place) and said on stderr.

    Raises:
        DataError: a class still short of objects after ``max_rounds`` rounds (train the object VAE longer).
    """
    side = object_canvas(bag_size)
    stats = stats if stats is not None else {}
    stats.setdefault("drawn", 0)
    stats.setdefault("rejected", 0)
    crops = []
    for c in sorted(counts):
        k, kept, round_ = int(counts[c]), [], 0
        while len(kept) < k:
            if round_ >= int(max_rounds):
                raise DataError(f"the object VAE drew {stats['rejected']} empty {c} objects in {max_rounds} rounds "
                                f"(no pixel darker than 1 - {FOOTPRINT_TOL}): train it longer")
            want = k - len(kept)
            patches = sample_images(model, want, temperature=temperature,
                                    seed=seed + 101 * (1 + CLASSES.index(c)) + 7919 * round_,
                                    labels=[c], sampler=sampler, batch_size=batch_size)[..., 0]   # (want, s, s)
            stats["drawn"] += want
            for t in patches:
                t = _object_crop(t, side)
                if t is None:
                    stats["rejected"] += 1
                else:
                    kept.append(t)
            round_ += 1
        crops += [ThreatCrop(c, t, f"vae:{name}:{seed}:{c}:{j}") for j, t in enumerate(kept)]
    if stats["rejected"]:
        print(f"objects: rejected {stats['rejected']} of {stats['drawn']} generated objects that darken no pixel "
              "(redrawn)", file=sys.stderr)
    return crops


def composite_samples(bag_model, object_model, labels_per_image: Sequence[Sequence[str]], seed: int = 0,
                      temperature: float = 1.0, bag_sampler=None, object_sampler=None, batch_size: int = 64,
                      object_name: str = "objects", stats: Optional[dict] = None):
    """Generated bags with generated threats projected into them: one new object per requested class.

    Empty objects are rejected and redrawn (:func:`generated_objects`, counted in ``stats``), so
    every box is tight: it holds pixels the object darkens, and each of its edges touches one.

    Returns:
        ``(images (n, S, S, 1) float32, labels (n, C) float32, boxes: n lists)``, boxes exact.
    """

    counts: Dict[str, int] = {}
    for names in labels_per_image:
        for c in names:
            counts[c] = counts.get(c, 0) + 1
    crops = generated_objects(object_model, counts, bag_model.config.image_size, seed=seed,
                              temperature=temperature, sampler=object_sampler, batch_size=batch_size,
                              name=object_name, stats=stats)
    return hybrid_samples(bag_model, labels_per_image, crops, seed=seed, temperature=temperature,
                          sampler=bag_sampler, batch_size=batch_size, one_each=True)


def train_object_vae(data_dir: PathLike, object_data: PathLike, run_dir: PathLike, bag_size: int,
                     minutes: Optional[float], seed: int = 0, epochs: Optional[int] = None):
    """The object VAE of ``data_dir``'s threats for bags of ``bag_size``: cuts them out into
    ``object_data`` (unless already there) and trains ``--config objects`` at the object canvas
    into ``run_dir`` for ``epochs`` when given (a fixed amount of work: a benchmark's result then
    does not depend on the machine's load), else for ``minutes``; returns the
    :class:`~vae_keras.train.Trainer`."""

    if not (Path(object_data) / MANIFEST).is_file():
        write_object_dataset(data_dir, object_data, bag_size, progress=False)
    config = get_config("objects", quick=False, image_size=object_canvas(bag_size), epochs=epochs or 100_000,
                        seed=seed)
    return train(config, object_data, run_dir, minutes=None if epochs else minutes, progress=False)


def open_objects(run) -> Run:
    """An object run (a :class:`~vae_keras.training.run.Run` or its folder), checked: it must be able to draw
    the class asked for (a conditional object VAE, or a run whose sampler is conditioned on labels)."""
    run = as_run(run)
    if not run.answers_labels:
        raise DataError(f"{run.run_dir} is not an object run (it cannot be asked for a class): train one with "
                        "`train --config objects` on a data set written by `python -m vae_keras objects`")
    return run


def load_objects(run_dir: PathLike):
    """``(model, sampler)`` of a trained object run (its configured sampler): :func:`open_objects`, unpacked."""
    run = open_objects(run_dir)
    return run.model, run.sampler
