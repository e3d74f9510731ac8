"""The full-size path, executed: every notebook and the demo at 224x224, one epoch each, on this machine.

The course runs in quick mode everywhere tests run (64x64, minutes on 2 CPU cores); the full size
(224x224, the Colab default of every notebook and of ``make demo``) is what students meet. This
script runs it end to end, with ``XRAY_VAE_QUICK`` unset and ``XRAY_VAE_EPOCHS`` (read by every
notebook's parameter cell through :func:`vae_keras.course.env_epochs`) set to ``--epochs``, and
writes a table of wall time, seconds per training epoch and peak memory per job to ``--out``::

    python scripts/full_size.py                       # all six notebooks + the demo, ~20+ CPU minutes
    python scripts/full_size.py --only 01 --epochs 1  # one notebook
    python scripts/full_size.py --only demo

Not a test: it takes long and measures the machine. Each job runs in its own process tree;
peak memory is the largest resident set of that tree (``ru_maxrss`` from ``wait4``: the Jupyter
kernel included). Seconds per epoch come from the ``history.json`` files the job wrote. Like the
notebooks themselves at full size, it writes under the repository (``data/``, ``runs/``: both
ignored by git); executed notebooks and the demo's output go under ``--work``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SKIP_DIRS = {".venv", ".git", "node_modules", ".ipynb_checkpoints"}
FULL_SIZE = 224                                  # the image side of every notebook and of the demo, full size


def load_average() -> str:
    try:
        return "{:.2f}".format(os.getloadavg()[0])
    except OSError:
        return "n/a"


def machine() -> str:
    """CPU model and count, memory, Python and TensorFlow versions, GPUs (from nvidia-smi, if any)."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    try:
        mem = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2 ** 20
        mem = f"{mem:.0f} GiB RAM"
    except (OSError, AttributeError):
        mem = "RAM n/a"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip().replace("\n", ", ") or "none"
    except (OSError, subprocess.SubprocessError):
        gpu = "none"
    try:
        from importlib.metadata import version

        tf = version("tensorflow")
    except Exception:  # noqa: BLE001 - only a label in the report
        tf = "n/a"
    return (f"{os.cpu_count()} x {cpu}; {mem}; GPU: {gpu}; Python {platform.python_version()}, "
            f"TensorFlow {tf}")


def history_lengths() -> dict:
    """``{path: (number of epochs, mtime)}`` of every full-size run's ``history.json`` under the repository.

    Only runs whose ``config.json`` says 224x224: quick runs of other work on the machine (tests,
    64x64) do not count.
    """
    lengths = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        if "history.json" in filenames and "config.json" in filenames:
            path = Path(dirpath) / "history.json"
            try:
                if json.loads((path.parent / "config.json").read_text(encoding="utf-8")).get("image_size") != FULL_SIZE:
                    continue
                lengths[path] = (len(json.loads(path.read_text(encoding="utf-8"))), path.stat().st_mtime)
            except (OSError, ValueError):
                continue
    return lengths


def new_epoch_seconds(before: dict) -> list:
    """Seconds of the epochs trained since ``before`` was taken (the entries added to each history)."""
    seconds = []
    for path, (length, mtime) in history_lengths().items():
        old_length, old_mtime = before.get(path, (0, 0.0))
        if mtime == old_mtime:
            continue                                          # not written by this job
        entries = json.loads(path.read_text(encoding="utf-8"))
        start = old_length if old_length < length else 0    # else: the run was deleted and trained afresh
        seconds += [float(e["seconds"]) for e in entries[start:] if "seconds" in e]
    return seconds


def run_measured(command, env, log_path: Path, timeout_s: float) -> dict:
    """Run ``command``; wall time, exit status and the peak RSS of its whole process tree."""
    t0 = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timer = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, 9))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)             # rusage of the child and its reaped children
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.time() - t0, "rc": proc.returncode, "peak_mb": usage.ru_maxrss / 1024}


def notebook_command(path: Path, work: Path):
    return [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
            "--ExecutePreprocessor.timeout=-1", "--output-dir", str(work / "executed"), str(path)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="XRAY_VAE_EPOCHS of every notebook and the demo's --epochs")
    p.add_argument("--only", nargs="*", help="jobs to run: notebook numbers (01 .. 06) and/or 'demo' (default: all)")
    p.add_argument("--work", default="build/full_size", help="executed notebooks, demo output, logs")
    p.add_argument("--out", default="figures/full_size.md", help="the table (Markdown)")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per job before it is killed")
    args = p.parse_args(argv)

    work = (ROOT / args.work).resolve()
    (work / "executed").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "XRAY_VAE_QUICK"}    # full size
    env.update(XRAY_VAE_EPOCHS=str(args.epochs), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    jobs = [(nb.stem, notebook_command(nb, work)) for nb in NOTEBOOKS]
    jobs.append(("demo", [sys.executable, "-m", "vae_keras", "demo", "--epochs", str(args.epochs),
                          "--out", str(work / "demo"), "--quiet"]))
    if args.only:
        jobs = [(name, cmd) for name, cmd in jobs if any(name == o or name.startswith(o + "_") for o in args.only)]
        if not jobs:
            p.error(f"--only {args.only} matches no job")

    rows = []
    for name, command in jobs:
        load_before, before = load_average(), history_lengths()
        print(f"[{name}] {' '.join(shlex.quote(c) for c in command)}", file=sys.stderr, flush=True)
        result = run_measured(command, env, work / f"{name}.log", args.timeout)
        seconds = new_epoch_seconds(before)
        result.update(name=name, load=f"{load_before} -> {load_average()}", epochs=len(seconds),
                      epoch_s=statistics.median(seconds) if seconds else None)
        rows.append(result)
        status = "ok" if result["rc"] == 0 else f"FAILED (status {result['rc']}, see {work / (name + '.log')})"
        print(f"[{name}] {status}: {result['wall_s'] / 60:.1f} min, peak {result['peak_mb']:.0f} MB, "
              f"{len(seconds)} epoch(s) at {result['epoch_s'] or float('nan'):.1f} s", file=sys.stderr, flush=True)

    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(rows, args, argv), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


def report(rows, args, argv) -> str:
    command = "python scripts/full_size.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                  else sys.argv[1:]))
    lines = ["# The full-size path (224x224), executed on CPU", "",
             f"`{command.strip()}`", "",
             f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             f"`XRAY_VAE_QUICK` unset, `XRAY_VAE_EPOCHS={args.epochs}` (the notebooks' epochs), "
             f"`demo --epochs {args.epochs}`. Load average (1 min) at the start and end of each job in the "
             "table: other work on the machine slows the numbers down.", "",
             "| job | status | wall time | epochs trained | median s/epoch | peak memory | load average |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {'ok' if r['rc'] == 0 else 'failed (%d)' % r['rc']} | "
                     f"{r['wall_s'] / 60:.1f} min | {r['epochs']} | "
                     f"{'%.1f' % r['epoch_s'] if r['epoch_s'] is not None else '-'} | "
                     f"{r['peak_mb']:,.0f} MB | {r['load']} |")
    lines += ["", "Wall time includes start-up, rendering the phantoms (the first job that needs them) and "
              "everything a notebook does besides training. Peak memory is the largest resident set of the "
              "job's process tree (the Jupyter kernel included).", "",
              "**Colab GPU, an estimate (not measured here):** a full run is the notebooks' epochs (30; "
              "notebook 06 stops at its 10-minute budget) times the seconds per epoch above divided by the "
              "GPU's speed-up over this CPU, which for these small convolutional networks at 224x224 is "
              "typically 10-50x on a T4; the per-epoch times on a GPU should be measured and added here.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
