"""The command line ``python -m vae_keras COMMAND``: a thin layer over the library.

Owns argument parsing and one small function per subcommand; each imports the stage it needs
when it runs, so ``--help`` never loads TensorFlow. Expected problems (:class:`vae_keras.errors.XrayVaeError`)
print one ``error:`` line and exit with status 2; anything else is a bug and shows its traceback.
May import every other part of the package.
"""
from vae_keras.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
