"""Threat image projection (vae_keras.sampling.tip) and the detector export (vae_keras.sampling.export)."""
from __future__ import annotations

import numpy as np
import pytest

from vae_keras.io.manifest import CLASSES, read_manifest
from vae_keras.io import detection
from vae_keras.io.folder import OutputFolder
from vae_keras.sampling import export, tip


@pytest.fixture(scope="module")
def boxed_dataset(tmp_path_factory):
    """24 phantoms at 32x32 with threat boxes (the conftest tiny set has labels only)."""
    from data_prep.phantoms import write_phantom_dataset

    root = tmp_path_factory.mktemp("boxed")
    write_phantom_dataset(root, n=24, size=32, seed=0, benign_fraction=0.25, progress=False, workers=1)
    return root


def _crop(label="knife"):
    t = np.ones((6, 8), np.float32)
    t[1:5, 2:7] = 0.4
    return tip.ThreatCrop(label, t, "test")


# -- TIP --------------------------------------------------------------------------------------------
def test_transmission_is_relative_to_the_border():
    crop = np.full((6, 6), 200, np.uint8)
    crop[2:4, 2:4] = 50
    t = tip.transmission_of(crop)
    assert t.max() == 1.0 and t.dtype == np.float32
    np.testing.assert_allclose(t[2, 2], 50 / 200, rtol=1e-6)


def test_the_alone_cut_divides_out_a_bag_that_darkens_across_the_box():
    """A faint bar (transmission 0.8) in a bag that darkens from 0.9 to 0.6 left to right: one border
    level leaves a grey wedge; the alone cut gives the bar back and empty bag elsewhere."""
    bag = np.tile(np.linspace(0.9, 0.6, 20, dtype=np.float32), (16, 1))            # (16, 20)
    crop = bag.copy()
    crop[6:10, 4:16] *= 0.8
    alone = tip.transmission_of(crop, **tip.CUTS["alone"])
    bar = np.zeros_like(crop, bool)
    bar[6:10, 4:16] = True
    np.testing.assert_allclose(alone[bar], 0.8, atol=0.05)
    assert (alone[~bar] == 1.0).all()
    box = tip.transmission_of(crop, **tip.CUTS["box"])
    assert box[~bar].min() < 0.75                                # the bag's own darkening came along
    with pytest.raises(ValueError, match="not both"):
        tip.transmission_of(crop, background=0.9, field=True)


def test_the_alone_cut_steps_over_a_threat_touching_the_border():
    crop = np.full((12, 12), 0.7, np.float32)
    crop[0:12, 5:7] = 0.2                                        # a blade from edge to edge
    t = tip.transmission_of(crop, **tip.CUTS["alone"])
    np.testing.assert_allclose(t[:, 5:7], 0.2 / 0.7, rtol=1e-5)
    assert (np.delete(t, [5, 6], axis=1) == 1.0).all()


def test_into_a_blank_white_image_reproduces_the_transmission():
    rng = np.random.default_rng(0)
    white = np.ones((32, 32), np.float32)
    out, boxes = tip.project(white, _crop(), rng, scale_range=(1, 1), rotate=False, flip=False)
    x1, y1, x2, y2 = boxes[0]["box"]
    assert boxes[0]["label"] == "knife"
    assert (x2 - x1, y2 - y1) == (5, 4)                      # the attenuating part of the 6x8 patch
    np.testing.assert_allclose(out[y1:y2, x1:x2], 0.4)
    changed = np.argwhere(out < 1.0)
    assert changed.min(0).tolist() == [y1, x1] and (changed.max(0) + 1).tolist() == [y2, x2]


def test_into_a_grey_image_darkens_multiplicatively():
    grey = np.full((32, 32), 0.5, np.float32)
    out, boxes = tip.project(grey, _crop(), np.random.default_rng(1), scale_range=(1, 1))
    x1, y1, x2, y2 = boxes[0]["box"]
    np.testing.assert_allclose(out[y1:y2, x1:x2], 0.5 * 0.4, rtol=1e-6)   # Beer-Lambert: 0.5 * 0.4
    mask = np.ones_like(out, bool)
    mask[y1:y2, x1:x2] = False
    np.testing.assert_allclose(out[mask], 0.5)


