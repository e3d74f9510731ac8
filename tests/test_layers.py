"""Imports run one way: no module imports a package that the README's order puts above it.

The order is read from the README's Layout section (the sentence "Imports run one way, down this
order: `cli` > `viz` > ..."), so the README and the code cannot disagree without this failing.
Every import counts, module-level and deferred (inside a function) alike: a deferred import that
climbs is still a dependency on the stage above.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_keras"


def readme_order() -> list:
    """The layers from the top, each a set of names (``config``, ``course`` share one)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Imports run one way, down this order: (.*?)\(", text, re.S)
    assert m, "the README's Layout section must state the import order"
    return [set(re.findall(r"`(\w+)`", part)) for part in m.group(1).split(">")]


def layer_of(module: str, order: list) -> int:
    """The index in ``order`` of ``vae_keras.X[.Y]`` (its first part after ``vae_keras``)."""
    first = module.split(".")[1]
    for i, names in enumerate(order):
        if first in names:
            return i
    raise AssertionError(f"{module}: its stage {first!r} is not in the README's import order")


def imports_of(path: Path) -> list:
    """``(line, module)`` of every ``vae_keras`` import in a file, deferred ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vae_keras."):
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("vae_keras.")]
    return out


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if p.relative_to(PACKAGE).parts[0] not in ("__init__.py", "__main__.py"))


def test_order_parser_reads_the_readme():
    order = readme_order()
    assert order[0] == {"cli"} and order[-1] == {"errors"} and {"config", "course"} in order


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_stage_above_its_own(path):
    order = readme_order()
    me = layer_of("vae_keras." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts), order)
    climbing = [f"line {line}: {module}" for line, module in imports_of(path) if layer_of(module, order) < me]
    assert not climbing, f"{path.relative_to(ROOT)} imports stages above its own: {climbing}"


def test_the_check_catches_a_climbing_import(tmp_path):
    """The trainer once imported viz for its per-epoch grid: such a line is found."""
    bad = tmp_path / "trainer.py"
    bad.write_text("def f():\n    from vae_keras.viz.figures import image_grid\n")
    order = readme_order()
    assert [layer_of(m, order) for _, m in imports_of(bad)] == [layer_of("vae_keras.viz", order)]
    assert layer_of("vae_keras.viz", order) < layer_of("vae_keras.training", order)
