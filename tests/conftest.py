"""Shared, session-scoped fixtures: a tiny prepared data set and a tiny untrained model.

Expensive things are built once per test session; tests must not modify them.
"""
from __future__ import annotations

import numpy as np
import pytest

from vae_keras.io.manifest import CLASSES, ManifestRow


def module_fixture_modules(tests_dir) -> set:
    """The test modules (paths as in node ids, ``tests/test_x.py``) that define a module-scoped fixture."""
    import re

    pattern = re.compile(r"@pytest\.fixture\([^)]*scope=[\"']module[\"']")
    return {f"{tests_dir.name}/{path.name}" for path in sorted(tests_dir.glob("test_*.py"))
            if pattern.search(path.read_text(encoding="utf-8"))}


def pytest_collection_modifyitems(config, items):
    """The notebooks first, in their order, then the test modules with a module-scoped fixture, then the
    rest: under pytest-xdist the first two are units of work (:func:`pytest_xdist_make_scheduler`), the
    notebooks the longest, and the single tests after them balance the two workers' ends."""
    shared = module_fixture_modules(config.rootpath / "tests")

    def rank(item) -> int:
        if item.path.suffix == ".ipynb":
            return 0
        return 1 if item.nodeid.split("::")[0] in shared else 2

    items[:] = sorted(items, key=rank)                 # a stable sort: each group keeps its order


try:
    from xdist.scheduler import LoadGroupScheduling
except ImportError:                      # pytest-xdist missing: the suite runs in one process
    LoadGroupScheduling = None

def pytest_configure(config):
    """Under pytest-xdist, each worker's TensorFlow (and the notebooks' kernels and the command-line
    subprocesses it starts, which inherit the environment) runs its ops on one thread: two workers on two
    cores with TensorFlow's default of a thread per core each oversubscribe the cores (the latent
    autoencoder's step: 1.4 steps/s for two processes with the default, 1.7 with one thread each).

    nbval starts a notebook's kernel once; should that kernel die while starting up (seen once when both
    xdist workers started a kernel at the same moment), every cell of the notebook errors. Start it again,
    once, before giving up."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from nbval import kernel as nbval_kernel
    except ImportError:                  # nbval missing: no notebooks to run
        return
    first_try = nbval_kernel.start_new_kernel

    def start_new_kernel(*args, **kwargs):
        try:
            return first_try(*args, **kwargs)
        except RuntimeError:             # "Kernel died before replying to kernel_info"
            return first_try(*args, **kwargs)

    nbval_kernel.start_new_kernel = start_new_kernel


#: notebooks that share nothing with the others: 06 renders its own phantoms (``data/phantoms_SIZE_augmentation``)
#: and trains in a temporary folder, so it may run beside them on the other worker
STANDALONE_NOTEBOOKS = ("06_augmentation.ipynb",)

if LoadGroupScheduling is not None:
    def pytest_xdist_make_scheduler(config, log):
        """Under pytest-xdist (``make test`` runs ``-n 2``) the cells of a notebook go to one worker, in order:
        they share one kernel. The notebooks also share ``data/`` and ``runs/`` (04 reads the run 03 trained),
        so they form one unit, all but :data:`STANDALONE_NOTEBOOKS`, each a unit of its own. A test module
        with a module-scoped fixture is a unit too (:func:`module_fixture_modules`): spread over both workers,
        its fixture (a trained run) was built twice. The units are handed out first, in the order of
        :func:`pytest_collection_modifyitems` (notebooks first); each other test goes to whichever worker is free."""
        shared = module_fixture_modules(config.rootpath / "tests")
        config.option.loadscopereorder = False           # units in collection order, not by their size

        class NotebookUnits(LoadGroupScheduling):
            def _split_scope(self, nodeid: str) -> str:
                path = nodeid.split("::")[0]
                if path in shared:
                    return path
                if ".ipynb::" not in nodeid:
                    return super()._split_scope(nodeid)
                notebook = path.rsplit("/", 1)[-1]
                return notebook if notebook in STANDALONE_NOTEBOOKS else "notebooks"

        return NotebookUnits(config, log)


def write_tiny_dataset(root, n_train=16, n_test=8, size=32, seed=0):
    """A prepared layout (``train/``, ``test/``, ``manifest.csv``) of random structured images.

    Each image is a bright background with a few dark rectangles placed off-centre, so that a
    horizontal flip changes it; every other image carries one or two threat labels.
    """
    from vae_keras.io.atomic import save_png_atomic
    from vae_keras.io.manifest import write_manifest

    rng = np.random.default_rng(seed)
    rows = []
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            img = np.full((size, size), 235, np.uint8)                      # bright background
            for _ in range(3):
                x0, y0 = rng.integers(0, size // 2, 2)
                w, h = rng.integers(3, size // 2, 2)
                img[y0:y0 + h, x0:x0 + w] = rng.integers(20, 160)
            img = np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
            rel = f"{split}/{i:06d}.png"
            save_png_atomic(root / rel, img)
            labels = sorted(rng.choice(CLASSES, size=rng.integers(1, 3), replace=False)) if i % 2 else []
            rows.append(ManifestRow(path=rel, split=split, labels=list(labels), source=f"test:{seed}"))
    write_manifest(root / "manifest.csv", rows)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A prepared set of 16 train + 8 test 32x32 images with labels (read-only: copy to modify)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset"))


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained seed CVAE at 32x32 with a 2-D latent space (weights seeded)."""
    import keras

    from vae_keras.config import get_config
    from vae_keras.models.cvae import build_model

    keras.utils.set_random_seed(0)
    return build_model(get_config("seed", quick=False, image_size=32, latent_dim=2))


