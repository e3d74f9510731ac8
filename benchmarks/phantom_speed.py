"""How fast is the phantom generator? Images per second, render only and render + PNG write.

Run from the repository root::

    python benchmarks/phantom_speed.py            # 224 x 224, 400 images
    python benchmarks/phantom_speed.py --size 64 --n 1000
    python benchmarks/phantom_speed.py --preset belt

Prints one markdown table row per measurement, ready to paste into the README:
``| what | size | images | seconds | images/s |``. The target (issue #13) is 100 images/s at
224 x 224 with PNG writing on a 2-core machine. The load average before and after is printed: on a
shared machine, re-measure when it is high.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_prep.phantoms import render_phantom, write_phantom_dataset  # noqa: E402


def bench_render(n: int, size: int, seed: int, preset: str = "gdxray") -> float:
    """Seconds to render ``n`` phantoms in this process."""
    render_phantom(seed, 10**6, size, preset=preset)  # warm-up (imports, caches)
    start = time.perf_counter()
    for i in range(n):
        render_phantom(seed, i, size, preset=preset)
    return time.perf_counter() - start


def bench_write(n: int, size: int, seed: int, workers: int, preset: str = "gdxray") -> float:
    """Seconds for :func:`write_phantom_dataset` (render + PNG + manifest) into a temp folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_phantom_dataset(tmp, n, size=size, seed=seed, progress=False, workers=workers, preset=preset)
        return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="images per measurement")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="gdxray", help="framing preset (default: gdxray)")
    args = parser.parse_args(argv)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"| what | size | images | seconds | images/s |  (preset {args.preset}; cpus: {os.cpu_count()}, "
          f"load average before: {load})")
    print("|---|---|---|---|---|")
    rows = [("render only, 1 process", bench_render(args.n, args.size, args.seed, args.preset))]
    rows.append(("render + PNG write, 1 process", bench_write(args.n, args.size, args.seed, 1, args.preset)))
    rows.append(("render + PNG write, 2 workers", bench_write(args.n, args.size, args.seed, 2, args.preset)))
    for what, secs in rows:
        print(f"| {what} | {args.size}x{args.size} | {args.n} | {secs:.2f} | {args.n / secs:.0f} |")
    print("load average after: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
