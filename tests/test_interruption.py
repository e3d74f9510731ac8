"""Interrupted work continues where it stopped: SIGKILL at a random moment, then look at the folder.

- ``train``: killed after its first checkpoint, rerun with ``--resume``, ends with the same weights
  as an uninterrupted run (fixed seed, ``--deterministic``, CPU).
- ``generate`` and ``prepare``: killed mid-export, they leave complete PNGs and a manifest that
  lists exactly those (only hidden ``.*.tmp`` files may be left over; the next run removes them).
- Loading a run never executes anything found in its folder (pickles, ``.keras`` files).

The kill moments are random on purpose; the delay is in every assertion message.
"""
from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_keras.io.manifest import read_manifest
from conftest import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
TRAIN_ARGS = ["--config", "seed", "--image-size", "32", "--batch-size", "8", "--seed", "3",
              "--learning-rate", "1e-3", "--deterministic", "--quiet"]
EPOCHS = 24


def _start(args, log):
    return subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)


def _cli(*args):
    return [sys.executable, "-m", "vae_keras", *map(str, args)]


def _wait_for(predicate, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (status {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _kill_after(proc, delay):
    """SIGKILL ``proc`` ``delay`` seconds from now; True if it was still running."""
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return running


def _complete_and_listed(folder: Path, manifest: Path, size: int, note: str):
    """Every visible PNG under ``folder`` is listed, every listed PNG exists and decodes fully."""
    listed = [r.path for r in read_manifest(manifest)] if manifest.exists() else []
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")
                     if not p.name.startswith("."))
    assert sorted(listed) == on_disk, f"{note}: manifest and folder disagree"
    for rel in listed:
        with Image.open(folder / rel) as im:
            im.load()                                            # raises on a truncated file
            assert im.size == (size, size), f"{note}: {rel}"
    return listed


# -- train -------------------------------------------------------------------------------------------
def _weights(run):
    from vae_keras.training.checkpoint import load_run

    _, model = load_run(run)
    return [(w.path, w.numpy()) for w in model.weights]


def test_train_killed_at_a_random_moment_resumes_to_the_same_weights(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=16, n_test=8)
    delay = random.uniform(0.0, 1.5)
    with open(tmp_path / "full.log", "wb") as full_log, open(tmp_path / "cut.log", "wb") as cut_log:
        full = _start(_cli("train", data, "--out", tmp_path / "full", "--epochs", EPOCHS, *TRAIN_ARGS), full_log)
        cut = _start(_cli("train", data, "--out", tmp_path / "cut", "--epochs", EPOCHS, *TRAIN_ARGS), cut_log)
        ckpts = tmp_path / "cut" / "checkpoints"
        _wait_for(lambda: (ckpts / "checkpoint").is_file(), cut, 60, "the first checkpoint")
        was_running = _kill_after(cut, delay)
        note = f"killed {delay:.2f}s after the first checkpoint (still running: {was_running})"
        resumed = subprocess.run(_cli("train", data, "--out", tmp_path / "cut", "--resume",
                                      "--epochs", EPOCHS, *TRAIN_ARGS),
                                 cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert full.wait(timeout=120) == 0, (tmp_path / "full.log").read_text()
    assert resumed.returncode == 0, f"{note}\n{resumed.stdout}\n{resumed.stderr}"
    if was_running:
        assert "Resuming" in resumed.stderr, note
    from vae_keras.training.checkpoint import latest_checkpoint, load_history

    assert latest_checkpoint(tmp_path / "cut").endswith(f"ckpt-{EPOCHS}"), note
    assert [h["epoch"] for h in load_history(tmp_path / "cut")] == list(range(1, EPOCHS + 1)), note
    for (name, a), (_, b) in zip(_weights(tmp_path / "full"), _weights(tmp_path / "cut")):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}; {note}")


# -- generate ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch 32x32 seed run, trained in this process."""
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train

    root = tmp_path_factory.mktemp("interrupt")
    data = write_tiny_dataset(root / "data", n_train=16, n_test=8)
    config = get_config("seed", quick=False, image_size=32, latent_dim=2, batch_size=8, epochs=1, seed=0)
    train(config, data, root / "run", progress=False)
    return root / "run"


def test_generate_killed_mid_export_leaves_only_listed_complete_files(tiny_run, tmp_path):
    out = tmp_path / "export"
    delay = random.uniform(0.0, 0.8)
    with open(tmp_path / "gen.log", "wb") as log:
        proc = _start(_cli("generate", tiny_run, "--n", 20000, "--out", out, "--batch-size", 16, "--quiet"), log)
        _wait_for(lambda: (out / "manifest.csv").is_file() and len(read_manifest(out / "manifest.csv")) > 0,
                  proc, 60, "the first exported batch")
        was_running = _kill_after(proc, delay)
    note = f"generate killed {delay:.2f}s after its first batch (still running: {was_running})"
    listed = _complete_and_listed(out, out / "manifest.csv", 32, note)
    assert listed == [f"sample_{i:06d}.png" for i in range(len(listed))], note   # a prefix, in order
    assert was_running and 0 < len(listed) < 20000, note

    # a new export into the folder starts clean: no leftovers of the killed one
    from vae_keras.training.checkpoint import load_run
    from vae_keras.sampling.generate import export_samples

    _, model = load_run(tiny_run)
    rows = export_samples(model, 5, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv"] + [r.path for r in rows]


# -- prepare -----------------------------------------------------------------------------------------
def test_prepare_killed_mid_import_leaves_only_listed_complete_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    scan = np.clip(230 + rng.normal(0, 20, (300, 400)), 0, 255).astype(np.uint8)
    Image.fromarray(scan).save(src / "scan.png")
    data = (src / "scan.png").read_bytes()
    for i in range(1500):                                        # same pixels, distinct names: cheap
        (src / f"bag_{i:04d}.png").write_bytes(data)
    out = tmp_path / "out"
    code = ("import sys, data_prep.prepare as p; p.COMMIT_SECONDS = 0.05; "
            f"sys.exit(p.main([{str(src)!r}, {str(out)!r}, '--size', '64', '--workers', '1', '--quiet']))")
    delay = random.uniform(0.0, 0.5)
    with open(tmp_path / "prep.log", "wb") as log:
        proc = _start([sys.executable, "-c", code], log)
        _wait_for(lambda: (out / "manifest.csv").is_file() and len(read_manifest(out / "manifest.csv")) > 0,
                  proc, 30, "the first commit")
        was_running = _kill_after(proc, delay)
    note = f"prepare killed {delay:.2f}s after its first commit (still running: {was_running})"
    listed = _complete_and_listed(out, out / "manifest.csv", 64, note)
    assert was_running and 0 < len(listed) < 1501, note

    # rerun: everything imported, no temporary file left
    from data_prep.prepare import prepare

    report = prepare(src, out, size=64, progress=False)
    assert report["written"] == 1501
    assert _complete_and_listed(out, out / "manifest.csv", 64, "rerun")
    assert not list(out.rglob(".*.tmp"))


# -- loading never executes code ----------------------------------------------------------------------
class _Payload:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_a_run_never_executes_files_from_it(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    marker = tmp_path / "EXECUTED"
    payload = pickle.dumps(_Payload(marker))
    for name in ("model.pkl", "model.pickle", "checkpoints/sampler.pkl", "weights.npy"):
        (run / name).write_bytes(payload)
    with zipfile.ZipFile(run / "model.keras", "w") as z:         # a .keras with a Lambda layer config
        z.writestr("config.json", '{"class_name": "Lambda", "config": {"function": '
                                  '["gASV", null, null]}, "module": "keras.layers"}')
        z.writestr("metadata.json", "{}")
    (run / "model.keras.pkl").write_bytes(payload)

    from vae_keras.training.checkpoint import load_run

    load_run(run)
    gen = subprocess.run(_cli("generate", run, "--n", 2, "--out", tmp_path / "gen", "--quiet"),
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    assert not marker.exists(), "a file from the run folder was unpickled"
