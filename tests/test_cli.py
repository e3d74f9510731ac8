"""The command line end to end on tiny sizes, and its promise: one line for expected errors, a
traceback for bugs."""
import importlib
import os
import subprocess
import sys

import pytest

from vae_keras.config import DEFAULT_CONFIG, get_config

from vae_keras.io.manifest import read_manifest
from vae_keras.cli import build_parser, main
from vae_keras.errors import DataError

cli_main = importlib.import_module("vae_keras.cli.main")   # the module (vae_keras.cli.main is also the function)

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


# options each subcommand's --help must explain (one that disappears is a user's command broken)
OWN_OPTIONS = {
    "phantoms": ["--n", "--size", "--preset", "--occlusion"],
    "prepare": ["--size", "--labels-csv", "--yolo-classes"],
    "objects": ["--size"],
    "train": ["--out", "--config", "--resume", "--init-from", "--minutes", "--learning-rate", "--strategy"],
    "generate": ["--n", "--label", "--format", "--tip", "--objects", "--into", "--steps", "--guidance"],
    "evaluate": ["--data", "--sampler", "--n-likelihood", "--objects"],
    "gallery": ["--out", "--data", "--metrics"],
    "demo": ["--out", "--config", "--quick"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_explains_its_own_options(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m vae_keras {command}") or f" {command} " in out.splitlines()[0]
    for option in OWN_OPTIONS[command]:
        assert f"  {option}" in out, f"{command} --help does not explain {option}"


def test_learning_rate_help_states_the_configurations_defaults(capsys):
    """The help once said 1e-4 while the default configuration trains with 1e-3."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    default = get_config(DEFAULT_CONFIG, quick=False).learning_rate
    assert f"{DEFAULT_CONFIG} {default:g}" in text


def test_help_does_not_load_tensorflow():
    code = ("import sys; from vae_keras.cli import build_parser; build_parser(); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_docstring_lists_every_subcommand():
    listed = [line.split()[0] for line in cli_main.__doc__.splitlines() if "->" in line]
    assert sorted(listed) == sorted(COMMANDS)
    assert sorted(build_parser()._subparsers._group_actions[0].choices) == sorted(COMMANDS)


def test_bad_value_is_one_clear_line(tmp_path):
    out = run_cli("gallery", str(tmp_path / "run"), "--out", str(tmp_path / "site"), "--n", "0")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == "error: n must be >= 1 image per grid, got 0"   # after TF's start-up lines
    assert "Traceback" not in out.stderr


def test_expected_error_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    def refuse(args):
        raise DataError("the data set has 3 classes, the run 4")

    monkeypatch.setattr(cli_main.phantoms, "run", refuse)
    assert main(["phantoms", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err == "error: the data set has 3 classes, the run 4\n"


def test_a_bug_shows_its_traceback(tmp_path):
    """A ValueError that is not one of ours (a TensorFlow shape error, a bug) is not hidden."""
    code = ("import sys, data_prep.phantoms as ph\n"
            "def boom(*a, **k): raise ValueError('Dimensions must be equal, but are 64 and 32')\n"
            "ph.write_phantom_dataset = boom\n"
            "from vae_keras.cli import main\n"
            f"sys.exit(main(['phantoms', {str(tmp_path / 'p')!r}, '--quiet']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "boom" in out.stderr and "Dimensions must be equal" in out.stderr


def test_unknown_label_is_a_data_error():
    """``generate --label`` with a class that does not exist: the user's mistake, not a bug."""
    from vae_keras.sampling.generate import per_sample_labels

    with pytest.raises(DataError, match="unknown label"):
        per_sample_labels(["kinfe"], 2)


def test_missing_data_folder_is_one_clear_line(tmp_path):
    out = run_cli("train", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--quick")
    assert out.returncode == 2
    assert "error:" in out.stderr and "nope" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_data_set_is_refused_before_tensorflow_loads(tmp_path):
    """A missing folder, or one without a manifest, is one error line in well under a second: TensorFlow
    (seconds to import) is not loaded for it."""
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    code = ("import sys\n"
            "from vae_keras.cli import main\n"
            f"codes = [main(['train', {str(tmp_path / 'nope')!r}, '--out', {str(tmp_path / 'run')!r}]),\n"
            f"         main(['train', {str(tmp_path / 'empty')!r}, '--out', {str(tmp_path / 'run')!r}])]\n"
            "print(codes, 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split("\n")[0] == "[2, 2] False", out.stderr[-2000:]
    assert "nope does not exist" in out.stderr and "has no manifest.csv" in out.stderr
    assert not (tmp_path / "run").exists()


def test_phantoms_train_generate_resume(tmp_path, capsys):
    data, run, gen = tmp_path / "data", tmp_path / "run", tmp_path / "gen"
    assert main(["phantoms", str(data), "--n", "24", "--size", "32", "--quiet"]) == 0
    rows = read_manifest(data / "manifest.csv")
    assert len(rows) == 24 and {r.split for r in rows} == {"train", "test"}

    train = ["train", str(data), "--out", str(run), "--config", "adversarial", "--image-size", "32", "--batch-size",
             "8", "--quiet"]
    assert main(train + ["--epochs", "2"]) == 0
    for name in ("config.json", "history.json", "training.gif", "loss_curves.png", "interpolations.png"):
        assert (run / name).is_file(), name                 # a flat 64-d latent space
    assert not (run / "latent_manifold.png").exists()      # 2 of 64 dimensions would show one bag

    assert main(train + ["--epochs", "3"]) == 2              # the run exists: refuse to overwrite it
    assert "--resume" in capsys.readouterr().err
    assert main(train + ["--epochs", "3", "--resume"]) == 0  # continues at epoch 3
    assert len(list((run / "samples").glob("epoch_*.png"))) == 3

    assert main(["generate", str(run), "--n", "5", "--out", str(gen), "--quiet"]) == 0
    gen_rows = read_manifest(gen / "manifest.csv")
    assert len(gen_rows) == 5 and all((gen / r.path).is_file() for r in gen_rows)


def test_demo_of_a_flat_latent_configuration_leaves_grids_gif_and_interpolations(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--config", "adversarial", "--n", "30", "--epochs", "1", "--image-size", "32",
            "--n-generate", "4", "--quick", "--quiet"]
    assert main(argv) == 0
    for name in ("samples_grid.png", "real_grid.png", "training.gif", "interpolations.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0, name
    listed = capsys.readouterr().out
    assert "interpolations.png" in listed and "latent_manifold.png" not in listed   # only what exists
    assert len(read_manifest(out / "generated" / "manifest.csv")) == 4


def test_a_2d_latent_run_gets_its_manifold(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["phantoms", str(data), "--n", "20", "--size", "32", "--quiet"]) == 0
    assert main(["train", str(data), "--out", str(run), "--config", "seed", "--latent-dim", "2",
                 "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--quiet"]) == 0
    assert (run / "latent_manifold.png").is_file() and not (run / "interpolations.png").exists()


def test_train_set_reaches_the_configuration_and_a_bad_one_is_one_error_line(tmp_path, capsys):
    from vae_keras.cli.common import config_from_args

    args = build_parser().parse_args(["train", "DATA", "--out", "RUN", "--image-size", "64", "--set", "prior_target=v",
                                      "--set", "prior-widths=64,128,256", "--set", "prior_attention=4"])
    config = config_from_args(args)
    assert (config.prior_target, config.prior_widths, config.prior_attention) == ("v", (64, 128, 256), 4)
    assert config.image_size == 64 and config.name == DEFAULT_CONFIG             # the flags still apply
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--set", "prior_target=x0"]) == 2
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--set", "no_such_field=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --set expects KEY=VALUE") and not (tmp_path / "run").exists()
