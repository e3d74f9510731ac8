"""``objects SRC OUT``: the threats of a data set or of a folder of threat crops, as the training set
of a threat generator (an object set)."""
from __future__ import annotations

from vae_keras.cli.common import quiet_tensorflow


def add_parser(sub):
    s = sub.add_parser("objects", help="cut the boxed threats of a data set out, or import a folder of threat crops",
                       description="Write an object set: threats alone, each a transmission map (background divided "
                                   "out) centred on an empty canvas of half the bag side (SIZE/2), labelled with its "
                                   "class. SRC is either a prepared data set with boxes (each boxed threat is cut out "
                                   "of its bag, at its size in the bag, in its image's split) or a folder of threat "
                                   "crops with one subfolder per class (handgun/ knife/ razor_blade/ shuriken/, any "
                                   "subset; `Handgun/` or `razor blade/` work too; other folders are reported and "
                                   "skipped): PNG/JPEG/TIFF of any size and mode, on the scanner's light background. "
                                   "Each crop is divided by its own background level (a high percentile of its "
                                   "border), faint clutter dropped, and sized by a rule (--crop-fraction, "
                                   "--crop-bag-size; default each class at the phantom threats' size: longest side "
                                   "0.34 of the bag for handguns and knives, 0.19 shuriken, 0.10 razor blades, "
                                   "larger crops of a class staying larger); bad files are skipped with one line "
                                   "each. Train the threat generator on OUT (`train OUT --config threats "
                                   "--image-size SIZE/2`, or the object VAE: `--config objects`).")
    s.add_argument("data", metavar="SRC",
                   help="a prepared data set with boxes (phantoms, or `prepare` output: it has manifest.csv), or a "
                        "folder of threat crops with one subfolder per class")
    s.add_argument("out", help="output folder (a new object set: train/ test/ manifest.csv)")
    s.add_argument("--size", type=int, default=64,
                   help="side the bags are trained at (default 64): objects keep their size relative to it, on a "
                        "canvas of SIZE/2")
    s.add_argument("--cut", choices=("box", "alone"), default="box",
                   help="a prepared data set only: how a boxed threat is cut from its bag. box (default): divided "
                        "by one background level, transmissions above 0.6 dropped (dense threats kept whole); "
                        "alone: divided by the bag behind it as the box's border says it varies, transmissions "
                        "above 0.85 dropped (keeps faint threats such as real razor blades)")
    crops = s.add_argument_group("a folder of threat crops only")
    scale = crops.add_mutually_exclusive_group()
    scale.add_argument("--crop-fraction", type=float, metavar="F",
                       help="every crop's longest side is F of the bag's side, in (0, 0.5] (0.5 fills the canvas: "
                            "the most detail); default: each class at the phantom threats' size")
    scale.add_argument("--crop-bag-size", type=float, metavar="PX",
                       help="keep the crops' pixel scale: they were cut from scans PX pixels wide, so a crop's "
                            "longest side is its pixels / PX of the bag (at most 0.5)")
    crops.add_argument("--test-fraction", type=float,
                       help="share of each class's crops in test (default 0.3); the split is sha1(seed, name) of "
                            "the file names, a GDXray series (B0046_...) kept on one side, as `prepare` does")
    crops.add_argument("--seed", type=int, help="seed of the split (default 0)")
    s.add_argument("--quiet", action="store_true", help="no progress messages")
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    from vae_keras.sampling.objects import object_canvas, write_object_dataset

    stats: dict = {}
    rows = write_object_dataset(args.data, args.out, args.size, progress=not args.quiet, cut=args.cut,
                                fraction=args.crop_fraction, bag_pixels=args.crop_bag_size,
                                test_fraction=args.test_fraction, seed=args.seed, stats=stats)
    side = object_canvas(args.size)
    skipped = f" ({len(stats['skipped'])} bad files skipped)" if stats.get("skipped") else ""
    print(f"wrote {len(rows)} threats ({side}x{side}) and manifest.csv to {args.out}{skipped}; train the threat "
          f"generator with `python -m vae_keras train {args.out} --config threats --image-size {side} --minutes 10 "
          f"--out RUN` (add --init-from RUN to fine-tune one pre-trained on phantom threats)")