def test_a_faint_halo_outside_the_box_is_not_pasted():
    """A cut-out carries a faint halo from its bag (transmission just below 1): every pixel the
    projection changes must lie inside the labelled box, or the box is not the object's."""
    t = np.full((10, 10), 0.99, np.float32)                   # halo: darkens by 1%, below FOOTPRINT_TOL
    t[3:7, 2:8] = 0.3                                         # the threat
    crop = tip.ThreatCrop("knife", t, "test")
    grey = np.full((40, 40), 0.8, np.float32)
    out, boxes = tip.project(grey, crop, np.random.default_rng(0), scale_range=(1, 1), rotate=False, flip=False)
    x1, y1, x2, y2 = boxes[0]["box"]
    assert (x2 - x1, y2 - y1) == (6, 4)
    changed = np.argwhere(out != grey)
    assert changed.min(0).tolist() == [y1, x1] and (changed.max(0) + 1).tolist() == [y2, x2]


def test_threats_land_inside_the_bag():
    bag = np.ones((48, 48), np.float32)
    bag[20:44, 24:46] = 0.6                                   # the bag: everything else is background
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, boxes = tip.project(bag, _crop(), rng, scale_range=(1, 1))
        x1, y1, x2, y2 = boxes[0]["box"]
        assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48
        cy, cx = (y1 + y2) / 2, (x1 + x2) / 2                 # near the bag (the patch centre is on it)
        assert 18 <= cy <= 46 and 22 <= cx <= 48


def test_tip_images_boxes_match_labels(boxed_dataset):
    crops = tip.crops_from_prepared(boxed_dataset, "train")
    assert crops and all(c.label in CLASSES for c in crops)
    assert all(0 < c.transmission.min() and c.transmission.max() <= 1 for c in crops)
    from vae_keras.data.pipeline import load_split

    bags, _ = load_split(boxed_dataset, "train")
    images, labels, boxes, _ = tip.tip_images(bags, crops, 12, seed=0)
    assert images.shape == (12, 32, 32, 1) and 0 <= images.min() and images.max() <= 1
    for lab, bs in zip(labels, boxes):
        assert 1 <= len(bs) <= 2
        assert {CLASSES[i] for i in np.flatnonzero(lab)} == {b["label"] for b in bs}
        for b in bs:
            x1, y1, x2, y2 = b["box"]
            assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 32
    with pytest.raises(ValueError, match="no threat crops"):
        tip.tip_images(bags, [], 2)


def test_project_labels_one_item_per_class():
    bags = np.full((3, 32, 32, 1), 0.8, np.float32)
    images, labels, boxes = tip.project_labels(bags, [["knife"], [], ["knife", "shuriken"]],
                                               [_crop("knife"), _crop("shuriken")], seed=0)
    assert [len(b) for b in boxes] == [1, 0, 2]
    np.testing.assert_allclose(images[1], 0.8)
    assert labels[2].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="handgun"):
        tip.project_labels(bags[:1], [["handgun"]], [_crop("knife")])


# -- export -----------------------------------------------------------------------------------------
def _hybrid(n=5):
    bags = np.full((n, 32, 32, 1), 0.8, np.float32)
    per = [["knife"], ["shuriken"], [], ["knife", "shuriken"], ["knife"]][:n]
    return tip.project_labels(bags, per, [_crop("knife"), _crop("shuriken")], seed=0)


def test_yolo_round_trip(tmp_path):
    images, _, boxes = _hybrid()
    rows = detection.export_detection(tmp_path, images, boxes, fmt="yolo")
    assert (tmp_path / "classes.txt").read_text().split() == list(CLASSES)
    assert "nc: 4" in (tmp_path / "data.yaml").read_text()
    assert len(read_manifest(tmp_path / "manifest.csv")) == 5
    for i, row in enumerate(rows):
        assert (tmp_path / row.path).is_file()
        parsed = detection.parse_yolo((tmp_path / "labels" / f"sample_{i:06d}.txt").read_text(), 32, 32)
        assert [p["label"] for p in parsed] == [b["label"] for b in boxes[i]]
        for p, b in zip(parsed, boxes[i]):
            np.testing.assert_allclose(p["box"], b["box"], atol=1e-3)
    # the project's own importer reads it back too
    from data_prep.prepare import read_yolo_txt

    again = read_yolo_txt(tmp_path / "labels" / "sample_000003.txt", list(CLASSES), (32, 32))
    np.testing.assert_allclose([b["box"] for b in again], [b["box"] for b in boxes[3]], atol=1e-3)


