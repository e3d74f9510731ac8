"""The one safe output folder: a manifest and the files it lists, published batch by batch.

``generate`` (every format), the detection export and ``prepare`` write their output through
:class:`OutputFolder`. It does four things, in this order:

1. **Refuse a foreign folder.** A folder whose ``manifest.csv`` is not of the expected kind (a
   prepared data set where an export should go, or the other way round, or an unreadable one)
   is never touched: :class:`FolderInUse`. An earlier output of the same kind is replaced only
   when ``overwrite`` is set.
2. **Clear the old output.** An empty, valid manifest is published first; then the old files
   go: those the old manifest listed, every file named like ours (``sample_000012.png``, also
   from the layout before ``images/`` existed: ``OUT/sample_*.png``), and the hidden
   temporaries a killed writer left.
3. **Write under temporary names.** Each file is written as ``.NAME.tmp`` beside its final
   name (:meth:`OutputFolder.temporary`), invisible to anyone who lists the folder.
4. **Publish in batches** (:meth:`OutputFolder.publish`): the temporaries are flushed to disk,
   the manifest listing them (and every earlier batch) replaces the old one atomically, and
   only then are they renamed to their final names.

**What a killed writer leaves.** Publishing a batch changes many directory entries (the
manifest and each file) and no file system changes several atomically, so there is always a
moment between two of them. The order above puts that moment where it does no harm: *every
visible file is complete and listed in the manifest*, at every instant. What a kill between
the manifest and the last rename leaves is a manifest row whose file still has its temporary
name: complete and flushed (the rename is all that is missing), in the last batch only.
The opposite order (rename, then manifest) would leave complete files that no manifest lists,
which a detector's trainer, reading ``images/`` directly, would use without the manifest's
labels. The next write into the folder removes the leftovers (step 2).

**Test hook.** With the environment variable ``XRAY_VAE_TEST_KILL_AFTER_MANIFEST=K`` set, the
process kills itself (SIGKILL) right after publishing the manifest of its ``K``-th batch,
before any rename: the worst moment, reproduced on demand by
``tests/test_interruption.py``. Nothing else reads it.

Example:
    >>> folder = OutputFolder(out, GENERATED, overwrite=True).open()
    >>> folder.temporary("images/sample_000000.png").write_bytes(png_bytes(image))
    >>> folder.publish(rows[:1], ["images/sample_000000.png"])
"""
from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from vae_keras.errors import XrayVaeError
from vae_keras.io.atomic import PathLike, atomic_write_text, sync_files
from vae_keras.io.manifest import FIELDS, GENERATED_FIELDS, MANIFEST, ManifestRow, manifest_text, read_manifest

#: The environment variable of the test hook (see the module docstring).
KILL_HOOK = "XRAY_VAE_TEST_KILL_AFTER_MANIFEST"


class FolderInUse(XrayVaeError, FileExistsError):
    """The output folder holds something we must not overwrite (a foreign data set, or an earlier
    output without ``overwrite``)."""


@dataclass(frozen=True)
class FolderKind:
    """What one kind of output folder holds.

    Attributes:
        name: in messages ("an export", "a prepared data set").
        ours: whether an existing manifest's rows are of this kind (else the folder is foreign).
        fields: the manifest's columns.
        subdirs: the folders (relative to the root, ``""`` = the root) the files live in.
        pattern: file names that are ours whether or not a manifest lists them (None: only listed ones).
        extra: further files of ours at the root (``classes.txt``), removed with the old output.
    """

    name: str
    ours: Callable[[List[ManifestRow]], bool]
    fields: Sequence[str] = FIELDS
    subdirs: Sequence[str] = ("",)
    pattern: Optional[str] = None
    extra: Sequence[str] = ()


#: Generated images (``generate`` in every format): ``images/``, with ``labels/`` (YOLO) or
#: ``annotations/`` (VOC); the root too, where exports before ``images/`` put their samples.
GENERATED = FolderKind(
    name="an export", ours=lambda rows: all(r.split == "generated" for r in rows), fields=GENERATED_FIELDS,
    subdirs=("", "images", "labels", "annotations"), pattern=r"sample_\d{6,}\.(png|txt|xml)",
    extra=("classes.txt", "data.yaml"))

#: A prepared data set (``prepare``): ``train/`` and ``test/``, only the PNGs its manifest lists.
PREPARED = FolderKind(name="a prepared data set", ours=lambda rows: all(r.split in ("train", "test") for r in rows),
                      subdirs=("train", "test"))


