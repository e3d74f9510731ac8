"""Data set builders and importers for xray-vae.

Everything here ends in the project's *prepared layout*::

    OUT/train/*.png        # grayscale, uint8, size x size, bright background
    OUT/test/*.png
    OUT/manifest.csv       # path,split,labels,boxes[,series,source]

``path`` is relative to OUT (``train/000001.png``), ``labels`` is a ``;``-joined list of
threat classes from :data:`CLASSES`, ``boxes`` is JSON (see :mod:`vae_keras.io.manifest`).
"""
from vae_keras.io.manifest import CLASSES, ManifestRow, read_manifest, write_manifest

__all__ = ["CLASSES", "ManifestRow", "read_manifest", "write_manifest"]
