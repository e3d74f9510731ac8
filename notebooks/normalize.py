"""Normalise the course notebooks so that diffs stay clean (idempotent).

    python notebooks/normalize.py                 # every notebooks/NN_*.ipynb
    python notebooks/normalize.py notebooks/03_training.ipynb

What it does, and nothing else (outputs and execution counts are kept as executed):

- notebook metadata: only ``kernelspec`` (``python3`` / "Python 3") and a minimal ``language_info``;
  widget state and anything an editor added are dropped;
- cell metadata: execution timestamps (``execution``), ``collapsed``/``scrolled`` and the like are
  dropped; ``tags`` are kept;
- stderr streams: TensorFlow's C++ start-up log lines (``I0000 ... cudart_stub.cc:31] ...``, the
  ``absl::InitializeLog`` notice) are removed; they carry timestamps and process ids, and only
  describe the machine that executed the notebook.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
LANGUAGE_INFO = {"name": "python"}
KEEP_CELL_METADATA = ("tags",)
_TF_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                     r"|[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] .*)$")


def _clean_stderr(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not _TF_LOG.match(line.rstrip("\n")))


def normalize(nb):
    """Normalise ``nb`` (a ``NotebookNode``) in place and return it."""
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)})
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA})
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                out.text = _clean_stderr(out.text)
                if not out.text.strip():
                    continue
            outputs.append(out)
        cell.outputs = outputs
    return nb


def normalize_file(path) -> bool:
    """Normalise one file; returns True when it changed."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = normalize(nbformat.reads(before, as_version=4))
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def main(argv=None) -> int:
    paths = argv if argv else sorted(str(p) for p in Path(__file__).parent.glob("[0-9][0-9]_*.ipynb"))
    for p in paths:
        print(("normalised " if normalize_file(p) else "unchanged  ") + str(p))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
