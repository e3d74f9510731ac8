"""The convolutional VAE: a ``tf.keras.Model`` subclass with the paper's names.

Encoder ``q(z|x)``: strided 3x3 convolutions -> ``Dense(2 * latent_dim)`` split into the
posterior mean and log-variance (a diagonal Gaussian). Decoder ``p(x|z)``: ``Dense`` ->
reshape to a quarter-size feature map -> strided transposed convolutions -> one channel of
Bernoulli logits. Prior ``p(z) = N(0, I)``.

For the ``seed`` configuration the layers are exactly the 2021 project's (and the TensorFlow
CVAE tutorial's)::

    encoder: (S, S, 1) -> Conv2D(32, 3, s2, valid) -> Conv2D(64, 3, s2, valid) -> Flatten
             -> Dense(2 * latent)
    decoder: (latent,) -> Dense(S/4 * S/4 * 32) -> Reshape(S/4, S/4, 32)
             -> Conv2DTranspose(64, 3, s2, same) -> Conv2DTranspose(32, 3, s2, same)
             -> Conv2DTranspose(1, 3, s1, same)          # (batch, S, S, 1) logits

The ``resnet`` architecture (``architecture="resnet"``) puts ``res_blocks`` residual blocks at
every scale; for ``encoder_filters=(32, 64, 128)`` at 64x64::

    encoder: (64, 64, 1) -> [Conv2D(f, 3, s2) + ResBlock(f)] for f in 32, 64, 128  # (8, 8, 128)
             -> Flatten -> Dense(2 * latent)
    decoder: (latent,) -> Dense(8 * 8 * 128) -> Reshape(8, 8, 128)
             -> [ResBlock(f) + Conv2DTranspose(next f, 3, s2)] for f in 128, 64, 32     # (64, 64, 16)
             -> Conv2D(1, 3)                                                         # (64, 64, 1)

The ``latent`` architecture encodes to a spatial map (S/f, S/f, c) and decodes by resize + conv
(:mod:`vae_keras.models.latent`); its latent vectors are the flattened maps.

A ``conditional`` model also takes the multi-hot threat labels ``y`` (batch, num_classes): the
encoder sees them as constant extra image channels, the decoder as extra latent inputs. Without
``y`` a conditional model is conditioned on "benign" (all zeros).

A ``layout`` model takes layout maps ``y`` (batch, S/4, S/4, num_classes) instead, the share of
each cell covered by each class's boxes (:mod:`vae_keras.data.layouts`): the encoder sees them
resized to (S, S) as extra channels, and the decoder concatenates them, resized, to its features
at every scale (a 3x3 conv mixes them in) and once more before its output conv::

    decoder: z -> Dense -> (S/8, S/8, 128)
             -> [concat(layout at this side) + Conv2D(f, 3) + ResBlock(f) + Conv2DTranspose] x 3
             -> concat(layout at S) -> Conv2D(1, 3)                          # (batch, S, S, 1)

A multi-hot vector given to a layout model means "these classes, anywhere" (a map of ones),
which is also how images labelled without boxes are trained.

With ``likelihood="gaussian_sigma"`` the decoder's output is still pre-sigmoid: its sigmoid is
the Gaussian mean, and ``log_sigma`` (a non-trainable weight, the running average of the
analytic optimal log standard deviation seen in training) is the variance used for evaluation.
"""
from __future__ import annotations

import tensorflow as tf
import keras

from vae_keras.config import VAEConfig
from vae_keras.data.layouts import layout_side
from vae_keras.models.blocks import ResBlock
from vae_keras.models.latent import latent_decoder, latent_encoder, split_moments


def _resnet_encoder(config: VAEConfig, channels: int) -> keras.Sequential:
    s = config.image_size
    enc = keras.Sequential(name="encoder")
    enc.add(keras.layers.InputLayer(shape=(s, s, channels)))
    for filters in config.encoder_filters:  # each halves the side: (batch, s/2, s/2, 32) ...
        enc.add(keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="silu"))
        for _ in range(config.res_blocks):
            enc.add(ResBlock(filters))
    enc.add(keras.layers.Activation("silu"))
    enc.add(keras.layers.Flatten())                                     # (batch, s/8 * s/8 * 128)
    enc.add(keras.layers.Dense(2 * config.latent_dim, dtype="float32"))                  # (batch, 2 * latent)
    return enc


