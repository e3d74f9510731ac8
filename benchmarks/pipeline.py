"""Is the input pipeline ever the bottleneck? Measure it against the training step it feeds.

Measures, on a phantom-like prepared set:

(a) the pipeline alone: images/s of one epoch of ``make_dataset`` (no model);
(b) one training epoch of the seed network fed by the pipeline;
(c) the same epoch on float32 batches already in memory (a list of tensors: no pipeline at all);
(d) ``export_samples`` against the decoder's forward pass alone (the export target is >= 90%).

The ratio (b)/(c) is the pipeline's overhead on training; the target is <= 1.05. Timings are
the best and the median of ``--repeats`` runs, with (b) and (c) interleaved so that machine
drift hits both (on a shared machine the best-of is the meaningful number).

    python benchmarks/pipeline.py --size 64 --n 1024 --batch-size 32 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def write_structured_dataset(root: Path, n: int, size: int, seed: int = 0, test_fraction: float = 0.125) -> Path:
    """A prepared set of phantom-like bags: bright background, a dark bag outline, dense objects.

    Used when ``data_prep.phantoms`` is not available; the pipeline's cost does not depend on
    the pixels, only on their number, but PNG sizes stay realistic (compressible structure).
    """
    from vae_keras.io.atomic import save_png_atomic
    from vae_keras.io.manifest import CLASSES, ManifestRow, write_manifest

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rows = []
    n_test = max(1, int(n * test_fraction))
    for i in range(n + n_test):
        split = "train" if i < n else "test"
        att = np.zeros((size, size), np.float32)
        cx, cy, rx, ry = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.35)
        att += 0.6 * (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1)            # the bag
        for _ in range(rng.integers(3, 8)):                                           # objects in it
            ox, oy, w, h = rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.7), rng.uniform(0.03, 0.2), rng.uniform(0.03, 0.2)
            att += rng.uniform(0.3, 1.5) * ((xx > ox) & (xx < ox + w) & (yy > oy) & (yy < oy + h))
        img = 255.0 * np.exp(-att) + rng.normal(0, 3, att.shape)                    # Beer-Lambert, noise
        rel = f"{split}/{i:06d}.png"
        save_png_atomic(root / rel, np.clip(img, 0, 255).astype(np.uint8))
        labels = [CLASSES[i % len(CLASSES)]] if i % 3 == 0 else []
        rows.append(ManifestRow(path=rel, split=split, labels=labels, source=f"benchmark:{seed}"))
    write_manifest(root / "manifest.csv", rows)
    return root


def make_data(root: Path, n: int, size: int) -> str:
    """Phantoms when ``data_prep.phantoms`` exists, else structured random bags; returns which."""
    try:
        from data_prep.phantoms import write_phantom_dataset
    except ImportError:
        write_structured_dataset(root, n, size)
        return "structured random bags (data_prep.phantoms not available)"
    # n images in all, 10% of them held out as the test split
    write_phantom_dataset(root, n=n, size=size, seed=0, test_fraction=0.1, progress=False)
    return "data_prep.phantoms.write_phantom_dataset (10% test split)"


def train_step_for(config, data_dir: Path, work: Path):
    """The project's train step (``vae_keras.train.Trainer``) when present, else a plain one."""
    try:
        from vae_keras.training.trainer import Trainer

        trainer = Trainer(config, str(data_dir), str(work / "run"), progress=False).setup()
        return trainer.train_step, "vae_keras.train.Trainer.train_step"
    except (ImportError, AttributeError, TypeError) as exc:
        import keras
        import tensorflow as tf

        from vae_keras.models.losses import elbo_terms
        from vae_keras.models.cvae import build_model

        model = build_model(config)
        opt = keras.optimizers.Adam(config.learning_rate)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                recon, kl = elbo_terms(model, x)
                loss = tf.reduce_mean(recon + kl)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return tf.reduce_mean(recon), tf.reduce_mean(kl)

        return step, f"a plain GradientTape step ({type(exc).__name__}: {exc})"


