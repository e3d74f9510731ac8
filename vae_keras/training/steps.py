"""One optimisation step per objective: the seed's ELBO, the improved VAE losses, the adversarial term.

Each step takes the model, its optimizer and one replica's batch, differentiates its loss under a
``tf.GradientTape``, applies the gradients and returns the loss terms. The trainer
(:mod:`vae_keras.training.trainer`) picks the step for its configuration, wraps it in
``tf.function`` and runs it on every replica of a ``tf.distribute`` strategy.

``global_batch`` is the number of examples in the step's *global* batch (all replicas together):
each replica divides its summed loss by it, so the gradients summed over replicas are exactly the
mean gradient one device would compute, and a smaller last batch is weighted right.

``eps`` is the reparameterization noise (batch, latent_dim), drawn statelessly from
``(seed, epoch, step)`` by the input pipeline, so a resumed run sees the same noise.
"""
from __future__ import annotations

import tensorflow as tf

from vae_keras.models.adversarial import adaptive_weight, generator_loss, hinge_discriminator_loss
from vae_keras.models.latent import latent_loss_terms
from vae_keras.models.losses import elbo_terms, free_bits_kl, loss_terms


# -- the seed: the single-sample ELBO, as in the TensorFlow CVAE tutorial ----------------------
def elbo_step(model, optimizer, x, eps, global_batch):
    """One Adam step on the negative ELBO; returns the per-example ``(recon, kl)``, (batch,) each."""
    with tf.GradientTape() as tape:
        recon, kl = elbo_terms(model, x, eps=eps, training=True)        # (batch,) each
        loss = tf.reduce_sum(recon + kl) / global_batch
        scaled = optimizer.scale_loss(loss)              # unchanged unless mixed float16
    grads = tape.gradient(scaled, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return recon, kl


# -- the improved configurations ------------------------------------------------------------------
def kl_weight(step, warmup_steps: int):
    """The KL weight (beta) at optimizer step ``step`` (0-based): rises linearly to 1 over ``warmup_steps``."""
    if warmup_steps <= 0:
        return tf.constant(1.0)
    return tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(warmup_steps))


def weighted_loss(model, x, y, eps, global_batch, beta, free_bits: float = 0.0):
    """The improved configurations' loss: ``(loss, recon, kl, log_sigma, x_mean)``.

    ``recon + beta * KL`` summed over the batch and divided by ``global_batch``, with the
    sigma-VAE's likelihood when the model has one (:func:`~vae_keras.models.losses.loss_terms`).
    With ``free_bits`` > 0 the KL is the batch-mean KL per dimension floored at ``free_bits``
    (on this replica's batch), times the batch size. ``recon`` and ``kl`` are per example
    (batch,); ``x_mean`` (batch, S, S, 1) holds the decoded pixel means.
    """
    recon, kl, kl_per_dim, log_sigma, x_mean = loss_terms(model, x, y=y, eps=eps, training=True,
                                                          return_mean=True)
    if free_bits > 0:
        kl_term = free_bits_kl(kl_per_dim, free_bits) * tf.cast(tf.shape(x)[0], tf.float32)
    else:
        kl_term = tf.reduce_sum(kl)
    loss = (tf.reduce_sum(recon) + beta * kl_term) / global_batch
    return loss, recon, kl, log_sigma, x_mean


def weighted_elbo_step(model, optimizer, x, y, eps, global_batch, beta, free_bits: float = 0.0):
    """One Adam step on :func:`weighted_loss` (KL warm-up, free bits, sigma-VAE, labels).

    Returns ``(recon, kl, log_sigma)``: per-example terms and the batch's optimal log sigma (0 for
    a Bernoulli decoder).
    """
    with tf.GradientTape() as tape:
        loss, recon, kl, log_sigma, _ = weighted_loss(model, x, y, eps, global_batch, beta, free_bits)
        scaled = optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return recon, kl, log_sigma


# -- the spatial-latent autoencoder (the first stage of ``latent``) -----------------------------
def latent_step(model, optimizer, x, y, eps, global_batch, beta, free_bits: float = 0.0):
    """One Adam step on pixel L1 + Laplacian L1 + ``beta`` * weighted mean KL per latent element.

    The same signature as :func:`weighted_elbo_step` (``y`` and ``free_bits`` are unused: the
    autoencoder is unconditional); returns ``(recon, kl, log_sigma)`` of
    :func:`~vae_keras.models.latent.latent_loss_terms`.
    """
    with tf.GradientTape() as tape:
        recon, kl, log_sigma, _ = latent_loss_terms(model, x, eps=eps, training=True)   # (batch,) each
        loss = tf.reduce_sum(recon + beta * kl) / global_batch
        scaled = optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return recon, kl, log_sigma


class AdversarialStep:
    """The VAE step plus a patch discriminator's judgement of the reconstructions, then a discriminator step.

    The generator term's weight adapts each step (VQGAN's rule, :func:`~vae_keras.models.adversarial.adaptive_weight`):
    the ratio of the reconstruction loss's and the adversarial loss's gradient norms at the decoder's
    last kernel, times ``weight``. The discriminator then takes one hinge-loss step of its own
    optimizer on real images against the (fixed) reconstructions.

    Args:
        discriminator: the patch discriminator (:func:`~vae_keras.models.adversarial.patch_discriminator`).
        d_optimizer: its optimizer.
        weight: ``config.adversarial_weight``.
    """

    def __init__(self, discriminator, d_optimizer, weight: float):
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.weight = weight

    def __call__(self, model, optimizer, x, y, eps, global_batch, beta, free_bits: float = 0.0):
        """Returns ``(recon, kl, log_sigma, discriminator loss, adaptive weight)``."""
        with tf.GradientTape(persistent=True) as tape:
            loss, recon, kl, log_sigma, x_mean = weighted_loss(model, x, y, eps, global_batch, beta, free_bits)
            scaled = optimizer.scale_loss(loss)
            g_loss = tf.reduce_sum(generator_loss(self.discriminator(x_mean, training=False))) / global_batch
            g_scaled = optimizer.scale_loss(g_loss)
        last = model.decoder.layers[-1].kernel                          # the decoder's last kernel
        weight = self.weight * adaptive_weight(tape.gradient(scaled, last), tape.gradient(g_scaled, last))
        grads = tape.gradient([scaled, g_scaled], model.trainable_variables,
                              output_gradients=[tf.ones_like(scaled), tf.ones_like(g_scaled) * weight])
        del tape
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        d_loss = self.discriminator_step(x, tf.stop_gradient(x_mean), global_batch)
        return recon, kl, log_sigma, d_loss, weight

    def discriminator_step(self, real, fake, global_batch):
        """One hinge-loss step of the discriminator; returns its loss (summed / ``global_batch``)."""
        with tf.GradientTape() as tape:
            d_loss = tf.reduce_sum(hinge_discriminator_loss(self.discriminator(real, training=True),
                                                            self.discriminator(fake, training=True))) / global_batch
            scaled = self.d_optimizer.scale_loss(d_loss)
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return d_loss