def _resnet_decoder(config: VAEConfig, inputs: int) -> keras.Sequential:
    s = config.image_size
    base = s // 2 ** len(config.decoder_filters)
    filters = config.decoder_filters
    dec = keras.Sequential(name="decoder")
    dec.add(keras.layers.InputLayer(shape=(inputs,)))
    dec.add(keras.layers.Dense(base * base * filters[0], activation="silu"))
    dec.add(keras.layers.Reshape((base, base, filters[0])))            # (batch, s/8, s/8, 128)
    for i, f in enumerate(filters):  # each doubles the side
        for _ in range(config.res_blocks):
            dec.add(ResBlock(f))
        out = filters[i + 1] if i + 1 < len(filters) else max(f // 2, 8)
        dec.add(keras.layers.Conv2DTranspose(out, 3, strides=2, padding="same", activation="silu"))
    dec.add(keras.layers.Conv2D(1, 3, padding="same", dtype="float32"))  # (batch, s, s, 1) pre-sigmoid
    return dec


def _layout_decoder(config: VAEConfig) -> keras.Model:
    """The residual decoder with the layout maps concatenated at every scale (two inputs: z, maps)."""
    s = config.image_size
    filters = config.decoder_filters
    base = s // 2 ** len(filters)
    side = layout_side(s)
    z = keras.Input((config.latent_dim,), name="z")
    maps = keras.Input((side, side, config.num_classes), name="layout")   # (batch, S/4, S/4, C)

    def at(size):  # the layout at a feature map's side
        return maps if size == side else keras.layers.Resizing(size, size, interpolation="bilinear")(maps)

    h = keras.layers.Dense(base * base * filters[0], activation="silu")(z)
    h = keras.layers.Reshape((base, base, filters[0]))(h)               # (batch, S/8, S/8, 128)
    for i, f in enumerate(filters):  # each doubles the side
        size = base * 2 ** i
        h = keras.layers.Concatenate()([h, at(size)])                   # (batch, size, size, f + C)
        h = keras.layers.Conv2D(f, 3, padding="same", activation="silu")(h)
        for _ in range(config.res_blocks):
            h = ResBlock(f)(h)
        out = filters[i + 1] if i + 1 < len(filters) else max(f // 2, 8)
        h = keras.layers.Conv2DTranspose(out, 3, strides=2, padding="same", activation="silu")(h)
    h = keras.layers.Concatenate()([h, at(s)])                          # (batch, S, S, 16 + C)
    out = keras.layers.Conv2D(1, 3, padding="same", dtype="float32")(h)  # (batch, S, S, 1) pre-sigmoid
    return keras.Model([z, maps], out, name="decoder")


class CVAE(keras.Model):
    """Convolutional variational autoencoder.

    Args:
        config: the run's :class:`~vae_keras.config.VAEConfig`.

    Example:
        >>> model = build_model(get_config("seed", image_size=32, latent_dim=2))
        >>> mean, logvar = model.encode(tf.zeros((1, 32, 32, 1)))   # (1, 2), (1, 2)
        >>> model.decode(model.reparameterize(mean, logvar)).shape
        TensorShape([1, 32, 32, 1])
    """

    def __init__(self, config: VAEConfig, **kwargs):
        super().__init__(name=kwargs.pop("name", f"cvae_{config.name}"), **kwargs)
        config.validate()
        self.config = config
        self.latent_dim = config.latent_dim
        self.conditional = bool(config.conditional)
        self.num_classes = int(config.num_classes)
        self.layout = bool(config.layout)
        s = config.image_size
        down = 2 ** len(config.encoder_filters)
        if config.likelihood == "gaussian_sigma":
            self.log_sigma = self.add_weight(name="log_sigma", shape=(), initializer="zeros", trainable=False)
        self.spatial = config.architecture == "latent"
        if self.spatial:  # a latent map (S/f, S/f, c), flattened: see vae_keras.models.latent
            self.encoder = latent_encoder(config)
            self.decoder = latent_decoder(config)
            return
        if config.architecture == "resnet":
            extra = self.num_classes if self.conditional else 0
            self.encoder = _resnet_encoder(config, 1 + extra)
            self.decoder = (_layout_decoder(config) if self.layout
                            else _resnet_decoder(config, config.latent_dim + extra))
            return

        self.encoder = keras.Sequential(name="encoder")
        self.encoder.add(keras.layers.InputLayer(shape=(s, s, 1)))
        for filters in config.encoder_filters:  # each halves the side: (batch, s/2, s/2, filters) ...
            self.encoder.add(keras.layers.Conv2D(filters, 3, strides=2, activation="relu"))
        self.encoder.add(keras.layers.Flatten())
        self.encoder.add(keras.layers.Dense(2 * config.latent_dim, dtype="float32"))  # (batch, 2 * latent) = [mean | logvar]

        base = s // down
        first = config.decoder_filters[-1]  # the seed reshapes to 32 channels before upsampling
        self.decoder = keras.Sequential(name="decoder")
        self.decoder.add(keras.layers.InputLayer(shape=(config.latent_dim,)))
        self.decoder.add(keras.layers.Dense(base * base * first, activation="relu"))
        self.decoder.add(keras.layers.Reshape((base, base, first)))  # (batch, s/4, s/4, 32)
        for filters in config.decoder_filters:  # each doubles the side
            self.decoder.add(keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                                          activation="relu"))
        self.decoder.add(keras.layers.Conv2DTranspose(1, 3, strides=1, padding="same", dtype="float32"))  # (batch, s, s, 1) logits

    # -- the VAE's four verbs ----------------------------------------------------------------
    def _labels(self, y, batch):
        """The condition (batch, num_classes) float32: ``y``, or zeros (benign) when ``y`` is None.

        A layout model's condition is (batch, S/4, S/4, num_classes) (see :meth:`_layout_maps`).
        """
        if self.layout:
            return self._layout_maps(y, batch)
        if y is None:
            return tf.zeros((batch, self.num_classes), tf.float32)
        y = tf.cast(y, tf.float32)
        if y.shape.rank == 1:                                             # one label vector for all
            y = tf.tile(y[None], (batch, 1))
        return y

    def _layout_maps(self, y, batch):
        """Layout maps (batch, L, L, C) float32 from maps, one map, multi-hot vectors ("anywhere") or None."""
        side = layout_side(self.config.image_size)
        if y is None:
            return tf.zeros((batch, side, side, self.num_classes), tf.float32)
        y = tf.cast(y, tf.float32)
        if y.shape.rank in (1, 3):                                        # one condition for all
            y = tf.repeat(y[None], batch, axis=0)
        if y.shape.rank == 2:                                             # labels: the whole map
            y = tf.tile(y[:, None, None, :], (1, side, side, 1))
        return y                                                          # (batch, L, L, C)

    def encode(self, x, y=None, training=False):
        """``x`` (batch, S, S, 1) in [0, 1] -> ``(mean, logvar)``, each (batch, latent_dim).

        The log-variance is clipped to ``[-logvar_clip, logvar_clip]`` so that ``exp`` in the
        reparameterization and the KL term can never overflow to inf. ``y`` (batch, num_classes)
        is used by a conditional model only.
        """
        if self.conditional:
            x = tf.cast(x, tf.float32)  # Keras may hand a mixed-precision model bfloat16/float16 inputs
            y = self._labels(y, tf.shape(x)[0])
            if self.layout:
                s = self.config.image_size
                y = tf.image.resize(y, (s, s), method="bilinear")          # (batch, S, S, C)
            else:
                y = y[:, None, None, :]                                     # (batch, 1, 1, C)
            x = tf.concat([x, y * tf.ones_like(x)], axis=-1)               # (batch, S, S, 1 + C)
        h = self.encoder(x, training=training)
        if self.spatial:                                                  # (batch, S/f, S/f, 2c) -> flat
            mean, logvar = split_moments(h)
        else:
            mean, logvar = tf.split(h, num_or_size_splits=2, axis=1)
        clip = self.config.logvar_clip
        return mean, tf.clip_by_value(logvar, -clip, clip)

    def reparameterize(self, mean, logvar, eps=None):
        """``z = mean + sigma * eps`` with ``eps ~ N(0, I)``: sampling made differentiable."""
        if eps is None:
            eps = tf.random.normal(shape=tf.shape(mean))
        return eps * tf.exp(logvar * 0.5) + mean

    def decode(self, z, apply_sigmoid=False, training=False, y=None):
        """``z`` (batch, latent_dim) -> logits (batch, S, S, 1), or their sigmoid (the pixel means).

        ``y`` (batch, num_classes) or (num_classes,) is used by a conditional model only (a layout
        model's maps, or labels meaning "anywhere").
        """
        if self.layout:
            z = tf.cast(z, tf.float32)
            logits = self.decoder([z, self._labels(y, tf.shape(z)[0])], training=training)
            return tf.sigmoid(logits) if apply_sigmoid else logits
        if self.conditional:
            z = tf.cast(z, tf.float32)
            z = tf.concat([z, self._labels(y, tf.shape(z)[0])], axis=1)    # (batch, latent + C)
        logits = self.decoder(z, training=training)
        return tf.sigmoid(logits) if apply_sigmoid else logits

    def sample(self, n=16, eps=None, temperature=1.0, seed=None, y=None):
        """Decode ``n`` draws from the prior ``N(0, temperature^2 I)`` -> (n, S, S, 1) in [0, 1]."""
        if eps is None:
            eps = tf.random.normal(shape=(n, self.latent_dim), seed=seed)
        eps = tf.convert_to_tensor(eps, tf.float32) * temperature
        return self.decode(eps, apply_sigmoid=True, y=y)

    def call(self, x, training=False, y=None):
        """Reconstruction logits of ``x`` through a single posterior sample (Keras' entry point)."""
        mean, logvar = self.encode(x, y=y, training=training)
        return self.decode(self.reparameterize(mean, logvar), training=training, y=y)

    def get_config(self):
        return {"config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(VAEConfig.from_dict(config["config"]))


def build_model(config: VAEConfig) -> CVAE:
    """A built :class:`CVAE` (weights created, so ``summary()`` and ``count_params()`` work)."""
    model = CVAE(config)
    s = config.image_size
    model(tf.zeros((1, s, s, 1)))  # creates every weight: (1, S, S, 1) -> (1, S, S, 1)
    return model
