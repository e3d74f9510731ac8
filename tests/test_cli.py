"""The command line end to end on tiny sizes, and its promise: no traceback for expected errors."""
import os
import subprocess
import sys

import pytest

from vae_keras.io.manifest import read_manifest
from vae_keras.cli import build_parser, main

COMMANDS = ["phantoms", "prepare", "objects", "train", "generate", "evaluate", "gallery", "demo"]


def run_cli(*args, env=None):
    """Run ``python -m vae_keras`` in a subprocess (what a user sees)."""
    return subprocess.run([sys.executable, "-m", "vae_keras", *args], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}, timeout=300)


def test_help_lists_every_subcommand():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert len(capsys.readouterr().out) > 300


def test_missing_data_folder_is_one_clear_line(tmp_path):
    out = run_cli("train", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--quick")
    assert out.returncode == 2
    assert "error:" in out.stderr and "nope" in out.stderr
    assert "Traceback" not in out.stderr


def test_phantoms_train_generate_resume(tmp_path, capsys):
    data, run, gen = tmp_path / "data", tmp_path / "run", tmp_path / "gen"
    assert main(["phantoms", str(data), "--n", "24", "--size", "32", "--quiet"]) == 0
    rows = read_manifest(data / "manifest.csv")
    assert len(rows) == 24 and {r.split for r in rows} == {"train", "test"}

    train = ["train", str(data), "--out", str(run), "--image-size", "32", "--batch-size", "8", "--quiet"]
    assert main(train + ["--epochs", "2"]) == 0
    for name in ("config.json", "history.json", "training.gif", "loss_curves.png", "latent_manifold.png"):
        assert (run / name).is_file(), name

    assert main(train + ["--epochs", "3"]) == 2              # the run exists: refuse to overwrite it
    assert "--resume" in capsys.readouterr().err
    assert main(train + ["--epochs", "3", "--resume"]) == 0  # continues at epoch 3
    assert len(list((run / "samples").glob("epoch_*.png"))) == 3

    assert main(["generate", str(run), "--n", "5", "--out", str(gen), "--quiet"]) == 0
    gen_rows = read_manifest(gen / "manifest.csv")
    assert len(gen_rows) == 5 and all((gen / r.path).is_file() for r in gen_rows)


def test_demo_leaves_grid_gif_and_latent_plot(tmp_path):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--n", "30", "--epochs", "1", "--image-size", "32",
            "--n-generate", "4", "--quick", "--quiet"]
    assert main(argv) == 0
    for name in ("samples_grid.png", "real_grid.png", "training.gif", "latent_manifold.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(read_manifest(out / "generated" / "manifest.csv")) == 4
