"""``gallery RUN --out SITE``: a static, self-contained HTML gallery of a trained run."""
from __future__ import annotations

from vae_keras.cli.common import quiet_tensorflow


def add_parser(sub):
    s = sub.add_parser("gallery", help="write a static HTML gallery of a trained run",
                       description="Write OUT/index.html and its pictures: the run's configuration and data, real "
                                   "test images next to generated ones, reconstructions, interpolations between test "
                                   "images, the latent manifold (2-d latents), the training GIF, loss curves, the metrics.json table and a "
                                   "memorisation check. Self-contained: open it from disk, nothing is loaded "
                                   "from the network.")
    s.add_argument("run", help="a run folder written by `train`")
    s.add_argument("--out", required=True, help="output folder (index.html + PNG/GIF files)")
    s.add_argument("--data", help="the prepared data set, for real images, reconstructions and nearest "
                                  "neighbours (default: the one recorded in RUN/run_info.json, if any)")
    s.add_argument("--metrics", help="an evaluation metrics.json (default: RUN/metrics.json when present)")
    s.add_argument("--n", type=int, default=32, help="images per sample grid (default: 32)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the latent draws")
    s.set_defaults(func=run)
    return s


def run(args):
    quiet_tensorflow()
    from vae_keras.training.run import open_run
    from vae_keras.viz.gallery import build_gallery, check_grid_size

    check_grid_size(args.n)                               # a bad value: said before the run is loaded
    run = open_run(args.run, missing_sampler="prior")     # a sampler never fitted: the prior, said on the page
    index = build_gallery(run, args.out, data_dir=args.data, metrics_path=args.metrics, n=args.n,
                          seed=args.seed)
    print(f"wrote the gallery of {args.run} to {index} (open it in a browser; no server needed)")