class OutputFolder:
    """A folder whose manifest lists exactly its complete files (see the module docstring).

    Args:
        root: the folder (created by :meth:`open`).
        kind: :data:`GENERATED`, :data:`PREPARED` or your own :class:`FolderKind`.
        overwrite: replace an earlier output of the same kind (else :class:`FolderInUse`).
    """

    def __init__(self, root: PathLike, kind: FolderKind, overwrite: bool = True):
        self.root = Path(root)
        self.kind = kind
        self.overwrite = bool(overwrite)
        self.manifest = self.root / MANIFEST
        self._published = 0                       # batches published (for the test hook)

    # -- 1 and 2: open ----------------------------------------------------------------------------
    def check(self) -> List[Path]:
        """Raise :class:`FolderInUse` unless we may write here; return the old output's files."""
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} exists and is not a folder")
        old_rows: List[ManifestRow] = []
        if self.manifest.exists():
            try:
                old_rows = read_manifest(self.manifest)
                foreign = not self.kind.ours(old_rows)
            except (ValueError, KeyError, OSError):
                foreign = True
            if foreign:
                what = ("non-generated images" if self.kind is GENERATED
                        else f"rows that are not {self.kind.name}'s, or it is unreadable")
                raise FolderInUse(f"{self.manifest} is not {self.kind.name}'s manifest (it lists {what}): "
                                  "choose an empty or new output folder")
        old = self._old_files(old_rows)
        if (old or self.manifest.exists()) and not self.overwrite:
            raise FolderInUse(f"{self.root} already holds {self.kind.name} ({len(old)} files): "
                              "pass overwrite=True or choose another folder")
        return old

    def open(self) -> "OutputFolder":
        """Check, create the folder, publish an empty manifest, then remove the old output."""
        old = self.check()
        for sub in self.kind.subdirs:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.manifest, manifest_text([], self.kind.fields))   # a valid, empty output first
        for p in old:
            p.unlink(missing_ok=True)
        self.remove_temporaries()
        return self

    def _old_files(self, old_rows: Sequence[ManifestRow]) -> List[Path]:
        """The files of an earlier output: listed by its manifest, or named like ours, or :attr:`FolderKind.extra`."""
        dirs = {(self.root / sub).resolve() for sub in self.kind.subdirs}
        found = set()
        for row in old_rows:                      # only plain files directly in one of our folders
            p = self.root / row.path
            if p.parent.resolve() in dirs and p.is_file():
                found.add(p)
        if self.kind.pattern:
            ours = re.compile(rf"^{self.kind.pattern}$")
            for sub in self.kind.subdirs:
                if (self.root / sub).is_dir():
                    found.update(p for p in (self.root / sub).iterdir() if ours.match(p.name) and p.is_file())
        found.update(self.root / name for name in self.kind.extra if (self.root / name).is_file())
        return sorted(found)

    def remove_temporaries(self) -> None:
        """Remove our hidden temporary files (``.NAME.tmp`` in our folders and the root: the manifest's)."""
        for sub in dict.fromkeys(("", *self.kind.subdirs)):
            folder = self.root / sub
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    p.unlink(missing_ok=True)

    # -- 3 and 4: write and publish ---------------------------------------------------------------
    def temporary(self, rel: str) -> Path:
        """Where to write the file ``rel`` (relative to the root) before it is published."""
        final = self.root / rel
        return final.with_name(f".{final.name}.tmp")

    def publish(self, rows: Sequence[ManifestRow], rels: Sequence[str]) -> None:
        """Publish the written temporaries of ``rels`` with a manifest listing ``rows``.

        Args:
            rows: every row published so far, this batch included (the whole new manifest).
            rels: this batch's files, in the order they become visible (label files before
                their images, so that no image is ever seen without its label).
        """
        temps = [self.temporary(rel) for rel in rels]
        sync_files(self.root, temps)                             # complete on disk before anyone lists them
        atomic_write_text(self.manifest, manifest_text(rows, self.kind.fields))
        self._published += 1
        if os.environ.get(KILL_HOOK) == str(self._published):   # test hook: the worst moment to die
            os.kill(os.getpid(), signal.SIGKILL)
        for tmp, rel in zip(temps, rels):
            os.replace(tmp, self.root / rel)

    def discard(self, rels: Sequence[str]) -> None:
        """Remove the temporaries of files that will not be published (an error or Ctrl-C)."""
        for rel in rels:
            self.temporary(rel).unlink(missing_ok=True)
