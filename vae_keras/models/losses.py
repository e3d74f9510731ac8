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


# -- the improved configurations ----------------------------------------------------------------
#: Lower bound of the sigma-VAE's log standard deviation (Rybkin et al. 2021 clip it the same way).
MIN_LOG_SIGMA = -6.0


def gaussian_kl_per_dim(mean, logvar):
    """Closed-form ``KL(N(mean, exp(logvar)) || N(0, 1))`` per latent dimension -> (batch, latent)."""
    return 0.5 * (tf.square(mean) + tf.exp(logvar) - 1.0 - logvar)


def optimal_log_sigma(x, x_mean):
    """The sigma-VAE's analytic optimum: ``log sqrt(MSE)`` over the whole batch (one shared sigma)."""
    mse = tf.reduce_mean(tf.square(x - x_mean))
    return tf.maximum(0.5 * tf.math.log(mse + 1e-12), MIN_LOG_SIGMA)


def gaussian_nll(x, x_mean, log_sigma, axis=(1, 2, 3)):
    """``-log N(x; x_mean, exp(log_sigma)^2)`` summed over ``axis`` -> (batch,) nats."""
    return tf.reduce_sum(0.5 * tf.square((x - x_mean) * tf.exp(-log_sigma)) + log_sigma + 0.5 * LOG2PI,
                         axis=list(axis))


def continuous_bernoulli_log_norm(logits):
    """``log C(lambda)`` of the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019), elementwise.

    With ``lambda = sigmoid(l)``, ``C = l / tanh(l / 2)`` (2 at ``l = 0``). Adding it to the
    negative cross-entropy turns the seed's Bernoulli decoder into a proper density on [0, 1], so
    its likelihood can be compared with a Gaussian decoder's in bits per dimension.
    """
    small = tf.abs(logits) < 1e-3
    safe = tf.where(small, tf.ones_like(logits), logits)
    return tf.where(small, tf.math.log(2.0 + tf.square(logits) / 6.0),
                    tf.math.log(safe / tf.math.tanh(safe / 2.0)))


def loss_terms(model, x, y=None, eps=None, training=True, return_mean=False):
    """Per-example ``(recon, kl, kl_per_dim, log_sigma)`` for any configuration.

    With ``return_mean`` the decoded pixel means (batch, S, S, 1) come fifth (the adversarial
    loss judges them).

    ``recon`` is ``-log p(x|z)`` (nats/image): Bernoulli cross-entropy, or for ``gaussian_sigma``
    the Gaussian NLL with the batch's analytic optimal shared sigma (``log_sigma``, a scalar;
    0 for Bernoulli). ``kl`` is the closed-form KL when ``config.analytic_kl`` (``kl_per_dim``
    (batch, latent) then holds its terms, for free bits), else the seed's one-sample estimate.
    """
    cfg = model.config
    mean, logvar = model.encode(x, y=y, training=training)            # (batch, latent) each
    z = model.reparameterize(mean, logvar, eps=eps)
    out = model.decode(z, training=training, y=y)                     # (batch, S, S, 1) pre-sigmoid
    if cfg.likelihood == "gaussian_sigma":
        x_mean = tf.sigmoid(out)
        log_sigma = optimal_log_sigma(x, x_mean)
        recon = gaussian_nll(x, x_mean, log_sigma)
    else:
        log_sigma = tf.zeros(())
        recon = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(logits=out, labels=x), axis=[1, 2, 3])
    if cfg.analytic_kl:
        kl_per_dim = gaussian_kl_per_dim(mean, logvar)
        kl = tf.reduce_sum(kl_per_dim, axis=1)
    else:
        kl = log_normal_pdf(z, mean, logvar) - log_normal_pdf(z, 0.0, 0.0)
        kl_per_dim = tf.zeros_like(mean)
    if return_mean:
        return recon, kl, kl_per_dim, log_sigma, tf.sigmoid(out)
    return recon, kl, kl_per_dim, log_sigma


def free_bits_kl(kl_per_dim, free_bits: float):
    """Batch-mean KL with each dimension's mean KL floored at ``free_bits`` nats -> scalar.

    Below the floor a dimension's KL has no gradient, so the encoder is free to use it.
    """
    per_dim = tf.reduce_mean(kl_per_dim, axis=0)                      # (latent,)
    return tf.reduce_sum(tf.maximum(per_dim, free_bits))


def log_likelihood_terms(model, x, z, y=None):
    """``log p(x|z)`` (batch,) of a proper density on [0, 1]^D, for the evaluation's NLL.

    Gaussian decoders use the model's ``log_sigma`` (the running optimum from training);
    Bernoulli decoders are read as continuous Bernoulli densities (cross-entropy + log C).
    """
    out = model.decode(z, y=y)
    if model.config.likelihood == "gaussian_sigma":
        return -gaussian_nll(x, tf.sigmoid(out), tf.maximum(model.log_sigma, MIN_LOG_SIGMA))
    ce = tf.nn.sigmoid_cross_entropy_with_logits(logits=out, labels=x)
    return tf.reduce_sum(-ce + continuous_bernoulli_log_norm(out), axis=[1, 2, 3])
