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
"""
from __future__ import annotations

import tensorflow as tf
import keras

from vae_keras.config import VAEConfig


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
        s = config.image_size
        down = 2 ** len(config.encoder_filters)

        self.encoder = keras.Sequential(name="encoder")
        self.encoder.add(keras.layers.InputLayer(shape=(s, s, 1)))
        for filters in config.encoder_filters:  # each halves the side: (batch, s/2, s/2, filters) ...
            self.encoder.add(keras.layers.Conv2D(filters, 3, strides=2, activation="relu"))
        self.encoder.add(keras.layers.Flatten())
        self.encoder.add(keras.layers.Dense(2 * config.latent_dim))  # (batch, 2 * latent) = [mean | logvar]

        base = s // down
        first = config.decoder_filters[-1]  # the seed reshapes to 32 channels before upsampling
        self.decoder = keras.Sequential(name="decoder")
        self.decoder.add(keras.layers.InputLayer(shape=(config.latent_dim,)))
        self.decoder.add(keras.layers.Dense(base * base * first, activation="relu"))
        self.decoder.add(keras.layers.Reshape((base, base, first)))  # (batch, s/4, s/4, 32)
        for filters in config.decoder_filters:  # each doubles the side
            self.decoder.add(keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                                          activation="relu"))
        self.decoder.add(keras.layers.Conv2DTranspose(1, 3, strides=1, padding="same"))  # (batch, s, s, 1) logits

    # -- the VAE's four verbs ----------------------------------------------------------------
    def encode(self, x, training=False):
        """``x`` (batch, S, S, 1) in [0, 1] -> ``(mean, logvar)``, each (batch, latent_dim).

        The log-variance is clipped to ``[-logvar_clip, logvar_clip]`` so that ``exp`` in the
        reparameterization and the KL term can never overflow to inf.
        """
        h = self.encoder(x, training=training)
        mean, logvar = tf.split(h, num_or_size_splits=2, axis=1)
        clip = self.config.logvar_clip
        return mean, tf.clip_by_value(logvar, -clip, clip)

    def reparameterize(self, mean, logvar, eps=None):
        """``z = mean + sigma * eps`` with ``eps ~ N(0, I)``: sampling made differentiable."""
        if eps is None:
            eps = tf.random.normal(shape=tf.shape(mean))
        return eps * tf.exp(logvar * 0.5) + mean

    def decode(self, z, apply_sigmoid=False, training=False):
        """``z`` (batch, latent_dim) -> Bernoulli logits (batch, S, S, 1), or probabilities."""
        logits = self.decoder(z, training=training)
        return tf.sigmoid(logits) if apply_sigmoid else logits

    def sample(self, n=16, eps=None, temperature=1.0, seed=None):
        """Decode ``n`` draws from the prior ``N(0, temperature^2 I)`` -> (n, S, S, 1) in [0, 1]."""
        if eps is None:
            eps = tf.random.normal(shape=(n, self.latent_dim), seed=seed)
        eps = tf.convert_to_tensor(eps, tf.float32) * temperature
        return self.decode(eps, apply_sigmoid=True)

    def call(self, x, training=False):
        """Reconstruction logits of ``x`` through a single posterior sample (Keras' entry point)."""
        mean, logvar = self.encode(x, training=training)
        return self.decode(self.reparameterize(mean, logvar), training=training)

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
