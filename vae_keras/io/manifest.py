"""The manifest of a prepared data set: one row per image, written atomically.

Columns (CSV, UTF-8, header row):

- ``path``: image path relative to the data set root, e.g. ``train/000123.png``;
- ``split``: ``train`` or ``test``;
- ``labels``: threat classes present, ``;``-joined, from :data:`CLASSES` (empty = benign);
- ``boxes``: JSON list of ``{"label": "knife", "box": [x1, y1, x2, y2]}`` in output pixel
  coordinates (x to the right, y down, inclusive-exclusive like numpy slices);
- ``series``: the bag/series the image belongs to (GDXray ``B0046``), empty when unknown;
- ``source``: where the image came from (original path, or ``phantom:seed``).

A generated export's manifest (split ``generated``) has one more column, ``fallback``: empty, or
why the image may not show what its labels say (``label mix too rare``: the latent sampler had
no mixture for that label combination and drew from the whole mixture, see
:mod:`vae_keras.samplers`). Filter on it: ``[r for r in rows if not r.fallback]``.

Why a CSV and not TFRecords: people open it in a spreadsheet, and it is the export format
detectors' tooling converts from.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Sequence

import numpy as np

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike, atomic_write_text

#: Threat classes, in the order of the multi-hot label vector.
CLASSES: tuple = ("handgun", "knife", "razor_blade", "shuriken")

#: Names used by the real data sets (GDXray VOC XML, SIXray CSV, ...) mapped to ours.
CLASS_ALIASES = {
    "handgun": "handgun", "gun": "handgun", "pistol": "handgun",
    "knife": "knife", "knives": "knife", "folding_knife": "knife", "straight_knife": "knife",
    "utility_knife": "knife", "multi-tool_knife": "knife",
    "razorblade": "razor_blade", "razor_blade": "razor_blade", "razor blade": "razor_blade",
    "blade": "razor_blade",
    "shuriken": "shuriken", "ninja_star": "shuriken",
}

#: The manifest's file name in a data set or export folder (the one place it is defined).
MANIFEST = "manifest.csv"

FIELDS = ("path", "split", "labels", "boxes", "series", "source")
#: A generated export's columns (:data:`FIELDS` and ``fallback``).
GENERATED_FIELDS = FIELDS + ("fallback",)


def canonical_class(name: str):
    """Our class name for a data set's class name, or None when it is not a threat we model."""
    key = name.strip().lower().replace("-", "_")
    return CLASS_ALIASES.get(key, CLASS_ALIASES.get(key.replace("_", " ")))


@dataclass
class ManifestRow:
    """One image of a prepared data set."""

    path: str
    split: str
    labels: List[str] = field(default_factory=list)
    boxes: List[dict] = field(default_factory=list)
    series: str = ""
    source: str = ""
    fallback: str = ""

    def multi_hot(self) -> np.ndarray:
        """The labels as a ``(len(CLASSES),)`` float32 multi-hot vector."""
        v = np.zeros(len(CLASSES), np.float32)
        for name in self.labels:
            v[CLASSES.index(name)] = 1.0
        return v

    def to_csv_dict(self) -> dict:
        return {
            "path": self.path,
            "split": self.split,
            "labels": ";".join(self.labels),
            "boxes": json.dumps(self.boxes, separators=(",", ":")),
            "series": self.series,
            "source": self.source,
            "fallback": self.fallback,
        }


def manifest_text(rows: Iterable[ManifestRow], fields: Sequence[str] = FIELDS) -> str:
    """The CSV text of a manifest of ``rows`` (what :func:`write_manifest` writes) with columns ``fields``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.to_csv_dict())
    return buf.getvalue()


def write_manifest(path: PathLike, rows: Iterable[ManifestRow], fields: Sequence[str] = FIELDS) -> Path:
    """Write ``rows`` to ``path`` atomically (a killed writer leaves the old manifest)."""
    return atomic_write_text(path, manifest_text(rows, fields))


def read_manifest(path: PathLike) -> List[ManifestRow]:
    """Read a manifest written by :func:`write_manifest` (extra columns are ignored).

    Raises:
        FileNotFoundError: no manifest at ``path``.
        DataError: a required column is missing, or a row has a class this project does not know
            (a data set made for another class list).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no manifest at {path}: expected a prepared data set folder "
            "(make one with `python -m vae_keras phantoms OUT` or `python -m vae_keras prepare SRC OUT`)"
        )
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "split"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: manifest lacks column(s) {sorted(missing)}; found {reader.fieldnames}")
        for rec in reader:
            labels = [s for s in (rec.get("labels") or "").split(";") if s]
            unknown = [s for s in labels if s not in CLASSES]
            if unknown:
                raise DataError(f"{path}: row {rec['path']!r} has unknown label(s) {unknown}; this project's classes "
                                f"are {', '.join(CLASSES)} (runs and data sets must share them)")
            rows.append(ManifestRow(
                path=rec["path"], split=rec["split"], labels=labels,
                boxes=json.loads(rec.get("boxes") or "[]"),
                series=rec.get("series") or "", source=rec.get("source") or "",
                fallback=rec.get("fallback") or "",
            ))
    return rows


def labels_to_multi_hot(labels: Sequence[str]) -> np.ndarray:
    """``["knife"]`` -> ``[0, 1, 0, 0]`` (float32)."""
    return ManifestRow(path="", split="", labels=list(labels)).multi_hot()


_HOW_TO_MAKE_DATA = ("make one with `python -m vae_keras phantoms OUT` (synthetic) or "
                     "`python -m vae_keras prepare SRC OUT` (a real X-ray set)")


def split_rows(data_dir: PathLike, split: str):
    """The manifest rows of ``split``, with errors that say how to fix a missing data set.

    No TensorFlow here, so that the command line can refuse a missing data set before loading it.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist: {_HOW_TO_MAKE_DATA}")
    manifest = data_dir / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{data_dir} has no {MANIFEST}, so it is not a prepared data set: "
                                f"{_HOW_TO_MAKE_DATA}")
    rows = read_manifest(manifest)
    chosen = [r for r in rows if r.split == split]
    if not chosen:
        present = sorted({r.split for r in rows})
        raise DataError(f"split {split!r} of {data_dir} has no images; the manifest lists the "
                        f"split(s) {present} ({len(rows)} rows)")
    return chosen
