"""Tests of ``data_prep.prepare``: every fixture is made here, in tmp_path (no real scans in the repo)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from data_prep import prepare as prep
from vae_keras.io.manifest import read_manifest
from data_prep.prepare import (BadImageError, PrepareError, assign_splits, letterbox, load_grayscale,
                               prepare, read_ground_truth)


# -- helpers ---------------------------------------------------------------------------------------
def _bag(h=60, w=80, seed=0):
    """A small bright-background 'scan' with a dark block (uint8)."""
    rng = np.random.default_rng(seed)
    a = np.full((h, w), 250, np.uint8)
    a[h // 4:h // 2, w // 4:w // 2] = 30
    a += rng.integers(0, 5, a.shape, dtype=np.uint8)
    return a


def _save(path, array, mode=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(path, **kw)
    return path


def _voc(path, objects, size=None):
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    sz = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>1</depth></size>" if size else ""
    path.write_text(f"<annotation><filename>{path.stem}.png</filename>{sz}{objs}</annotation>")


def _gdxray(root, n_series=10, per_series=3, start=40):
    """Baggages/Bxxxx/Bxxxx_000k.png, made at test time."""
    for s in range(start, start + n_series):
        for k in range(1, per_series + 1):
            _save(root / "Baggages" / f"B{s:04d}" / f"B{s:04d}_{k:04d}.png", _bag(40, 50, seed=s * 10 + k))
    return root / "Baggages"


# -- modes ------------------------------------------------------------------------------------------
def test_16bit_tiff_uses_full_range_and_dark_stays_dark(tmp_path):
    a = np.full((40, 60), 56000, np.uint16)
    a[10:20, 10:30] = 1000          # dense object: dark
    a[25:30, 40:50] = 28500          # mid grey
    p = _save(tmp_path / "hums.tif", a)
    assert Image.open(p).mode.startswith("I;16")
    g = load_grayscale(p)
    assert g.dtype == np.uint8 and g.shape == (40, 60)
    assert g.min() == 0 and g.max() == 255
    assert (g[10:20, 10:30] == 0).all() and g[0, 0] == 255
    assert abs(int(g[27, 45]) - 128) <= 1
    # a fixed window keeps intensities comparable across images
    w = load_grayscale(p, window=(0, 65535))
    assert w[0, 0] == round(56000 / 65535 * 255) and w[15, 15] == round(1000 / 65535 * 255)


def test_16bit_big_endian_and_int32(tmp_path):
    a = np.linspace(0, 60000, 30 * 20).reshape(30, 20).astype(">u2")
    im = Image.frombytes("I;16B", (20, 30), a.tobytes())
    im.save(tmp_path / "be.tif")
    g = load_grayscale(tmp_path / "be.tif")
    assert g[0, 0] == 0 and g[-1, -1] == 255
    i32 = Image.fromarray(np.linspace(-5, 70000, 600).reshape(30, 20).astype(np.int32), "I")
    i32.save(tmp_path / "i32.tif")
    g = load_grayscale(tmp_path / "i32.tif")
    assert g[0, 0] == 0 and g[-1, -1] == 255


def test_rgba_transparent_area_is_white(tmp_path):
    a = np.zeros((20, 30, 4), np.uint8)         # fully transparent black ...
    a[5:10, 5:10] = (40, 40, 40, 255)           # ... except an opaque dark object
    g = load_grayscale(_save(tmp_path / "rgba.png", a, "RGBA"))
    assert g[0, 0] == 255 and g[7, 7] == 40
    la = np.zeros((20, 30, 2), np.uint8)
    la[5:10, 5:10] = (40, 255)
    g = load_grayscale(_save(tmp_path / "la.png", la, "LA"))
    assert g[0, 0] == 255 and g[7, 7] == 40


def test_palette_rgb_equal_channels_bilevel_cmyk(tmp_path):
    gray = _bag()
    rgb = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(load_grayscale(_save(tmp_path / "rgb.png", rgb, "RGB")), gray)
    pal = Image.fromarray(rgb, "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    pal.save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    np.testing.assert_allclose(load_grayscale(tmp_path / "pal.png"), gray, atol=6)
    # palette with a transparent index -> white there
    p2 = Image.new("P", (10, 10), 0)
    p2.putpalette([0, 0, 0, 100, 100, 100] + [0] * 762)
    p2.paste(1, (2, 2, 5, 5))
    p2.info["transparency"] = 0
    p2.save(tmp_path / "pal_t.png", transparency=0)
    g = load_grayscale(tmp_path / "pal_t.png")
    assert g[0, 0] == 255 and g[3, 3] == 100
    bits = Image.fromarray(gray > 128).convert("1")
    bits.save(tmp_path / "bits.png")
    assert set(np.unique(load_grayscale(tmp_path / "bits.png"))) <= {0, 255}
    Image.fromarray(rgb, "RGB").convert("CMYK").save(tmp_path / "cmyk.tif")
    np.testing.assert_allclose(load_grayscale(tmp_path / "cmyk.tif"), gray, atol=3)


def test_pseudo_colour_jpeg_becomes_luminance(tmp_path):
    a = np.full((64, 96, 3), 255, np.uint8)     # white background
    a[10:40, 10:50] = (255, 128, 0)             # orange (organic)
    a[20:50, 60:90] = (0, 60, 200)              # blue (metal)
    _save(tmp_path / "P00001.jpg", a, "RGB", quality=95)
    g = load_grayscale(tmp_path / "P00001.jpg")
    assert g.shape == (64, 96)
    assert g[2, 2] >= 250
    assert abs(int(g[25, 30]) - round(0.299 * 255 + 0.587 * 128)) <= 4
    assert abs(int(g[35, 75]) - round(0.587 * 60 + 0.114 * 200)) <= 4


# -- letterbox --------------------------------------------------------------------------------------
def test_letterbox_keeps_aspect_and_moves_boxes():
    a = np.zeros((200, 400), np.uint8)                  # wide: H=200, W=400
    out, boxes = letterbox(a, 100, [{"label": "knife", "box": [40, 20, 120, 100]}, [0, 0, 400, 200]])
    assert out.shape == (100, 100) and out.dtype == np.uint8
    assert (out[:25] == 255).all() and (out[75:] == 255).all() and (out[25:75] == 0).all()
    assert boxes == [{"label": "knife", "box": [10, 30, 30, 50]}, [0, 25, 100, 75]]
    tall = np.zeros((300, 100), np.uint8)
    out, boxes = letterbox(tall, 60, [[-10, 150, 50, 400], [200, 0, 300, 10]])
    assert (out[:, :20] == 255).all() and (out[:, 20:40] == 0).all() and (out[:, 40:] == 255).all()
    assert boxes == [[20, 30, 30, 60]]                  # clipped; the box outside the image is dropped


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), size=st.integers(1, 128))
def test_letterbox_full_image_box_is_the_content_area(h, w, size):
    out, (box,) = letterbox(np.zeros((h, w), np.uint8), size, [[0, 0, w, h]])
    assert out.shape == (size, size)
    x1, y1, x2, y2 = box
    assert max(x2 - x1, y2 - y1) == size                        # the long side fills the output
    assert (out[y1:y2, x1:x2] < 128).all()                      # content inside the box
    pad = np.ones_like(out, bool)
    pad[y1:y2, x1:x2] = False
    assert (out[pad] == 255).all()                              # white padding outside
    assert abs(x1 - (size - x2)) <= 1 and abs(y1 - (size - y2)) <= 1   # centred


def test_voc_boxes_through_prepare_for_a_non_square_image(tmp_path):
    src = tmp_path / "src"
    img = np.full((200, 400), 255, np.uint8)
    img[20:100, 40:120] = 0
    _save(src / "bag" / "scan1.png", img)
    # VOC is 1-based inclusive: pixels 40..119 x 20..99 are xmin=41 .. xmax=120
    _voc(src / "bag" / "scan1.xml", [("Knife", (41, 21, 120, 100)), ("Wrench", (1, 1, 5, 5))], size=(400, 200))
    _save(src / "bag" / "scan2.png", _bag())
    report = prepare(src, tmp_path / "out", size=100, progress=False)
    rows = {r.source: r for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    r = rows["bag/scan1.png"]
    assert r.labels == ["knife"] and r.boxes == [{"label": "knife", "box": [10, 30, 30, 50]}]
    out = np.asarray(Image.open(tmp_path / "out" / r.path))
    assert out.shape == (100, 100) and out[40, 20] < 40 and out[10, 50] == 255
    assert report["dropped_objects"] == {"Wrench": 1}
    assert rows["bag/scan2.png"].labels == [] and rows["bag/scan2.png"].boxes == []


# -- bad input --------------------------------------------------------------------------------------
def test_bad_files_are_skipped_reported_and_good_ones_kept(tmp_path, capsys):
    src = tmp_path / "src"
    for i in range(4):
        _save(src / f"good{i}.png", _bag(seed=i))
    good = (src / "good0.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    (src / "empty.png").write_bytes(b"")
    (src / "notes.PNG").write_text("this is not an image\n")
    (src / "readme.txt").write_text("ignored: not an image extension")
    report = prepare(src, tmp_path / "out", size=32, progress=False)
    err = capsys.readouterr().err
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"truncated.png", "empty.png", "notes.PNG"}
    assert "0 bytes" in reasons["empty.png"] and "not an image" in reasons["notes.PNG"]
    assert "truncated" in reasons["truncated.png"] or "corrupt" in reasons["truncated.png"]
    for name in reasons:
        assert sum(line.startswith(f"skipped {name}: ") for line in err.splitlines()) == 1
    assert report["written"] == 4 and report["skipped_count"] == 3
    on_disk = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert on_disk["skipped_count"] == 3
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(r.source for r in rows) == [f"good{i}.png" for i in range(4)]
    assert {r.split for r in rows} == {"train", "test"}
    with pytest.raises(BadImageError, match="0 bytes"):
        load_grayscale(src / "empty.png")


def test_missing_empty_and_all_bad_folders_raise(tmp_path, capsys):
    with pytest.raises(PrepareError, match="not found"):
        prepare(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no image files"):
        prepare(tmp_path / "empty", tmp_path / "out", progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"")
    with pytest.raises(PrepareError, match="no usable image"):
        prepare(tmp_path / "bad", tmp_path / "out", progress=False)
    assert prep.main([str(tmp_path / "nope"), str(tmp_path / "out2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: source folder not found" in err and "Traceback" not in err


def test_pixel_limit_gives_a_clear_reason(tmp_path, monkeypatch):
    pillow_limit = Image.MAX_IMAGE_PIXELS
    _save(tmp_path / "src" / "big.png", _bag(60, 80))
    _save(tmp_path / "src" / "small.png", _bag(10, 10))
    monkeypatch.setattr(prep, "MAX_PIXELS", 1000)
    report = prepare(tmp_path / "src", tmp_path / "out", size=16, progress=False)
    assert report["written"] == 1 and "above the 0 MP limit" in report["skipped"][0]["reason"]
    assert Image.MAX_IMAGE_PIXELS == pillow_limit        # Pillow's own guard is restored


# -- GDXray ------------------------------------------------------------------------------------------
def test_ground_truth_txt_parsing(tmp_path):
    gt = tmp_path / "ground_truth.txt"
    gt.write_text("% image x1 x2 y1 y2\n1 10 50 20 60\n1, 70, 90, 5, 15\n3\t100 80 40 30\n\n")
    assert read_ground_truth(gt) == {1: [[9, 19, 50, 60], [69, 4, 90, 15]], 3: [[79, 29, 100, 40]]}


def test_gdxray_ground_truth_class_from_argument(tmp_path):
    src = _gdxray(tmp_path, n_series=2, per_series=2)
    (src / "B0040" / "ground_truth.txt").write_text("2 11 30 6 25\n")   # image 2: x 10..30, y 5..25
    r1 = prepare(src, tmp_path / "o1", size=50, progress=False)        # 50x40 image: scale 1, y0 = 5
    rows = {r.source: r for r in read_manifest(tmp_path / "o1" / "manifest.csv")}
    assert rows["B0040/B0040_0002.png"].boxes == [] and any("no class" in w for w in r1["warnings"])
    prepare(src, tmp_path / "o2", size=50, progress=False, gt_class="B0040=handgun")
    rows = {r.source: r for r in read_manifest(tmp_path / "o2" / "manifest.csv")}
    assert rows["B0040/B0040_0002.png"].labels == ["handgun"]
    assert rows["B0040/B0040_0002.png"].boxes == [{"label": "handgun", "box": [10, 10, 30, 30]}]
    assert rows["B0040/B0040_0001.png"].labels == []


def test_gdxray_split_keeps_series_together_and_is_deterministic(tmp_path):
    src = _gdxray(tmp_path, n_series=10, per_series=3)
    _save(src / "B0041" / "B0041_0001.png", _bag(30, 70))        # overwrite one: other size
    r1 = prepare(src, tmp_path / "o1", size=32, progress=False)
    r2 = prepare(src, tmp_path / "o2", size=32, progress=False)
    m1 = (tmp_path / "o1" / "manifest.csv").read_bytes()
    assert m1 == (tmp_path / "o2" / "manifest.csv").read_bytes()
    rows = read_manifest(tmp_path / "o1" / "manifest.csv")
    assert r1["kind"] == "gdxray" and r1 == {**r2, "out": r1["out"]}
    sides = {}
    for r in rows:
        sides.setdefault(r.series, set()).add(r.split)
        assert (tmp_path / "o1" / r.path).is_file() and r.path.startswith(r.split + "/")
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 10
    assert r1["train"] == 21 and r1["test"] == 9                   # 7 series / 3 series
    other = prepare(src, tmp_path / "o3", size=32, progress=False, seed=1)
    assert other["train"] == 21
    im = np.asarray(Image.open(tmp_path / "o1" / rows[0].path))
    assert im.shape == (32, 32) and im.dtype == np.uint8


def test_flat_gdxray_copy_takes_the_series_from_file_names(tmp_path):
    # dataset/JPEGImages/B00xx_000k.png + dataset/Annotations/B00xx_000k.xml: no series folder.
    src = tmp_path / "dataset"
    for s in (46, 47, 48):
        for k in range(1, 6):
            stem = f"B{s:04d}_{k:04d}"
            _save(src / "JPEGImages" / f"{stem}.png", _bag(40, 50, seed=s * 10 + k))
            (src / "Annotations").mkdir(parents=True, exist_ok=True)
            _voc(src / "Annotations" / f"{stem}.xml", [("Handgun" if s != 48 else "Knife", (11, 6, 30, 25))])
    _save(src / "JPEGImages" / "extra_scan.png", _bag(40, 50))       # not a GDXray name: its own group
    report = prepare(src, tmp_path / "out", size=50, progress=False, test_fraction=0.4)
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    assert report["kind"] == "gdxray" and report["written"] == 16
    sides = {}
    for r in rows:
        if r.source != "JPEGImages/extra_scan.png":
            sides.setdefault(r.series, set()).add(r.split)
    assert set(sides) == {"B0046", "B0047", "B0048"}
    assert all(len(s) == 1 for s in sides.values())                 # no bag on both sides
    assert {next(iter(s)) for s in sides.values()} == {"train", "test"}
    assert report["series"]["train"] + report["series"]["test"] == 3
    extra = next(r for r in rows if r.source == "JPEGImages/extra_scan.png")
    assert extra.series == "" and extra.boxes == []
    b46 = next(r for r in rows if r.source == "JPEGImages/B0046_0002.png")
    assert b46.labels == ["handgun"] and b46.boxes == [{"label": "handgun", "box": [10, 10, 30, 30]}]
    assert report["labels"]["knife"] == 5 and report["labels"]["handgun"] == 10


def test_series_folder_wins_over_file_name_and_odd_names_stay_generic(tmp_path):
    src = tmp_path / "src"
    _save(src / "B0050" / "B0051_0001.png", _bag())        # the folder names the series
    _save(src / "flat" / "B0052_1.png", _bag())            # not B\d{4}_\d{4}
    _save(src / "flat" / "xB0053_0001.png", _bag())
    report = prepare(src, tmp_path / "out", size=16, progress=False)
    series = {r.source: r.series for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert series == {"B0050/B0051_0001.png": "B0050", "flat/B0052_1.png": "", "flat/xB0053_0001.png": ""}
    assert report["kind"] == "gdxray"
    generic = tmp_path / "generic"
    _save(generic / "B0052_1.png", _bag())
    _save(generic / "scan.png", _bag())
    assert prepare(generic, tmp_path / "out2", size=16, progress=False)["kind"] == "generic"


def test_rerun_into_same_out_removes_only_its_own_stale_files(tmp_path):
    src = _gdxray(tmp_path, n_series=4, per_series=2)
    out = src / "prepared"                       # inside SRC: never read back as a source
    first = prepare(src, out, size=16, progress=False)
    assert first["found"] == 8
    mine = out / "train" / "keep_me.txt"
    mine.write_text("user file")
    assert prepare(src, out, size=16, progress=False, test_fraction=0.5)["found"] == 8
    rows = read_manifest(out / "manifest.csv")
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert on_disk == sorted(r.path for r in rows) and mine.exists()


# -- names, YOLO, SIXray labels ----------------------------------------------------------------------
def test_output_names_are_unique_ascii(tmp_path):
    src = tmp_path / "src"
    for folder in ("a", "b", "Gepäck ü"):
        _save(src / folder / "scan.png", _bag())
    _save(src / "b" / "sub" / "scan.png", _bag())
    _save(src / "日本" / "荷物.png", _bag())
    prepare(src, tmp_path / "out", size=16, progress=False)
    paths = [r.path for r in read_manifest(tmp_path / "out" / "manifest.csv")]
    assert len(paths) == len(set(paths)) == 5
    assert all(p.isascii() for p in paths)
    assert any("/Gepack_u_scan_" in p for p in paths)


def test_yolo_labels_with_classes_file(tmp_path):
    src = tmp_path / "ds"
    _save(src / "images" / "x1.jpg", np.repeat(_bag(100, 200)[..., None], 3, 2), "RGB")
    (src / "labels").mkdir(parents=True)
    (src / "labels" / "x1.txt").write_text("1 0.25 0.5 0.1 0.2\n0 0.5 0.5 0.2 0.2\n")
    (src / "classes.txt").write_text("Wrench\nKnife\n")
    _save(src / "images" / "x2.jpg", np.repeat(_bag(100, 200)[..., None], 3, 2), "RGB")
    report = prepare(src, tmp_path / "out", size=100, progress=False)
    rows = {r.source: r for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    # x: 0.2..0.3 of 200 px -> 40..60 -> 20..30; y: 0.4..0.6 of 100 px -> 40..60 -> 20..30 + 25
    assert rows["images/x1.jpg"].boxes == [{"label": "knife", "box": [20, 45, 30, 55]}]
    assert report["dropped_objects"] == {"Wrench": 1}


def test_large_jpeg_draft_keeps_boxes_right(tmp_path):
    a = np.full((1000, 2000, 3), 255, np.uint8)
    a[200:400, 400:800] = 0
    _save(tmp_path / "src" / "big.jpg", a, "RGB", quality=90)
    _voc(tmp_path / "src" / "big.xml", [("Handgun", (401, 201, 800, 400))])
    prepare(tmp_path / "src", tmp_path / "out", size=100, progress=False)
    (row,) = read_manifest(tmp_path / "out" / "manifest.csv")
    assert row.boxes == [{"label": "handgun", "box": [20, 35, 40, 45]}]
    out = np.asarray(Image.open(tmp_path / "out" / row.path))
    assert out[40, 30] < 30 and out[30, 30] > 225 and out[60, 60] > 225


def test_sixray_labels_csv(tmp_path):
    src = tmp_path / "sixray"
    colour = np.full((30, 40, 3), 255, np.uint8)
    colour[5:15, 5:20] = (255, 140, 0)
    for name in ("P00001", "P00002", "N0000001"):
        _save(src / f"{name}.jpg", colour, "RGB")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("name,gun,knife,wrench,pliers,scissors\nP00001,1,0,1,0,0\nP00002,0,1,0,0,-1\n"
                        "N0000001,0,0,0,0,0\n")
    prepare(src, tmp_path / "out", size=32, labels_csv=csv_path, progress=False)
    rows = {r.source: r.labels for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert rows == {"P00001.jpg": ["handgun"], "P00002.jpg": ["knife"], "N0000001.jpg": []}


def test_assign_splits_targets_the_fraction():
    sizes = {f"g{i}": 1 for i in range(100)}
    split = assign_splits(sizes, 0.3)
    assert sum(v == "test" for v in split.values()) == 30
    assert set(assign_splits({"a": 1, "b": 1}, 0.3).values()) == {"train", "test"}
    assert assign_splits({"a": 5}, 0.3) == {"a": "train"}
    assert set(assign_splits(sizes, 0.0).values()) == {"train"}