def run_epoch(step, batches) -> float:
    t0 = time.perf_counter()
    out = None
    for x in batches:
        out = step(x)
    if out is not None:
        float(out[0])  # wait for the last step
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64, help="image side (default 64)")
    p.add_argument("--n", type=int, default=1024, help="training images (default 1024)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per measurement (median)")
    p.add_argument("--cache", choices=("memory", "tfrecord"), default="memory")
    p.add_argument("--data", help="an existing prepared set to use instead of generating one")
    p.add_argument("--no-export", action="store_true", help="skip (d), the export measurement")
    args = p.parse_args(argv)
    if args.n < args.batch_size or args.repeats < 1:
        p.error("need --n >= --batch-size and --repeats >= 1")

    import tensorflow as tf

    from vae_keras.config import get_config
    from vae_keras.data.pipeline import make_dataset
    from vae_keras.sampling.generate import compiled_decoder, export_samples

    with tempfile.TemporaryDirectory(prefix="xray-vae-bench-") as tmp:
        work = Path(tmp)
        if args.data:
            data_dir, source = Path(args.data), f"--data {args.data}"
        else:
            data_dir = work / "data"
            t0 = time.perf_counter()
            source = make_data(data_dir, args.n, args.size)
            print(f"wrote {args.n} images at {args.size}x{args.size} in "
                  f"{time.perf_counter() - t0:.1f}s ({source})", file=sys.stderr)

        t0 = time.perf_counter()
        ds = make_dataset(data_dir, "train", image_size=args.size, batch_size=args.batch_size,
                          shuffle=True, seed=0, cache=args.cache)
        build_s = time.perf_counter() - t0
        n = sum(int(x.shape[0]) for x in ds)                     # warm-up epoch (and the count)

        # (a) the pipeline alone
        pipe = [run_epoch(lambda x: None, ds) for _ in range(args.repeats)]

        # (b) vs (c): the same epoch fed by the pipeline and from memory
        config = get_config("seed", quick=False, image_size=args.size, batch_size=args.batch_size)
        step, step_name = train_step_for(config, data_dir, work)
        in_memory = [tf.constant(x) for x in ds]                 # float32 (batch, S, S, 1) tensors
        run_epoch(step, ds)                                      # traces the step (full + last batch)
        run_epoch(step, in_memory)
        fed, mem, fed_cpu, mem_cpu = [], [], [], []
        for _ in range(args.repeats):  # process CPU time too: it does not count other users' load
            c0 = time.process_time()
            fed.append(run_epoch(step, ds))
            c1 = time.process_time()
            mem.append(run_epoch(step, in_memory))
            fed_cpu.append(c1 - c0)
            mem_cpu.append(time.process_time() - c1)
        rows = [("(a) pipeline alone, one epoch", pipe),
                ("(b) train epoch fed by the pipeline", fed),
                ("(c) train epoch on in-memory tensors", mem)]
        notes = [f"(b)/(c) = **{min(fed) / min(mem):.3f}** best-of, {statistics.median(fed) / statistics.median(mem):.3f}"
                 " median (target <= 1.05)",
                 f"CPU seconds per training epoch, all threads (median): (b) {statistics.median(fed_cpu):.2f}, "
                 f"(c) {statistics.median(mem_cpu):.2f}, ratio {statistics.median(fed_cpu) / statistics.median(mem_cpu):.3f}"]

        if not args.no_export:  # (d) export vs the decoder alone
            from vae_keras.models.cvae import build_model

            model = build_model(config)
            decode = compiled_decoder(model)
            z = np.random.default_rng(0).standard_normal((n, config.latent_dim)).astype(np.float32)
            decode(z[:64])
            dec, exp = [], []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                for i in range(0, n, 64):
                    decode(z[i:i + 64]).numpy()
                dec.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                export_samples(model, n, work / "export", batch_size=64, progress=False)
                exp.append(time.perf_counter() - t0)
            rows += [("(d1) decoder forward only, batch 64", dec),
                     ("(d2) export_samples (decode + PNG + manifest)", exp)]
            notes.append(f"export speed / decoder speed = **{min(dec) / min(exp):.2f}** best-of, "
                         f"{statistics.median(dec) / statistics.median(exp):.2f} median (target >= 0.90)")

    print(f"\n`{shlex.join(['python', 'benchmarks/pipeline.py'] + (argv if argv is not None else sys.argv[1:]))}`\n")
    print(f"TensorFlow {tf.__version__}, {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; {n} images {args.size}x{args.size}, "
          f"batch {args.batch_size}, cache={args.cache}, {args.repeats} repeats; data: {source}; "
          f"step: {step_name}; dataset built (PNG decode) in {build_s:.2f}s\n")
    print("| measurement | best s | median s | images/s (best) |")
    print("|---|---:|---:|---:|")
    for name, times in rows:
        print(f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} | {n / min(times):,.0f} |")
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
