"""The augmentation benchmark's report from records alone (no training): detector arms only,
classifier arms only, or both (issue #24: detector arms only crashed in best_arms after a 48-minute run)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vae_keras.io.manifest import CLASSES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_augmentation_report", ROOT / "benchmarks" / "augmentation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(arm, seed, score, fraction=0.1):
    base = {"fraction": fraction, "seed": seed, "arm": arm, "real_images": 29,
            "synthetic_images": 0 if arm in ("classic", "det:classic", "real") else 58, "seconds": 10.0}
    if arm.startswith("det:"):
        return {**base, "model": "detector", "map50": score, "map": score / 2, "ap50": {c: score for c in CLASSES}}
    return {**base, "model": "classifier", "mean_auroc": score, "mAP": score, "auroc": {c: score for c in CLASSES},
            "ap": {c: score for c in CLASSES}}


DET = [_record("det:classic", s, 0.50 + 0.01 * s) for s in range(2)] + \
      [_record("det:classic+tip", s, 0.45 + 0.01 * s) for s in range(2)] + \
      [_record("det:classic", 0, 0.65, 0.35), _record("det:classic+tip", 0, 0.70, 0.35)]
CLF = [_record("real", s, 0.30) for s in range(2)] + [_record("classic", s, 0.60 + 0.02 * s) for s in range(2)]
META = {"command": "python benchmarks/augmentation.py ...", "data": "data/gdxray128", "train_images": 268,
        "test_images": 147, "size": 128, "seeds": 2, "classifier_steps": 800, "batch_size": 32, "width": 16,
        "vae_config": "conditional", "vae_minutes": 2.0, "synthetic_ratio": 2.0, "detector_steps": 3000,
        "minutes": 48.0, "machine": "2 CPU cores"}


def test_report_with_detector_arms_only(bench, tmp_path):
    summary = bench.summarize(DET)
    best = bench.best_arms(summary)
    assert best.startswith("Best mean detector mAP@0.5: 10% subset: `det:classic`, detector mAP@0.5 0.505")
    assert "35% subset: `det:classic+tip`, detector mAP@0.5 0.700 (+0.050 ± 0.000 over `det:classic`)" in best
    assert "Best mean mAP:" not in best
    table = bench.markdown_table(summary)
    assert "mean AUROC" not in table                                  # no empty classifier table
    assert "| 35% | 1 | det:classic+tip | 29 + 58 | 0.700 ± 0.000 |" in table
    path = bench.write_report(DET, META, tmp_path / "report.md")
    text = path.read_text()
    assert best in text and path.with_suffix(".png").is_file()


def test_report_with_classifier_arms_only_and_both(bench, tmp_path):
    best = bench.best_arms(bench.summarize(CLF))
    assert best == "Best mean mAP: 10% subset: `classic`, mAP 0.610 (+0.310 ± 0.014 over `real`).\n"
    both = bench.best_arms(bench.summarize(CLF + DET))
    assert both.splitlines() == [best.strip(), bench.best_arms(bench.summarize(DET)).strip()]
    assert bench.best_arms([]) == ""
    text = bench.write_report(CLF + DET, META, tmp_path / "both.md").read_text()
    assert "| 10% | 2 | classic |" in text and "| 10% | 2 | det:classic+tip |" in text


def test_a_class_with_few_test_boxes_gets_a_second_map_without_it(bench, tmp_path):
    boxes = {"handgun": 81, "knife": 3, "razor_blade": 150, "shuriken": 50}
    well = bench.well_tested(boxes)
    assert well == ["handgun", "razor_blade", "shuriken"]
    classic = _record("det:classic", 0, 0.40)
    tip = _record("det:classic+tip", 0, 0.40)
    tip["ap50"] = {**tip["ap50"], "knife": 0.0, "handgun": 0.52}      # one knife missed, handguns better
    tip["map50"] = sum(tip["ap50"].values()) / 4
    summary = {d["arm"]: d for d in bench.summarize(bench.with_well_tested([classic, tip], well))}
    assert summary["det:classic+tip"]["map50_vs_classic_gain"] == pytest.approx(-0.07)   # (0.12 - 0.40) / 4
    assert summary["det:classic+tip"]["map50_well_vs_classic_gain"] == pytest.approx(0.04)   # 0.12 / 3
    text = bench.write_report([classic, tip], {**META, "seeds": 1, "test_boxes": boxes, "well_tested": well},
                              tmp_path / "r.md").read_text()
    assert "3 knife" in text and "mAP@0.5 of handgun, razor_blade, shuriken | its gain vs det:classic" in text
    assert "+0.040" in text
    assert bench.with_well_tested([classic], list(CLASSES)) == [classic]             # every class well tested
