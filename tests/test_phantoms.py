"""Tests of the phantom generator: physics, determinism, labels and boxes, the written data set.

Fast (a few seconds) and without TensorFlow. The issue #13 part pins what the upgrade promises:
exact boxes, determinism, and presets and difficulty parameters that do what they say.
"""
import numpy as np
import pytest

from vae_keras.io.manifest import CLASSES, read_manifest
from data_prep.phantoms import (PRESETS, Difficulty, image_rng, render_phantom, render_spec, sample_spec,
                                split_of, write_phantom_dataset)
from data_prep.xray_physics import (Scanner, attenuation_to_intensity, blur, box_downsample,
                                    fast_standard_normal, mu)


# -- physics ---------------------------------------------------------------------------------------
def test_more_material_is_darker():
    line_integral = np.tile(np.linspace(0.0, 5.0, 32, dtype=np.float32), (8, 1))  # (8, 32)
    img = attenuation_to_intensity(line_integral, i0=None, blur_sigma=0.0)
    assert img.shape == (8, 32) and img.dtype == np.float32
    assert np.all(np.diff(img[0]) < 0)
    assert img[0, 0] > 0.9 and img[0, -1] < 0.01


def test_overlap_multiplies_transmissions():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 2, (16, 16)).astype(np.float32)
    b = rng.uniform(0, 2, (16, 16)).astype(np.float32)

    def f(x):
        return attenuation_to_intensity(x, i0=None, blur_sigma=0.0, air_level=1.0)

    np.testing.assert_allclose(f(a + b), f(a) * f(b), rtol=1e-5, atol=1e-7)


def test_noise_is_photon_noise():
    """Mean preserved, variance ~ I0 * T (Poisson): relative noise grows in dark regions."""
    rng = np.random.default_rng(1)
    i0 = 1000.0
    for t in (0.0, 2.0):
        img = attenuation_to_intensity(np.full((128, 128), t, np.float32), rng, i0=i0, blur_sigma=0.0,
                                       air_level=0.5) / 0.5  # (no clipping at 1)
        expected = np.exp(-t)
        assert img.mean() == pytest.approx(expected, rel=0.02)
        assert img.std() == pytest.approx(np.sqrt(expected / i0), rel=0.1)


def test_noise_needs_rng():
    with pytest.raises(ValueError, match="rng"):
        attenuation_to_intensity(np.zeros((4, 4), np.float32), rng=None, i0=100.0)


def test_blur_and_downsample_preserve_mean():
    rng = np.random.default_rng(2)
    x = rng.random((32, 32)).astype(np.float32)
    assert blur(x, 0.8).mean() == pytest.approx(x.mean(), rel=0.01)
    assert box_downsample(x, 4).shape == (8, 8)
    assert box_downsample(x, 4).mean() == pytest.approx(x.mean(), rel=1e-5)


def test_fast_normal_is_standard_normal():
    z = fast_standard_normal(np.random.default_rng(3), (200_000,))
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, abs=0.01)


def test_materials_order():
    assert mu("cloth") < mu("water") < mu("aluminium") < mu("steel")
    with pytest.raises(ValueError, match="unknown material"):
        mu("unobtainium")


# -- rendering -------------------------------------------------------------------------------------
def test_deterministic_per_seed_and_index():
    a, la, ba = render_phantom(5, 3, size=64)
    b, lb, bb = render_phantom(5, 3, size=64)
    c, _, _ = render_phantom(5, 4, size=64)
    d, _, _ = render_phantom(6, 3, size=64)
    np.testing.assert_array_equal(a, b)
    assert la == lb and ba == bb
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


