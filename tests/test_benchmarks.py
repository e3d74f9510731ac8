"""The benchmarks write the conditions they measured, and only those (``benchmarks/conditions.py``)."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))          # as the scripts themselves do
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def conditions():
    return _load("conditions")


def test_no_gpu_found_and_the_loads_measured(conditions):
    text = conditions.describe_conditions([], 2, "x86_64", (0.1, 2.345), {"seed": (0.1, 1.5), "sigma": (1.5, 2.345)})
    assert text == ("Device: CPU only (TensorFlow found no GPU), 2 cores (x86_64). Load average (1 min): "
                    "0.10 at the start, 2.35 at the end; per run (start -> end): seed 0.10 -> 1.50, "
                    "sigma 1.50 -> 2.35.")


def test_gpus_are_named(conditions):
    text = conditions.describe_conditions(["NVIDIA H200", "NVIDIA H200"], 16, "x86_64", (0.5, 0.7))
    assert text.startswith("Device: 2 GPUs (NVIDIA H200, NVIDIA H200) and 16 CPU cores (x86_64). ")
    assert "per run (start -> end): not recorded for this run." in text


def test_what_was_not_recorded_is_said_to_be_so(conditions):
    # the committed tables predate the recording: re-rendered with what is known, never a guess
    text = conditions.describe_conditions(None, 2, "x86_64", (0.1, None), {"seed": (None, None)})
    assert "GPU" in text and "not recorded for this run" in text and "no GPU" not in text
    assert "0.10 at the start, not recorded for this run at the end" in text
    assert "seed not recorded" in text
    assert "Load average not recorded for this run" in conditions.describe_conditions([], 2, "x86_64")


def test_detectors_read_this_machine(conditions):
    import tensorflow as tf

    assert len(conditions.detect_gpus()) == len(tf.config.list_physical_devices("GPU"))
    load = conditions.load_average()
    assert load is None or load >= 0.0


def test_quality_table_header_is_the_measured_conditions(tmp_path, conditions):
    quality = _load("quality")
    args = argparse.Namespace(minutes=1.0, data="d", size=32, n=10, k=2, n_likelihood=4)
    said = conditions.describe_conditions(["Some GPU"], 8, "arm64", (3.0, 4.0), {"seed": (3.0, 4.0)})
    table = tmp_path / "quality.md"
    quality.write_table(table, {"seed": {"epochs": 2, "nll_elbo_bpd": 7.5}}, args, "python benchmarks/quality.py",
                        "2026-11-30 12:00", said)
    header = table.read_text().splitlines()[2]
    assert said in header and "nothing else running" not in header and "no GPU" not in header
    assert "| seed | 2 | 7.500 |" in table.read_text()


def test_quality_sample_grids_are_named_after_their_table():
    """A second table (another size or budget) must not overwrite the default table's sample grids."""
    quality = _load("quality")
    assert quality.grid_path(Path("figures/quality.md"), "latent") == Path("figures/quality_samples_latent.png")
    assert quality.grid_path(Path("f/quality_128.md"), "latent") == Path("f/quality_samples_latent_128.png")
    assert quality.grid_path(Path("f/quality_10min.md"), "seed") == Path("f/quality_samples_seed_10min.png")


def test_quality_budget_tabulates_and_plots_runs_in_budget_order(tmp_path):
    import json

    budget = _load("quality_budget")
    for minutes, sharp in (("20", 0.5), ("10", 0.3)):
        run = tmp_path / f"run{minutes}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({
            "config": "latent", "image_size": 64, "epochs": int(minutes), "sharpness_ratio": sharp,
            "c2st_accuracy": 0.8, "class_recognition": {"handgun": 0.5, "knife": 0.25},
            "benign_no_threat_found": 0.97,
            "threat_classifier": {"test_recall_per_class": {"handgun": 0.9, "knife": 0.4}}}))
    out = tmp_path / "fig" / "budget.png"
    budget.main([f"20={tmp_path / 'run20'}", f"10={tmp_path / 'run10'}", "--out", str(out)])
    assert out.is_file() and out.stat().st_size > 1000
    measures = (tmp_path / "fig" / "budget.md").read_text().split("## Issue")[0]
    rows = [line for line in measures.splitlines() if line.startswith("| - |")]
    assert [r.split(" | ")[1] for r in rows] == ["10", "20"]                      # sorted by budget
    assert " 0.300 " in rows[0] and " 0.500 " in rows[1] and " - " in rows[0]    # a measure not recorded: "-"
    assert rows[0].rstrip(" |").endswith("0.50 | 0.25 | 0.97")                    # per class, then benign
    text = (tmp_path / "fig" / "budget.md").read_text()
    assert "| - | 20 | sharpness ratio >= 0.6 | 0.500 | **missed** |" in text
    assert "| - | 10 | handgun recognised >= 70% | 0.500 | **missed** |" in text
    assert "knife recognised >= 70%" not in text              # the classifier's own recall is below 0.5
    assert "| - | 10 | benign: no threat found >= 95% | 0.970 | reached |" in text
    # named series, and a metrics file given directly (a run scored with another sampler setting)
    other = tmp_path / "run10" / "metrics_clip0.json"
    other.write_text(json.dumps({"sharpness_ratio": 0.45, "prior_clip": 0.0, "ddim_steps": 25, "guidance": 3.0}))
    budget.main([f"clip3:10={tmp_path / 'run10'}", f"clip0:10={other}", "--out", str(out)])
    measures = (tmp_path / "fig" / "budget.md").read_text().split("## Issue")[0]
    assert "| clip0 | 10 | - | 25 / 3 / 0 | 0.450 |" in measures and "| clip3 | 10 | 10 | - / - / - | 0.300 |" in measures
    with pytest.raises(SystemExit, match="metrics.json is missing"):
        budget.main([f"40={tmp_path / 'nowhere'}", "--out", str(out)])


def test_threats_benchmark_rows_name_a_config_a_trained_run_or_changed_fields():
    """``--configs`` rows: a named configuration, ``name=RUN`` (a run trained elsewhere, slashes and all),
    or ``name/KEY=VALUE/...`` (an earlier recipe as a row of its own); a field that does not exist is refused."""
    from vae_keras.config import ConfigError

    threats = _load("threats")
    assert threats.parse_spec("threats") == ("threats", "threats", "", {})
    assert threats.parse_spec("threats=runs/a/b") == ("threats", "threats", "runs/a/b", {})
    label, name, run, overrides = threats.parse_spec("threats/pixel_l2_weight=0/batch_size=32")
    assert (label, name, run) == ("threats/pixel_l2_weight=0/batch_size=32", "threats", "")
    assert overrides == {"pixel_l2_weight": 0.0, "batch_size": 32}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        threats.parse_spec("threats/no_such_field=1")
