"""``python -m vae_keras``: a thin command line over the library, one subcommand per step.

    phantoms  -> write the procedural phantom data set (the embedded default data)
    prepare   -> import a folder of real scans (GDXray, SIXray, any images) into the same layout
    train     -> train a configuration on a prepared data set, with checkpoints and --resume
    generate  -> sample N images from a trained run, PNG + manifest.csv
    evaluate  -> measure a trained run (likelihood, sharpness, two-sample test, ...) -> RUN/metrics.json
    demo      -> the main job: phantoms -> train -> generate -> grid, GIF and latent plot

Expected failures (missing folder, bad data, existing run, NaN loss) print one ``error:`` line
and exit with status 2; they never show a Python traceback.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from vae_keras.config import DEFAULT_CONFIG, NAMED_CONFIGS, QUICK_ENV, get_config, quick_mode
from vae_keras.errors import RunExists, TrainingDiverged

EXIT_USAGE = 2


def _quiet_tensorflow():
    """TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is noise for a CLI user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# -- subcommands --------------------------------------------------------------------------------
def cmd_phantoms(args):
    from data_prep.phantoms import write_phantom_dataset

    t0 = time.monotonic()
    rows = write_phantom_dataset(args.out, n=args.n, size=args.size, seed=args.seed,
                                 benign_fraction=args.benign_fraction, test_fraction=args.test_fraction,
                                 progress=not args.quiet)
    dt = time.monotonic() - t0
    n_train = sum(r.split == "train" for r in rows)
    print(f"wrote {len(rows)} phantoms ({n_train} train / {len(rows) - n_train} test) at "
          f"{args.size}x{args.size} to {args.out} in {dt:.1f}s ({len(rows) / max(dt, 1e-9):.0f} images/s)")


def cmd_prepare(args):
    from data_prep.prepare import prepare_from_args

    prepare_from_args(args)


def _config_from_args(args):
    return get_config(args.config, quick=args.quick or None, image_size=args.image_size,
                      latent_dim=args.latent_dim, batch_size=args.batch_size, epochs=args.epochs,
                      learning_rate=args.learning_rate, seed=args.seed, jit_compile=args.jit_compile or None)


def cmd_train(args):
    _quiet_tensorflow()
    from vae_keras.training.trainer import train

    if args.deterministic:  # bit-exact reruns (and resumes) on the same machine, a little slower
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    from vae_keras.training.distribute import select_strategy

    config = _config_from_args(args)
    trainer = train(config, args.data, args.out, resume=args.resume, minutes=args.minutes,
                    progress=not args.quiet, strategy=select_strategy(args.strategy), precision=args.precision)
    finish_run_figures(trainer.run_dir, trainer.model, trainer.history,
                        data_images=trainer.train_images[:256] / 255.0)  # picks the most active latent dims
    last = trainer.history[-1] if trainer.history else {}
    print(f"trained {trainer.config.name} for {len(trainer.history)} epoch(s) into {args.out}; "
          f"last loss {last.get('loss', float('nan')):.2f} nats/image")


def finish_run_figures(run_dir, model, history, data_images=None):
    """The figures every run ends with: training GIF, loss curves, latent manifold."""
    from vae_keras.viz.figures import latent_manifold, make_gif, plot_history

    run_dir = Path(run_dir)
    frames = sorted((run_dir / "samples").glob("epoch_*.png"))
    if frames:
        make_gif(frames, run_dir / "training.gif")
    if history:
        plot_history(history, run_dir / "loss_curves.png")
    latent_manifold(model, run_dir / "latent_manifold.png", data=data_images)


def cmd_generate(args):
    _quiet_tensorflow()
    from vae_keras.training.checkpoint import load_run
    from vae_keras.sampling.generate import export_samples

    config, model = load_run(args.run)
    labels = _generate_labels(args, config)
    if args.format or args.tip or args.objects:  # detector formats; hybrid or composite: exact boxes
        from vae_keras.sampling.export import export_run

        rows = export_run(args.run, args.n, args.out, fmt=args.format or "csv", labels=labels, tip_data=args.tip,
                          seed=args.seed, temperature=args.temperature, batch_size=args.batch_size, model=model,
                          objects_run=args.objects)
        print(f"wrote {len(rows)} labelled images ({args.format or 'csv'}) to {args.out}")
        return
    from vae_keras.models.priors import load_sampler

    rows = export_samples(model, args.n, args.out, temperature=args.temperature, seed=args.seed,
                          batch_size=args.batch_size, progress=not args.quiet, name=Path(args.run).name,
                          labels=labels, sampler=load_sampler(args.run, model))
    print(f"wrote {len(rows)} generated images and manifest.csv to {args.out}")


