"""The committed course notebooks are executed, normalised and Colab-ready.

Running them is nbval's job (``XRAY_VAE_QUICK=1 pytest --nbval notebooks/ --nbval-sanitize-with
notebooks/nbval_sanitize.cfg``); these fast checks catch a notebook committed half-run, with an
error, with another kernel, without its Colab badge or quick-mode parameters, or not normalised.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_data_pipeline", "02_model", "03_training", "04_generation", "05_analysis", "06_augmentation",
            "07_latent_diffusion"]
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
# What each notebook teaches, as checks nbval compares (the start of a line that must end in ': True'
# in a cell whose output is not ignored): an instructor's nbval run fails when the course stops
# showing what its text says. Raw numbers may stay in ignored cells.
KEY_CLAIMS = {
    "01_data_pipeline": ["overlap = product of transmissions", "both caches deliver over 1,000 images/s"],
    "02_model": ["recon close to S^2 ln 2", "untrained -ELBO is 1 bit per pixel to within 1%"],
    "03_training": ["the reconstruction term fell by over 100 nats/image", "the KL term rose from near zero",
                    "test -ELBO below 0.9 x the untrained model's"],
    "04_generation": ["the bags differ more as T grows", "the overall darkness survives"],
    "05_analysis": ["test -ELBO between 0.6 and 0.9 bits/pixel", "generated/real sharpness ratio below 0.3",
                    "generated images hold under a fifth of the real dense-object mass"],
    "06_augmentation": ["TIP beats the real subset alone", "real threats in VAE bags (hybrid) beat pure VAE images",
                        "the best arm adds no pure VAE images", "every inserted threat pixel lies on its bag"],
    "07_latent_diffusion": ["reconstructions nearer the training bags than N(0, I) decodes",
                            "with the true noise, one DDIM step recovers x0",
                            "prior samples nearer the training bags than N(0, I) decodes",
                            "guidance 0 is the unconditional prediction"],
}


def _load_normalizer():
    spec = importlib.util.spec_from_file_location("nb_normalize", NB_DIR / "normalize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    return nbformat.read(path, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


# Markdown parts that are not prose: HTML comments, code blocks and spans, math, link targets.
_NOT_PROSE = [re.compile(p, re.S) for p in (r"<!--.*?-->", r"```.*?```", r"\$\$.*?\$\$", r"\$[^$]*\$", r"`[^`]*`",
                                            r"\]\([^)]*\)")]
_QUOTED_NUMBER = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?%|\d+\.\d+)(?![\w.]*\w)")


def prose_numbers(markdown: str) -> list:
    """The decimals (0.24, 1.5) and percentages (70%) in the prose of a markdown cell."""
    for pattern in _NOT_PROSE:
        markdown = pattern.sub(" ", markdown)
    return _QUOTED_NUMBER.findall(markdown)


def _printed(nb) -> str:
    """Every code cell's source and text outputs, joined."""
    parts = []
    for cell in _code(nb):
        parts.append(cell.source)
        for out in cell.outputs:
            parts.append(out.get("text", ""))
            parts += [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_prose_numbers_finds_quoted_results():
    text = "Accuracy 0.24 (`0.5` in code), $0.96$ in math, 70% of bags, [link](a_0.3.md), 1,877 scans, 30 epochs."
    assert prose_numbers(text) == ["0.24", "70%"]


def test_the_course_is_complete():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


_SHARED_FOLDER = re.compile(r"""(?:COURSE\.runs|RUN_DIR|["'/](?:data|runs)/[^"'\s)]*)""")


def test_standalone_notebooks_share_no_folder_with_the_others():
    """tests/conftest.py lets the standalone notebooks run beside the others under pytest-xdist: that is
    only safe while they name no run folder and no data folder that another notebook names."""
    from conftest import STANDALONE_NOTEBOOKS

    folders = {p.name: set(_SHARED_FOLDER.findall("\n".join(c.source for c in _code(_read(p))))) for p in NOTEBOOKS}
    assert set(STANDALONE_NOTEBOOKS) <= set(folders)
    others = set().union(*(f for name, f in folders.items() if name not in STANDALONE_NOTEBOOKS))
    assert {"RUN_DIR", '"data/phantoms_{IMAGE_SIZE}'} <= others                  # the pattern finds shared folders
    for name in STANDALONE_NOTEBOOKS:
        assert not folders[name] & (others | {"COURSE.runs", "RUN_DIR"}), (name, folders[name] & others)


def test_modules_with_a_module_fixture_are_found(tmp_path):
    """Such a module runs on one xdist worker (tests/conftest.py), so its fixture is built once: the pattern
    must find the decorator however it is spelled, and nothing else."""
    from conftest import module_fixture_modules

    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text('@pytest.fixture(scope="module")\ndef run():\n    pass\n')
    (tests / "test_b.py").write_text("@pytest.fixture(autouse=True, scope='module')\ndef run():\n    pass\n")
    (tests / "test_c.py").write_text('@pytest.fixture(scope="session")\ndef run():\n    pass\n# scope="module"\n')
    (tests / "helper.py").write_text('@pytest.fixture(scope="module")\n')
    assert module_fixture_modules(tests) == {"tests/test_a.py", "tests/test_b.py"}
    assert "tests/test_distribute.py" in module_fixture_modules(Path(__file__).parent)


def test_notebooks_are_small():
    total = sum(p.stat().st_size for p in NB_DIR.rglob("*") if p.is_file())
    assert total < 3 * 2 ** 20, f"notebooks/ holds {total / 2 ** 20:.1f} MB; keep figures small (< 3 MB)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
class TestNotebook:
    def test_valid_and_python3_kernel(self, path):
        nb = _read(path)
        nbformat.validate(nb)
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
        assert nb.metadata["kernelspec"].get("display_name") == "Python 3"
        assert "widgets" not in nb.metadata, "widget state must not be committed"

    def test_executed_top_to_bottom_without_errors(self, path):
        cells = _code(_read(path))
        counts = [c.execution_count for c in cells]
        assert None not in counts, f"code cell(s) never executed: {[i for i, n in enumerate(counts) if n is None]}"
        assert counts == list(range(1, len(cells) + 1)), f"execution counts are not 1..n: {counts}"
        for i, cell in enumerate(cells):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"code cell {i} has an error output: {errors[0].ename}: {errors[0].evalue}"

    def test_colab_badge_and_title(self, path):
        first = _read(path).cells[0]
        assert first.cell_type == "markdown"
        assert "colab.research.google.com/assets/colab-badge.svg" in first.source
        assert re.search(rf"colab\.research\.google\.com/github/[^/]+/xray-vae/blob/main/notebooks/{path.name}\)",
                         first.source), "the badge must open this notebook"
        assert re.search(r"^# ", first.source, re.M), "the first cell needs a title"

    def test_setup_cell_is_one_library_call(self, path):
        first = _code(_read(path))[0].source
        assert len(first.splitlines()) <= 6, "the setup cell is the Colab bootstrap and one call: keep it short"
        assert re.search(r"^COURSE = setup\((mount_drive=True)?\)", first, re.M), "call vae_keras.course.setup()"
        clone = [line for line in first.splitlines() if "git clone" in line]
        assert clone and all(line.startswith("    ") for line in clone), "clone only inside the Colab branch"
        assert 'if "google.colab" in sys.modules:' in first, "locally nothing may be downloaded"
        assert "pip" not in first, "installing is setup()'s job (and never TensorFlow in Colab)"

    def test_quick_mode_parameter_cell(self, path):
        params = [c for c in _code(_read(path)) if "quick_mode()" in c.source]
        assert params, "no parameter cell using vae_keras.quick_mode()"
        source = params[0].source
        for name in ("IMAGE_SIZE", "EPOCHS", "LATENT_DIM", "BATCH_SIZE", "DATA_DIR"):
            assert re.search(rf"^{name} = ", source, re.M), f"parameter {name} missing"
        assert re.search(r'get_config\("\w+"', source), "the parameter cell builds a named configuration"
        assert re.search(r"^EPOCHS = env_epochs\(", source, re.M), "EPOCHS must honour XRAY_VAE_EPOCHS"

    def test_no_cell_is_skipped(self, path):
        assert not any("NBVAL_SKIP" in c.source for c in _code(_read(path)))

    def test_numbers_in_the_text_are_printed(self, path):
        """A decimal or a percentage quoted in a markdown cell must appear in an output or in the code:
        prose that quotes a result the notebook no longer prints has drifted."""
        nb = _read(path)
        printed = _printed(nb)
        stale = [(i, n) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
                 for n in prose_numbers(cell.source)
                 if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", printed)]
        assert not stale, f"numbers in markdown cells that no output or code shows (cell, number): {stale}"

    def test_claims_are_checked_and_hold(self, path):
        """Each notebook states its key results as checks that nbval compares (a line ending in
        ': True' in a cell whose output is not ignored); a committed check must not read False."""
        compared = [c for c in _code(_read(path)) if "NBVAL_IGNORE_OUTPUT" not in c.source]
        lines = [line for c in compared for o in c.outputs if o.output_type == "stream" and o.name == "stdout"
                 for line in o.text.splitlines()]
        checks = [line for line in lines if re.search(r": (True|False)$", line)]
        assert len(checks) >= 3, f"only {len(checks)} checked statements: print the key results as checks"
        failing = [line for line in checks if line.endswith("False")]
        assert not failing, f"checks that do not hold in the committed outputs: {failing}"
        missing = [claim for claim in KEY_CLAIMS[path.stem] if not any(line.startswith(claim) for line in checks)]
        assert not missing, f"key results not printed as compared checks: {missing}"

    def test_normalised(self, path):
        normalize = _load_normalizer().normalize
        nb = _read(path)
        assert normalize(_read(path)) == nb, "run `python notebooks/normalize.py` before committing"


# -- vae_keras.course: the notebooks' setup cell ------------------------------------------------
@pytest.fixture
def course_env(monkeypatch, tmp_path):
    """Imports vae_keras.course and restores what setup() changes (cwd, sys.path, rcParams)."""
    from vae_keras import course
    matplotlib = pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(matplotlib, "rcParams", matplotlib.rcParams.copy())
    monkeypatch.delenv("XRAY_VAE_EPOCHS", raising=False)
    return course


def test_course_setup_locally_touches_no_network(course_env, monkeypatch, tmp_path):
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"setup() ran a command locally: {args}")
    monkeypatch.setattr(course_env.subprocess, "run", no_subprocess)
    monkeypatch.chdir(NB_DIR)                                   # where nbconvert runs a notebook
    env = course_env.setup(mount_drive=True)                    # mount_drive is ignored outside Colab
    root = NB_DIR.parent
    assert env == course_env.Course(root=root, in_colab=False, drive=None, runs=root / "runs")
    assert Path.cwd() == root, "notebooks work from the repository root (data/, runs/)"


def test_course_setup_in_colab_installs_without_tensorflow(course_env, monkeypatch, tmp_path):
    clone, mount = tmp_path / "content" / "xray-vae", tmp_path / "content" / "drive"
    monkeypatch.setattr(course_env, "COLAB_ROOT", clone)
    monkeypatch.setattr(course_env, "DRIVE_MOUNT", mount)
    monkeypatch.setattr(course_env, "DRIVE_RUNS", mount / "MyDrive" / "xray-vae" / "runs")
    monkeypatch.setattr(course_env, "COLAB_EXTRAS", {**course_env.COLAB_EXTRAS, "not-installed": "no_such_module_xyz"})
    commands, mounted = [], []

    def fake_run(command, check):
        commands.append(command)
        if "clone" in command:
            (Path(command[-1]) / "vae_keras").mkdir(parents=True)

    fake_drive = types.SimpleNamespace(mount=lambda where: (mounted.append(where), (mount / "MyDrive").mkdir(parents=True)))
    monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(drive=fake_drive))
    monkeypatch.setattr(course_env.subprocess, "run", fake_run)

    env = course_env.setup(mount_drive=True)
    assert env.in_colab and env.root == clone and Path.cwd() == clone
    assert env.drive == mount / "MyDrive" and env.runs == mount / "MyDrive" / "xray-vae" / "runs"
    assert mounted == [str(mount)]
    assert commands[0][:2] == ["git", "clone"] and commands[0][-1] == str(clone)
    installs = [c for c in commands if "pip" in c]
    assert installs and installs[-1][-1] == "not-installed", "only the missing extras are installed"
    assert not any(re.match(r"(tensorflow|keras|tensorboard)$", arg) for c in installs for arg in c)

    commands.clear()
    course_env.setup(mount_drive=True)                          # a rerun: already cloned and mounted
    assert not any("clone" in c for c in commands)
    assert len(mounted) == 1


def test_course_epochs_override(course_env, monkeypatch):
    assert course_env.env_epochs(30) == 30
    monkeypatch.setenv("XRAY_VAE_EPOCHS", "1")
    assert course_env.env_epochs(30) == 1
    monkeypatch.setenv("XRAY_VAE_EPOCHS", "zero")
    from vae_keras.errors import XrayVaeError
    with pytest.raises(XrayVaeError, match="XRAY_VAE_EPOCHS"):
        course_env.env_epochs(30)
