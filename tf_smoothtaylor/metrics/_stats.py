"""Correlation helpers shared by the metrics."""

import tensorflow as tf


def pearson(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Pearson correlation along the last axis; 0 where either side is constant."""
    a = a - tf.reduce_mean(a, axis=-1, keepdims=True)
    b = b - tf.reduce_mean(b, axis=-1, keepdims=True)
    norm = tf.sqrt(tf.reduce_sum(a * a, -1) * tf.reduce_sum(b * b, -1))
    return tf.math.divide_no_nan(tf.reduce_sum(a * b, -1), norm)


def spearman(a, b) -> tf.Tensor:
    """Spearman rank correlation of (B, ...) arrays per example (ties: by position)."""
    def ranks(x):
        flat = tf.reshape(tf.convert_to_tensor(x, tf.float32), [tf.shape(x)[0], -1])
        order = tf.argsort(flat, axis=-1, stable=True)
        return tf.cast(tf.argsort(order, axis=-1, stable=True), tf.float32)
    return pearson(ranks(a), ranks(b))
