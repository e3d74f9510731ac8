"""Issue #24: KerasHub's RetinaNet as the benchmark's detector, and the simulated-threats (sim) arm.

Tiny data only (32-64 px, a handful of steps): the RetinaNet arm runs end to end in quick mode, its
collapse guard fires on a network with constant outputs, and simulated threats inserted into bags
that already hold threats keep every box exact and inside the bag.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from vae_keras.errors import TrainingCollapsed
from vae_keras.evaluation import augmentation, retinanet
from vae_keras.io.manifest import CLASSES


def _squares(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    x = np.full((n, size, size), 0.85, np.float32)
    boxes = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(8, 14, 2))
        x1, y1 = (int(v) for v in rng.integers(0, size - 14, 2))
        x[i, y1:y1 + h, x1:x1 + w] = 0.2
        boxes.append([{"label": CLASSES[i % 2], "box": [x1, y1, x1 + w, y1 + h]}])
    return x, boxes


def test_settings_validate_and_round_trip():
    s = retinanet.RetinaNetSettings(learning_rate=5e-4)
    assert retinanet.RetinaNetSettings(**s.to_dict()) == s
    with pytest.raises(ValueError, match="first stage"):
        retinanet.RetinaNetSettings(stage_filters=(32, 32, 64, 96))
    with pytest.raises(ValueError, match="multiple of 32"):
        retinanet.build_retinanet(48)


def test_retinanet_predicts_scored_boxes_in_the_image():
    x, boxes = _squares(8)
    det = retinanet.train_retinanet(x, boxes, steps=3, seed=0, augment=True)
    found = det.predict((x * 255).astype(np.uint8))
    assert len(found) == 8
    for ds in found:
        for d in ds:
            assert d["label"] in CLASSES and 0 <= d["score"] <= 1
            assert all(0 <= v <= 32 for v in d["box"])
    assert det.info["params"] > 0 and np.isfinite(det.info["prior_cls_loss"])


def test_retinanet_guard_fires_on_constant_outputs(monkeypatch):
    """Class logits that ignore the image (kernel 0, learning rate 0): the guard raises, not a table row."""
    build = retinanet.build_retinanet

    def constant(size, settings=None):
        model = build(size, settings)
        head = model.classification_head.prediction_layer
        head.kernel.assign(np.zeros(head.kernel.shape, np.float32))          # logits = bias, the prior
        return model

    monkeypatch.setattr(retinanet, "build_retinanet", constant)
    monkeypatch.setattr(augmentation, "COLLAPSE_MIN_STEPS", 4)             # check this short run
    x, boxes = _squares(8)
    with pytest.raises(TrainingCollapsed, match="RetinaNet"):
        retinanet.train_retinanet(x, boxes, steps=4, seed=0,
                                  settings=retinanet.RetinaNetSettings(learning_rate=0.0))


def test_retinanet_arm_runs_end_to_end_in_quick_mode(augmentation_bench, tmp_path):
    report = tmp_path / "fig" / "v3.md"
    argv = ["--quick", "--detector", "retinanet", "--arms", "det:classic+sim", "--ratio-arms", "",
            "--detector-steps", "3", "--out", str(tmp_path / "work"), "--report", str(report)]
    assert augmentation_bench.main(argv) == 0
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    (rec,) = results["records"]
    assert rec["arm"] == "det:classic+sim" and rec["synthetic_images"] == 2 * rec["real_images"]
    assert 0 <= rec["map"] <= rec["map50"] <= 1 and results["settings"]["detector"] == "retinanet"
    text = report.read_text()
    assert "KerasHub RetinaNet" in text and "On this phantom data `sim` is an oracle" in text


def test_a_collapsed_arm_is_a_row_with_a_note(augmentation_bench, tmp_path, monkeypatch):
    def collapse(*args, **kwargs):
        raise TrainingCollapsed("the detector (RetinaNet) did not learn")

    monkeypatch.setattr(augmentation_bench, "train_det", collapse)
    report = tmp_path / "v3.md"
    argv = ["--quick", "--arms", "det:classic", "--ratio-arms", "", "--out", str(tmp_path / "work"),
            "--report", str(report)]
    assert augmentation_bench.main(argv) == 0
    (rec,) = json.loads((tmp_path / "work" / "results.json").read_text())["records"]
    assert rec["collapsed"] and "did not learn" in rec["note"]
    text = report.read_text()
    assert "| 0 (+1 collapsed) | det:classic |" in text and "Collapsed: `det:classic`" in text


def test_simulated_threats_keep_boxes_exact_and_inside_the_bag(augmentation_bench, boxed_bags64, tmp_path):
    from types import SimpleNamespace

    from vae_keras.data.pipeline import load_split
    from vae_keras.sampling import tip

    bench = augmentation_bench
    x, _ = load_split(boxed_bags64, "train", image_size=64)                   # (n, 64, 64, 1) uint8
    rows = bench.load_train_rows(boxed_bags64, 64)
    idx = np.arange(len(x))
    crops = tip.crops_from_arrays(x, [r.boxes for r in rows], [r.native for r in rows])
    args = SimpleNamespace(size=64, sim_bags=12, data=str(boxed_bags64))
    pools, timing = bench.make_pools(args, 0, x, rows, idx, crops, tmp_path, "t", {"sim": 10})
    images, labels, boxes = pools["sim"]
    assert images.shape == (10, 64, 64, 1) and "sim_s" in timing
    bags = x[..., 0].astype(np.float32) / 255.0
    for img, lab, bs in zip(images[..., 0], labels, boxes):
        j = int(np.argmin([(img > b + 1e-6).sum() for b in bags]))        # its bag: a threat only darkens
        assert (img <= bags[j] + 1e-6).all()
        kept = [b for b in rows[j].boxes_scaled]
        assert bs[:len(kept)] == kept                                      # the bag's own boxes, unchanged
        new = bs[len(kept):]
        assert 1 <= len(new) <= 2 and {b["label"] for b in bs} == {c for c, v in zip(CLASSES, lab) if v}
        changed = img < bags[j] - 1e-6
        region = tip.bag_region(bags[j])
        assert (region | ~changed).all()                                   # every darkened pixel is on the bag
        covered = np.zeros_like(changed)
        for b in new:
            x1, y1, x2, y2 = (int(v) for v in b["box"])
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            # tight: each edge of the box holds a darkened pixel, or a black one (0 stays 0 under any threat)
            inside = changed[y1:y2, x1:x2] | (bags[j][y1:y2, x1:x2] < 1.5 / 255)
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            assert changed[y1:y2, x1:x2].any()
            covered[y1:y2, x1:x2] = True
            for old in kept:                                               # no overlap with the bag's boxes
                assert bench_iou(b["box"], old["box"]) == 0.0
        assert not (changed & ~covered).any()                              # nothing darkened outside a new box


def bench_iou(a, b):
    from vae_keras.sampling.insert import box_iou

    return box_iou(a, b)
