"""Generative threat insertion (vae_keras.sampling.insert): generated threats in given bags, exact boxes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vae_keras.config import get_config
from vae_keras.errors import DataError
from vae_keras.io.manifest import CLASSES, read_manifest
from vae_keras.models.cvae import build_model
from vae_keras.sampling import insert
from vae_keras.sampling.tip import bag_region


def _bags(n=3, size=32):
    """Bright background (1.0) with a grey bag of varying clutter in a centred square."""
    rng = np.random.default_rng(0)
    bags = np.ones((n, size, size), np.float32)
    bags[:, 4:size - 4, 6:size - 6] = rng.uniform(0.3, 0.7, (n, size - 8, size - 12))
    return bags


@pytest.fixture(scope="module")
def object_model():
    import keras

    keras.utils.set_random_seed(0)
    return build_model(get_config("objects", quick=False, image_size=16))   # untrained: draws blobs


def _changed(out, bag):
    return out < bag - 1e-6


def test_placements_put_every_threat_pixel_on_the_bag():
    region = np.zeros((10, 12), bool)
    region[2:8, 3:10] = True
    region[4, 6] = False                                        # a hole in the bag
    mask = np.zeros((3, 3), bool)
    mask[1, :] = mask[:, 1] = True                              # a plus sign
    ok = insert.placements(region, mask)
    assert ok.shape == (8, 10)
    for y in range(8):
        for x in range(10):
            assert ok[y, x] == bool(region[y:y + 3, x:x + 3][mask].all()), (y, x)
    assert ok.any() and not ok.all()


def test_boxes_exact_inside_the_bag_and_labels_as_asked(object_model):
    bags = _bags()
    asked = [["knife"], ["handgun"], [], ["shuriken"], ["knife", "razor_blade"]]
    scales = {c: np.array([0.2, 0.3]) for c in CLASSES}               # an untrained VAE draws canvas-sized blobs
    images, labels, boxes, which = insert.insert_threats(bags, object_model, asked, seed=3, scales=scales)
    assert images.shape == (5, 32, 32, 1) and np.all((images >= 0) & (images <= 1))
    assert [sorted(b["label"] for b in bs) for bs in boxes] == [sorted(a) for a in asked]
    np.testing.assert_array_equal(labels, [[float(c in a) for c in CLASSES] for a in asked])
    for img, bs, j in zip(images[..., 0], boxes, which):
        changed = _changed(img, bags[j])
        assert not np.any(changed & ~bag_region(bags[j]))        # never on the background
        covered = np.zeros_like(changed)
        for b in bs:
            x1, y1, x2, y2 = b["box"]
            assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 32
            assert bag_region(bags[j])[y1:y2, x1:x2].any()
            covered[y1:y2, x1:x2] = True
        assert not np.any(changed & ~covered)                    # every darkened pixel is in a box
        if len(bs) == 1:                                         # and the box is tight around them
            ys, xs = np.nonzero(changed)
            assert bs[0]["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        if not bs:
            np.testing.assert_array_equal(img, bags[j])          # a negative is the bag as it is


def test_deterministic_for_a_seed(object_model):
    bags = _bags()
    a = insert.insert_threats(bags, object_model, [["knife"], ["handgun"]], seed=5)
    b = insert.insert_threats(bags, object_model, [["knife"], ["handgun"]], seed=5)
    c = insert.insert_threats(bags, object_model, [["knife"], ["handgun"]], seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_threat_size_from_the_box_statistics(object_model):
    bags = _bags(size=64)
    for frac in (0.15, 0.3):
        _, _, boxes, _ = insert.insert_threats(bags, object_model, [["knife"]] * 4, seed=1, rotate=False,
                                               scales={"knife": np.array([frac])})
        sides = [max(b["box"][2] - b["box"][0], b["box"][3] - b["box"][1]) for bs in boxes for b in bs]
        assert all(frac * 64 - 2 <= s <= frac * 64 + 1 for s in sides), (frac, sides)


def test_rotation_by_any_angle_keeps_the_object():
    t = np.ones((5, 11), np.float32)
    t[1:4, 1:10] = 0.3
    r = insert.rotate_transmission(t, 45.0)
    assert r.shape[0] > 5 and r.shape[1] < 11 + 5                      # a diagonal bar
    assert r.min() < 0.5 and r.max() == 1.0
    assert insert.rotate_transmission(np.ones((4, 4), np.float32), 30.0) is None


def test_no_room_in_any_bag_is_an_error(object_model):
    empty = np.ones((2, 32, 32), np.float32)                           # no bag: all background
    with pytest.raises(DataError, match="no room"):
        insert.insert_threats(empty, object_model, [["knife"]], seed=0, tries=3)
    with pytest.raises(DataError, match="unknown class"):
        insert.insert_threats(_bags(), object_model, [["spoon"]])


def test_an_image_gets_fewer_threats_only_when_asked_and_no_bag_has_room():
    """Two 18-pixel squares cannot share a 24x20 bag (threats shrink to half their side at most):
    by default that is an error; with fewer_if_no_room the image keeps the first, labelled as such."""
    from vae_keras.sampling.tip import ThreatCrop

    square = np.full((12, 12), 0.3, np.float32)
    crops = [ThreatCrop("knife", square), ThreatCrop("handgun", square)]
    scales = {c: np.array([30 / 32]) for c in ("knife", "handgun")}
    asked = [["knife", "handgun"], ["handgun"]]
    with pytest.raises(DataError, match="no room"):
        insert.insert_threats(_bags(), crops, asked, seed=0, scales=scales, rotate=False, tries=5)
    stats = {}
    images, labels, boxes, _ = insert.insert_threats(_bags(), crops, asked, seed=0, scales=scales, rotate=False,
                                                     tries=5, fewer_if_no_room=True, stats=stats)
    assert stats["dropped"] == 1
    assert [[b["label"] for b in bs] for bs in boxes] == [["knife"], ["handgun"]]
    np.testing.assert_array_equal(labels, [[float(c == "knife") for c in CLASSES],
                                           [float(c == "handgun") for c in CLASSES]])


@pytest.fixture(scope="module")
def object_run(tmp_path_factory):
    """40 phantoms at 32x32, their threats cut out (16x16 canvas), an object run of one epoch."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.sampling.objects import write_object_dataset
    from vae_keras.training.trainer import Trainer

    root = tmp_path_factory.mktemp("insert")
    write_phantom_dataset(root / "bags", n=40, size=32, seed=0, progress=False, workers=1)
    write_object_dataset(root / "bags", root / "objects", bag_size=32, progress=False)
    Trainer(get_config("objects", quick=False, image_size=16, batch_size=8, epochs=1, gmm_components=2),
            str(root / "objects"), root / "object_run", progress=False).fit()
    return root