def _generate_labels(args, config):
    """``--label knife[,handgun]`` (``benign`` for none) -> the classes every sample gets; without
    ``--label``, a run that can be asked for a class draws them with the training split's frequencies."""
    if args.label is not None:
        names = [] if args.label.strip() in ("", "benign") else [n.strip() for n in args.label.split(",")]
        if not config.conditional and config.sampler != "gmm" and not getattr(args, "objects", None):
            print("note: this run is neither conditional nor has a fitted mixture sampler; --label only goes "
                  "into the manifest", file=sys.stderr)
        return names
    from vae_keras.training.checkpoint import load_run
    from vae_keras.models.priors import load_sampler

    _, model = load_run(args.run)
    return _label_mix(Path(args.run), config, load_sampler(args.run, model), args.n, args.seed)


def _label_mix(run_dir: Path, config, sampler, n: int, seed: int):
    """Per-sample classes with the training frequencies for a run that can be asked for a class, else None."""
    from vae_keras.models.priors import answers_labels, sample_label_mix

    return sample_label_mix(run_dir, n, seed) if answers_labels(config, sampler) else None


def cmd_evaluate(args):
    _quiet_tensorflow()
    from vae_keras.evaluation.evaluate import METRICS_FILE, evaluate_run, format_table, objects_metrics_file

    metrics = evaluate_run(args.run, args.data, n=args.n, k=args.k, n_likelihood=args.n_likelihood,
                           seed=args.seed, sampler=args.sampler, temperature=args.temperature,
                           progress=not args.quiet, objects_run=args.objects)
    print(format_table(metrics))
    print(f"wrote {Path(args.run) / (objects_metrics_file(args.objects) if args.objects else METRICS_FILE)}")


def cmd_objects(args):
    _quiet_tensorflow()
    from vae_keras.sampling.objects import object_canvas, write_object_dataset

    rows = write_object_dataset(args.data, args.out, args.size, progress=not args.quiet)
    side = object_canvas(args.size)
    print(f"wrote {len(rows)} threats ({side}x{side}) and manifest.csv to {args.out}; train the object VAE with "
          f"`python -m vae_keras train {args.out} --config objects --image-size {side} --epochs 200 --minutes 3 --out RUN`")


def cmd_gallery(args):
    _quiet_tensorflow()
    from vae_keras.viz.gallery import build_gallery

    index = build_gallery(args.run, args.out, data_dir=args.data, metrics_path=args.metrics, n=args.n,
                          seed=args.seed)
    print(f"wrote the gallery of {args.run} to {index} (open it in a browser; no server needed)")

