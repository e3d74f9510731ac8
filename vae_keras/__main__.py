"""Entry point of ``python -m vae_keras``."""
import sys

from vae_keras.cli import main

sys.exit(main())
