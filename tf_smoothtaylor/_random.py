"""In-graph stateless random numbers keyed by (seed, image, stream, index).

A point's noise depends only on the explainer's seed, the *content* of its image
(a 64-bit fingerprint), the random stream it belongs to (roots, baselines, ...),
a draw number and its sample index. It therefore never depends on the chunk
size, on the number of images in a call, or on their order.
"""

import math

import numpy as np
import tensorflow as tf

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

# Random streams: one per kind of noise, so they never share numbers.
ROOTS = 1
BASELINES = 2
SMOOTHING = 3
PERTURBATION = 4
SUBSETS = 5
INFIDELITY = 6
SENSITIVITY = 7


def _signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


def image_keys(images: tf.Tensor, seed: int) -> tf.Tensor:
    """One int64 key per image: fingerprint of its bytes mixed with ``seed``."""
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    fingerprint = tf.bitcast(tf.fingerprint(flat), tf.int64)
    fingerprint = tf.reshape(fingerprint, [-1])
    return tf.bitwise.bitwise_xor(
        fingerprint, tf.constant(_signed64((seed + 1) * _GOLDEN), tf.int64))


def derive_keys(keys: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """New keys for sub-streams (e.g. one per SmoothGrad noise sample)."""
    index = tf.cast(index, tf.int64) + 1
    return tf.bitwise.bitwise_xor(
        keys, index * tf.constant(_signed64(_GOLDEN * 0xBF58476D), tf.int64))


def _seeds(keys, stream, index, draw):
    counter = (tf.constant(stream << 48, tf.int64)
               + tf.bitwise.left_shift(tf.cast(draw, tf.int64), 32)
               + tf.cast(index, tf.int64))
    return tf.stack([tf.cast(keys, tf.int64), counter], axis=1)


def normal(keys, stream: int, index, shape, *, draw=0, scale=None) -> tf.Tensor:
    """Normal tensor of shape ``(n,) + shape``, row i seeded by
    ``(keys[i], stream, draw[i], index[i])``, with standard deviation
    ``scale[i]`` (1 when ``scale`` is None).

    Exact Box–Muller on Philox uniforms u₁, u₂ ∈ [0, 1):
    ``√(−2 ln(1 − u₁)) · (cos 2πu₂, sin 2πu₂)``; about twice as fast on CPU as
    ``tf.random.stateless_normal``.
    """
    size = int(np.prod(shape))
    half = (size + 1) // 2
    seeds = _seeds(keys, stream, index, tf.broadcast_to(draw, tf.shape(keys)))
    u = tf.map_fn(lambda s: tf.random.stateless_uniform([2, half], s, alg="philox"),
                  seeds, fn_output_signature=tf.float32)
    radius = tf.sqrt(-2.0 * tf.math.log1p(-u[:, :1]))
    if scale is not None:
        radius *= tf.reshape(scale, [-1, 1, 1])
    # cos(θ − π/2) = sin θ: both halves in one pass over (n, 2, half).
    angle = (2.0 * math.pi) * u[:, 1:] + _PHASE
    values = tf.reshape(radius * tf.cos(angle), [-1, 2 * half])
    if 2 * half != size:
        values = values[:, :size]
    return tf.reshape(values, [-1, *shape])


_PHASE = tf.constant([[[0.0], [-math.pi / 2]]], tf.float32)


def uniform(keys, stream: int, index, shape, *, draw=0) -> tf.Tensor:
    """U[0, 1) tensor of shape ``(n,) + shape``, seeded as :func:`normal`."""
    seeds = _seeds(keys, stream, index, tf.broadcast_to(draw, tf.shape(keys)))
    return tf.map_fn(
        lambda s: tf.random.stateless_uniform(shape, s, alg="philox"),
        seeds, fn_output_signature=tf.float32)
