"""Prepared data sets into tensors: the ``tf.data`` input pipeline and the threat box maps.

Owns :mod:`.pipeline` (decode a prepared folder once, cache, shuffle, flip, batch) and
:mod:`.layouts` (manifest boxes at a given size, rasterised into (S/4, S/4, classes) maps for
the ``layout`` configuration). May import :mod:`vae_keras.io` and :mod:`vae_keras.config` only.
"""
