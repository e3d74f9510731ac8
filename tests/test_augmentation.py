"""Classic augmentation, the benchmark's classifier and scores (vae_keras.evaluation.augmentation), and the
augmentation benchmark script end to end on a tiny boxed set."""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from vae_keras.io.manifest import CLASSES
from vae_keras.evaluation import detection
from vae_keras.evaluation.augmentation import classic_augment, score, train_classifier

ROOT = Path(__file__).resolve().parents[1]


def test_classic_augment_shape_range_and_seed():
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 1)).astype(np.uint8)
    a = classic_augment(x, np.random.default_rng(1))
    b = classic_augment(x, np.random.default_rng(1))
    assert a.shape == (5, 32, 32, 1) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)                       # the generator fixes everything
    assert not np.allclose(a, x / 255.0)


def test_classic_augment_without_changes_is_identity():
    x = np.random.default_rng(0).random((3, 16, 16, 1)).astype(np.float32)
    same = classic_augment(x, np.random.default_rng(0), flip=False, rotate=False, crop=1.0, gamma=(1, 1),
                           gain=(1, 1), noise=0.0)
    np.testing.assert_allclose(same, x, atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        classic_augment(np.zeros((2, 16, 8, 1)), np.random.default_rng(0))


def test_score_perfect_and_missing_class():
    y = np.zeros((40, 4), np.float32)
    y[:20, 0] = 1
    y[::2, 1] = 1                                             # class 2 and 3: no positives
    s = score(y * 0.9 + 0.05, None, y)                        # probabilities instead of a classifier
    assert s["auroc"]["handgun"] == pytest.approx(1.0, abs=1e-3)
    assert s["ap"]["knife"] == pytest.approx(1.0, abs=1e-2)
    assert np.isnan(s["auroc"]["razor_blade"]) and np.isnan(s["ap"]["shuriken"])
    assert s["mAP"] == pytest.approx(1.0, abs=1e-2)           # the mean leaves nan classes out
    chance = score(np.full((40, 4), 0.5, np.float32), None, y)
    assert chance["mean_auroc"] == pytest.approx(0.5, abs=1e-3)


def test_train_classifier_takes_exactly_the_given_steps():
    rng = np.random.default_rng(0)
    x = rng.random((10, 16, 16, 1)).astype(np.float32)
    y = (rng.random((10, 4)) < 0.5).astype(np.float32)
    clf = train_classifier(x, y, steps=7, batch_size=4, width=4, augment=classic_augment)
    assert int(clf.net.optimizer.iterations.numpy()) == 7
    p = clf.predict(x)
    assert p.shape == (10, 4)
    logits = clf.net.predict(np.round(x * 255) / 255, verbose=0)   # predict: sigmoid of the 8-bit image's logits
    np.testing.assert_allclose(p, 1.0 / (1.0 + np.exp(-logits)), atol=1e-5)
    clf.net.predict = lambda *a, **k: np.array([[-1e4, 1e4, 0.0, -50.0]], np.float32)   # a very sure network
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # no overflow in exp
        np.testing.assert_allclose(clf.predict(x[:1]), [[0.0, 1.0, 0.5, 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match="multi-hot"):
        train_classifier(x, y[:, :2], steps=1)


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_augmentation", ROOT / "benchmarks" / "augmentation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_end_to_end(tmp_path):
    from data_prep.phantoms import write_phantom_dataset

    data = tmp_path / "data"
    write_phantom_dataset(data, n=40, size=32, seed=0, progress=False, workers=1)
    bench = _load_benchmark()
    report = tmp_path / "fig" / "augmentation.md"
    argv = ["--data", str(data), "--out", str(tmp_path / "work"), "--size", "32", "--fractions", "0.5",
            "--seeds", "1", "--arms", "real,classic,hybrid,tip,composite", "--vae-epochs", "2",
            "--object-epochs", "1", "--classifier-steps", "3",
            "--width", "4", "--synthetic-ratio", "0.5", "--report", str(report)]
    assert bench.main(argv + ["--only", "real,tip"]) == 0                 # some arms now, the rest later
    first = json.loads((tmp_path / "work" / "results.json").read_text())["records"]
    assert sorted(r["arm"] for r in first) == ["real", "tip"]
    assert bench.main(argv) == 0
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert [r for r in results["records"] if r["arm"] in ("real", "tip")] == first      # kept, not retrained
    arms = sorted({(r["arm"], r["seed"]) for r in results["records"]})
    assert arms == sorted((a, s) for a in ("real", "classic", "hybrid", "tip", "composite") for s in (0,))
    assert all(r["synthetic_images"] == (0 if r["arm"] in ("real", "classic") else 7) for r in results["records"])
    text = report.read_text()
    assert "| 50% | 1 | tip |" in text and "benchmarks/augmentation.py" in text and "--only" not in text
    # fixed work, not minutes: both VAEs ran exactly the epochs asked for, and the report says so
    assert len(json.loads((tmp_path / "work" / "f0.5-s0" / "vae" / "history.json").read_text())) == 2
    assert len(json.loads((tmp_path / "work" / "f0.5-s0" / "objects" / "history.json").read_text())) == 1
    assert "trained 2 epochs on the subset only" in text and "trained 1 epochs on the subset's threats" in text
    assert set(CLASSES) <= set(results["records"][0]["ap"])
    assert report.with_suffix(".png").is_file()
    # a rerun finds everything done and only rewrites the report
    report.unlink()
    assert bench.main(argv + ["--report-only"]) == 0 and report.is_file()
    assert json.loads((tmp_path / "work" / "results.json").read_text())["records"] == results["records"]


# -- the detector arm (vae_keras.evaluation.detection) ---------------------------------------------
def _dark_box(rng, size=32):
    img = np.full((size, size), 0.8, np.float32)
    w, h = (int(v) for v in rng.integers(5, 12, 2))
    x1, y1 = (int(v) for v in rng.integers(0, size - 12, 2))
    img[y1:y1 + h, x1:x1 + w] = 0.2
    return img, [{"label": "knife", "box": [x1, y1, x1 + w, y1 + h]}]


def test_detector_targets_peak_at_the_centre_with_size_and_offset():
    heat, wh, off, mask = detection.targets([{"label": "knife", "box": [4, 8, 14, 12]}], 32)
    assert heat.shape == (8, 8, len(CLASSES)) and mask.sum() == 1
    k = CLASSES.index("knife")
    assert heat[2, 2, k] == 1.0 and heat[..., k].max() == 1.0 and heat[..., CLASSES.index("handgun")].max() == 0
    np.testing.assert_allclose(wh[2, 2], [2.5, 1.0])                   # in cells of 4 pixels
    np.testing.assert_allclose(off[2, 2], [0.25, 0.5])                 # centre (9, 10) px = cell (2.25, 2.5)


def test_detector_augmentation_moves_the_boxes_with_the_pixels():
    rng = np.random.default_rng(0)
    for seed in range(12):
        img, boxes = _dark_box(rng)
        out, moved = detection.augment_with_boxes(img, boxes, np.random.default_rng(seed))
        ys, xs = np.nonzero(out < 0.45)                                # the dark box survives any exposure
        assert moved[0]["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_coco_map_of_perfect_shifted_and_missing_detections():
    rng = np.random.default_rng(1)
    truth = [_dark_box(rng)[1] for _ in range(6)]
    perfect = [[dict(b, score=0.9) for b in bs] for bs in truth]
    assert detection.coco_map(perfect, truth, 32)["map50"] == pytest.approx(1.0)
    assert detection.coco_map(perfect, truth, 32)["map"] == pytest.approx(1.0)
    shifted = [[{"label": b["label"], "score": 0.9, "box": [b["box"][0] + 1, b["box"][1], b["box"][2] + 1, b["box"][3]]}
                for b in bs] for bs in truth]                            # IoU (w - 1) / (w + 1): 0.67 to 0.83
    s = detection.coco_map(shifted, truth, 32)
    assert s["map50"] == pytest.approx(1.0) and 0.1 < s["map"] < 0.8     # loose boxes cost the strict IoUs
    wrong = [[dict(b, label="handgun", score=0.9) for b in bs] for bs in truth]
    assert detection.coco_map(wrong, truth, 32)["map50"] == 0.0
    assert detection.coco_map([[] for _ in truth], truth, 32)["map50"] == 0.0


def test_detector_trains_and_finds_boxes():
    rng = np.random.default_rng(2)
    pairs = [_dark_box(rng) for _ in range(32)]
    x, boxes = np.stack([p[0] for p in pairs]), [p[1] for p in pairs]
    det = detection.train_detector(x, boxes, steps=600, width=8, seed=0)    # ~7 s; at 300 steps no peak yet
    found = det.predict(x)
    assert len(found) == 32 and all(d["label"] in CLASSES and 0 <= d["score"] <= 1 for ds in found for d in ds)
    assert found[0] and found[0][0]["label"] == "knife"                  # the top detection is the right class
    assert detection.coco_map(found, boxes, 32)["map50"] > 0.3
    assert det.info["heat_loss"] < 0.5 * det.info["prior_heat_loss"]    # the collapse guard passed it by far


def _inserted_into_the_bags(images, boxes, bags, bag_boxes):
    """Each image is a bag of ``bags`` (uint8) with its own boxes first, kept, and its pixels unchanged
    outside the new boxes, which lie inside the image (one or two threats inserted)."""
    size = bags.shape[1]
    for image, these in zip(images, boxes):
        def outside(new):                                           # pixels outside every new box
            keep = np.ones((size, size), bool)
            for b in new:
                x1, y1, x2, y2 = b["box"]
                keep[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = False
            return keep

        own = [j for j in range(len(bags)) if these[:len(bag_boxes[j])] == bag_boxes[j] and np.allclose(
            image[..., 0][outside(these[len(bag_boxes[j]):])],
            bags[j][..., 0][outside(these[len(bag_boxes[j]):])] / 255.0, atol=1e-6)]
        assert own, "an image is no bag of the subset with threats added"
        new = these[len(bag_boxes[own[0]]):]
        assert 1 <= len(new) <= 2
        assert all(0 <= b["box"][0] < b["box"][2] <= size and 0 <= b["box"][1] < b["box"][3] <= size for b in new)


def test_benchmark_quick_runs_every_v2_arm(tmp_path):
    """--quick: 48 phantoms at 32x32, every source of issue #15's arms end to end but composite's, which
    test_benchmark_end_to_end runs (classifier, CAS, a ratio; the detector on the real subset and on a
    synthetic pool: the det: arms differ only in their pool),
    and issue #24's generated threats: the threat generator pre-trained once on phantom threats, fine-tuned
    on the subset's, its threats inserted into the subset's own bags (alone, and alternately with TIP)."""
    bench = _load_benchmark()
    made = []
    make_pools = bench.make_pools

    def spy(args, seed, xs_u8, rows, idx, *rest):                 # keeps what the gen pools were made from
        pools, timing = make_pools(args, seed, xs_u8, rows, idx, *rest)
        made.append((xs_u8, [rows[i].boxes_scaled for i in idx], pools))
        return pools, timing

    bench.make_pools = spy                                         # (a module of this test's own)
    report = tmp_path / "fig" / "v2.md"
    gen_arms = ("classic+gen", "det:classic+gen+tip")
    # suite time: arms whose pools another arm here makes (test_benchmark_end_to_end runs composite), and one ratio arm
    v2_arms = tuple(a for a in bench.V2_ARMS if a not in ("det:classic+tip", "det:classic+ours", "classic+composite"))
    assert bench.main(["--quick", "--out", str(tmp_path / "work"), "--report", str(report), "--ratios", "1",
                       "--ratio-arms", "classic+ours", "--arms", ",".join(v2_arms + gen_arms)]) == 0
    records = json.loads((tmp_path / "work" / "results.json").read_text())["records"]
    arms = {r["arm"]: r for r in records}
    assert set(arms) == set(v2_arms) | set(gen_arms) | {"classic+ours@1"}
    k = arms["real"]["real_images"]
    assert arms["cas"]["real_images"] == 0 and arms["cas"]["synthetic_images"] == 2 * k      # generated only
    assert arms["classic+ours@1"]["synthetic_images"] == k and arms["classic+ours"]["synthetic_images"] == 2 * k
    for arm in ("det:classic", "det:classic+gen+tip"):
        assert arms[arm]["model"] == "detector" and 0 <= arms[arm]["map"] <= arms[arm]["map50"] <= 1
    for arm in gen_arms:
        assert arms[arm]["synthetic_images"] == 2 * k and arms[arm]["gen_s"] > 0
        assert all(np.isfinite(arms[arm][key]) for key in bench.SCORES[arms[arm]["model"]])
    for run in (tmp_path / "work" / "gen_pretrained", tmp_path / "work" / "f0.5-s0" / "gen"):   # 1 epoch each
        assert (run / "sampler_done").is_file() and len(json.loads((run / "history.json").read_text())) == 1
    (bags, bag_boxes, pools), = made
    _inserted_into_the_bags(pools["gen"][0], pools["gen"][2], bags, bag_boxes)
    mixed = pools["gen+tip"]                                        # half each, alternately
    np.testing.assert_array_equal(mixed[0][0::2], pools["gen"][0][:k])
    np.testing.assert_array_equal(mixed[0][1::2], pools["tip"][0][:k])
    text = report.read_text()
    assert "| 50% | 1 | classic+ours |" in text and "| 50% | 1 | det:classic |" in text
    assert "| 50% | 1 | classic+gen |" in text and "| 50% | 1 | det:classic+gen+tip |" in text
    assert "Classification Accuracy Score" in text and "--quick" in text