def cmd_demo(args):
    """phantoms -> train -> generate: the README's main job."""
    _quiet_tensorflow()
    quick = args.quick or quick_mode()
    n = args.n or (1000 if quick else 1877)  # the seed project had 1,877 scans
    epochs = args.epochs or 30
    size = args.image_size or (64 if quick else 224)
    out = Path(args.out)
    data_dir, run_dir, gen_dir = out / "data", out / "run", out / "generated"
    t0 = time.monotonic()
    print(f"== xray-vae demo ({'quick' if quick else 'full'} mode: {n} phantoms at {size}x{size}, "
          f"{epochs} epochs) -> {out}", file=sys.stderr)

    from vae_keras.io.manifest import read_manifest
    from data_prep.phantoms import write_phantom_dataset

    manifest = data_dir / "manifest.csv"
    if manifest.is_file() and len(read_manifest(manifest)) == n:
        print(f"[1/3] reusing the phantom data set in {data_dir}", file=sys.stderr)
    else:
        print(f"[1/3] rendering {n} phantom X-ray bags into {data_dir}", file=sys.stderr)
        write_phantom_dataset(data_dir, n=n, size=size, seed=args.seed, progress=not args.quiet)

    from vae_keras.sampling.generate import export_samples, sample_images
    from vae_keras.training.trainer import train
    from vae_keras.viz.figures import image_grid

    print(f"[2/3] training the {args.config} VAE into {run_dir}", file=sys.stderr)
    config = get_config(args.config, quick=quick, image_size=size, epochs=epochs, seed=args.seed)
    resume = (run_dir / "config.json").is_file()
    trainer = train(config, data_dir, run_dir, resume=resume, progress=not args.quiet)
    model = trainer.model
    finish_run_figures(run_dir, model, trainer.history, data_images=trainer.train_images[:256] / 255.0)

    print(f"[3/3] generating {args.n_generate} images into {gen_dir}", file=sys.stderr)
    from vae_keras.models.priors import load_sampler

    sampler = load_sampler(run_dir, model)  # the run's fitted latent sampler (a mixture for `sigma`)
    labels = _label_mix(run_dir, trainer.config, sampler, args.n_generate, args.seed)   # None: unlabelled
    export_samples(model, args.n_generate, gen_dir, seed=args.seed, progress=not args.quiet, sampler=sampler,
                   labels=labels)
    image_grid(sample_images(model, 64, seed=args.seed, sampler=sampler,
                             labels=_label_mix(run_dir, trainer.config, sampler, 64, args.seed)),
               out / "samples_grid.png", ncols=8)
    image_grid(trainer.train_images[:64] / 255.0, out / "real_grid.png", ncols=8)
    for name in ("training.gif", "latent_manifold.png", "loss_curves.png"):  # one folder to open
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
    dt = time.monotonic() - t0
    print(f"\ndemo finished in {dt / 60:.1f} min. Open these:\n"
          f"  {out / 'samples_grid.png'}   generated bags (compare {out / 'real_grid.png'})\n"
          f"  {out / 'training.gif'}        the same latents decoded after every epoch\n"
          f"  {out / 'latent_manifold.png'} the 2-D latent manifold\n"
          f"  {out / 'loss_curves.png'}     reconstruction and KL per epoch\n"
          f"  {gen_dir}/                    {args.n_generate} generated PNGs + manifest.csv")


