"""A learned prior over the spatial latents: a small denoising U-Net, its noise schedule and DDIM.

The ``latent`` configuration's autoencoder (:mod:`vae_keras.models.latent`) keeps the threats in
its latent map, but N(0, I) draws of that map decode to noise textures (two-sample accuracy
1.00, issue #14): the map's channels are correlated across space. So, as in latent diffusion,
a second network learns the distribution of the (standardised) training latents by denoising,
and samples start from noise and are denoised step by step. The recipe follows keras-io's
"Denoising Diffusion Implicit Models" (continuous time, the cosine-like schedule between signal
rates 0.95 and 0.02, the network predicts the noise, the sinusoidal embedding of the noise
variance), over a (S/f, S/f, c) latent map instead of pixels.

Forward noising at time t in [0, 1] with ``(noise_rate, signal_rate) = diffusion_schedule(t)``
(``noise_rate^2 + signal_rate^2 = 1``)::

    x_t = signal_rate * x_0 + noise_rate * eps,      eps ~ N(0, I)

DDIM (Song et al. 2021) inverts it deterministically: given the predicted noise,
``x_0 = (x_t - noise_rate * eps) / signal_rate`` and the next, less noisy point is
``signal_next * x_0 + noise_next * eps`` (:func:`ddim_step`).

What the network predicts (``prior_target``): the noise ``eps`` (keras-io's choice), or the
velocity ``v = signal_rate * eps - noise_rate * x_0`` (Salimans & Ho 2022). Near t = 1 the signal
rate is 0.02, so an eps-network's error is amplified 50 times in ``x_0``; a v-network reads ``x_0``
off as ``signal_rate * x_t - noise_rate * v`` without that division. Both give the same clean
estimate from their true targets (:func:`clean_and_noise`). Min-SNR weighting (Hang et al. 2023,
``prior_min_snr``) caps each example's weight at ``gamma`` over its signal-to-noise ratio, so the
nearly-clean times, easy and many, stop dominating the gradient (:func:`min_snr_weights`).

Classifier-free guidance (Ho & Salimans 2022): one network sees the labels, or (with probability
``label_dropout`` in training) none; at sampling time
``eps = eps_uncond + guidance * (eps_cond - eps_uncond)`` (:func:`guided_noise`). The condition
is ``[1, multi-hot labels]``, and "no condition" is all zeros, so "benign" (a 1 and zero labels)
is a condition of its own.

The U-Net (widths 48/96/160 at 16x16x4: 1.1M parameters, as in the issue's experiment; one residual
block per level, no normalisation, each residual branch's last conv starting at zero; optional
self-attention over the positions of the lowest resolution, ``prior_attention`` heads)::

    (16, 16, 4) -> Conv2D(48, 1) -> Block(48) -> AvgPool -> Block(96) -> AvgPool    # (4, 4, 96)
       -> Block(160) [-> SpatialSelfAttention]                                       # (4, 4, 160)
       -> Up + concat(skip) + Block(96) -> Up + concat(skip) + Block(48)             # (16, 16, 48)
       -> Conv2D(4, 1, zeros)                                                        # predicted noise
    every Block adds Dense(embedding) per channel; embedding = MLP(sin/cos(noise variance), labels)

Roles are split as in diffusers: this module owns the network and the scheduler functions; the
sampler that uses a trained run is :class:`vae_keras.samplers.diffusion.DiffusionSampler`, its
training :mod:`vae_keras.samplers.diffusion_training`.
"""
from __future__ import annotations

import math
import weakref

import numpy as np
import tensorflow as tf
import keras

#: Where a run keeps its prior stage: RUN/prior/ with its own checkpoints, history, logs and the latent statistics.
PRIOR_DIR = "prior"
STATS_FILE = "latent_stats.npz"
#: keras-io's signal rates at t = 0 and t = 1 (the cosine schedule between them; no t where the signal is exactly 0 or 1).
MAX_SIGNAL_RATE = 0.95
MIN_SIGNAL_RATE = 0.02
EMBEDDING_DIMS = 32
#: What the U-Net can be trained to predict: the noise, or the velocity (see the module docstring).
TARGETS = ("eps", "v")


def diffusion_schedule(t):
    """``(noise_rates, signal_rates)`` at diffusion times ``t`` in [0, 1] (any shape); their squares sum to 1."""
    t = tf.convert_to_tensor(t, tf.float32)
    start_angle = math.acos(MAX_SIGNAL_RATE)
    end_angle = math.acos(MIN_SIGNAL_RATE)
    angles = start_angle + t * (end_angle - start_angle)
    return tf.sin(angles), tf.cos(angles)


