"""Bad input through ``python -m vae_keras prepare``: one clear line per bad file, every good file kept.

The cases real folders bring (see shared/REAL_DATA.md) that tests/test_prepare.py does not already
cover: a decompression-bomb sized PNG, 1x1 images, unreadable files and folders, file names that
are not UTF-8, a missing or empty folder through the CLI, and a property-based test of the
importer on random bytes and random valid images.
"""
from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from data_prep import prepare as prep
from vae_keras.io.manifest import read_manifest
from data_prep.prepare import BadImageError, load_grayscale, prepare, probe_size

ROOT = Path(__file__).resolve().parents[1]


def _png(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def _bag(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    a = np.full((h, w), 240, np.uint8)
    a[h // 4:h // 2, w // 4:w // 2] = 40
    return a + rng.integers(0, 8, a.shape, dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png(path, width=20_000, height=20_000):
    """A valid-looking PNG header claiming ``width x height`` 8-bit gray, with a few bytes of IDAT.

    A real 20,000 x 20,000 PNG of zeros is 390 KB on disk and 400 MB decoded; the importer must
    refuse it from the header, so the pixel data need not be there.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _cli(*args, timeout=60):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "vae_keras", "prepare", *map(str, args), "--quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# -- end to end through the CLI ----------------------------------------------------------------------
def test_cli_skips_each_bad_file_with_one_line_and_keeps_every_good_one(tmp_path):
    src = tmp_path / "scans"
    good = {"a/scan.png": _bag(seed=1), "b/scan.png": _bag(seed=2),            # same name, two folders
            "Gepäck/荷物.png": _bag(seed=3), "one_pixel.png": np.zeros((1, 1), np.uint8),
            "one_pixel_rgb.png": np.full((1, 1, 3), 200, np.uint8), "wide_1px.png": np.zeros((1, 300), np.uint8)}
    for rel, a in good.items():
        _png(src / rel, a)
    Image.fromarray(_bag(seed=4)).convert("RGB").save(src / "photo.jpg")
    good["photo.jpg"] = None
    jpg = (src / "photo.jpg").read_bytes()
    bad = {"empty.png": b"", "truncated.jpg": jpg[:200], "text.tiff": b"II*\0 not really a tiff",
           "random.bmp": os.urandom(500)}
    for rel, data in bad.items():
        (src / rel).write_bytes(data)
    _huge_png(src / "bomb.png")
    bad["bomb.png"] = None

    t0 = time.monotonic()
    res = _cli(src, tmp_path / "out", "--size", "32")
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t0 < 30
    assert "Traceback" not in res.stderr and "Warning" not in res.stderr
    for rel in bad:
        lines = [l for l in res.stderr.splitlines() if l.startswith(f"skipped {rel}: ")]
        assert len(lines) == 1, (rel, res.stderr)
    assert "too large" in next(l for l in res.stderr.splitlines() if l.startswith("skipped bomb.png"))
    assert f"skipped {len(bad)}" in res.stdout
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["skipped_count"] == len(bad) and {s["path"] for s in report["skipped"]} == set(bad)
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(r.source for r in rows) == sorted(good)
    assert len({r.path for r in rows}) == len(good) and all(r.path.isascii() for r in rows)
    for r in rows:
        assert Image.open(tmp_path / "out" / r.path).size == (32, 32)


@pytest.mark.parametrize("case", ["missing", "empty", "only_bad", "not_a_folder"])
def test_cli_without_usable_images_is_one_error_line_and_status_2(tmp_path, case):
    src = tmp_path / "src"
    if case == "empty":
        src.mkdir()
    elif case == "only_bad":
        src.mkdir()
        (src / "a.png").write_bytes(b"")
        _huge_png(src / "b.png")
    elif case == "not_a_folder":
        src.write_bytes(b"x")
    res = _cli(src, tmp_path / "out")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert {"missing": "not found", "empty": "no image files", "only_bad": "no usable image",
            "not_a_folder": "not a folder"}[case] in errors[0]


def test_cli_output_folder_that_cannot_be_written_is_one_error_line(tmp_path):
    _png(tmp_path / "src" / "a.png", _bag())
    (tmp_path / "file").write_text("not a folder")
    res = _cli(tmp_path / "src", tmp_path / "file" / "out")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: cannot write the output folder")


# -- the decompression bomb --------------------------------------------------------------------------
def test_20000_by_20000_png_is_refused_from_its_header_fast_and_small(tmp_path):
    bomb = _huge_png(tmp_path / "bomb.png")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    with pytest.raises(BadImageError, match="too large"):
        load_grayscale(bomb)
    with pytest.raises(BadImageError, match="too large"):
        probe_size(bomb)
    assert time.monotonic() - t0 < 1.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"
    assert 20_000 * 20_000 > prep.MAX_PIXELS


def test_just_above_the_limit_is_refused_by_our_check_with_the_size(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "MAX_PIXELS", 1_000_000)
    big = _huge_png(tmp_path / "big.png", 1001, 1000)      # 1.001 MP: below Pillow's own limits
    with pytest.raises(BadImageError, match="1001x1000"):
        probe_size(big)


# -- unreadable files and folders (simulated: tests run as root, where chmod 000 does not stop reads) --
def test_unreadable_file_is_skipped_with_permission_denied(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i in range(3):
        _png(src / f"ok{i}.png", _bag(seed=i))
    _png(src / "locked.png", _bag(seed=9))
    real_open = Image.open

    def guarded_open(fp, *a, **kw):
        if Path(str(fp)).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *a, **kw)

    monkeypatch.setattr(prep.Image, "open", guarded_open)
    report = prepare(src, tmp_path / "out", size=16, progress=False)
    assert report["written"] == 3
    assert report["skipped"] == [{"path": "locked.png", "reason": "cannot read the file (permission denied)"}]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads files whatever their permissions (the simulated test covers it)")
def test_unreadable_file_for_real(tmp_path):
    src = tmp_path / "src"
    _png(src / "ok.png", _bag())
    locked = _png(src / "locked.png", _bag(seed=1))
    locked.chmod(0)
    try:
        report = prepare(src, tmp_path / "out", size=16, progress=False)
    finally:
        locked.chmod(0o644)
    assert report["written"] == 1 and "permission denied" in report["skipped"][0]["reason"]


def test_unreadable_subfolder_is_reported_not_silently_lost(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    _png(src / "ok.png", _bag())
    _png(src / "private" / "scan.png", _bag(seed=1))
    real_scandir = os.scandir

    def guarded_scandir(path="."):
        if Path(os.fsdecode(path)).name == "private":
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    report = prepare(src, tmp_path / "out", size=16, progress=True)
    assert report["written"] == 1
    assert report["skipped"] == [{"path": "private/", "reason": "cannot list the folder (Permission denied)"}]
    assert "skipped private/: cannot list the folder" in capsys.readouterr().err


# -- names -------------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as names")
def test_file_names_that_are_not_utf8_are_kept_and_shown_escaped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "plain.png", _bag())
    data = (src / "plain.png").read_bytes()
    with open(os.path.join(os.fsencode(src), b"caf\xe9.png"), "wb") as f:   # Latin-1 name
        f.write(data)
    res = _cli(src, tmp_path / "out", "--size", "16")
    assert res.returncode == 0, res.stderr
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(r.source for r in rows) == ["caf\\xe9.png", "plain.png"]
    assert all(r.path.isascii() for r in rows)


# -- property: the importer never crashes and never drops a valid image -------------------------------
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
FORMATS = {"png": "PNG", "tif": "TIFF", "jpg": "JPEG", "bmp": "BMP"}
SAVABLE = {"PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
           "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"},
           "JPEG": {"L", "RGB", "CMYK"}, "BMP": {"1", "L", "P", "RGB", "RGBA"}}


@st.composite
def valid_images(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(sorted(SAVABLE[FORMATS[fmt]])))
    w, h = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I", "F"):
        a = rng.integers(0, 60000, (h, w)).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode])
        im = Image.fromarray(a)                                  # I;16, I or F from the dtype
    else:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=FORMATS[fmt])
    return fmt, buf.getvalue()


junk = st.tuples(st.sampled_from(sorted(FORMATS)), st.one_of(
    st.binary(max_size=300),
    valid_images().map(lambda v: v[1][: max(0, len(v[1]) // 2)]),              # truncated
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\0", b"BM"]).flatmap(   # a magic, then noise
        lambda magic: st.binary(max_size=200).map(lambda rest: magic + rest))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(good=st.lists(valid_images(), min_size=1, max_size=4), bad=st.lists(junk, max_size=4))
def test_importer_never_crashes_and_keeps_every_valid_image(tmp_path_factory, good, bad):
    work = tmp_path_factory.mktemp("prop")
    src = work / "src"
    src.mkdir()
    good_names = []
    for i, (ext, data) in enumerate(good):
        good_names.append(f"good_{i}.{ext}")
        (src / good_names[-1]).write_bytes(data)
    for i, (ext, data) in enumerate(bad):
        (src / f"junk_{i}.{ext}").write_bytes(data)
    report = prepare(src, work / "out", size=16, progress=False, workers=1)   # raises nothing
    rows = read_manifest(work / "out" / "manifest.csv")
    kept = {r.source for r in rows}
    assert set(good_names) <= kept, report["skipped"]
    assert report["written"] + report["skipped_count"] == len(good) + len(bad)
    for r in rows:
        assert Image.open(work / "out" / r.path).size == (16, 16)
