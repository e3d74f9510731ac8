"""``python -m vae_keras``: a thin command line over the library, one subcommand per step.

    phantoms  -> write the procedural phantom data set (the embedded default data)
    prepare   -> import a folder of real scans (GDXray, SIXray, any images) into the same layout
    objects   -> cut the boxed threats of a data set out, as the training set of an object VAE
    train     -> train a configuration on a prepared data set, with checkpoints and --resume
    generate  -> sample N images from a trained run: PNG + manifest.csv, or YOLO/VOC/CSV with boxes
    evaluate  -> measure a trained run (likelihood, sharpness, two-sample test, ...) -> RUN/metrics.json
    gallery   -> a static HTML page of a trained run (samples, reconstructions, metrics)
    demo      -> the main job: phantoms -> train -> generate -> sample grid, GIF, interpolations

Each subcommand is one module of :mod:`vae_keras.cli.commands` (its flags and its ``run``).
Expected failures (:class:`vae_keras.errors.XrayVaeError`: bad data, an existing run, a NaN
loss; and missing or misplaced files) print one ``error:`` line and exit with status 2. Anything
else is a bug: Python shows its traceback and the status is 1.
"""
from __future__ import annotations

import argparse
import sys

from vae_keras.cli.commands import demo, evaluate, gallery, generate, objects, phantoms, prepare, train
from vae_keras.errors import XrayVaeError

#: The subcommands in the order ``--help`` lists them (the order of the work).
COMMANDS = (phantoms, prepare, objects, train, generate, evaluate, gallery, demo)

EXIT_USAGE = 2

#: Besides the project's own errors, the file-system errors about a path the user gave are
#: expected too: the message names the path, and a traceback would add nothing.
EXPECTED = (XrayVaeError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)

#: What an interrupted command keeps, and how to continue.
RESUME_HINTS = {"train": "finished epochs are checkpointed; rerun with --resume to continue",
                "demo": "rerun the same command to continue where it stopped"}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; builds without importing TensorFlow."""
    p = argparse.ArgumentParser(
        prog="python -m vae_keras",
        description="Generate synthetic grayscale X-ray baggage images with a variational autoencoder.",
        epilog="Each subcommand has its own --help. Quick mode: set XRAY_VAE_QUICK=1 or pass --quick.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    """Run one subcommand; returns the exit status (0, 2 for an expected error, 130 on Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EXPECTED as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        hint = RESUME_HINTS.get(args.command, "complete files are kept and listed in the manifest; rerun to finish")
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    return 0