# -- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    quick_help = f"shrink everything to run in minutes on 2 CPU cores (same as {QUICK_ENV}=1)"
    p = argparse.ArgumentParser(
        prog="python -m vae_keras",
        description="Generate synthetic grayscale X-ray baggage images with a variational autoencoder.",
        epilog="Each subcommand has its own --help. Quick mode: set XRAY_VAE_QUICK=1 or pass --quick.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("phantoms", help="render the procedural X-ray baggage phantom data set",
                       description="Render N physically simulated X-ray baggage images (Beer-Lambert, photon "
                                   "noise, detector blur) with threat labels and boxes into the prepared layout "
                                   "OUT/{train,test}/*.png + OUT/manifest.csv.")
    s.add_argument("out", help="output folder (created)")
    s.add_argument("--n", type=int, default=1877, help="number of images (default: 1877, the seed project's count)")
    s.add_argument("--size", type=int, default=224, help="image side in pixels (default: 224)")
    s.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same images")
    s.add_argument("--benign-fraction", type=float, default=0.3, help="fraction of bags with no threat (default: 0.3)")
    s.add_argument("--test-fraction", type=float, default=0.3, help="fraction held out as test split (default: 0.3)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_phantoms)

    from data_prep.prepare import add_arguments as add_prepare_arguments  # no TensorFlow import

    s = sub.add_parser("prepare", help="import a folder of real X-ray scans (GDXray, SIXray, any images)",
                       description="Convert a folder tree of PNG/JPEG/TIFF/BMP scans (GDXray Baggages layout, "
                                   "SIXray JPEGs, 16-bit TIFFs, RGBA, palette ...) into OUT/{train,test}/*.png "
                                   "grayscale letterboxed to SIZE (aspect kept, white padding) + manifest.csv, "
                                   "split 70/30 by series. Bad files are skipped with one line each and listed in "
                                   "OUT/prepare_report.json.")
    add_prepare_arguments(s)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train a VAE configuration on a prepared data set",
                       description="Train with a tf.GradientTape loop; writes RUN/config.json, a checkpoint every "
                                   "epoch, history.json, TensorBoard logs (RUN/logs) and a sample grid per epoch. "
                                   "--resume continues an interrupted run from its last complete checkpoint.")
    s.add_argument("data", help="prepared data folder (from `phantoms` or `prepare`)")
    s.add_argument("--out", required=True, help="run folder (checkpoints, config, history, figures)")
    s.add_argument("--config", default=DEFAULT_CONFIG, choices=sorted(NAMED_CONFIGS),
                   help=f"named configuration (default: {DEFAULT_CONFIG}, the best measured in figures/quality.md; "
                        "seed: the 2021 project's network, the reference)")
    s.add_argument("--epochs", type=int, help="number of epochs (default: the configuration's)")
    s.add_argument("--image-size", type=int, help="image side, divisible by 4 (default: 224; 64 in quick mode)")
    s.add_argument("--latent-dim", type=int, help="latent dimensions (default: the configuration's)")
    s.add_argument("--batch-size", type=int, help="batch size (default: 32)")
    s.add_argument("--learning-rate", type=float, help="Adam learning rate (default: 1e-4)")
    s.add_argument("--seed", type=int, help="random seed (default: 0)")
    s.add_argument("--minutes", type=float, help="stop at the first epoch end after this many minutes")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--jit-compile", action="store_true", help="compile the step with XLA (faster on GPU, slower on CPU)")
    s.add_argument("--strategy", default="auto", choices=("auto", "default", "mirrored", "multiworker", "tpu"),
                   help="tf.distribute strategy: auto = a TPU if attached, else all GPUs when there are several, "
                        "else one device; multiworker reads TF_CONFIG (default: auto)")
    s.add_argument("--precision", default="float32", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                   help="numeric precision; auto = mixed_bfloat16 on TPU, mixed_float16 on GPU, float32 on CPU "
                        "(default: float32)")
    s.add_argument("--deterministic", action="store_true",
                   help="enable TensorFlow op determinism: a rerun or resumed run gives bit-identical weights")
    s.add_argument("--quick", action="store_true", help=quick_help)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("generate", help="sample N images from a trained run (PNG + manifest.csv)",
                       description="Decode N draws from the prior of a trained run and write them as PNGs with a "
                                   "manifest.csv; writes are atomic, so an interrupted export leaves only complete "
                                   "files listed in the manifest.")
    s.add_argument("run", help="a run folder written by `train`")
    s.add_argument("--n", type=int, default=100, help="number of images (default: 100)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--temperature", type=float, default=1.0, help="prior scale; < 1 gives typical, cleaner samples")
    s.add_argument("--seed", type=int, default=0, help="random seed of the latent draws")
    s.add_argument("--batch-size", type=int, default=64, help="decoding batch size")
    s.add_argument("--label", help="threat class(es) every image must contain, comma-separated (handgun, knife, "
                                   "razor_blade, shuriken; 'benign' for none): a conditional run is conditioned on "
                                   "them, a fitted mixture sampler draws the latents of training bags with them; "
                                   "they go into the manifest")
    s.add_argument("--format", choices=("yolo", "voc", "csv"),
                   help="write images + labels for detection frameworks (YOLO txt, Pascal VOC XML, or our "
                        "manifest CSV); YOLO/VOC need boxes: a `layout` run's samples carry the boxes of their "
                        "layouts, other runs' labelled images need --tip")
    s.add_argument("--tip", metavar="DATA",
                   help="hybrid mode: a VAE-generated benign bag with real threat items from this prepared, "
                        "box-labelled data set projected in (Beer-Lambert), so every image has exact boxes")
    s.add_argument("--objects", metavar="OBJECT_RUN",
                   help="composite mode: generated threats from this object VAE (`train --config objects` on a set "
                        "written by `objects`) projected into the run's generated benign bags, exact boxes")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("evaluate", help="measure a trained run: likelihood, sharpness, two-sample test, ...",
                       description="Compute on the test split: -ELBO and IWAE NLL (bits/dim), reconstruction "
                                   "PSNR/SSIM, and on N generated images: sharpness, dense-object mass and "
                                   "intensity W1 vs the real images, a classifier two-sample test, Frechet distance "
                                   "and precision/recall in a threat classifier's feature space, a memorisation "
                                   "ratio, and per-class recognition for a conditional run. Writes RUN/metrics.json.")
    s.add_argument("run", help="a run folder written by `train`")
    s.add_argument("--data", required=True, help="the prepared data set the run was trained on")
    s.add_argument("--n", type=int, default=500, help="generated images (default: 500)")
    s.add_argument("--k", type=int, default=64, help="importance samples of the IWAE bound (default: 64)")
    s.add_argument("--n-likelihood", type=int, default=256, help="test images for the likelihood (default: 256)")
    s.add_argument("--sampler", choices=["normal", "gmm"], help="latent sampler (default: the run's)")
    s.add_argument("--temperature", type=float, default=1.0, help="sampler scale (default: 1)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--objects", metavar="OBJECT_RUN",
                   help="measure composites instead: the run's bags with threats from this object VAE "
                        "(writes RUN/metrics_objects_<name>.json)")
    s.add_argument("--quiet", action="store_true", help="no progress messages")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("objects", help="cut the boxed threats of a data set out, for an object VAE",
                       description="Write a prepared data set of the threats of DATA alone: each boxed threat as a "
                                   "transmission map (bag divided out) centred on an empty canvas of half the bag "
                                   "side, labelled with its class, in its image's split. Train the object VAE on it "
                                   "(`train OUT --config objects --image-size SIZE/2`) and generate composites with "
                                   "`generate BAG_RUN --objects OBJECT_RUN`.")
    s.add_argument("data", help="a prepared data set with boxes (phantoms, or `prepare` output)")
    s.add_argument("out", help="output folder (a new prepared data set)")
    s.add_argument("--size", type=int, default=64,
                   help="side the bags are trained at (default 64): objects keep their size relative to it")
    s.add_argument("--quiet", action="store_true", help="no progress messages")
    s.set_defaults(func=cmd_objects)

    s = sub.add_parser("gallery", help="write a static HTML gallery of a trained run",
                       description="Write OUT/index.html and its pictures: the run's configuration and data, real "
                                   "test images next to generated ones, reconstructions, the latent manifold, an "
                                   "interpolation, the training GIF, loss curves, the metrics.json table and a "
                                   "memorisation check. Self-contained: open it from disk, nothing is loaded "
                                   "from the network.")
    s.add_argument("run", help="a run folder written by `train`")
    s.add_argument("--out", required=True, help="output folder (index.html + PNG/GIF files)")
    s.add_argument("--data", help="the prepared data set, for real images, reconstructions and nearest "
                                  "neighbours (default: the one recorded in RUN/run_info.json, if any)")
    s.add_argument("--metrics", help="an evaluation metrics.json (default: RUN/metrics.json when present)")
    s.add_argument("--n", type=int, default=32, help="images per sample grid (default: 32)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the latent draws")
    s.set_defaults(func=cmd_gallery)

    s = sub.add_parser("demo", help="the main job: phantoms -> train -> generate -> figures",
                       description="Render phantoms, train the default VAE (--config), generate images, and write a sample grid, "
                                   "the training GIF, the latent manifold and loss curves under --out. Full size "
                                   "(224x224, 1877 images) by default, for a GPU; --quick or XRAY_VAE_QUICK=1 runs "
                                   "in a few minutes on 2 CPU cores. Rerunning resumes where it stopped.")
    s.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    s.add_argument("--n", type=int, help="number of phantoms (default: 1877; 1000 in quick mode)")
    s.add_argument("--epochs", type=int, help="epochs (default: 30)")
    s.add_argument("--image-size", type=int, help="image side (default: 224; 64 in quick mode)")
    s.add_argument("--n-generate", type=int, default=100, help="images to export (default: 100)")
    s.add_argument("--config", default=DEFAULT_CONFIG, choices=sorted(NAMED_CONFIGS),
                   help=f"named configuration (default: {DEFAULT_CONFIG}, the best measured; seed = the 2021 network)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--quick", action="store_true", help=quick_help)
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    expected = (FileNotFoundError, NotADirectoryError, PermissionError, ValueError, RunExists,
                TrainingDiverged)
    try:
        args.func(args)
    except expected as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        hint = {"train": "finished epochs are checkpointed; rerun with --resume to continue",
                "demo": "rerun the same command to continue where it stopped"}.get(
            args.command, "complete files are kept and listed in the manifest; rerun to finish")
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    return 0
