"""``generate RUN --n N --out OUT``: sample images from a trained run (PNG + manifest.csv, or a detector format)."""
from __future__ import annotations

import sys
from pathlib import Path

from vae_keras.cli.common import add_sampler_options, quiet_tensorflow, sampler_settings


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
                   help="insertion mode: RUN is a threat generator (an object run); its generated threats (--label, default its training "
                        "mix) are inserted into bags of this prepared folder (real scans or phantoms; benign bags "
                        "unless --bags all): inside the bag, at the object set's scale, rotated, Beer-Lambert, exact "
                        "boxes")
    s.add_argument("--object-data", metavar="OBJECTS",
                   help="with --into: the object set RUN was trained on (written by `objects`); each threat's size "
                        "is drawn from its boxes' sizes relative to their bags (default: the size the VAE draws)")
    s.add_argument("--bag-split", choices=("train", "test"),
                   help="with --into: take the bags from this split of BAGS only (default: every split); keep a "
                        "detector's test bags out of its synthetic training data")
    s.add_argument("--bags", choices=("benign", "all"), default="benign",
                   help="with --into: which bags of BAGS take threats: 'benign' (default) only those whose "
                        "manifest lists no threat; 'all' every bag, its own boxes kept in the export (GDXray-style "
                        "sets have no benign bag); a bag listing a threat without a box is skipped either way (an "
                        "unlabelled positive)")
    s.add_argument("--max-iou", type=float, default=0.0, metavar="IOU",
                   help="with --into: the most a new threat's box may overlap any other box of its image (the "
                        "bag's own, or another new one), as intersection over union in [0, 1) (default 0: no "
                        "overlap); new threats never darken the same pixel")
    add_sampler_options(s)   # each sampler's settings: --steps, --guidance, --clip of a `latent` run's prior
    s.add_argument("--preview", metavar="PNG",
                   help="also write the first 16 images with their boxes outlined to this PNG (a look at an export "
                        "before training a detector on it)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    from vae_keras.errors import DataError
    from vae_keras.io.manifest import MANIFEST
    from vae_keras.sampling.export import export_run
    from vae_keras.sampling.generate import export_samples
    from vae_keras.sampling.insert import insert_into
    from vae_keras.training.checkpoint import load_config
    from vae_keras.training.run import open_run, supported_options

    if args.into and (args.tip or args.objects):
        raise DataError("--into takes the threats of RUN (an object run) into the bags of BAGS: "
                        "it cannot be combined with --tip or --objects")
    if not args.into and (args.bags != "benign" or args.max_iou):
        raise DataError("--bags and --max-iou choose the bags of --into and how new threats may overlap theirs: "
                        "give --into BAGS")
    if not 0.0 <= args.max_iou < 1.0:
        raise DataError(f"--max-iou must be in [0, 1) (0: no overlap), got {args.max_iou}")
    if args.into and args.object_data and not (Path(args.object_data) / MANIFEST).is_file():
        raise DataError(f"--object-data {args.object_data} is not an object set (no {MANIFEST}): "
                        "write one with `python -m vae_keras objects`")
    # the run, its model and its sampler loaded once, with this command's sampling settings
    run = open_run(args.run, **supported_options(load_config(args.run), sampler_settings(args)))
    labels = requested_labels(args, run)
    if args.into:  # generated threats in the given bags
        rows = insert_into(run, args.into, args.n, args.out, labels=labels, fmt=args.format or "yolo",
                           seed=args.seed, temperature=args.temperature, batch_size=args.batch_size,
                           split=args.bag_split, object_data=args.object_data, benign_only=args.bags == "benign",
                           max_iou=args.max_iou)
        kind = "benign bags" if args.bags == "benign" else "bags (their own boxes kept)"
        what = f"{kind} of {args.into} with generated threats ({args.format or 'yolo'})"
    elif args.format or args.tip or args.objects:  # detector formats; hybrid or composite: exact boxes
        rows = export_run(run, args.n, args.out, fmt=args.format or "csv", labels=labels, tip_data=args.tip,
                          seed=args.seed, temperature=args.temperature, batch_size=args.batch_size,
                          objects=args.objects)
        what = f"labelled images ({args.format or 'csv'})"
    else:
        rows = export_samples(run.model, args.n, args.out, temperature=args.temperature, seed=args.seed,
                              batch_size=args.batch_size, progress=not args.quiet, name=run.name,
                              labels=labels, sampler=run.sampler)
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


def requested_labels(args, run):
    """``--label knife[,handgun]`` (``benign`` for none) -> the classes every sample gets; without
    ``--label``, a run that can be asked for a class draws them with the training split's frequencies."""
    if args.label is not None:
        names = [] if args.label.strip() in ("", "benign") else [n.strip() for n in args.label.split(",")]
        if not run.answers_labels and not args.objects:
            print("note: this run can be asked for no class (neither conditional nor a sampler conditioned on "
                  "labels); --label only goes into the manifest", file=sys.stderr)
        return names
    return run.label_mix(args.n, args.seed)