def add_noise(x0, noise, t):
    """Forward noising: ``signal_rate(t) * x0 + noise_rate(t) * noise``; ``t`` (batch,) -> same shape as ``x0``."""
    noise_rates, signal_rates = diffusion_schedule(tf.reshape(t, (-1, 1, 1, 1)))
    return signal_rates * x0 + noise_rates * noise


def training_target(x0, noise, noise_rates, signal_rates, target: str = "eps"):
    """What the network should output for ``x_t = signal_rates * x0 + noise_rates * noise``: the noise, or
    ``v = signal_rates * noise - noise_rates * x0``. Rates broadcast against ``x0`` (b, h, w, c)."""
    if target == "eps":
        return noise
    if target == "v":
        return signal_rates * noise - noise_rates * x0
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def clean_and_noise(x_t, prediction, noise_rate, signal_rate, target: str = "eps"):
    """A network's output at ``x_t`` read as ``(pred_x0, pred_noise)``; ``target`` is what it predicts.

    eps: ``x0 = (x_t - n * eps) / s``; v: ``x0 = s * x_t - n * v`` and ``eps = n * x_t + s * v``
    (from ``x_t = s x0 + n eps``, ``v = s eps - n x0`` and ``s^2 + n^2 = 1``).
    """
    if target == "eps":
        return (x_t - noise_rate * prediction) / signal_rate, prediction
    if target == "v":
        return signal_rate * x_t - noise_rate * prediction, noise_rate * x_t + signal_rate * prediction
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def min_snr_weights(noise_rates, signal_rates, gamma: float, target: str = "eps"):
    """Per-example loss weights (b,) of min-SNR-gamma (Hang et al. 2023); ``gamma`` 0: all ones.

    With SNR = s^2 / n^2 the x0-loss weight ``min(SNR, gamma)`` is, in the network's own target,
    ``min(SNR, gamma) / SNR`` for eps and ``min(SNR, gamma) / (SNR + 1)`` for v.
    """
    noise_rates = tf.reshape(tf.cast(noise_rates, tf.float32), (-1,))
    signal_rates = tf.reshape(tf.cast(signal_rates, tf.float32), (-1,))
    if not gamma:
        return tf.ones_like(noise_rates)
    snr = tf.square(signal_rates) / tf.square(noise_rates)
    clipped = tf.minimum(snr, float(gamma))
    return clipped / snr if target == "eps" else clipped / (snr + 1.0)


def ddim_step(x_t, prediction, t, t_next, clip=None, target: str = "eps"):
    """One deterministic DDIM step from time ``t`` to ``t_next`` (scalars): ``(pred_x0, x_next)``.

    Given the *true* noise (or, with ``target="v"``, the true velocity) of ``x_t = add_noise(x0, noise, t)``,
    ``pred_x0`` is ``x0`` and ``x_next`` is ``add_noise(x0, noise, t_next)`` (up to float rounding).
    ``clip`` bounds ``pred_x0`` first, as DDPM's "clip denoised" does for images: a scalar c to
    ``[-c, c]``, or a pair ``(low, high)`` of per-channel bounds (c,) each; None: no bound.
    """
    noise_rate, signal_rate = diffusion_schedule(t)
    pred_x0, pred_noise = clean_and_noise(x_t, prediction, noise_rate, signal_rate, target)
    if clip is not None:
        low, high = clip if isinstance(clip, (tuple, list)) else (-clip, clip)
        pred_x0 = tf.clip_by_value(pred_x0, low, high)
    next_noise_rate, next_signal_rate = diffusion_schedule(t_next)
    return pred_x0, next_signal_rate * pred_x0 + next_noise_rate * pred_noise


