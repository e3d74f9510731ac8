"""``objects DATA OUT``: cut the boxed threats of a data set out, as the training set of an object VAE."""
from __future__ import annotations

from vae_keras.cli.common import quiet_tensorflow


def add_parser(sub):
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
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    from vae_keras.sampling.objects import object_canvas, write_object_dataset

    rows = write_object_dataset(args.data, args.out, args.size, progress=not args.quiet)
    side = object_canvas(args.size)
    print(f"wrote {len(rows)} threats ({side}x{side}) and manifest.csv to {args.out}; train the object VAE with "
          f"`python -m vae_keras train {args.out} --config objects --image-size {side} --epochs 200 --minutes 3 --out RUN`")
