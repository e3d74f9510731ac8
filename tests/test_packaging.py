"""What the package promises to install on agrees with what its pinned dependencies need."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def minimum_python(spec: str) -> tuple:
    """``">=3.11"`` (or ``">=3.11, <4"``) -> (3, 11)."""
    found = re.search(r">=\s*(\d+)\.(\d+)", spec or "")
    assert found, f"no lower bound in {spec!r}"
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize("dependency", ["numpy", "keras", "tensorflow"])
def test_requires_python_is_not_below_what_the_pinned_dependencies_need(dependency):
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    needed = metadata.metadata(dependency)["Requires-Python"]
    assert minimum_python(ours) >= minimum_python(needed), \
        f"pyproject says requires-python {ours!r}, the installed {dependency} needs {needed!r}"


def test_no_test_skips_when_our_own_modules_fail_to_import():
    # importorskip turns an ImportError into a skip: right for optional third-party libraries,
    # wrong for vae_keras and data_prep, whose import errors are bugs that must fail the suite
    own = re.compile(r"importorskip\(\s*['\"](vae_keras|data_prep)\b")
    offenders = [f"{p.name}:{i}" for p in sorted((ROOT / "tests").glob("*.py"))
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if own.search(line)]
    assert not offenders, f"importorskip of our own modules hides import errors: {offenders}"