@pytest.mark.parametrize("size", [32, 64, 224])
def test_image_range_and_bright_background(size):
    img, _, _ = render_phantom(0, 1, size=size)
    assert img.shape == (size, size) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    k = max(2, size // 32)
    for corner in (img[:k, :k], img[:k, -k:], img[-k:, :k], img[-k:, -k:]):
        assert corner.mean() > 0.85


@pytest.mark.parametrize("size", [64, 224])
def test_labels_and_boxes_consistent(size):
    for i in range(30):
        img, labels, boxes = render_phantom(1, i, size=size)
        assert labels == [c for c in CLASSES if c in labels], "sorted in CLASSES order, no duplicates"
        assert sorted({b["label"] for b in boxes}, key=CLASSES.index) == labels
        for b in boxes:
            x1, y1, x2, y2 = b["box"]
            assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
            assert all(isinstance(v, int) for v in b["box"])


def test_benign_fraction_extremes():
    for i in range(12):
        _, labels, boxes = render_phantom(2, i, size=32, benign_fraction=1.0)
        assert labels == [] and boxes == []
        _, labels, boxes = render_phantom(2, i, size=32, benign_fraction=0.0)
        assert labels and 1 <= len(boxes) <= 3


def test_default_benign_fraction_is_about_thirty_percent():
    benign = sum(not render_phantom(3, i, size=32)[1] for i in range(100))
    assert 15 <= benign <= 45


def _threat_min(size, label, n=60):
    """Minimum grey level inside each box of ``label`` over the first images that have one."""
    mins = []
    for i in range(n):
        img, _, boxes = render_phantom(4, i, size=size, benign_fraction=0.0)
        for b in boxes:
            if b["label"] == label:
                x1, y1, x2, y2 = b["box"]
                mins.append(img[y1:y2, x1:x2].min())
    assert mins, f"no {label} in {n} images"
    return np.array(mins)


@pytest.mark.parametrize("label", CLASSES)
def test_metal_threats_are_dark(label):
    mins = _threat_min(224, label)
    assert np.all(mins < 0.3), mins


def test_handgun_dark_at_64():
    assert np.all(_threat_min(64, "handgun") < 0.3)


def test_bag_is_mid_grey():
    img, _, _ = render_phantom(0, 0, size=224, benign_fraction=1.0)
    centre = img[80:144, 80:144]
    assert 0.15 < np.median(centre) < 0.85


# -- writing a data set ----------------------------------------------------------------------------
def test_split_is_exact_and_deterministic():
    s = split_of(100, 7, 0.3)
    assert s.count("test") == 30 and s == split_of(100, 7, 0.3) and s != split_of(100, 8, 0.3)
    assert split_of(3, 0, 0.3).count("test") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_write_phantom_dataset(tmp_path, workers):
    rows = write_phantom_dataset(tmp_path, n=40, size=32, seed=9, progress=False, workers=workers)
    assert len(rows) == 40
    back = read_manifest(tmp_path / "manifest.csv")
    assert [r.path for r in back] == [r.path for r in rows]
    assert sum(r.split == "test" for r in back) == 12
    for i, r in enumerate(back):
        assert (tmp_path / r.path).is_file()
        assert r.path == f"{r.split}/phantom_{i:06d}.png"
        assert r.source == f"phantom:9:{i}"
        assert r.labels == render_phantom(9, i, size=32)[1]
    assert len(list(tmp_path.glob("*/*.png"))) == 40


def test_written_png_matches_render(tmp_path):
    from PIL import Image

    rows = write_phantom_dataset(tmp_path, n=3, size=32, seed=1, progress=False, workers=1)
    img = np.asarray(Image.open(tmp_path / rows[2].path), np.float32) / 255.0
    ref, _, boxes = render_phantom(1, 2, size=32)
    assert np.abs(img - ref).max() <= 0.5 / 255 + 1e-6
    assert rows[2].boxes == boxes


def test_progress_bar_on_stderr(tmp_path, capsys):
    write_phantom_dataset(tmp_path, n=3, size=16, seed=0, progress=True, workers=1)
    err = capsys.readouterr().err
    assert "3/3" in err


def test_bad_arguments():
    with pytest.raises(ValueError, match="benign_fraction"):
        render_phantom(0, 0, benign_fraction=1.5)
    with pytest.raises(ValueError, match="positive"):
        write_phantom_dataset("unused", n=0)


# -- issue #13: presets, scanner model, difficulty ------------------------------------------------


def _maps(seed, i, size, preset="gdxray", **difficulty):
    rng = image_rng(seed, i)
    spec = sample_spec(rng, seed, i, size, 0.0, preset, difficulty or None)
    return spec, render_spec(spec, rng, return_maps=True)


def _to_output(mu_t, spec):
    """(n, n) rendering-grid map -> (size, size): the largest value in each output pixel."""
    o = mu_t.shape[0] // spec.size
    return mu_t.reshape(spec.size, o, spec.size, o).max(axis=(1, 3))


@pytest.mark.parametrize("size", [64, 224])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_boxes_contain_every_threat_pixel(size, preset):
    """Exact boxes: every visible pixel a threat darkens lies inside a box of the image."""
    for i in range(12):
        spec, (img, _, boxes, maps) = _maps(2, i, size, preset, occlusion=1.0)
        dense = _to_output(maps["threats"], spec) > 0.05  # (size, size): the commit threshold
        dense &= img < 1.0  # (padding outside the scan shows nothing)
        inside = np.zeros_like(dense)
        for b in boxes:
            x1, y1, x2, y2 = b["box"]
            inside[y1:y2, x1:x2] = True
        assert dense.any() and not (dense & ~inside).any(), (i, int((dense & ~inside).sum()))


def test_same_seed_same_image_for_every_option():
    kw = dict(preset="belt", difficulty={"occlusion": 1.0, "pose": 20.0, "threat_size": 0.8, "clutter": 2.0})
    a, la, ba = render_phantom(3, 5, 64, 0.0, **kw)
    b, lb, bb = render_phantom(3, 5, 64, 0.0, **kw)
    np.testing.assert_array_equal(a, b)
    assert (la, ba) == (lb, bb)
    assert not np.array_equal(a, render_phantom(3, 5, 64, 0.0)[0])


def test_default_preset_is_gdxray():
    np.testing.assert_array_equal(render_phantom(1, 2, 64)[0], render_phantom(1, 2, 64, preset="gdxray")[0])


def _near_white(n=20, **kw):
    return np.mean([(render_phantom(4, i, 64, **kw)[0] > 0.9).mean() for i in range(n)])


def test_belt_leaves_more_background_than_gdxray():
    gdxray, belt = _near_white(preset="gdxray"), _near_white(preset="belt")
    assert belt > gdxray + 0.15, (gdxray, belt)


def test_scan_is_letterboxed_with_white_padding():
    """The scan has the aspect of a real one: rows (or columns) of pure white padding at two sides."""
    for i in range(10):
        img = render_phantom(0, i, 64)[0]
        rows, cols = (img == 1.0).all(axis=1), (img == 1.0).all(axis=0)
        assert (rows[0] and rows[-1]) or (cols[0] and cols[-1]) or not (rows.any() or cols.any())
    assert any((render_phantom(0, i, 64)[0] == 1.0).all(axis=1)[0] for i in range(10))


def test_occlusion_covers_threats():
    """Difficulty.occlusion raises the share of threat pixels under clutter."""
    def covered(occlusion):
        shares = []
        for i in range(25):
            _, (_, _, _, maps) = _maps(5, i, 64, occlusion=occlusion)
            threat = maps["threats"] > 0.05
            shares.append((maps["clutter"][threat] > 0.2).mean())
        return float(np.mean(shares))

    low, high = covered(0.0), covered(1.0)
    assert high > low + 0.15, (low, high)


def test_threat_size_scales_boxes():
    def mean_area(threat_size):
        areas = [(b["box"][2] - b["box"][0]) * (b["box"][3] - b["box"][1])
                 for i in range(20) for b in render_phantom(6, i, 64, 0.0, difficulty={"threat_size": threat_size})[2]]
        return np.mean(areas)

    assert mean_area(1.4) > 1.6 * mean_area(0.7)


def test_pose_zero_keeps_knives_level():
    """pose=0: every knife lies along the image's x axis (its box is wide); any pose: some stand up."""
    def knife_aspects(pose):
        return [(b["box"][2] - b["box"][0]) / (b["box"][3] - b["box"][1])
                for i in range(40) for b in render_phantom(7, i, 224, 0.0, difficulty={"pose": pose})[2]
                if b["label"] == "knife"]

    level, any_pose = knife_aspects(0.0), knife_aspects(180.0)
    assert level and min(level) > 2.0, level
    assert min(any_pose) < 1.0, any_pose


def test_clutter_density_fills_the_bag():
    empty, full = _near_white(benign_fraction=1.0, difficulty={"clutter": 0.0}), \
        _near_white(benign_fraction=1.0, difficulty={"clutter": 2.5})
    assert full < empty - 0.1, (empty, full)


def test_bad_preset_and_difficulty():
    with pytest.raises(ValueError, match="unknown preset"):
        render_phantom(0, 0, 32, preset="airport")
    with pytest.raises(ValueError, match="occlusion"):
        render_phantom(0, 0, 32, difficulty={"occlusion": 2.0})
    with pytest.raises(ValueError, match="unknown difficulty"):
        render_phantom(0, 0, 32, difficulty={"size": 1.0})
    with pytest.raises(ValueError, match="pose"):
        Difficulty(pose=-5)
    with pytest.raises(ValueError, match="unknown preset"):
        write_phantom_dataset("unused", n=2, preset="airport")


def test_metal_is_nearly_black():
    """2 mm of steel is below the scanner's black level: 0 in the image, as in GDXray."""
    rng = np.random.default_rng(0)
    line_integral = np.full((64, 64), mu("steel") * 0.4, np.float32)
    img = Scanner().image(line_integral, rng, cm_per_px=60 / 64)
    assert img.max() < 0.02


def test_noise_shrinks_with_larger_pixels():
    """The scanner's flux is per cm^2: a 64 px image (big pixels) is less noisy than a 224 px one."""
    rng = np.random.default_rng(1)
    std = {s: Scanner(focal_spot_cm=0, resample_px=0).image(np.full((s, s), 0.5, np.float32), rng, 60 / s).std()
           for s in (64, 224)}
    assert std[64] < 0.5 * std[224]


def test_write_dataset_with_preset(tmp_path):
    rows = write_phantom_dataset(tmp_path, n=3, size=32, seed=1, progress=False, workers=1, preset="belt",
                                 difficulty=Difficulty(occlusion=1.0))
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / rows[1].path), np.float32) / 255.0
    ref, _, boxes = render_phantom(1, 1, 32, preset="belt", difficulty={"occlusion": 1.0})
    assert np.abs(img - ref).max() <= 0.5 / 255 + 1e-6 and rows[1].boxes == boxes