@pytest.fixture(scope="session")
def boxed_bags64(tmp_path_factory):
    """A prepared set of 12 phantom bags at 64x64, every one holding threats with boxes (read-only)."""
    from data_prep.phantoms import write_phantom_dataset

    root = tmp_path_factory.mktemp("boxed_bags64")
    write_phantom_dataset(root, n=12, size=64, seed=3, benign_fraction=0.0, progress=False, workers=1)
    return root


@pytest.fixture(scope="session")
def augmentation_bench():
    """``benchmarks/augmentation.py`` imported as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "augmentation.py"
    spec = importlib.util.spec_from_file_location("bench_augmentation_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: a small latent configuration's settings: tests that count builds, follow options or start runs from
#: others, not ones that judge samples
TINY_LATENT = dict(quick=False, batch_size=8, epochs=1, prior_epochs=1, prior_widths=(8, 16, 16), seed=0)


@pytest.fixture(scope="session")
def run_handle_runs(tmp_path_factory):
    """40 phantom bags at 32x32; a ``latent`` run on them; their threats cut out (16x16) and a ``latent``
    run on those (a threat generator for ``--into``)."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.config import get_config
    from vae_keras.sampling.objects import write_object_dataset
    from vae_keras.training.trainer import Trainer

    root = tmp_path_factory.mktemp("run_handle")
    write_phantom_dataset(root / "bags", n=40, size=32, seed=0, progress=False, workers=1)
    write_object_dataset(root / "bags", root / "objects", bag_size=32, progress=False)
    Trainer(get_config("latent", image_size=32, **TINY_LATENT), str(root / "bags"), root / "run", progress=False).fit()
    Trainer(get_config("latent", image_size=16, **TINY_LATENT), str(root / "objects"), root / "object_run",
            progress=False).fit()
    return root


class OracleDenoiser:
    """A denoiser that knows ``x0``: it answers any ``x_t`` with its exact noise (``target="eps"``) or
    velocity (``"v"``), from the noise variance it is given. Guided sampling calls it on a batch of two
    halves (conditional, unconditional), both of which get ``x0``."""

    def __init__(self, x0, target: str = "eps"):
        import tensorflow as tf

        self.x0, self.target = tf.constant(x0, tf.float32), target

    def __call__(self, inputs, training=False):
        import tensorflow as tf

        x_t, variance, _ = inputs
        n = tf.sqrt(variance)[:, :, None, None]
        s = tf.sqrt(1.0 - variance)[:, :, None, None]
        x0 = tf.concat([self.x0, self.x0], 0)[:tf.shape(x_t)[0]]
        noise = (x_t - s * x0) / n
        return noise if self.target == "eps" else s * noise - n * x0
