"""``phantoms OUT``: render the procedural X-ray baggage phantom data set (the embedded default data)."""
from __future__ import annotations

import time


def add_parser(sub):
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
    s.add_argument("--preset", default="gdxray", choices=["gdxray", "belt"],
                   help="framing: gdxray = the bag fills the scan (default); belt = a bag on a conveyor (SIXray-like)")
    s.add_argument("--threat-size", type=float, default=1.0, help="threat size factor (default: 1.0)")
    s.add_argument("--pose", type=float, default=180.0,
                   help="threats turn up to this many degrees from upright (default: 180 = any pose)")
    s.add_argument("--occlusion", type=float, default=0.3,
                   help="probability that an object is laid over each threat (default: 0.3)")
    s.add_argument("--clutter", type=float, default=1.0, help="clutter density factor (default: 1.0)")
    s.set_defaults(func=run)
    return s


def run(args):
    from data_prep.phantoms import write_phantom_dataset

    t0 = time.monotonic()
    rows = write_phantom_dataset(args.out, n=args.n, size=args.size, seed=args.seed,
                                 benign_fraction=args.benign_fraction, test_fraction=args.test_fraction,
                                 progress=not args.quiet, preset=args.preset,
                                 difficulty={"threat_size": args.threat_size, "pose": args.pose,
                                             "occlusion": args.occlusion, "clutter": args.clutter})
    dt = time.monotonic() - t0
    n_train = sum(r.split == "train" for r in rows)
    print(f"wrote {len(rows)} phantoms ({n_train} train / {len(rows) - n_train} test) at "
          f"{args.size}x{args.size} to {args.out} in {dt:.1f}s ({len(rows) / max(dt, 1e-9):.0f} images/s)")