def test_voc_is_read_by_our_importer(tmp_path):
    from data_prep.prepare import read_voc_xml

    images, _, boxes = _hybrid()
    detection.export_detection(tmp_path, images, boxes, fmt="voc")
    for i in range(5):
        parsed = read_voc_xml(tmp_path / "annotations" / f"sample_{i:06d}.xml", image_size=(32, 32))
        assert [p["label"] for p in parsed] == [b["label"] for b in boxes[i]]
        for p, b in zip(parsed, boxes[i]):
            np.testing.assert_allclose(p["box"], b["box"])


def test_csv_keeps_boxes_and_image_level_labels(tmp_path):
    images = np.full((2, 32, 32, 1), 0.7, np.float32)
    rows = detection.export_detection(tmp_path, images, None, labels=[["knife"], []], fmt="csv")
    back = read_manifest(tmp_path / "manifest.csv")
    assert [r.labels for r in back] == [["knife"], []] and [r.path for r in back] == [r.path for r in rows]


def test_yolo_refuses_labels_without_boxes(tmp_path):
    images = np.full((2, 32, 32, 1), 0.7, np.float32)
    with pytest.raises(ValueError, match="hybrid"):
        detection.export_detection(tmp_path, images, None, labels=[["knife"], []], fmt="yolo")
    assert not (tmp_path / "images").exists()                 # refused before writing anything
    detection.export_detection(tmp_path, images, None, labels=[[], []], fmt="yolo")   # benign: negatives
    assert (tmp_path / "labels" / "sample_000000.txt").read_text() == ""


def test_export_replaces_an_old_export_and_never_a_data_set(tmp_path, boxed_dataset):
    images, _, boxes = _hybrid()
    detection.export_detection(tmp_path, images, boxes, fmt="yolo")
    detection.export_detection(tmp_path, images[:2], boxes[:2], fmt="yolo")
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["sample_000000.png", "sample_000001.png"]
    assert len(list((tmp_path / "labels").iterdir())) == 2
    with pytest.raises(FileExistsError):
        detection.export_detection(tmp_path, images, boxes, fmt="yolo", overwrite=False)
    with pytest.raises(FileExistsError, match="not an export"):
        detection.export_detection(boxed_dataset, images, boxes, fmt="csv")


def test_killed_export_leaves_complete_pairs(tmp_path, monkeypatch):
    images, _, boxes = _hybrid()
    calls = {"n": 0}
    real_publish = OutputFolder.publish

    def dying_publish(self, rows, rels):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt                           # killed during the second batch
        return real_publish(self, rows, rels)

    monkeypatch.setattr(OutputFolder, "publish", dying_publish)
    with pytest.raises(KeyboardInterrupt):
        detection.export_detection(tmp_path, images, boxes, fmt="yolo", batch_size=2)
    rows = read_manifest(tmp_path / "manifest.csv")
    assert len(rows) == 2
    pngs = sorted(p.stem for p in (tmp_path / "images").glob("*.png"))
    txts = sorted(p.stem for p in (tmp_path / "labels").glob("*.txt"))
    assert pngs == txts == ["sample_000000", "sample_000001"]


def test_export_run_hybrid(tmp_path, boxed_dataset):
    """The `generate --format yolo --tip DATA` path end to end on a 1-epoch conditional run."""
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train

    cfg = get_config("conditional", quick=False, image_size=32, epochs=1, latent_dim=4, gmm_components=2)
    train(cfg, boxed_dataset, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="hybrid"):
        export.export_run(tmp_path / "run", 3, tmp_path / "pure", fmt="yolo", labels=["knife"])
    rows = export.export_run(tmp_path / "run", 3, tmp_path / "out", fmt="yolo", labels=["knife"],
                             tip_data=boxed_dataset)
    assert len(rows) == 3 and all(r.labels == ["knife"] and len(r.boxes) == 1 for r in rows)
    assert all(r.source.startswith("hybrid:") for r in rows)
    assert len(list((tmp_path / "out" / "labels").glob("*.txt"))) == 3
