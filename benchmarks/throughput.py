"""Throughput, measured: training, input pipeline, generation with PNG export, and ``prepare``.

For each configuration (``--configs``) and image size (``--sizes``), one fresh subprocess measures
(so that its peak resident memory belongs to that measurement alone):

- training images/s of the project's step (``Trainer.train_step``) on in-memory batches, and for
  ``seed`` a bare ``tf.function`` GradientTape step on the same tensors (target: within 5%);
- peak memory (``ru_maxrss``) right after the training measurement (target at 224, batch 32: < 4 GB);
- the training pipeline alone (images/s) and a training epoch fed by it against the same epoch
  on in-memory tensors (target: ratio <= 1.05);
- generation: the decoder's forward pass alone and ``export_samples`` (decode + PNG + manifest)
  (target: export >= 90% of the decoder's speed).

Then ``prepare`` images/s on ``--prepare-n`` phantom files per size (no TensorFlow). Every timing
is repeated ``--repeats`` times; best-of and median are reported (the machine may be shared: the
best-of is the meaningful one), with the device TensorFlow found and the load average at the start
and end of the benchmark and of each measurement (``benchmarks/conditions.py``).

    python benchmarks/throughput.py --configs seed,sigma --sizes 64,224 --repeats 3

Reuses ``benchmarks/pipeline.py`` (data, ``run_epoch``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conditions import describe_conditions, detect_gpus, load_average  # noqa: E402
from pipeline import make_data, run_epoch  # noqa: E402


def _times(fn, repeats):
    return [fn() for _ in range(repeats)]


def measure_model(config_name: str, size: int, n: int, batch: int, repeats: int, n_generate: int) -> dict:
    """One configuration at one size, in this (fresh) process: a dict of timings and memory."""
    import numpy as np
    import tensorflow as tf

    from vae_keras.config import get_config
    from vae_keras.sampling.generate import compiled_decoder, export_samples
    from vae_keras.training.trainer import Trainer

    out = {"config": config_name, "size": size, "n": n, "batch": batch}
    with tempfile.TemporaryDirectory(prefix="xray-vae-throughput-") as tmp:
        work = Path(tmp)
        make_data(work / "data", n, size)
        config = get_config(config_name, quick=False, image_size=size, batch_size=batch, epochs=1)
        trainer = Trainer(config, str(work / "data"), str(work / "run"), progress=False).setup()
        step = trainer.train_step
        in_memory = [tuple(tf.constant(t) for t in b) for b in trainer._epoch_dataset(1)]   # (x, y, eps) batches
        n_img = sum(int(b[0].shape[0]) for b in in_memory)
        out["n"] = n_img
        run = lambda batches: run_epoch(lambda b: step(*b), batches)  # noqa: E731
        run(in_memory)                                            # traces (full and last batch)
        out["train_s"] = _times(lambda: run(in_memory), repeats)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        if config_name == "seed":                                 # a bare step on the same tensors
            import keras

            from vae_keras.models.losses import elbo_terms
            from vae_keras.models.cvae import build_model

            model, opt = build_model(config), keras.optimizers.Adam(config.learning_rate)

            @tf.function
            def bare(x, y, eps):                                  # the batches carry their noise
                with tf.GradientTape() as tape:
                    recon, kl = elbo_terms(model, x, eps=eps, training=True)
                    loss = tf.reduce_mean(recon + kl)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return tf.reduce_mean(recon), tf.reduce_mean(kl)

            run_epoch(lambda b: bare(*b), in_memory)
            bare_s, step_s = [], []
            for _ in range(repeats):                              # interleaved: drift hits both
                bare_s.append(run_epoch(lambda b: bare(*b), in_memory))
                step_s.append(run(in_memory))
            out["bare_s"], out["train_s"] = bare_s, out["train_s"] + step_s

        # the pipeline alone, and training fed by it vs in memory (interleaved)
        out["pipeline_s"] = _times(lambda: run_epoch(lambda b: None, trainer._epoch_dataset(2)), repeats)
        fed, mem = [], []
        for r in range(repeats):
            fed.append(run(trainer._epoch_dataset(3 + r)))
            mem.append(run(in_memory))
        out["fed_s"], out["mem_s"] = fed, mem

        # generation: decoder alone vs export with PNG files
        model = trainer.model
        decode = compiled_decoder(model)
        z = np.random.default_rng(0).standard_normal((n_generate, config.latent_dim)).astype(np.float32)
        decode(z[:64])

        def decode_all():
            t0 = time.perf_counter()
            for i in range(0, n_generate, 64):
                decode(z[i:i + 64]).numpy()
            return time.perf_counter() - t0

        def export():
            t0 = time.perf_counter()
            export_samples(model, n_generate, work / "export", batch_size=64, progress=False)
            return time.perf_counter() - t0

        export()                                                  # warm-up (thread pool, first files)
        dec, exp = [], []
        for _ in range(repeats):
            dec.append(decode_all())
            exp.append(export())
        out["decode_s"], out["export_s"], out["n_generate"] = dec, exp, n_generate
    return out


def measure_prepare(size: int, n: int, repeats: int) -> dict:
    """``prepare`` images/s on ``n`` phantom PNGs of ``size`` (imported at the same size)."""
    from data_prep.phantoms import write_phantom_dataset
    from data_prep.prepare import prepare

    with tempfile.TemporaryDirectory(prefix="xray-vae-prepare-") as tmp:
        src = Path(tmp) / "phantoms"
        write_phantom_dataset(src, n=n, size=size, seed=0, progress=False)
        (src / "manifest.csv").unlink()
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            report = prepare(src, Path(tmp) / f"out{r}", size=size, progress=False)
            times.append(time.perf_counter() - t0)
            assert report["written"] == n, report
    return {"size": size, "n": n, "prepare_s": times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(kind: str, **kw) -> dict:
    """Run one measurement in a fresh Python process; its JSON result, with ``load``: the load
    average at its start and end."""
    cmd = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **kw})]
    before = load_average()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} {kw} failed:\n{res.stderr[-3000:]}")
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "load": (before, load_average())}


def _rate(n, times):
    return f"{n / min(times):,.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="seed", help="comma-separated named configurations (default: seed)")
    p.add_argument("--sizes", default="64,224", help="comma-separated image sizes (default: 64,224)")
    p.add_argument("--n", default="1024,256", help="training images per size, comma-separated (default 1024,256)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-generate", default="1024,256", help="images exported per size (default 1024,256)")
    p.add_argument("--prepare-n", type=int, default=2000, help="phantom files for prepare (default 2000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        print(json.dumps(measure_model(**spec) if kind == "model" else measure_prepare(**spec)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    per_size = lambda text: dict(zip(sizes, [int(v) for v in text.split(",")] * len(sizes)))  # noqa: E731
    ns, ngen = per_size(args.n), per_size(args.n_generate)
    load0 = load_average()
    t_start = time.monotonic()
    models = [_child("model", config_name=c, size=s, n=ns[s], batch=args.batch_size, repeats=args.repeats,
                     n_generate=ngen[s]) for c in args.configs.split(",") for s in sizes]
    preps = [_child("prepare", size=s, n=args.prepare_n, repeats=args.repeats) for s in sizes]
    load1 = load_average()

    import tensorflow as tf

    runs = {**{f"{m['config']} {m['size']}": m["load"] for m in models},
            **{f"prepare {r['size']}": r["load"] for r in preps}}
    conditions = describe_conditions(detect_gpus(), os.cpu_count(), platform.processor() or platform.machine(),
                                     (load0, load1), runs)
    print(f"`{shlex.join(['python', 'benchmarks/throughput.py'] + (argv if argv is not None else sys.argv[1:]))}`\n")
    print(f"Machine: {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; "
          f"Python {platform.python_version()}, TensorFlow {tf.__version__}; {args.repeats} repeats; "
          f"{time.monotonic() - t_start:.0f}s in all. {conditions}\n")
    print("| config | size | train img/s | bare step img/s | step/bare | peak RSS MB | pipeline img/s "
          "| fed/in-memory | decoder img/s | export img/s | export/decoder |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in models:
        n, g = m["n"], m["n_generate"]
        bare = (_rate(n, m["bare_s"]), f"{min(m['train_s']) / min(m['bare_s']):.3f} "
                f"(median {statistics.median(m['train_s']) / statistics.median(m['bare_s']):.3f})") \
            if "bare_s" in m else ("-", "-")
        print(f"| {m['config']} | {m['size']} | {_rate(n, m['train_s'])} | {bare[0]} | {bare[1]} "
              f"| {m['peak_rss_mb']:,.0f} | {_rate(n, m['pipeline_s'])} "
              f"| {min(m['fed_s']) / min(m['mem_s']):.3f} (median "
              f"{statistics.median(m['fed_s']) / statistics.median(m['mem_s']):.3f}) "
              f"| {_rate(g, m['decode_s'])} | {_rate(g, m['export_s'])} "
              f"| {min(m['decode_s']) / min(m['export_s']):.2f} (median "
              f"{statistics.median(m['decode_s']) / statistics.median(m['export_s']):.2f}) |")
    print("\n| prepare | size | files | best s | median s | img/s (best) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in preps:
        print(f"| phantoms -> prepare | {r['size']} | {r['n']} | {min(r['prepare_s']):.2f} "
              f"| {statistics.median(r['prepare_s']):.2f} | {_rate(r['n'], r['prepare_s'])} | {r['peak_rss_mb']:,.0f} |")
    print("\nbest-of ratios; medians in brackets. Targets: step/bare <= 1.05 (seed), fed/in-memory <= 1.05, "
          "export/decoder >= 0.90, peak RSS at 224 batch 32 < 4,096 MB.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
