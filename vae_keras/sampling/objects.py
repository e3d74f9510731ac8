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
    python -m vae_keras train OBJECTS --config objects --image-size 32 --minutes 3 --out runs/objects
    python -m vae_keras generate runs/bags --objects runs/objects --label knife --format yolo --out OUT
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from vae_keras.errors import DataError
from vae_keras.config import get_config
from vae_keras.io.atomic import PathLike
from vae_keras.io.folder import FolderKind, OutputFolder
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import CLASSES, MANIFEST, ManifestRow
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


def write_object_dataset(data_dir: PathLike, out_dir: PathLike, bag_size: int, progress: bool = True) -> list:
    """Cut every boxed threat of a prepared data set into a prepared data set of objects.

    Each threat of ``data_dir`` (images loaded at ``bag_size``) becomes a transmission map
    (:func:`vae_keras.tip.cut_threats`, faint clutter dropped: :data:`OBJECT_CLEAN`) centred on a transparent canvas of ``bag_size / 2``
    pixels, saved as a PNG (``transmission x OBJECT_LEVEL``) labelled with its class, in the split
    of the image it came from.

    ``out_dir`` is the one safe output folder (:mod:`vae_keras.io.folder`): an earlier object set
    there is replaced, any other data set refused; a killed run leaves only listed, complete PNGs.

    Returns:
        the manifest rows written to ``out_dir/manifest.csv``.

    Raises:
        FolderInUse (a ``FileExistsError``): ``out_dir`` holds a data set that is not an object set.
        DataError: ``data_dir`` has no boxed threat.
    """

    folder = OutputFolder(out_dir, OBJECT_SET, overwrite=True).open()     # refuses any other data set
    side = object_canvas(bag_size)
    rows = []
    for split in ("train", "test"):
        try:
            crops = tip.crops_from_prepared(data_dir, split, image_size=int(bag_size), clean=OBJECT_CLEAN)
        except ValueError:                      # no such split
            continue
        if progress:
            print(f"{split}: {len(crops)} threats -> {Path(out_dir) / split} ({side}x{side})", file=sys.stderr)
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
    if not rows:
        raise DataError(f"{data_dir} has no boxed threat to cut out (its manifest has no boxes)")
    return rows


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
