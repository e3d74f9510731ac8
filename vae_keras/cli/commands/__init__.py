"""One module per subcommand of ``python -m vae_keras``.

Each module has ``add_parser(subparsers)``, which declares the subcommand's flags and sets
``func`` to its ``run(args)``. ``run`` imports the stage it drives (TensorFlow included) when it
runs, so building the parser and ``--help`` stay fast. May import every other part of the package.
"""
