"""The one safe output folder (vae_keras.io.folder), the PNG encoder and the progress line (no TensorFlow)."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from vae_keras.io import folder as folder_mod
from vae_keras.io.folder import GENERATED, PREPARED, FolderInUse, OutputFolder
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import ManifestRow, read_manifest, write_manifest
from vae_keras.io.progress import Progress


def _rows(n, split="generated"):
    return [ManifestRow(path=f"images/sample_{i:06d}.png", split=split) for i in range(n)]


def test_a_file_becomes_visible_only_once_the_manifest_lists_it(tmp_path, monkeypatch):
    out = OutputFolder(tmp_path, GENERATED).open()
    rows = _rows(3)
    for r in rows:
        out.temporary(r.path).write_bytes(png_bytes(np.zeros((4, 4))))
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):
        if str(dst).endswith(".png"):                            # at each image's rename: what does the manifest say?
            seen.append((os.path.relpath(dst, tmp_path), [r.path for r in read_manifest(tmp_path / "manifest.csv")]))
        return real_replace(src, dst)

    monkeypatch.setattr(folder_mod.os, "replace", watching_replace)
    out.publish(rows, [r.path for r in rows])
    assert [rel for rel, _ in seen] == [r.path for r in rows]
    assert all(rel in listed for rel, listed in seen)


def test_foreign_folders_are_refused_and_old_outputs_replaced(tmp_path):
    data = tmp_path / "data"
    write_manifest(data / "manifest.csv", [ManifestRow(path="train/a.png", split="train")])
    with pytest.raises(FolderInUse, match="non-generated"):
        OutputFolder(data, GENERATED).open()
    gen = tmp_path / "gen"
    out = OutputFolder(gen, GENERATED).open()
    out.temporary("images/sample_000000.png").write_bytes(png_bytes(np.zeros((4, 4))))
    out.publish(_rows(1), ["images/sample_000000.png"])
    with pytest.raises(FolderInUse, match="not a prepared data set"):
        OutputFolder(gen, PREPARED).open()                       # prepare never writes over an export
    (gen / "images" / "sample_000007.png").write_bytes(b"old")
    (gen / "classes.txt").write_text("knife\n")
    (gen / "images" / ".sample_000008.png.tmp").write_bytes(b"half")
    (gen / "notes.txt").write_text("the user's")
    with pytest.raises(FolderInUse, match="overwrite"):
        OutputFolder(gen, GENERATED, overwrite=False).open()
    OutputFolder(gen, GENERATED).open()
    assert sorted(p.relative_to(gen).as_posix() for p in gen.rglob("*") if p.is_file()) == ["manifest.csv", "notes.txt"]
    assert read_manifest(gen / "manifest.csv") == []


def test_png_bytes_rounds_floats_and_keeps_uint8():
    x = np.array([[0.0, 0.5, 1.0, 1.2]], np.float32)
    back = np.asarray(Image.open(io.BytesIO(png_bytes(x))))
    assert back.tolist() == [[0, 128, 255, 255]]
    u = np.array([[3, 200]], np.uint8)[..., None]
    assert np.asarray(Image.open(io.BytesIO(png_bytes(u)))).tolist() == [[3, 200]]


def test_progress_counts_and_messages():
    stream = io.StringIO()
    bar = Progress(True, stream=stream)
    bar.count(1, 2, "phantoms")
    bar.message("skipped a.png: empty")
    bar.count(2, 2, "phantoms")
    text = stream.getvalue()
    assert "phantoms [###############               ] 1/2" in text and "skipped a.png: empty\n" in text
    assert text.endswith("\n") and "2/2" in text
    quiet = io.StringIO()
    Progress(False, stream=quiet).count(1, 1)
    assert quiet.getvalue() == ""
