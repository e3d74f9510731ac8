"""Pictures: figures for notebooks and run folders, and the self-contained HTML gallery.

Owns :mod:`.figures` (image grids, latent manifold, interpolation strips, training GIF, loss
curves; it may import :mod:`vae_keras.models`, :mod:`vae_keras.sampling.generate` and
:mod:`vae_keras.io` only, since the trainer draws its per-epoch grid with it) and :mod:`.gallery` (``gallery RUN``: one page with every
picture and the metrics table; its CSS and script are the package files ``gallery.css`` and
``gallery.js``; it may import every stage below the CLI).
"""
