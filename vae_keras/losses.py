"""The single-sample ELBO of the seed project, split into the terms we plot.

For one image ``x`` and one posterior draw ``z ~ q(z|x)``::

    -ELBO(x) = -log p(x|z) - [log p(z) - log q(z|x)]
             =    recon     +          kl            (a one-sample Monte-Carlo KL estimate)

``recon`` is the Bernoulli cross-entropy summed over pixels (nats per image). Losses are
returned *per example* so that the training loop can divide by the global batch size under
any ``tf.distribute`` strategy.
"""
from __future__ import annotations

import math

import tensorflow as tf

LOG2PI = math.log(2.0 * math.pi)


def log_normal_pdf(sample, mean, logvar, axis=1):
    """log N(sample; mean, exp(logvar)) summed over ``axis`` -> (batch,)."""
    return tf.reduce_sum(-0.5 * ((sample - mean) ** 2.0 * tf.exp(-logvar) + logvar + LOG2PI), axis=axis)


def elbo_terms(model, x, eps=None, training=True):
    """Per-example ``(recon, kl)`` of the single-sample negative ELBO, each (batch,).

    Args:
        model: a :class:`~vae_keras.model.CVAE`.
        x: images (batch, S, S, 1) in [0, 1] (continuous targets for the Bernoulli likelihood).
        eps: optional standard-normal noise (batch, latent_dim) for a reproducible draw.
    """
    mean, logvar = model.encode(x, training=training)          # (batch, latent) each
    z = model.reparameterize(mean, logvar, eps=eps)            # (batch, latent)
    x_logit = model.decode(z, training=training)               # (batch, S, S, 1)
    cross_ent = tf.nn.sigmoid_cross_entropy_with_logits(logits=x_logit, labels=x)
    recon = tf.reduce_sum(cross_ent, axis=[1, 2, 3])           # (batch,)  -log p(x|z)
    logpz = log_normal_pdf(z, 0.0, 0.0)
    logqz_x = log_normal_pdf(z, mean, logvar)
    return recon, logqz_x - logpz


def to_bits_per_dim(nats_per_image, image_size: int):
    """Convert a loss in nats per image to bits per pixel."""
    return nats_per_image / (math.log(2.0) * image_size * image_size)
