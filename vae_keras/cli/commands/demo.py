"""``demo``: the main job in one command: phantoms -> train -> generate -> figures, resumable.

Quick mode (``--quick`` or ``XRAY_VAE_QUICK=1``) is sized to finish in 5 minutes on 2 CPU cores
and still show what the default model (``latent``) learns: 1,000 bags at 64x64, 20 epochs of the
spatial-latent autoencoder, then 30 epochs of its diffusion prior over the (16 times smaller)
latents. 30 prior epochs instead of 60 took the demo from 6.6 to 4.9 minutes on a clean clone and
measured the same (two-sample accuracy 0.992 vs 0.993, sharpness 0.137 vs 0.137, Frechet distance
248 vs 237, recall 0.43 vs 0.50; one seed, `evaluate --k 8 --n-likelihood 32`); the prior's budget
curve (figures/prior_recipe/curve.md) also stops improving early. The full-size
run keeps the configuration's rule (the prior trains 10 epochs per autoencoder epoch). Timings:
README.md and docs/speed.md.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from vae_keras.cli.common import QUICK_HELP, quiet_tensorflow
from vae_keras.config import DEFAULT_CONFIG, NAMED_CONFIGS, get_config, quick_mode

#: Phantoms, epochs and image side of the demo, full size and in quick mode.
#: ``prior_epochs`` (two-stage configurations only): 0 = the configuration's 10 per autoencoder epoch.
FULL = dict(n=1877, epochs=30, prior_epochs=0, image_size=224)    # the seed project had 1,877 scans
QUICK = dict(n=1000, epochs=20, prior_epochs=30, image_size=64)

#: The run's figures copied to the top of --out, so one folder holds everything to open.
RUN_FIGURES = ("training.gif", "loss_curves.png", "interpolations.png", "class_samples.png", "latent_manifold.png")

#: What the demo leaves under --out (those that exist are listed at the end), and what each shows.
OUTPUTS = {
    "samples_grid.png": "64 generated bags (compare real_grid.png, 64 real ones)",
    "interpolations.png": "real test bags at both ends of each row, the decoded line between their codes between",
    "class_samples.png": "generated bags (benign row) and the same bags with one simulated threat cut from the "
                         "training phantoms multiplied in per class row, exact boxes framed",
    "latent_manifold.png": "the 2-D latent space decoded on a grid",
    "training.gif": "the same latents decoded after every epoch",
    "loss_curves.png": "reconstruction and KL per epoch, train and test",
    "generated": "the exported images (images/) and manifest.csv",
}


def add_parser(sub):
    s = sub.add_parser("demo", help="the main job: phantoms -> train -> generate -> figures",
                       description="Render phantoms, train the default VAE (--config), generate images, and write a "
                                   "sample grid, the training GIF, interpolations between real bags, samples per "
                                   "threat class and loss curves under --out. Full size (224x224, "
                                   f"{FULL['n']} images, {FULL['epochs']} epochs) by default, for a GPU; --quick or "
                                   f"XRAY_VAE_QUICK=1 ({QUICK['n']} images at {QUICK['image_size']}x"
                                   f"{QUICK['image_size']}, {QUICK['epochs']} epochs, {QUICK['prior_epochs']} of the "
                                   "latent prior) runs in about 5 minutes on 2 CPU cores. Rerunning resumes where it "
                                   "stopped.")
    s.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    s.add_argument("--n", type=int, help=f"number of phantoms (default: {FULL['n']}; {QUICK['n']} in quick mode)")
    s.add_argument("--epochs", type=int, help=f"epochs (default: {FULL['epochs']}; {QUICK['epochs']} in quick mode)")
    s.add_argument("--prior-epochs", type=int,
                   help="epochs of the diffusion prior of a two-stage configuration such as latent (default: 10 per "
                        f"autoencoder epoch; {QUICK['prior_epochs']} in quick mode)")
    s.add_argument("--image-size", type=int,
                   help=f"image side (default: {FULL['image_size']}; {QUICK['image_size']} in quick mode)")
    s.add_argument("--n-generate", type=int, default=100, help="images to export (default: 100)")
    s.add_argument("--config", default=DEFAULT_CONFIG, choices=sorted(NAMED_CONFIGS),
                   help=f"named configuration (default: {DEFAULT_CONFIG}, the best measured; seed = the 2021 network)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--quick", action="store_true", help=QUICK_HELP)
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    quick = args.quick or quick_mode()
    size = QUICK if quick else FULL
    n, epochs, image_size = args.n or size["n"], args.epochs or size["epochs"], args.image_size or size["image_size"]
    prior_epochs = args.prior_epochs if args.prior_epochs is not None else size["prior_epochs"]
    out = Path(args.out)
    data_dir, run_dir, gen_dir = out / "data", out / "run", out / "generated"
    t0 = time.monotonic()
    print(f"== xray-vae demo ({'quick' if quick else 'full'} mode: {n} phantoms at {image_size}x{image_size}, "
          f"{epochs} epochs) -> {out}", file=sys.stderr)

    print(f"[1/3] phantom X-ray bags in {data_dir}", file=sys.stderr)
    render_phantoms(data_dir, n, image_size, args.seed, progress=not args.quiet)

    print(f"[2/3] training the {args.config} VAE into {run_dir}", file=sys.stderr)
    trainer, finished = train_run(data_dir, run_dir, get_config(args.config, quick=quick, image_size=image_size,
                                                                epochs=epochs, prior_epochs=prior_epochs,
                                                                seed=args.seed),
                                  seed=args.seed, progress=not args.quiet)

    print(f"[3/3] generating {args.n_generate} images into {gen_dir}", file=sys.stderr)
    write_outputs(out, trainer.run, trainer.train_images, args.n_generate, args.seed, progress=not args.quiet)
    print_class_rows(finished.class_rows)
    print(f"\ndemo finished in {(time.monotonic() - t0) / 60:.1f} min. Open these:")
    for name, what in OUTPUTS.items():
        if (out / name).exists():
            print(f"  {str(out / name):<{len(str(out)) + 22}} {what}")


def render_phantoms(data_dir: Path, n: int, image_size: int, seed: int, progress: bool):
    """Render the phantom set, or reuse the one a previous demo left (same count)."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.io.manifest import MANIFEST, read_manifest

    manifest = data_dir / MANIFEST
    if manifest.is_file() and len(read_manifest(manifest)) == n:
        print(f"      reusing the {n} phantoms already there", file=sys.stderr)
        return
    write_phantom_dataset(data_dir, n=n, size=image_size, seed=seed, progress=progress)


