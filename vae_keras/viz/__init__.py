"""Pictures: figures for notebooks and run folders, and the self-contained HTML gallery.

Owns :mod:`.figures` (image grids, latent manifold, interpolation strips, training GIF, loss
curves, the figures every run ends with), :mod:`.finish` (``finish_run``: what ``train``,
``demo`` and ``make_figures`` do with a trained run: its figures and, when asked, its metrics)
and :mod:`.gallery` (``gallery RUN``: one page with every picture and the metrics table; its CSS
and script are the package files ``gallery.css`` and ``gallery.js``). May import every stage below
the CLI.
"""
