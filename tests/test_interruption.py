"""Interrupted work continues where it stopped: SIGKILL at a random moment, then look at the folder.

- ``train``: killed right after its first checkpoint (while still running: asserted), rerun with
  ``--resume``, ends with the same weights as an uninterrupted run (fixed seed, ``--deterministic``, CPU).
- ``generate`` and ``prepare``: killed mid-export, they leave complete PNGs and a manifest that
  lists exactly those (only hidden ``.*.tmp`` files may be left over; the next run removes them).
- Loading a run never executes anything found in its folder (pickles, ``.keras`` files).

The kill moments of ``generate`` and ``prepare`` are random on purpose; the delay is in every
assertion message.
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


def _start(args, log, **env):
    return subprocess.Popen(args, cwd=ROOT, env={**ENV, **env}, stdout=log, stderr=subprocess.STDOUT)


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


def _decodes(path: Path, size: int, note: str):
    with Image.open(path) as im:
        im.load()                                                # raises on a truncated file
        assert im.size == (size, size), f"{note}: {path}"


def _complete_and_listed(folder: Path, manifest: Path, size: int, note: str, batch: int = 0):
    """The promise of vae_keras.io.folder after a kill: every visible PNG under ``folder`` is
    complete and listed. A listed PNG may be missing only in the last ``batch`` rows (killed
    between the manifest and the renames), and then its complete temporary is there.

    Returns the listed paths that are visible."""
    listed = [r.path for r in read_manifest(manifest)] if manifest.exists() else []
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")
                     if not p.name.startswith("."))
    assert set(on_disk) <= set(listed), f"{note}: unlisted files {sorted(set(on_disk) - set(listed))[:3]}"
    visible = [rel for rel in listed if (folder / rel).is_file()]
    missing = [rel for rel in listed if not (folder / rel).is_file()]
    assert listed[:len(visible)] == visible, f"{note}: a listed file is missing before the last batch"
    assert len(missing) <= batch, f"{note}: {len(missing)} listed files missing: {missing[:3]}"
    for rel in visible:
        _decodes(folder / rel, size, note)
    for rel in missing:                                          # published, rename pending
        _decodes((folder / rel).with_name(f".{Path(rel).name}.tmp"), size, note)
    return visible


def _first_listed_is_visible(out: Path) -> bool:
    try:
        rows = read_manifest(out / "manifest.csv")
    except (FileNotFoundError, ValueError):
        return False
    return bool(rows) and (out / rows[0].path).is_file()


# -- train -------------------------------------------------------------------------------------------
def _weights(run):
    from vae_keras.training.checkpoint import load_run

    _, model = load_run(run)
    return [(w.path, w.numpy()) for w in model.weights]


def test_train_killed_after_its_first_checkpoint_resumes_to_the_same_weights(tmp_path):
    """SIGKILL as soon as the first checkpoint is listed (23 epochs still to go), then ``--resume``."""
    import re

    data = write_tiny_dataset(tmp_path / "data", n_train=16, n_test=8)
    with open(tmp_path / "full.log", "wb") as full_log, open(tmp_path / "cut.log", "wb") as cut_log:
        full = _start(_cli("train", data, "--out", tmp_path / "full", "--epochs", EPOCHS, *TRAIN_ARGS), full_log)
        cut = _start(_cli("train", data, "--out", tmp_path / "cut", "--epochs", EPOCHS, *TRAIN_ARGS), cut_log)
        ckpts = tmp_path / "cut" / "checkpoints"
        _wait_for(lambda: (ckpts / "checkpoint").is_file(), cut, 60, "the first checkpoint")
        was_running = _kill_after(cut, 0.0)
        assert was_running, "train ended before it was killed: nothing to resume"
        resumed = subprocess.run(_cli("train", data, "--out", tmp_path / "cut", "--resume",
                                      "--epochs", EPOCHS, *TRAIN_ARGS),
                                 cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert full.wait(timeout=120) == 0, (tmp_path / "full.log").read_text()
    assert resumed.returncode == 0, f"{resumed.stdout}\n{resumed.stderr}"
    start = re.search(r"Resuming \S+ from epoch (\d+)", resumed.stderr)
    assert start and 1 <= int(start.group(1)) < EPOCHS, resumed.stderr
    note = f"killed after the first checkpoint, resumed from epoch {start.group(1)}"
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
        _wait_for(lambda: (out / "images" / "sample_000000.png").is_file(), proc, 60, "the first exported batch")
        was_running = _kill_after(proc, delay)
    note = f"generate killed {delay:.2f}s after its first batch (still running: {was_running})"
    listed = _complete_and_listed(out, out / "manifest.csv", 32, note, batch=16)
    assert listed == [f"images/sample_{i:06d}.png" for i in range(len(listed))], note   # a prefix, in order
    assert was_running and 0 < len(listed) < 20000, note
    _assert_a_new_export_starts_clean(tiny_run, out)


def _assert_a_new_export_starts_clean(run, out):
    from vae_keras.training.checkpoint import load_run
    from vae_keras.sampling.generate import export_samples

    _, model = load_run(run)
    rows = export_samples(model, 5, out, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == (
        sorted(r.path for r in rows) + ["manifest.csv"])


def test_generate_killed_between_manifest_and_renames_shows_no_unlisted_file(tiny_run, tmp_path):
    """The worst moment, on demand: the test hook of vae_keras.io.folder kills the export right
    after the manifest of its 2nd batch, before any of that batch's renames."""
    out = tmp_path / "export"
    with open(tmp_path / "gen.log", "wb") as log:
        proc = _start(_cli("generate", tiny_run, "--n", 100, "--out", out, "--batch-size", 16, "--quiet"), log,
                      XRAY_VAE_TEST_KILL_AFTER_MANIFEST="2")
        assert proc.wait(timeout=120) == -signal.SIGKILL, (tmp_path / "gen.log").read_text()
    rows = read_manifest(out / "manifest.csv")
    assert [r.path for r in rows] == [f"images/sample_{i:06d}.png" for i in range(32)]
    visible = _complete_and_listed(out, out / "manifest.csv", 32, "killed by the hook", batch=16)
    assert visible == [r.path for r in rows[:16]]                # the 2nd batch: listed, not yet renamed
    _assert_a_new_export_starts_clean(tiny_run, out)


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
        _wait_for(lambda: _first_listed_is_visible(out), proc, 30, "the first commit")
        was_running = _kill_after(proc, delay)
    note = f"prepare killed {delay:.2f}s after its first commit (still running: {was_running})"
    listed = _complete_and_listed(out, out / "manifest.csv", 64, note, batch=1501)
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
