"""Correlation helpers shared by the metrics."""

import warnings

import numpy as np
import tensorflow as tf


def pearson(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Pearson correlation along the last axis; 0 where either side is constant."""
    a = a - tf.reduce_mean(a, axis=-1, keepdims=True)
    b = b - tf.reduce_mean(b, axis=-1, keepdims=True)
    norm = tf.sqrt(tf.reduce_sum(a * a, -1) * tf.reduce_sum(b * b, -1))
    return tf.math.divide_no_nan(tf.reduce_sum(a * b, -1), norm)


def average_ranks(x) -> tf.Tensor:
    """0-based ranks along the last axis of (B, N) values; tied values share the
    mean of their positions (as ``scipy.stats.rankdata(method="average") − 1``)."""
    ordered = tf.sort(x, axis=-1)
    first = tf.searchsorted(ordered, x, side="left")
    last = tf.searchsorted(ordered, x, side="right") - 1
    return tf.cast(first + last, tf.float32) / 2.0


def spearman(a, b) -> tf.Tensor:
    """Spearman rank correlation of (B, ...) arrays per example: Pearson's r of
    their average ranks (ties share a rank). NaN, with a warning, for an example
    where either side is constant (its correlation is undefined)."""
    def flat(x):
        x = tf.convert_to_tensor(x, tf.float32)
        return tf.reshape(x, [tf.shape(x)[0], -1])

    ranks_a, ranks_b = average_ranks(flat(a)), average_ranks(flat(b))
    constant = tf.logical_or(tf.reduce_all(tf.equal(ranks_a, ranks_a[:, :1]), axis=-1),
                             tf.reduce_all(tf.equal(ranks_b, ranks_b[:, :1]), axis=-1))
    result = tf.where(constant, float("nan"), pearson(ranks_a, ranks_b))
    if tf.executing_eagerly() and bool(tf.reduce_any(constant)):
        warnings.warn("Spearman correlation is undefined for a constant map: NaN for "
                      f"examples {np.flatnonzero(constant.numpy()).tolist()}", stacklevel=2)
    return result
