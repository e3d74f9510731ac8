"""The augmentation benchmark's generated-threat arms (issue #24) without training: ``gen`` (the threat
generator's threats in the subset's bags) and ``gen+tip`` (generated and TIP images alternately): their
names, pool sizes, the mixing, the reuse of a finished generator and the report. End to end (quick mode):
tests/test_augmentation.py::test_benchmark_quick_runs_every_v2_arm."""
from __future__ import annotations

import numpy as np
import pytest

from vae_keras.io.manifest import CLASSES


def test_gen_arms_parse_and_size_their_pools(augmentation_bench):
    bench = augmentation_bench
    assert bench.split_arm("classic+gen") == ("classifier", "classic+gen", "gen", None)
    assert bench.split_arm("det:classic+gen+tip@1") == ("detector", "classic+gen+tip", "gen+tip", 1.0)
    with pytest.raises(ValueError):
        bench.split_arm("det:gen")                                   # every detector arm has classic
    # gen+tip at 2 per real image: 2k images, the odd one from gen; a larger pool of a part is kept
    assert bench.pool_sizes(["classic+gen+tip"], 5, 2.0) == {"gen+tip": 10, "gen": 5, "tip": 5}
    assert bench.pool_sizes(["classic+gen+tip@1.4", "classic+tip"], 5, 2.0) == {"gen+tip": 7, "gen": 4, "tip": 10}


def test_interleave_takes_the_pools_alternately(augmentation_bench):
    def pool(value, n):
        return (np.full((n, 4, 4, 1), value, np.float32), np.full((n, 2), value, np.float32),
                [[{"label": "knife", "box": [0, 0, 1, value]}] for _ in range(n)])

    images, labels, boxes = augmentation_bench.interleave(pool(1, 3), pool(2, 5), 5)
    assert images[:, 0, 0, 0].tolist() == [1, 2, 1, 2, 1] and labels[:, 0].tolist() == [1, 2, 1, 2, 1]
    assert [b[0]["box"][3] for b in boxes] == [1, 2, 1, 2, 1]


def test_a_finished_generator_is_reused(augmentation_bench, tmp_path, monkeypatch):
    """The benchmark continues where it stopped: a run marked finished is not trained again."""
    from vae_keras.training import trainer

    run = tmp_path / "gen"
    run.mkdir()
    (run / "sampler_done").write_text("1\n")
    monkeypatch.setattr(trainer, "Trainer", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert augmentation_bench.train_generator(tmp_path / "objects", run, 32, 5, seed=0) == run


def _record(arm, seed, score):
    base = {"fraction": 0.1, "seed": seed, "arm": arm, "real_images": 27, "seconds": 10.0,
            "synthetic_images": 0 if arm in ("classic", "det:classic") else 54}
    if arm.startswith("det:"):
        return {**base, "model": "detector", "map50": score, "map": score / 2, "ap50": {c: score for c in CLASSES}}
    return {**base, "model": "classifier", "mean_auroc": score, "mAP": score, "auroc": {c: score for c in CLASSES},
            "ap": {c: score for c in CLASSES}}


def test_report_with_gen_arms(augmentation_bench, tmp_path):
    """What --report-only writes from a results.json holding the gen arms: their rows, in ARMS' order,
    the generator's training, and on phantom data the caveat that it learnt from the test threats' renderer."""
    bench = augmentation_bench
    records = [_record(arm, s, score + 0.01 * s) for s in range(2) for arm, score in (
        ("classic", 0.5), ("classic+gen+tip", 0.6), ("classic+gen", 0.55), ("det:classic", 0.3),
        ("det:classic+gen", 0.35), ("det:classic+gen+tip", 0.4))]
    meta = {"command": "python benchmarks/augmentation.py ...", "data": "data/phantoms128", "train_images": 268,
            "test_images": 147, "size": 128, "seeds": 2, "classifier_steps": 800, "batch_size": 32, "width": 16,
            "vae_config": "conditional", "vae_minutes": 2.0, "synthetic_ratio": 2.0, "detector_steps": 2000,
            "sim_bags": 300, "gen_pretrain_epochs": 60, "gen_epochs": 100, "minutes": 30.0,
            "machine": "2 CPU cores", "phantom_data": True}
    text = bench.write_report(records, meta, tmp_path / "report.md").read_text()
    rows = [line.split(" | ")[2] for line in text.splitlines() if line.startswith("| 10% |")]
    assert rows == ["classic", "classic+gen", "classic+gen+tip", "det:classic", "det:classic+gen",
                    "det:classic+gen+tip"]
    assert "| 10% | 2 | det:classic+gen+tip | 27 + 54 | 0.405 ± 0.007 | 0.203 ± 0.004 | +0.100 ± 0.000 |" in text
    assert "pre-trained 60 + 120 epochs (autoencoder + prior) on the threats of 300 phantom bags" in text
    assert "fine-tuned 100 + 200 epochs" in text and "partly an oracle" in text
    assert "`classic+gen+tip`, mAP 0.605" in text                    # the best classifier arm