class SinusoidalEmbedding(keras.layers.Layer):
    """Noise variance (batch, 1) -> (batch, dims): sin and cos at log-spaced frequencies 1..1000 (keras-io)."""

    def __init__(self, dims: int = EMBEDDING_DIMS, **kwargs):
        super().__init__(**kwargs)
        self.dims = int(dims)
        freqs = np.exp(np.linspace(np.log(1.0), np.log(1000.0), self.dims // 2)).astype(np.float32)
        self.angular_speeds = tf.constant(2.0 * np.pi * freqs)

    def call(self, v):
        angles = tf.cast(v, tf.float32) * self.angular_speeds          # (batch, dims / 2)
        return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class SpatialSelfAttention(keras.layers.Layer):
    """Self-attention over the positions of a feature map (b, h, w, c) -> (b, h, w, c), residual.

    A convolution sees 3x3 cells; at the U-Net's lowest resolution one attention layer lets every
    cell see the whole bag (where its outline is, where the other threats lie). Pre-norm (a
    LayerNormalization over channels per position), multi-head attention without positional
    encoding (the convolutions around it know where things are), then a per-channel scale that
    starts at zero, so the block is the identity at initialisation like the residual blocks. Being
    position-free, it is permutation-equivariant over the h*w positions.
    """

    def __init__(self, heads: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.heads = int(heads)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5)
        self.attention = keras.layers.MultiHeadAttention(self.heads, max(1, channels // self.heads))
        self.norm.build((None, None, channels))
        self.attention.build((None, None, channels), (None, None, channels))
        self.scale = self.add_weight(shape=(channels,), initializer="zeros", name="scale")

    def call(self, x):
        shape = tf.shape(x)
        seq = tf.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))                   # (b, h*w, c)
        h = self.norm(seq)
        return x + self.scale * tf.reshape(self.attention(h, h), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


def _block(x, emb, width: int):
    """Norm-free residual block with the embedding added per channel; the branch's last conv starts at zero."""
    skip = x if x.shape[-1] == width else keras.layers.Conv2D(width, 1)(x)
    h = keras.layers.Conv2D(width, 3, padding="same")(keras.layers.Activation("silu")(x))
    h = keras.layers.Add()([h, keras.layers.Reshape((1, 1, width))(keras.layers.Dense(width)(emb))])
    h = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros")(keras.layers.Activation("silu")(h))
    return keras.layers.Add()([skip, h])                               # (batch, h, w, width)


def build_unet(latent_shape, widths=(48, 96, 160), condition_dim: int = 5, map_channels: int = 0,
               attention_heads: int = 0) -> keras.Model:
    """The noise-predicting U-Net: inputs ``[x_t (b, h, w, c), noise variance (b, 1), condition (b, condition_dim)]``
    and, with ``map_channels``, a box map ``(b, h, w, map_channels)``.

    Args:
        latent_shape: ``(h, w, c)``; ``h`` and ``w`` divisible by ``2 ** (len(widths) - 1)``.
        widths: channels per level, one residual block each (the deepest level is the middle).
        condition_dim: ``1 + classes`` (see :func:`condition_vectors`).
        map_channels: 0, or the classes of a box map (one channel per class, the share of each latent
            cell a box of that class covers) concatenated to the noisy latent: the layout-to-image
            idea. A global label says *which* threats; the map says *where*, so each cell's
            denoising is told locally whether it holds a threat (the box-conditioned prior,
            :mod:`vae_keras.samplers.box_diffusion`). 0 builds the same network as before.
        attention_heads: 0, or the heads of a :class:`SpatialSelfAttention` after the middle block
            (the lowest resolution); 0 builds the same network as before.

    Returns:
        a ``keras.Model`` predicting the noise, shape ``(b, h, w, c)``.
    """
    h, w, c = (int(v) for v in latent_shape)
    x_in = keras.Input((h, w, c), name="noisy_latents")
    v_in = keras.Input((1,), name="noise_variance")
    y_in = keras.Input((int(condition_dim),), name="condition")
    emb_dims = 4 * int(widths[0])
    emb = keras.layers.Concatenate()([SinusoidalEmbedding()(v_in), keras.layers.Dense(EMBEDDING_DIMS)(y_in)])
    emb = keras.layers.Dense(emb_dims, activation="silu")(emb)
    emb = keras.layers.Dense(emb_dims, activation="silu")(emb)        # (b, 4 * widths[0])
    inputs = [x_in, v_in, y_in]
    if map_channels:
        m_in = keras.Input((h, w, int(map_channels)), name="box_map")
        inputs.append(m_in)
        x = keras.layers.Conv2D(widths[0], 1)(keras.layers.Concatenate()([x_in, m_in]))   # (b, h, w, 48)
    else:
        x = keras.layers.Conv2D(widths[0], 1)(x_in)                   # (b, h, w, 48)
    skips = []
    for width in widths[:-1]:                                         # down: each halves the side
        x = _block(x, emb, width)
        skips.append(x)
        x = keras.layers.AveragePooling2D(2)(x)
    x = _block(x, emb, widths[-1])                                    # the middle, (b, h/4, w/4, 160)
    if attention_heads:
        x = SpatialSelfAttention(attention_heads, name="middle_attention")(x)
    for width in reversed(widths[:-1]):                               # up: each doubles the side
        x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = keras.layers.Concatenate()([x, skips.pop()])
        x = _block(x, emb, width)
    out = keras.layers.Conv2D(c, 1, kernel_initializer="zeros", dtype="float32")(x)   # (b, h, w, c)
    return keras.Model(inputs, out, name="latent_unet")


def condition_vectors(labels, n: int, num_classes: int) -> np.ndarray:
    """The prior's condition (n, 1 + C): ``[1, labels]``; ``labels`` None: the null condition (zeros)."""
    if labels is None:
        return np.zeros((int(n), 1 + int(num_classes)), np.float32)
    y = np.asarray(labels, np.float32).reshape(int(n), int(num_classes))
    return np.concatenate([np.ones((int(n), 1), np.float32), y], axis=1)


def guided_noise(network, x_t, noise_rate, condition, guidance: float, maps=None):
    """Classifier-free guidance: ``eps_u + guidance * (eps_c - eps_u)`` in one batched call of ``network``.

    A v-network's outputs are guided the same way (eps is affine in v at a fixed ``x_t``, so guiding
    v and then converting equals converting and then guiding).

    Args:
        x_t: (b, h, w, c) noisy latents; noise_rate: a scalar (one time for the batch);
        condition: (b, 1 + C) condition vectors; guidance: 0 = the unconditional prediction,
            1 = the conditional one.
        maps: a box-conditioned network's box maps (b, h, w, C); the unconditional half gets zeros.
    """
    b = tf.shape(x_t)[0]
    variance = tf.fill((2 * b, 1), tf.square(tf.cast(noise_rate, tf.float32)))
    inputs = [tf.concat([x_t, x_t], 0), variance, tf.concat([condition, tf.zeros_like(condition)], 0)]
    if maps is not None:
        inputs.append(tf.concat([maps, tf.zeros_like(maps)], 0))
    both = network(inputs, training=False)
    eps_c, eps_u = both[:b], both[b:]
    return eps_u + guidance * (eps_c - eps_u)


def ddim_sample(network, initial_noise, condition, steps: int, guidance: float, clip=0.0, maps=None,
                target: str = "eps"):
    """Denoise ``initial_noise`` (b, h, w, c) in ``steps`` DDIM steps from t = 1 to t = 0 -> predicted x0.

    ``maps``: a box-conditioned network's box maps (b, h, w, C) (see :func:`build_unet`); None otherwise.
    ``target``: what ``network`` predicts, ``eps`` or ``v`` (the run's ``prior_target``).

    Deterministic: the same noise, condition and network give the same latents. ``clip`` > 0 bounds
    each step's predicted x0 to ``[-clip, clip]`` (standardised units; 0 = off); a pair ``(low, high)``
    of (c,) arrays bounds each channel to its own range instead (the training latents', see
    :class:`vae_keras.samplers.diffusion.DiffusionSampler`'s ``clip_range``). Why: at t = 1 the
    signal rate is 0.02, so an error in the predicted noise is amplified 50 times in x0; a prior after
    a few CPU minutes then draws latents with a standard deviation of 2.4 instead of 1 (dark blobs).
    Clipping at 3 (real standardised latents lie within about +-2.8) measured, on the quick notebook
    07 run: latent std 2.37 -> 0.91, dense-mass ratio 5.4 -> 0.86, distance to the nearest training
    image 0.254 -> 0.165 (real test bags: 0.136).
    """
    step = _traced_step(network)
    x = tf.convert_to_tensor(initial_noise, tf.float32)
    condition = tf.convert_to_tensor(condition, tf.float32)
    maps = None if maps is None else tf.convert_to_tensor(maps, tf.float32)
    channels = int(x.shape[-1])
    if isinstance(clip, (tuple, list)):                       # per-channel bounds
        low, high = (np.broadcast_to(np.asarray(v, np.float32), (channels,)) for v in clip)
    else:
        bound = float(clip) if clip else float("inf")
        low, high = np.full(channels, -bound, np.float32), np.full(channels, bound, np.float32)
    low, high = tf.constant(low), tf.constant(high)           # (c,) each: one trace for any bounds
    pred_x0 = x
    for i in range(int(steps)):
        t = 1.0 - i / float(steps)
        pred_x0, x = step(x, condition, maps, tf.constant(t), tf.constant(t - 1.0 / float(steps)),
                          tf.constant(float(guidance)), low, high, target)
    return pred_x0


#: One traced DDIM step per network (entries vanish with their network).
_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _traced_step(network):
    """One traced DDIM step with guidance per network (traced once for any batch size and per target)."""
    if network not in _STEPS:
        def one(x, condition, maps, t, t_next, guidance, low, high, target):
            noise_rate, _ = diffusion_schedule(t)
            prediction = guided_noise(network, x, noise_rate, condition, guidance, maps)
            return ddim_step(x, prediction, t, t_next, (low, high), target)
        _STEPS[network] = tf.function(one, reduce_retracing=True, autograph=False)
    return _STEPS[network]