def test_object_scales_are_fractions_of_the_bag(object_run):
    scales = insert.object_scales(object_run / "objects")
    bags = read_manifest(object_run / "bags" / "manifest.csv")
    sides = {c: [max(b["box"][2] - b["box"][0], b["box"][3] - b["box"][1]) / 32 for r in bags if r.split == "train"
                 for b in r.boxes if b["label"] == c] for c in scales}
    for c, v in scales.items():
        assert 0 < v.min() and v.max() <= 0.5 + 1e-6
        assert abs(np.median(v) - np.median(sides[c])) < 0.1, c     # the threats' own sizes, relative to the bag


def test_cli_into_writes_a_valid_yolo_export(object_run, tmp_path, monkeypatch):
    from vae_keras.cli import main
    from vae_keras.io.detection import parse_yolo

    out = tmp_path / "yolo"
    preview = tmp_path / "preview.png"
    assert main(["generate", str(object_run / "object_run"), "--into", str(object_run / "bags"), "--n", "6",
                 "--label", "knife", "--format", "yolo", "--out", str(out), "--quiet", "--preview", str(preview)]) == 0
    rows = read_manifest(out / "manifest.csv")
    shown = np.asarray(Image.open(preview))                            # 6 images of 32 px in one row, boxes red
    assert shown.shape == (32, 6 * 33 - 1, 3) and (shown[..., 0].astype(int) - shown[..., 1] > 100).any()
    assert len(rows) == 6 and all(r.labels == ["knife"] and r.source.startswith("insert:") for r in rows)
    bag_rows = {r.path: r for r in read_manifest(object_run / "bags" / "manifest.csv")}
    assert (out / "classes.txt").read_text().split() == list(CLASSES)
    for r in rows:
        bag_path = r.source[len("insert:"):].split("+")[0]
        assert bag_rows[bag_path].labels == []                           # benign bags only
        bag = np.asarray(Image.open(object_run / "bags" / bag_path), np.float32) / 255
        img = np.asarray(Image.open(out / r.path), np.float32) / 255
        lines = (out / "labels" / (r.path.split("/")[-1][:-4] + ".txt")).read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{CLASSES.index('knife')} ")
        (b,) = parse_yolo("\n".join(lines), 32, 32)
        np.testing.assert_allclose(b["box"], r.boxes[0]["box"], atol=1e-4)
        x1, y1, x2, y2 = (int(v) for v in r.boxes[0]["box"])
        changed = np.abs(img - bag) > 0.5 / 255
        outside = np.ones_like(changed)
        outside[y1:y2, x1:x2] = False
        assert not np.any(changed & outside) and not np.any(changed & ~bag_region(bag))
    # the default: the object run's training mix, one threat per image
    out2 = tmp_path / "mix"
    assert main(["generate", str(object_run / "object_run"), "--into", str(object_run / "bags"), "--n", "8",
                 "--format", "voc", "--out", str(out2), "--quiet", "--seed", "1"]) == 0
    rows = read_manifest(out2 / "manifest.csv")
    assert all(len(r.labels) == 1 and len(r.boxes) == 1 for r in rows)
    assert len(list((out2 / "annotations").glob("*.xml"))) == 8
    # the test split's bags only, threat sizes from the object set's boxes
    out3 = tmp_path / "test_bags"
    asked = []
    monkeypatch.setattr(insert, "object_scales", lambda d, real=insert.object_scales: asked.append(d) or real(d))
    assert main(["generate", str(object_run / "object_run"), "--into", str(object_run / "bags"), "--n", "5",
                 "--bag-split", "test", "--object-data", str(object_run / "objects"), "--out", str(out3),
                 "--quiet"]) == 0
    assert [str(d) for d in asked] == [str(object_run / "objects")]    # the sizes came from the object set
    sides = insert.object_scales(object_run / "objects")
    for r in read_manifest(out3 / "manifest.csv"):
        assert bag_rows[r.source[len("insert:"):].split("+")[0]].split == "test"
        x1, y1, x2, y2 = r.boxes[0]["box"]
        # no larger than the set's largest threat, turned by 45 degrees at most
        assert max(x2 - x1, y2 - y1) <= 32 * sides[r.labels[0]].max() * 2 ** 0.5 + 2


