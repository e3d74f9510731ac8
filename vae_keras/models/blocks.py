"""The residual block both autoencoders are built from.

``resnet`` and its descendants use it as it is; the ``latent`` autoencoder starts its residual
branch at zero (``zero_init=True``: the block begins as the identity), which lets a network with
no normalisation layers train stably from the first step (GroupNorm cost 35-70% of a step on the
2-core CPU, issue #14).
"""
from __future__ import annotations

import keras


class ResBlock(keras.layers.Layer):
    """``x + Conv(silu(Conv(silu(x))))``: two 3x3 convolutions on a residual path, same shape out.

    Args:
        filters: channels in and out.
        zero_init: start the second convolution's kernel (and bias) at zero, so the block is the
            identity at initialisation (norm-free networks).
    """

    def __init__(self, filters: int, zero_init: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.zero_init = bool(zero_init)
        self.conv1 = keras.layers.Conv2D(self.filters, 3, padding="same", activation="silu")
        self.conv2 = keras.layers.Conv2D(self.filters, 3, padding="same",
                                         kernel_initializer="zeros" if self.zero_init else "glorot_uniform")
        self.act = keras.layers.Activation("silu")

    def call(self, x):
        return x + self.conv2(self.conv1(self.act(x)))                # (batch, h, w, filters)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "zero_init": self.zero_init}
