"""Does pre-training on many phantoms help a run on a few hundred scans? (``train --init-from``)

Real labelled sets are small (GDXray's baggage series: a few hundred scans with threats), and a
VAE trained from scratch on 300 images memorises or blurs. This benchmark measures the remedy
without real images, through a domain shift we can make here:

1. pre-train the configuration on ``--n-source`` phantoms of the ``belt`` preset (a bag on a
   conveyor, much white background) for ``--source-epochs`` epochs;
2. on ``--n-target`` phantoms of the ``gdxray`` preset (the bag fills the frame), train the same
   configuration twice for the same ``--target-epochs`` epochs (equal fine-tuning compute):
   once from scratch, once ``--init-from`` the pre-trained run;
3. evaluate both on the target's test split with :func:`vae_keras.evaluation.evaluate.evaluate_run`.

``--target DATA`` replaces step 2's phantoms with a prepared set of real scans (issue #25: GDXray at
64 px, pre-trained on ``--source-preset gdxray`` phantoms, the preset that matches real scans'
statistics). A two-stage configuration (``latent``) trains its diffusion prior for
``--source-prior-epochs`` / ``--target-prior-epochs`` after the autoencoder, and ``--init-from``
moves both stages. ``--finetune-lr-scale`` adds a third arm, fine-tuned at that multiple of both
stages' learning rates.

Fixed epoch counts, not minutes, so the machine's load changes the wall time, not the result. It
writes ``--table`` (Markdown, with the command and the measured conditions)::

    python benchmarks/transfer.py --out build/transfer --table figures/transfer.md
    python benchmarks/transfer.py --config latent --target data/gdxray64 --source-preset gdxray --n-source 10000 \
        --source-epochs 15 --source-prior-epochs 15 --target-epochs 300 --target-prior-epochs 300 \
        --out build/transfer_gdxray --table figures/transfer_gdxray.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import describe_conditions, detect_gpus, load_average  # noqa: E402

from data_prep.phantoms import write_phantom_dataset  # noqa: E402
from vae_keras.config import DEFAULT_CONFIG, get_config  # noqa: E402
from vae_keras.evaluation.evaluate import evaluate_run  # noqa: E402
from vae_keras.evaluation.measures import MEASURES  # noqa: E402
from vae_keras.training.trainer import train  # noqa: E402

#: The evaluate measures the issue asks for (titles and formats: :mod:`vae_keras.evaluation.measures`).
COLUMNS = [MEASURES[key] for key in ("nll_iwae_bpd", "recon_psnr", "recon_ssim", "sharpness_ratio",
                                     "dense_mass_ratio", "c2st_accuracy", "frechet_distance", "memorisation_ratio")]


def _value(metrics: dict, key: str):
    """A measure from ``metrics.json``, searched one level deep (evaluate nests some groups)."""
    if key in metrics:
        return metrics[key]
    for v in metrics.values():
        if isinstance(v, dict) and key in v:
            return v[key]
    return None


def _phantoms(path: Path, n: int, size: int, preset: str, seed: int) -> Path:
    if not (path / "manifest.csv").exists():
        write_phantom_dataset(path, n, size=size, seed=seed, preset=preset, progress=False)
    return path


def _epochs_done(history: Path) -> int:
    return len(json.loads(history.read_text())) if history.exists() else 0


def _train(config, data: Path, run: Path, epochs: int, prior_epochs: int = 0, **kwargs) -> dict:
    """Train (or finish) one arm's run: ``epochs`` of the model and, for a two-stage configuration,
    ``prior_epochs`` of its prior (0: the configuration's default); a finished run is kept."""
    start, load0 = time.time(), load_average()
    config = config.replace(epochs=epochs, prior_epochs=prior_epochs or config.prior_epochs)
    two_stage = config.sampler == "diffusion"
    done = _epochs_done(run / "history.json") >= epochs and (
        not two_stage or _epochs_done(run / "prior" / "history.json") >= config.prior_epoch_count())
    if not done:
        train(config, data, run, resume=run.exists(), progress=False, callbacks=(), **kwargs)
    return {"seconds": time.time() - start, "loads": (load0, load_average())}


def prior_note(epochs: int) -> str:
    return f" (and {epochs} epochs of the prior)" if epochs else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=DEFAULT_CONFIG, help="configuration of all three runs (default: %(default)s)")
    p.add_argument("--size", type=int, default=64, help="image side (default: %(default)s)")
    p.add_argument("--n-source", type=int, default=3000, help="phantoms to pre-train on (default: %(default)s)")
    p.add_argument("--source-preset", choices=("belt", "gdxray"), default="belt",
                   help="phantom preset of the pre-training set (default: %(default)s)")
    p.add_argument("--target", type=Path, default=None,
                   help="a prepared set (e.g. real scans) to fine-tune on; default: --n-target gdxray phantoms")
    p.add_argument("--n-target", type=int, default=430,
                   help="gdxray phantoms of the small target set; 30%% go to its test split, so the "
                        "default leaves about 300 to train on (default: %(default)s)")
    p.add_argument("--source-epochs", type=int, default=12, help="pre-training epochs (default: %(default)s)")
    p.add_argument("--target-epochs", type=int, default=20,
                   help="epochs of each run on the target set, equal for both arms (default: %(default)s)")
    p.add_argument("--source-prior-epochs", type=int, default=0,
                   help="two-stage configurations: prior epochs of the pre-training (0: the configuration's)")
    p.add_argument("--target-prior-epochs", type=int, default=0,
                   help="two-stage configurations: prior epochs of each arm on the target (0: the configuration's)")
    p.add_argument("--finetune-lr-scale", type=float, default=0.0,
                   help="add an arm fine-tuned at this multiple of both stages' learning rates (0: no such arm)")
    p.add_argument("--n", type=int, default=200, help="generated images per evaluation (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("build/transfer"), help="data and runs (default: %(default)s)")
    p.add_argument("--table", type=Path, default=Path("figures/transfer.md"), help="results (default: %(default)s)")
    args = p.parse_args(argv)

    overall0 = load_average()
    config = get_config(args.config, quick=False, image_size=args.size)
    preset = args.source_preset
    source = _phantoms(args.out / f"{preset}{args.size}", args.n_source, args.size, preset, seed=1)
    target = args.target or _phantoms(args.out / f"gdxray{args.size}", args.n_target, args.size, "gdxray", seed=2)
    runs, timing = {}, {}
    pre = f"pre-train ({preset})"
    init_name = f"from {preset} weights"
    timing[pre] = _train(config, source, args.out / "runs" / "source", args.source_epochs, args.source_prior_epochs)
    arms = [("from scratch", "scratch", config, None), (init_name, "init", config, args.out / "runs" / "source")]
    if args.finetune_lr_scale:
        scaled = config.replace(learning_rate=config.learning_rate * args.finetune_lr_scale,
                                prior_learning_rate=config.prior_learning_rate * args.finetune_lr_scale)
        arms.append((f"{init_name}, learning rates x{args.finetune_lr_scale:g}", "init_lr", scaled,
                     args.out / "runs" / "source"))
    for name, run, cfg, init in arms:
        kwargs = {} if init is None else {"init_from": init}
        timing[name] = _train(cfg, target, args.out / "runs" / run, args.target_epochs, args.target_prior_epochs,
                              **kwargs)
    for name, run, _, _ in arms:
        runs[name] = evaluate_run(args.out / "runs" / run, target, n=args.n, k=16, n_likelihood=128,
                                  progress=False)
        print(name, {c.key: _value(runs[name], c.key) for c in COLUMNS}, flush=True)

    n_train = sum(1 for _ in (target / "train").glob("*.png"))
    header = ["arm", *[c.title for c in COLUMNS], "train time"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, metrics in runs.items():
        cells = [c.format(v if isinstance(v := _value(metrics, c.key), (int, float)) else None) for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {timing[name]['seconds'] / 60:.1f} min |")
    conditions = describe_conditions(detect_gpus(), os.cpu_count(), platform.machine(),
                                     overall=(overall0, load_average()),
                                     runs={k: v["loads"] for k, v in timing.items()})
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    text = (f"# Pre-training on phantoms, fine-tuning on a small set (`train --init-from`)\n\n"
            f"`{command}`\n\n{conditions}\n\n"
            f"Configuration `{args.config}`, {args.size}x{args.size}. Pre-trained on {args.n_source} `{preset}` "
            f"phantoms for {args.source_epochs} epochs{prior_note(args.source_prior_epochs)} "
            f"({timing[pre]['seconds'] / 60:.1f} min); then {args.target_epochs} epochs"
            f"{prior_note(args.target_prior_epochs)} on {n_train} training images of "
            f"{'`' + str(args.target) + '`' if args.target else 'the `gdxray` preset'}, from scratch and from the "
            f"pre-trained weights (equal fine-tuning work); evaluated on that set's test split "
            f"({args.n} generated images, IWAE k=16).\n\n" + "\n".join(lines) + "\n")
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
