"""``generate RUN --n N --out OUT``: sample images from a trained run (PNG + manifest.csv, or a detector format)."""
from __future__ import annotations

import sys
from pathlib import Path

from vae_keras.cli.common import label_mix, quiet_tensorflow


def add_parser(sub):
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
    s.add_argument("--into", metavar="BAGS",
                   help="insertion mode: RUN is an object VAE; its generated threats (--label, default its training "
                        "mix) are inserted into bags of this prepared folder (real scans or phantoms; benign bags "
                        "only): inside the bag, at the object set's scale, rotated, Beer-Lambert, exact boxes")
    s.add_argument("--object-data", metavar="OBJECTS",
                   help="with --into: the object set RUN was trained on (written by `objects`); each threat's size "
                        "is drawn from its boxes' sizes relative to their bags (default: the size the VAE draws)")
    s.add_argument("--bag-split", choices=("train", "test"),
                   help="with --into: take the bags from this split of BAGS only (default: every split); keep a "
                        "detector's test bags out of its synthetic training data")
    s.add_argument("--steps", type=int, help="DDIM steps of a `latent` run's diffusion prior (default: the run's, 25); "
                                             "fewer is faster, 50 gains little")
    s.add_argument("--guidance", type=float,
                   help="classifier-free guidance scale of a `latent` run's prior (default: the run's, 3): 0 ignores "
                        "--label, 1 is plainly conditional, higher holds the asked-for threats more often")
    s.add_argument("--clip", type=float,
                   help="a `latent` run's prior: each DDIM step's predicted latent is clipped to +-CLIP standard "
                        "deviations (default: the run's, 3); 0 = off (sharper, but a short-trained prior drifts "
                        "into dark blobs)")
    s.add_argument("--preview", metavar="PNG",
                   help="also write the first 16 images with their boxes outlined to this PNG (a look at an export "
                        "before training a detector on it)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    from vae_keras.models.priors import load_sampler
    from vae_keras.sampling.export import export_run
    from vae_keras.sampling.generate import export_samples
    from vae_keras.training.checkpoint import load_run

    config, model = load_run(args.run)
    if args.steps is not None or args.guidance is not None or args.clip is not None:
        if config.sampler != "diffusion":
            print("note: --steps, --guidance and --clip only act on a `latent` run's diffusion prior", file=sys.stderr)
        # the sampler reads them from the run's configuration (validated: ConfigError on a bad value)
        model.config = config = config.replace(ddim_steps=args.steps, guidance=args.guidance, prior_clip=args.clip)
    labels = requested_labels(args, config, model)
    if args.into:  # generated threats in the given bags
        from vae_keras.errors import DataError
        from vae_keras.io.manifest import MANIFEST
        from vae_keras.sampling.insert import insert_into

        if args.object_data and not (Path(args.object_data) / MANIFEST).is_file():
            raise DataError(f"--object-data {args.object_data} is not an object set (no {MANIFEST}): "
                            "write one with `python -m vae_keras objects`")
        if args.tip or args.objects:
            raise DataError("--into takes the threats of RUN (an object VAE) into the bags of BAGS: "
                            "it cannot be combined with --tip or --objects")

        rows = insert_into(args.run, args.into, args.n, args.out, labels=labels, fmt=args.format or "yolo",
                           seed=args.seed, temperature=args.temperature, batch_size=args.batch_size,
                           split=args.bag_split, object_data=args.object_data)
        what = f"benign bags of {args.into} with generated threats ({args.format or 'yolo'})"
    elif args.format or args.tip or args.objects:  # detector formats; hybrid or composite: exact boxes
        rows = export_run(args.run, args.n, args.out, fmt=args.format or "csv", labels=labels, tip_data=args.tip,
                          seed=args.seed, temperature=args.temperature, batch_size=args.batch_size, model=model,
                          objects_run=args.objects)
        what = f"labelled images ({args.format or 'csv'})"
    else:
        rows = export_samples(model, args.n, args.out, temperature=args.temperature, seed=args.seed,
                              batch_size=args.batch_size, progress=not args.quiet, name=Path(args.run).name,
                              labels=labels, sampler=load_sampler(args.run, model))
        what = "generated images and manifest.csv"
    print(f"wrote {len(rows)} {what} to {args.out}")
    write_preview(args, rows)


def write_preview(args, rows, n: int = 16):
    """``--preview PNG``: the first ``n`` exported images of ``args.out`` with their boxes outlined."""
    if not args.preview or not rows:
        return
    import numpy as np
    from PIL import Image

    from vae_keras.viz.figures import boxed_grid

    rows = rows[:n]
    images = np.stack([np.asarray(Image.open(Path(args.out) / r.path).convert("L")) for r in rows])   # (n, S, S) uint8
    boxed_grid(images, [r.boxes for r in rows], args.preview)
    print(f"wrote {args.preview}: {len(rows)} images with their boxes")


def requested_labels(args, config, model):
    """``--label knife[,handgun]`` (``benign`` for none) -> the classes every sample gets; without
    ``--label``, a run that can be asked for a class draws them with the training split's frequencies."""
    if args.label is not None:
        names = [] if args.label.strip() in ("", "benign") else [n.strip() for n in args.label.split(",")]
        if not config.conditional and config.sampler not in ("gmm", "diffusion") and not args.objects:
            print("note: this run is neither conditional nor has a fitted mixture sampler; --label only goes "
                  "into the manifest", file=sys.stderr)
        return names
    from vae_keras.models.priors import load_sampler

    return label_mix(args.run, config, load_sampler(args.run, model), args.n, args.seed)
