"""The README and docs/ cannot drift silently from the repository (fast; no TensorFlow).

- the README's package map lists every module of ``vae_keras/`` and ``data_prep/``, and nothing else;
- the README's course table lists every notebook;
- the README stays under 10 KB (it gets a reader running; the write-ups live in docs/);
- every relative link in the README and docs/ points to a file that exists.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGES = ("vae_keras", "data_prep")


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def package_map(text: str) -> set:
    """Module paths of the indented tree in the fenced block of a Layout section (docs/layout.md's).

    One entry per line, four spaces per level; ``name/`` is a package (its ``__init__.py``),
    ``name.py`` a module; what follows the name is its description.
    """
    block = re.search(r"```\n(.*?)```", _section(text, "Layout"), re.S)
    assert block, "the Layout section needs the package map in a fenced block"
    paths, stack = set(), []
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 4 == 0, f"package map: indent by 4 spaces: {line!r}"
        name = line.split()[0]
        assert re.fullmatch(r"[\w.]+/|[\w]+\.py", name), f"package map: not a module or package: {line!r}"
        assert len(line.split(maxsplit=1)) == 2, f"package map: say what {name} is for: {line!r}"
        stack = stack[: indent // 4]
        if name.endswith("/"):
            stack.append(name[:-1])
            paths.add("/".join(stack) + "/__init__.py")
        else:
            paths.add("/".join(stack + [name]))
    return paths


def existing_modules() -> set:
    return {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if "__pycache__" not in p.parts}


def test_package_map_parser():
    text = "## Layout\n```\npkg/        the package\n    a.py    a module\n    sub/    a subpackage\n" \
           "        b.py    deep\n    c.py    back up\n```\n"
    assert package_map(text) == {"pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/b.py", "pkg/c.py"}


def test_package_map_lists_every_module():
    listed, actual = package_map((ROOT / "docs" / "layout.md").read_text(encoding="utf-8")), existing_modules()
    assert not actual - listed, f"modules missing from docs/layout.md's package map: {sorted(actual - listed)}"
    assert not listed - actual, f"docs/layout.md's package map lists modules that do not exist: {sorted(listed - actual)}"


def test_readme_course_table_lists_every_notebook():
    course = _section(README.read_text(encoding="utf-8"), "The course")
    rows = re.findall(r"^\| \[(\d\d_\w+)\]\(notebooks/\1\.ipynb\)", course, re.M)
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert rows == notebooks
    number_words = {2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight", 9: "Nine"}
    assert f"{number_words[len(notebooks)]} notebooks" in course


def test_readme_is_short():
    size = README.stat().st_size
    assert size < 10 * 1024, f"README.md is {size} bytes; move write-ups to docs/ (limit 10 KB)"


def _markdown_files():
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.M)


def relative_links(text: str) -> list:
    """Targets of the markdown links and images in ``text`` that are files of this repository."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    targets = [a or b for a, b in _LINK.findall(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_relative_links_parser():
    text = "[a](docs/x.md) ![b](../figures/y.png) [c](https://e.org) [d](#top) [e](z.md#part)\n```\n[f](no.md)\n```"
    assert relative_links(text) == ["docs/x.md", "../figures/y.png", "z.md#part"]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_files(path):
    broken = [t for t in relative_links(path.read_text(encoding="utf-8"))
              if not (path.parent / t.split("#")[0]).exists()]
    assert not broken, f"{path.name} links to files that do not exist: {broken}"


def test_docs_are_linked_from_the_readme():
    linked = {Path(t.split("#")[0]).name for t in relative_links(README.read_text(encoding="utf-8"))
              if t.startswith("docs/")}
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if p.name not in linked]
    assert not unlinked, f"docs/ pages no README link leads to: {unlinked}"


def cli_examples(text: str) -> list:
    """The ``python -m vae_keras ...`` commands in the fenced blocks of ``text``, as argv lists
    (comments, backslash continuations and leading ``VAR=value`` assignments removed)."""
    examples = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if "python -m vae_keras" not in command:
                continue
            words = shlex.split(command, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words.pop(0)
            if words[:3] == ["python", "-m", "vae_keras"]:
                examples.append(words[3:])
    return examples


def test_cli_examples_parser():
    text = "```bash\nX=1 python -m vae_keras train D --out R  # comment\npython other.py\n" \
           "TF_CONFIG='{\"a\": 1}' \\\n  python -m vae_keras gallery R --out G\n```\n"
    assert cli_examples(text) == [["train", "D", "--out", "R"], ["gallery", "R", "--out", "G"]]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_cli_examples_parse(path, capsys):
    """Every command-line example in the README and docs/ is accepted by today's parser."""
    from vae_keras.cli import build_parser

    parser = build_parser()
    for argv in cli_examples(path.read_text(encoding="utf-8")):
        if argv[-1:] == ["--help"]:
            continue
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{path.name}: `python -m vae_keras {' '.join(argv)}` does not parse: "
                        f"{capsys.readouterr().err.strip().splitlines()[-1]}")
