"""What a benchmark ran on, as measured: the device TensorFlow found and the machine's load.

A benchmark's numbers mean little without the conditions they were measured under, and a
results file must not state conditions nobody checked (an earlier header said "no GPU ...
nothing else running" whatever the machine was). So the benchmarks

- ask TensorFlow which GPUs it sees (:func:`detect_gpus`),
- read the 1-minute load average (:func:`load_average`, ``os.getloadavg``) at the start and the
  end of every measured run,

and :func:`describe_conditions` turns what was recorded into the sentence written above their
tables; what was not recorded is said to be so.

    from conditions import detect_gpus, load_average, describe_conditions
    before = load_average(); ...measure...; after = load_average()
    describe_conditions(detect_gpus(), os.cpu_count(), "x86_64", runs={"seed": (before, after)})
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

NOT_RECORDED = "not recorded for this run"

#: ``(load at the start, load at the end)`` of one measured run; ``None`` where not read.
Loads = Tuple[Optional[float], Optional[float]]


def detect_gpus() -> list:
    """Names of the GPUs TensorFlow sees (``[]``: none, the run is on the CPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]


def load_average() -> Optional[float]:
    """The 1-minute load average, or None where the system has none (``os.getloadavg`` missing)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _load(value: Optional[float]) -> str:
    return "?" if value is None else f"{value:.2f}"


def describe_conditions(gpus: Optional[Sequence[str]], cpus: Optional[int], processor: str,
                        overall: Optional[Loads] = None, runs: Optional[Dict[str, Loads]] = None) -> str:
    """The sentence a benchmark writes above its tables, saying only what was measured.

    Args:
        gpus: GPU names found by TensorFlow (:func:`detect_gpus`); ``[]``: none found;
            ``None``: not checked (then the sentence says so).
        cpus: CPU cores (``os.cpu_count()``); processor: e.g. ``platform.machine()``.
        overall: load average at the start and end of the whole benchmark.
        runs: load average at the start and end of each measured run, by name.

    Example: ``describe_conditions([], 2, "x86_64", (0.1, 2.3))`` ->
    ``"Device: CPU only (TensorFlow found no GPU), 2 cores (x86_64). Load average (1 min): 0.10 at
    the start, 2.30 at the end; per run (start -> end): not recorded for this run."``
    """
    if gpus is None:
        device = f"{cpus}-core CPU ({processor}); whether a GPU was used was {NOT_RECORDED}"
    elif gpus:
        device = f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({', '.join(gpus)}) and {cpus} CPU cores ({processor})"
    else:
        device = f"CPU only (TensorFlow found no GPU), {cpus} cores ({processor})"
    if overall is None or overall == (None, None):
        load = f"Load average {NOT_RECORDED}"
    else:
        start, end = overall
        load = (f"Load average (1 min): {_load(start)} at the start, "
                + (f"{NOT_RECORDED} at the end" if end is None else f"{_load(end)} at the end"))
    per_run = (", ".join(f"{name} " + ("not recorded" if a is None and b is None else f"{_load(a)} -> {_load(b)}")
                         for name, (a, b) in runs.items())
               if runs else NOT_RECORDED)
    return f"Device: {device}. {load}; per run (start -> end): {per_run}."