def train_run(data_dir: Path, run_dir: Path, config, seed: int, progress: bool):
    """Train (resuming a previous demo's run) and write the run's figures, its class rows scored by the data
    set's threat classifier (trained once, cached in ``data/.cache``); returns ``(trainer, finished)``: the
    trainer (its ``run``: the model and the sampler just fitted, used as they are) and
    :func:`~vae_keras.viz.finish.finish_run`'s result."""
    from vae_keras.training.trainer import train
    from vae_keras.viz.finish import finish_run

    trainer = train(config, data_dir, run_dir, resume=(run_dir / "config.json").is_file(), progress=progress)
    return trainer, finish_run(trainer.run, data_dir, seed=seed, recognise=True, progress=progress)


def print_class_rows(rows) -> None:
    """One line per ``class_samples.png`` row: in how many of its images the threat classifier (``evaluate``'s)
    finds the row's class, beside its recall on real test phantoms (the most a row can be expected to reach)."""
    if rows is None or rows.found is None:
        return
    real = rows.real_recall or {}
    print(f"\nclass_samples.png ({rows.kind}, {len(rows.images['benign'])} images a row): the threat classifier "
          "finds the row's class in")
    for c, share in rows.found.items():
        if c == "benign":
            print(f"  {'benign':<12} {share:4.0%} (no threat found)")
        else:
            print(f"  {c:<12} {share:4.0%}" + (f" (in real test phantoms: {real[c]:.0%})" if c in real else ""))


def write_outputs(out: Path, run, train_images, n_generate: int, seed: int, progress: bool):
    """The exported samples, the sample and real grids, and the run's figures at the top of ``out``."""
    from vae_keras.sampling.generate import export_samples, sample_images
    from vae_keras.viz.figures import image_grid

    export_samples(run.model, n_generate, out / "generated", seed=seed, progress=progress, sampler=run.sampler,
                   labels=run.label_mix(n_generate, seed))   # labels None: unlabelled
    image_grid(sample_images(run.model, 64, seed=seed, sampler=run.sampler, labels=run.label_mix(64, seed)),
               out / "samples_grid.png", ncols=8)
    image_grid(train_images[:64] / 255.0, out / "real_grid.png", ncols=8)
    for name in RUN_FIGURES:
        if (run.run_dir / name).is_file():
            shutil.copyfile(run.run_dir / name, out / name)
