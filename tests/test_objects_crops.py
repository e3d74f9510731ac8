"""``objects CROPS OUT``: a folder of threat crops, one subfolder per class, imported as an object set."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vae_keras.errors import DataError
from vae_keras.io.manifest import read_manifest
from vae_keras.sampling import objects
from vae_keras.sampling.objects import CROP_SIDES, OBJECT_LEVEL, crop_background, crop_sides, write_object_dataset

BG = round(OBJECT_LEVEL * 255)          # an empty canvas pixel of an object set: transmission 1


def _crop(h=48, w=64, background=200.0, threat=60.0, noise=3.0, seed=0):
    """A light-grey crop (float) with a dark bar-and-grip 'threat' and sensor noise."""
    rng = np.random.default_rng(seed)
    a = np.full((h, w), background, np.float32) + rng.normal(0, noise, (h, w)).astype(np.float32)
    a[h // 4:h // 2, w // 6:w - w // 6] = threat                    # the barrel
    a[h // 4:3 * h // 4, w // 6:w // 3] = threat                    # the grip
    return a


def _png(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)).save(path)


@pytest.fixture()
def crops(tmp_path):
    """Handgun/ (8-bit grey PNGs, a 16-bit TIFF, an RGBA PNG, a corrupt and an empty file),
    `razor blade/` (JPEGs), wrench/ (a class we do not model)."""
    root = tmp_path / "crops"
    for i in range(6):
        _png(root / "Handgun" / f"gun_{i:02d}.png", _crop(seed=i))
    raw = _crop(background=50000.0, threat=10000.0, noise=200.0, seed=9)   # 16-bit counts: transmission 0.2
    Image.fromarray(np.clip(raw, 0, 65535).astype(np.uint16)).save(root / "Handgun" / "gun_16bit.tif")
    rgba = np.zeros((40, 40, 4), np.uint8)                          # transparent margin, an opaque threat
    rgba[10:30, 8:32] = (100, 100, 100, 255)
    Image.fromarray(rgba, "RGBA").save(root / "Handgun" / "gun_rgba.png")
    (root / "Handgun" / "gun_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    (root / "Handgun" / "gun_empty.jpg").write_bytes(b"")
    (root / "Handgun" / "notes.txt").write_text("not an image")
    (root / "razor blade").mkdir()
    for i in range(4):
        a = np.full((20, 30), 215.0, np.float32)
        a[8:12, 3:27] = 90
        Image.fromarray(a.astype(np.uint8)).convert("RGB").save(root / "razor blade" / f"B0046_{i:04d}.jpg",
                                                                 quality=95)
    _png(root / "wrench" / "w.png", _crop())
    return root


def test_a_crops_folder_becomes_an_object_set(crops, tmp_path, capsys):
    stats = {}
    rows = write_object_dataset(crops, tmp_path / "obj", bag_size=64, progress=False, stats=stats)
    err = capsys.readouterr().err
    # bad files: one line each naming the file, counted, not fatal; the unknown class folder said
    assert [p for p, _ in stats["skipped"]] == ["Handgun/gun_corrupt.png", "Handgun/gun_empty.jpg"]
    assert "empty file" in dict(stats["skipped"])["Handgun/gun_empty.jpg"]
    assert err.count("skipped Handgun/gun_corrupt.png") == 1 and err.count("skipped Handgun/gun_empty.jpg") == 1
    assert "skipped folder wrench/" in err and stats["folders_skipped"] == 1 and "notes.txt" not in err
    # the class from the folder name; every good file one row, its source the file
    sources = {r.source[len("crop:"):]: r for r in rows}
    assert sorted(sources) == sorted([f"Handgun/gun_{i:02d}.png" for i in range(6)] + [
        "Handgun/gun_16bit.tif", "Handgun/gun_rgba.png"] + [f"razor blade/B0046_{i:04d}.jpg" for i in range(4)])
    assert all(r.labels == ["handgun"] for s, r in sources.items() if s.startswith("Handgun/"))
    assert all(r.labels == ["razor_blade"] and r.boxes[0]["label"] == "razor_blade"
               for s, r in sources.items() if s.startswith("razor"))
    assert stats["read"] == len(rows) == 12
    assert read_manifest(tmp_path / "obj" / "manifest.csv") == rows

    def image(source):
        return np.asarray(Image.open(tmp_path / "obj" / sources[source].path), np.float32)

    for source in sources:                                         # a 32 px canvas whose empty field is 1
        img = image(source)
        assert img.shape == (32, 32)
        assert img[0, 0] == img[-1, -1] == BG
    # a light-grey background (200 of 255, noisy) normalised to transmission 1, the threat to 60 / 200
    grey = image("Handgun/gun_00.png")
    x1, y1, x2, y2 = sources["Handgun/gun_00.png"].boxes[0]["box"]
    outside = np.ones_like(grey, bool)
    outside[y1:y2, x1:x2] = False
    assert np.all(grey[outside] == BG)                             # no grey square, no noise left
    assert abs(np.median(grey[grey < BG - 5]) / BG - 60 / 200) < 0.05
    # a 16-bit TIFF keeps its ratio to the background (0.2), not min..max stretched to black
    deep = image("Handgun/gun_16bit.tif")
    assert abs(np.median(deep[deep < BG - 5]) / BG - 0.2) < 0.05
    # an RGBA PNG: the transparent margin is the empty field, the threat 100 / 255
    rgba = image("Handgun/gun_rgba.png")
    assert abs(np.median(rgba[rgba < BG - 5]) / BG - 100 / 255) < 0.05
    # each class at its default size: the median crop's longest side is CROP_SIDES of the bag
    for c, prefix in (("handgun", "Handgun/gun_0"), ("razor_blade", "razor")):
        sides = [max(r.boxes[0]["box"][2] - r.boxes[0]["box"][0], r.boxes[0]["box"][3] - r.boxes[0]["box"][1])
                 for s, r in sources.items() if s.startswith(prefix)]
        assert abs(np.median(sides) - CROP_SIDES[c] * 64) <= 1.5, (c, sides)


def test_the_split_comes_from_the_file_names(crops, tmp_path):
    a = write_object_dataset(crops, tmp_path / "a", bag_size=64, progress=False)
    b = write_object_dataset(crops, tmp_path / "b", bag_size=64, progress=False)
    assert a == b                                                  # deterministic
    split = {r.source: r.split for r in a}
    guns = [s for s in split if s.startswith("crop:Handgun/")]
    assert {split[s] for s in guns} == {"train", "test"}          # each class on both sides
    assert len({split[s] for s in split if "B0046_" in s}) == 1    # one GDXray series stays on one side
    (crops / "Handgun" / "gun_00.png").unlink()                    # removing a file moves no other one
    c = write_object_dataset(crops, tmp_path / "c", bag_size=64, progress=False)
    assert all(split[r.source] == r.split for r in c)
    d = write_object_dataset(crops, tmp_path / "d", bag_size=64, progress=False, test_fraction=0.0)
    assert {r.split for r in d} == {"train"}


def test_no_usable_crop_is_an_error_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "crops"
    (root / "knife").mkdir(parents=True)
    (root / "knife" / "a.png").write_bytes(b"")
    _png(root / "knife" / "blank.png", np.full((20, 20), 210.0))     # only background: no threat in it
    with pytest.raises(DataError, match="no usable threat crop"):
        write_object_dataset(root, tmp_path / "out", bag_size=64, progress=False)
    assert "skipped knife/blank.png: nothing in it is darker" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    other = tmp_path / "other"
    (other / "spoons").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folder"):
        write_object_dataset(other, tmp_path / "out", bag_size=64, progress=False)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="neither a prepared data set"):
        write_object_dataset(tmp_path / "flat", tmp_path / "out", bag_size=64, progress=False)


def test_crop_size_rules():
    labels, px = ["handgun"] * 3 + ["shuriken"], [100, 200, 400, 50]
    np.testing.assert_allclose(crop_sides(labels, px), [0.34 * 0.67, 0.34, 0.5, 0.19])   # 0.34 x 1.5 > 0.5: capped
    np.testing.assert_allclose(crop_sides(labels, px, fraction=0.4), [0.4] * 4)
    np.testing.assert_allclose(crop_sides(labels, px, bag_pixels=800), [0.125, 0.25, 0.5, 0.0625])
    with pytest.raises(DataError, match="not both"):
        crop_sides(labels, px, fraction=0.4, bag_pixels=800)
    with pytest.raises(DataError, match=r"\(0, 0.5\]"):
        crop_sides(labels, px, fraction=0.7)


def test_the_background_ignores_a_threat_touching_the_border():
    a = _crop(background=220.0, noise=2.0)
    a[:, :12] = 40                                                 # a strap along one whole side: 20% of the border
    a[0, 5] = 255                                                  # one hot pixel
    assert abs(crop_background(a) - 220.0) < 5


def test_cli_objects_imports_crops_and_refuses_crop_options_for_a_prepared_set(crops, tmp_path, capsys,
                                                                              tiny_dataset):
    from vae_keras.cli import main

    out = tmp_path / "obj"
    assert main(["objects", str(crops), str(out), "--size", "64", "--crop-fraction", "0.5", "--quiet"]) == 0
    text = capsys.readouterr()
    assert "wrote 12 threats (32x32)" in text.out and "2 bad files skipped" in text.out
    for r in read_manifest(out / "manifest.csv"):
        x1, y1, x2, y2 = r.boxes[0]["box"]
        assert max(x2 - x1, y2 - y1) in (31, 32)                   # half the bag: the threat fills its canvas
    assert main(["objects", str(tiny_dataset), str(tmp_path / "x"), "--crop-fraction", "0.3"]) == 2
    assert "--crop-fraction only apply to a folder of threat crops" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["objects", str(crops), str(tmp_path / "y"), "--cut", "alone", "--quiet"]) == 2
    assert "only applies to a prepared set" in capsys.readouterr().err
    assert objects.source_kind(crops) == "crops" and objects.source_kind(tiny_dataset) == "prepared"
