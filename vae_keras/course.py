"""The course notebooks' setup: one call, in Colab or on your own machine.

Every notebook starts with the same short cell::

    import sys
    if "google.colab" in sys.modules:  # Colab: fetch the course (locally nothing is downloaded)
        !git clone -q --depth 1 https://github.com/xray-vae/xray-vae /content/xray-vae 2>/dev/null || true
        sys.path.insert(0, "/content/xray-vae")
    from vae_keras.course import setup
    COURSE = setup(mount_drive=True)

In Colab the package cannot be imported before the repository is cloned, hence the two-line
bootstrap; everything else is :func:`setup`:

- **Colab**: clone the repository if it is not there yet, ``pip install --no-deps -e`` it, install
  the few non-TensorFlow dependencies Colab lacks (never TensorFlow, Keras or TensorBoard: Colab's
  own, built for its GPU/TPU, are kept), optionally mount Google Drive so that runs survive a
  disconnect, and work from the clone.
- **Locally** (the package installed with ``make install`` or ``pip install -e .``): nothing is
  installed and nothing touches the network; it only moves to the repository root, so that every
  notebook finds ``data/`` and ``runs/`` in the same place.

Both also hide TensorFlow's C++ start-up log and set matplotlib's defaults for the course figures.
May import: :mod:`vae_keras.errors` only (no TensorFlow).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vae_keras.errors import ConfigError

REPO_URL = "https://github.com/xray-vae/xray-vae.git"  # OWNER placeholder: the published repository
COLAB_ROOT = Path("/content/xray-vae")
DRIVE_MOUNT = Path("/content/drive")
DRIVE_RUNS = DRIVE_MOUNT / "MyDrive" / "xray-vae" / "runs"
EPOCHS_ENV = "XRAY_VAE_EPOCHS"

# pip name -> import name of the dependencies setup() may install in Colab when they are missing.
# TensorFlow, Keras and TensorBoard are deliberately absent: Colab's own are never replaced.
COLAB_EXTRAS = {
    "tensorflow-datasets": "tensorflow_datasets",
    "importlib_resources": "importlib_resources",   # tfds imports it without declaring it
    "numpy": "numpy",
    "pillow": "PIL",
    "matplotlib": "matplotlib",
    "imageio": "imageio",
}


@dataclass(frozen=True)
class Course:
    """Where a notebook works, as :func:`setup` left it.

    Attributes:
        root: the repository root (the working directory after :func:`setup`).
        in_colab: True inside Google Colab.
        drive: the mounted Google Drive (``/content/drive/MyDrive``), or None.
        runs: where the notebooks keep their training runs: on Drive when it is mounted, so that
            a run survives a Colab disconnect, else ``root/runs`` (an ignored folder).
    """

    root: Path
    in_colab: bool
    drive: Optional[Path]
    runs: Path


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


def env_epochs(default: int) -> int:
    """The epochs of a notebook's run: ``default``, unless ``XRAY_VAE_EPOCHS`` overrides it.

    The override exists for smoke runs (every notebook at full size for one epoch); it must be a
    positive integer.
    """
    value = os.environ.get(EPOCHS_ENV, "").strip()
    if not value:
        return int(default)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{EPOCHS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def setup(mount_drive: bool = False, repo_url: str = REPO_URL) -> Course:
    """Prepare a notebook: install the course in Colab, or find the repository locally.

    Args:
        mount_drive: in Colab, mount Google Drive and keep runs there (``Course.runs``); ignored
            locally.
        repo_url: the repository Colab clones when ``/content/xray-vae`` is missing.

    Returns:
        a :class:`Course` with the repository root (now the working directory) and the runs folder.

    Example::

        COURSE = setup()
        RUN_DIR = COURSE.runs / "course_64"
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # hide TensorFlow's C++ start-up chatter
    colab = in_colab()
    root = _colab_install(repo_url) if colab else repository_root()
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    drive = _mount_drive() if colab and mount_drive else None
    _figure_defaults()
    runs = DRIVE_RUNS if drive is not None else root / "runs"
    return Course(root=root, in_colab=colab, drive=drive, runs=runs)


def repository_root(start: Optional[Path] = None) -> Path:
    """The checkout this package was imported from (editable install), else the nearest folder
    above ``start`` (the working directory) that holds ``vae_keras/`` and ``notebooks/``."""
    package_parent = Path(__file__).resolve().parents[1]
    candidates = [package_parent]
    here = Path(start or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    for folder in candidates:
        if (folder / "vae_keras").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def missing_packages(extras=None) -> list:
    """The pip names in ``extras`` (default :data:`COLAB_EXTRAS`) whose module cannot be imported."""
    extras = COLAB_EXTRAS if extras is None else extras
    return [pip_name for pip_name, module in extras.items() if importlib.util.find_spec(module) is None]


def _run(command) -> None:
    subprocess.run(command, check=True)


def _colab_install(repo_url: str) -> Path:
    """Clone (once), install without dependencies, add what Colab lacks; returns the clone."""
    if not (COLAB_ROOT / "vae_keras").is_dir():
        _run(["git", "clone", "-q", "--depth", "1", repo_url, str(COLAB_ROOT)])
    try:
        importlib.metadata.version("xray-vae")
    except importlib.metadata.PackageNotFoundError:
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(COLAB_ROOT)])
    missing = missing_packages()
    if missing:
        _run([sys.executable, "-m", "pip", "install", "-q", *missing])
    return COLAB_ROOT


def _mount_drive() -> Path:
    from google.colab import drive   # only exists in Colab

    if not (DRIVE_MOUNT / "MyDrive").is_dir():
        drive.mount(str(DRIVE_MOUNT))
    return DRIVE_MOUNT / "MyDrive"


def _figure_defaults() -> None:
    try:
        import matplotlib
    except ImportError:   # the figures need it; everything else works without
        return
    matplotlib.rcParams.update({"figure.dpi": 72, "image.cmap": "gray"})


__all__ = ["Course", "setup", "env_epochs", "in_colab", "repository_root", "missing_packages", "EPOCHS_ENV",
           "REPO_URL"]