def test_cli_into_refuses_a_second_threat_source(object_run, tmp_path, capsys):
    from vae_keras.cli import main

    assert main(["generate", str(object_run / "object_run"), "--into", str(object_run / "bags"), "--n", "2",
                 "--tip", str(object_run / "bags"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "cannot be combined" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["generate", str(object_run / "object_run"), "--into", str(tmp_path / "nothing"), "--n", "2",
                 "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "not a prepared folder" in capsys.readouterr().err
    assert main(["generate", str(object_run / "object_run"), "--into", str(object_run / "bags"), "--n", "2",
                 "--object-data", str(tmp_path), "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "not an object set" in capsys.readouterr().err and not (tmp_path / "z").exists()


# -- bags that already hold threats (--bags all, --max-iou) ------------------------------------------
def test_iou_filter_agrees_with_the_iou_of_every_box_pair():
    old = [[5.0, 4.0, 20.5, 18.0], [30.0, 30.0, 40.0, 44.0], [0.0, 50.0, 7.0, 60.0]]
    ys, xs = np.nonzero(np.ones((55, 57), bool))
    for h, w in ((9, 13), (20, 6), (3, 3)):
        for max_iou in (0.0, 0.1, 0.5):
            keep = insert.iou_ok(ys, xs, h, w, old, max_iou)
            want = [all(insert.box_iou([x, y, x + w, y + h], b) <= max_iou for b in old) for y, x in zip(ys, xs)]
            np.testing.assert_array_equal(keep, want)
            assert keep.any() and (max_iou == 0.5 or not keep.all())
    assert insert.box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0                  # touching: no overlap
    assert insert.box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)


def _bags_with_threats(n=3, size=64):
    """:func:`_bags` with a dark 'threat' in each, and its box (float, as a rescaled manifest's)."""
    bags = _bags(n, size)
    boxes = []
    for k in range(n):
        x1, y1 = 10 + 3 * k, 12 + 2 * k
        bags[k, y1:y1 + 18, x1:x1 + 14] *= 0.2
        boxes.append([{"label": "handgun", "box": [float(x1), float(y1), x1 + 14.0, y1 + 18.0]},
                      {"label": "shuriken", "box": [40.5, 40.25, 50.0, 49.5]}])
    return bags, boxes


@pytest.mark.parametrize("max_iou", [0.0, 0.1, 0.3])
def test_bags_with_threats_keep_their_boxes_and_new_ones_respect_the_iou(object_model, max_iou):
    bags, bag_boxes = _bags_with_threats()
    asked = [["knife"], ["razor_blade", "knife"], ["shuriken"], []] * 3
    scales = {c: np.array([0.2, 0.3]) for c in CLASSES}
    images, labels, boxes, which = insert.insert_threats(bags, object_model, asked, seed=2, scales=scales,
                                                         bag_boxes=bag_boxes, max_iou=max_iou)
    overlaps = []
    for img, bs, j, a in zip(images[..., 0], boxes, which, asked):
        own, new = bs[:len(bag_boxes[j])], bs[len(bag_boxes[j]):]
        assert own == bag_boxes[j]                                       # the bag's own boxes, exactly
        assert sorted(b["label"] for b in new) == sorted(a)              # plus one box per threat asked
        for b in new:
            for o in own:                                                # every new-old pair
                iou = insert.box_iou(b["box"], o["box"])
                assert iou <= max_iou + 1e-9, (b, o, iou)
                overlaps.append(iou)
        for p in range(len(new)):                                        # every new-new pair too
            for q in range(p + 1, len(new)):
                assert insert.box_iou(new[p]["box"], new[q]["box"]) <= max_iou + 1e-9
        changed = _changed(img, bags[j])
        covered = np.zeros_like(changed)
        for b in new:
            x1, y1, x2, y2 = b["box"]
            covered[y1:y2, x1:x2] = True
        assert not np.any(changed & ~covered)                            # only the new threats changed pixels
        if max_iou == 0:
            for o in own:                                                # nothing drawn over an old threat
                x1, y1, x2, y2 = o["box"]
                assert not changed[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].any()
    for i, (bs, a) in enumerate(zip(boxes, asked)):
        np.testing.assert_array_equal(labels[i], [float(c in {b["label"] for b in bs}) for c in CLASSES])
    if max_iou == 0:
        assert max(overlaps) == 0.0
    else:
        assert max(overlaps) > 0.0                                       # the bound is used, not only avoided


def test_a_max_iou_outside_its_range_is_an_error(object_model):
    bags, bag_boxes = _bags_with_threats()
    for bad in (-0.1, 1.0):
        with pytest.raises(DataError, match="max_iou"):
            insert.insert_threats(bags, object_model, [["knife"]], bag_boxes=bag_boxes, max_iou=bad)


def test_cli_into_bags_with_threats_keeps_their_boxes_in_a_valid_yolo_export(object_run, tmp_path):
    """--bags all: bags that hold threats take new ones; the export's boxes are the bag's own plus the
    new, exactly, in the manifest and in the YOLO files; new boxes overlap others by IoU <= --max-iou."""
    import shutil

    from vae_keras.cli import main
    from vae_keras.io.detection import parse_yolo
    from vae_keras.io.manifest import write_manifest

    bags = tmp_path / "bags"
    shutil.copytree(object_run / "bags", bags)
    rows = read_manifest(bags / "manifest.csv")
    boxed = [r for r in rows if r.boxes]
    unboxed = {r.path for r in boxed[::3]}                      # these list a threat, but lost their boxes
    for r in rows:
        if r.path in unboxed:
            r.boxes = []
    write_manifest(bags / "manifest.csv", rows)
    bag_rows = {r.path: r for r in rows}
    out = tmp_path / "yolo"
    assert main(["generate", str(object_run / "object_run"), "--into", str(bags), "--bags", "all", "--max-iou", "0.1",
                 "--n", "12", "--label", "knife", "--format", "yolo", "--out", str(out), "--quiet"]) == 0
    made = read_manifest(out / "manifest.csv")
    assert len(made) == 12
    used = [bag_rows[r.source[len("insert:"):].split("+")[0]] for r in made]
    assert not {b.path for b in used} & unboxed                  # an unlabelled positive is never used
    assert sum(bool(b.labels) for b in used) >= 6                 # most phantoms hold threats: they are used
    for r, bag in zip(made, used):
        own, new = r.boxes[:len(bag.boxes)], r.boxes[len(bag.boxes):]
        assert own == bag.boxes and [b["label"] for b in new] == ["knife"]
        assert r.labels == sorted({b["label"] for b in r.boxes})
        assert all(insert.box_iou(new[0]["box"], o["box"]) <= 0.1 + 1e-9 for o in own)
        yolo = parse_yolo((out / "labels" / (r.path.split("/")[-1][:-4] + ".txt")).read_text(), 32, 32)
        assert [b["label"] for b in yolo] == [b["label"] for b in r.boxes]
        for got, want in zip(yolo, r.boxes):
            np.testing.assert_allclose(got["box"], want["box"], atol=1e-3)
        bag_img = np.asarray(Image.open(bags / bag.path), np.float32) / 255
        img = np.asarray(Image.open(out / r.path), np.float32) / 255
        changed = np.abs(img - bag_img) > 0.5 / 255
        x1, y1, x2, y2 = (int(v) for v in new[0]["box"])
        changed[y1:y2, x1:x2] = False
        assert not changed.any()                                   # only the new threat changed pixels


def test_cli_bags_and_max_iou_need_into_and_a_valid_iou(object_run, tmp_path, capsys):
    from vae_keras.cli import main

    assert main(["generate", str(object_run / "object_run"), "--bags", "all", "--n", "2",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "give --into" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["generate", str(object_run / "object_run"), "--into", str(object_run / "bags"), "--max-iou", "1.5",
                 "--n", "2", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "--max-iou must be in [0, 1)" in capsys.readouterr().err and not (tmp_path / "y").exists()
