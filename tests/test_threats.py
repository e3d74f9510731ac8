"""The threat generator (issue #23): its scores (evaluation/threats.py), its benchmark table, and fine-tuning
a run's diffusion prior from another run's (``--init-from`` moves both stages)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import TINY_LATENT


class _Judge:
    """A stand-in threat classifier that finds every class (``found=1``) or none (``found=0``) in any crop."""

    classes = ("handgun", "knife", "razor_blade", "shuriken")

    def __init__(self, found: float):
        self.found = found

    def predict(self, images):
        return np.full((len(images), 4), self.found, np.float32)


@pytest.fixture
def judged(monkeypatch):
    from vae_keras.evaluation import threats

    def use(found):
        monkeypatch.setattr(threats, "threat_classifier", lambda data_dir, size, progress=False: _Judge(found))
    return use


def test_score_threats_measures_every_test_class_of_the_object_set(run_handle_runs, judged):
    from vae_keras.data.pipeline import load_split
    from vae_keras.evaluation.threats import goals_met, score_threats
    from vae_keras.io.manifest import CLASSES

    judged(1.0)
    objects = run_handle_runs / "objects"
    scores = score_threats(run_handle_runs / "object_run", objects, n_per_class=3, folds=2, two_sample_steps=20)
    _, test_y = load_split(objects, "test", image_size=16)
    in_test = {c for i, c in enumerate(CLASSES) if test_y[:, i].any()}
    assert in_test and set(scores["per_class"]) == in_test
    for c, v in scores["per_class"].items():
        assert (v["found"], v["recall"], v["ratio"]) == (1.0, 1.0, 1.0)
        assert v["n_test"] == int(test_y[:, CLASSES.index(c)].sum())
    assert scores["recognition_ratio_min"] == 1.0 and scores["n_per_class"] == 3
    assert 0.0 <= scores["c2st_accuracy"] <= 1.0 and scores["sharpness_ratio"] > 0
    assert scores["memorisation_ratio"] > 0 and scores["crops_per_second"] > 0
    assert scores["recon_sharpness_ratio"] > 0 and 0 < scores["recon_psnr"] < 100
    assert goals_met(scores)["class recognised >= 90% of real recall, every class"] is True


def test_a_class_the_judge_never_finds_in_real_crops_fails_the_goal(run_handle_runs, judged, monkeypatch):
    from vae_keras.evaluation import threats
    from vae_keras.evaluation.threats import goals_met, score_threats

    judged(0.0)
    # the ratios only: crops and the two-sample test as stand-ins (the test above runs them for real)
    monkeypatch.setattr(threats, "sample_images", lambda model, n, **kw: np.full((n, 16, 16, 1), 0.5, np.float32))
    monkeypatch.setattr(threats.M, "classifier_two_sample_test", lambda real, gen, **kw: 0.5)
    scores = score_threats(run_handle_runs / "object_run", run_handle_runs / "objects", n_per_class=2, folds=2,
                           two_sample_steps=20)
    assert all(v["recall"] == 0.0 and math.isnan(v["ratio"]) for v in scores["per_class"].values())
    assert goals_met(scores)["class recognised >= 90% of real recall, every class"] is False


def test_the_benchmark_table_has_a_row_and_a_goal_row_per_generator():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "threats.py"
    spec = importlib.util.spec_from_file_location("bench_threats", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    good = {"per_class": {"knife": {"found": 0.9, "recall": 0.95, "ratio": 0.9 / 0.95}},
            "recognition_ratio_min": 0.9 / 0.95, "sharpness_ratio": 1.0, "memorisation_ratio": 1.1,
            "c2st_accuracy": 0.6, "crops_per_second": 250.0, "epochs": "3 + 5"}
    bad = dict(good, recognition_ratio_min=0.2, c2st_accuracy=0.99, crops_per_second=20.0, epochs="1 + 2",
               recon_sharpness_ratio=0.456, recon_psnr=24.81)   # good: scored before the AE columns
    args = SimpleNamespace(minutes=10.0, init_from="runs/phantom_threats")
    text = bench.table({"scratch": bad, "tuned": good}, args, "python benchmarks/threats.py", "2026-12-06 01:00", "CPU")
    assert "starting from runs/phantom_threats" in text.splitlines()[0]
    rows = [line for line in text.splitlines() if line.startswith("| tuned |")]
    assert len(rows) == 2 and "0.90 / 0.95 / 0.95" in rows[0] and "| - |" in rows[0]   # other classes: no crops
    assert rows[0].endswith("| 250 | - |")                   # a result scored before the AE's columns existed
    assert "| 0.46 / 24.8 |" in [line for line in text.splitlines() if line.startswith("| scratch |")][0]
    assert set(rows[1].strip("| ").split(" | ")[1:]) == {"met"}
    scratch_goals = [line for line in text.splitlines() if line.startswith("| scratch |")][1]
    assert scratch_goals.count("missed") == 3


def _prior_weights(trainer):
    return [w.copy() for w in trainer.ema_network.get_weights()]


def test_a_prior_fine_tuned_from_another_run_starts_from_its_weights(run_handle_runs, tmp_path):
    from vae_keras.config import get_config
    from vae_keras.data.pipeline import load_split
    from vae_keras.samplers.diffusion_training import PriorTrainer
    from vae_keras.training.run import open_run

    source = open_run(run_handle_runs / "run")
    images, labels = load_split(run_handle_runs / "bags", "train", image_size=32)
    config = get_config("latent", image_size=32, **TINY_LATENT)
    tuned = PriorTrainer(config, source.model, images, labels, tmp_path / "tuned", progress=False,
                         init_from=run_handle_runs / "run")
    fresh = PriorTrainer(config, source.model, images, labels, tmp_path / "fresh", progress=False)
    want = source.sampler.network.get_weights()                           # the source's EMA U-Net
    assert tuned.init_from is not None and fresh.init_from is None
    assert all(np.array_equal(a, b) for a, b in zip(_prior_weights(tuned), want))
    assert not all(np.array_equal(a, b) for a, b in zip(_prior_weights(fresh), want))


def test_a_prior_of_another_shape_is_refused_with_the_reason(run_handle_runs, tmp_path):
    from vae_keras.config import get_config
    from vae_keras.data.pipeline import load_split
    from vae_keras.errors import ConfigError
    from vae_keras.samplers.diffusion_training import PriorTrainer
    from vae_keras.training.run import open_run

    source = open_run(run_handle_runs / "run")
    images, labels = load_split(run_handle_runs / "bags", "train", image_size=32)
    wider = get_config("latent", image_size=32, **dict(TINY_LATENT, prior_widths=(16, 16, 32)))
    with pytest.raises(ConfigError, match="prior widths"):
        PriorTrainer(wider, source.model, images, labels, tmp_path / "wider", progress=False,
                     init_from=run_handle_runs / "run")


def test_train_init_from_hands_the_source_run_to_the_prior(run_handle_runs, tmp_path, monkeypatch):
    from vae_keras.config import get_config
    from vae_keras.samplers import diffusion_training
    from vae_keras.training.trainer import Trainer

    seen = []
    start_from = diffusion_training.PriorTrainer._start_from

    def record(self, source_run):
        seen.append(Path(source_run))
        return start_from(self, source_run)

    monkeypatch.setattr(diffusion_training.PriorTrainer, "_start_from", record)
    Trainer(get_config("latent", image_size=32, **TINY_LATENT), str(run_handle_runs / "bags"), tmp_path / "tuned",
            progress=False, init_from=str(run_handle_runs / "run")).fit()
    assert seen == [run_handle_runs / "run"]
