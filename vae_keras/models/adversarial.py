"""An optional adversarial patch loss that sharpens the decoder (``adversarial_weight`` > 0).

Why: a Gaussian (or Bernoulli) decoder is trained to predict each pixel's mean, and the mean of
the images a latent could stand for is blurry. A patch discriminator (Isola et al. 2017) that
tells real 22x22-pixel patches from decoded ones rewards the decoder for crisp edges and
texture where the pixel loss is indifferent; VQGAN (Esser et al. 2021) adds the same term to an
autoencoder's reconstruction loss, with the adaptive weight used here so that neither term
swamps the other:

    lambda = adversarial_weight * ||grad_w recon|| / (||grad_w g_loss|| + 1e-4),   w = decoder's last kernel

The discriminator only trains the decoder's *reconstructions* (the samples come from the mixture
fitted after training), with the hinge loss, and starts after ``adversarial_start_epoch`` epochs
so that it first faces reconstructions worth criticising. Under ``tf.distribute`` each replica
computes the adaptive weight from its own share of the batch (the same ratio, up to noise). It is part of training only: a run's
checkpoint holds it, ``load_run`` does not need it.
"""
from __future__ import annotations

import keras
import tensorflow as tf


def patch_discriminator(image_size: int, width: int = 32, name: str = "patch_discriminator") -> keras.Model:
    """PatchGAN: (batch, S, S, 1) in [0, 1] -> (batch, S/4, S/4, 1) logits, one per ~22x22 patch."""
    inputs = keras.Input((image_size, image_size, 1))
    h = keras.layers.Conv2D(width, 4, strides=2, padding="same")(inputs * 2.0 - 1.0)   # (S/2, S/2, w)
    h = keras.layers.LeakyReLU(0.2)(h)
    h = keras.layers.Conv2D(2 * width, 4, strides=2, padding="same")(h)                # (S/4, S/4, 2w)
    h = keras.layers.LeakyReLU(0.2)(h)
    h = keras.layers.Conv2D(4 * width, 3, padding="same")(h)
    h = keras.layers.LeakyReLU(0.2)(h)
    logits = keras.layers.Conv2D(1, 3, padding="same", dtype="float32")(h)             # (S/4, S/4, 1)
    return keras.Model(inputs, logits, name=name)


def hinge_discriminator_loss(real_logits, fake_logits):
    """Per-example hinge loss of the discriminator -> (batch,)."""
    real = tf.reduce_mean(tf.nn.relu(1.0 - real_logits), axis=[1, 2, 3])
    fake = tf.reduce_mean(tf.nn.relu(1.0 + fake_logits), axis=[1, 2, 3])
    return real + fake


def generator_loss(fake_logits):
    """Per-example adversarial loss of the decoder (the hinge generator loss) -> (batch,)."""
    return -tf.reduce_mean(fake_logits, axis=[1, 2, 3])


def adaptive_weight(recon_grad, adv_grad, max_weight: float = 1e4):
    """VQGAN's balance: ``||recon_grad|| / (||adv_grad|| + 1e-4)``, clipped, with no gradient."""
    w = tf.norm(recon_grad) / (tf.norm(adv_grad) + 1e-4)
    return tf.stop_gradient(tf.clip_by_value(w, 0.0, max_weight))
