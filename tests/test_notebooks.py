"""The committed course notebooks are executed, normalised and Colab-ready.

Running them is nbval's job (``XRAY_VAE_QUICK=1 pytest --nbval notebooks/ --nbval-sanitize-with
notebooks/nbval_sanitize.cfg``); these fast checks catch a notebook committed half-run, with an
error, with another kernel, without its Colab badge or quick-mode parameters, or not normalised.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_data_pipeline", "02_model", "03_training", "04_generation", "05_analysis", "06_augmentation"]
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def _load_normalizer():
    spec = importlib.util.spec_from_file_location("nb_normalize", NB_DIR / "normalize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    return nbformat.read(path, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_course_is_complete():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


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

    def test_setup_cell_is_colab_safe(self, path):
        source = "\n".join(c.source for c in _code(_read(path)))
        assert '"google.colab" in sys.modules' in source
        assert "REPO_URL" in source and "MOUNT_DRIVE" in source
        assert re.search(r'"install", "-q", "--no-deps", "-e", "\."', source)
        assert not re.search(r"pip.*install.*tensorflow", source), "never reinstall TensorFlow in Colab"

    def test_quick_mode_parameter_cell(self, path):
        params = [c for c in _code(_read(path)) if "quick_mode()" in c.source]
        assert params, "no parameter cell using vae_keras.quick_mode()"
        source = params[0].source
        for name in ("IMAGE_SIZE", "EPOCHS", "LATENT_DIM", "BATCH_SIZE", "DATA_DIR"):
            assert re.search(rf"^{name} = ", source, re.M), f"parameter {name} missing"
        assert re.search(r'get_config\("\w+"', source), "the parameter cell builds a named configuration"

    def test_no_cell_is_skipped(self, path):
        assert not any("NBVAL_SKIP" in c.source for c in _code(_read(path)))

    def test_normalised(self, path):
        normalize = _load_normalizer().normalize
        nb = _read(path)
        assert normalize(_read(path)) == nb, "run `python notebooks/normalize.py` before committing"
