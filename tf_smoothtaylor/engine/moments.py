"""Sums, centred second moments and Monte Carlo errors, per image row.

The engine folds each chunk's values into per-image rows; this module is the
algebra of those rows, in float32 and without float32 matrix products (GPUs run
them in TF32):

* sums by **segments**: a value is only ever added into its own image's row, so a
  NaN or Inf of one image never reaches another (no ``0 · NaN``);
* centred second moments ``M2 = Σ (v − v̄)²`` merged chunk by chunk with Chan et
  al.'s update, never as ``E[v²] − E[v]²``;
* the standard error of a weighted sum of ``n`` independent draws and the
  heatmap's **relative error**, with ``‖h‖²`` estimated without its noise.

The relative error of an estimate ``ĥ`` of the heatmap ``h`` is

    r = ‖SE(ĥ)‖₂ / ‖h‖₂,   ‖SE(ĥ)‖₂² = Σ_p Var(ĥ_p) = E‖ĥ − h‖²,

and since ``E‖ĥ‖² = ‖h‖² + ‖SE‖²``, putting ``‖ĥ‖`` in the denominator would
report ``r / √(1 + r²)`` (0.71 for a true 1.0). It is estimated as

    r̂ = ‖SE‖ / √(‖ĥ‖² − ‖SE‖²),

and as ``inf`` when ``‖ĥ‖² ≤ ‖SE‖²``: the map is then indistinguishable from
its own Monte Carlo noise (callers warn). NaN when ``n < 2`` (no spread) or when
``ĥ = 0`` with no spread.
"""

import numpy as np
import tensorflow as tf


def segment_sums(values: tf.Tensor, rows: tf.Tensor, span: int) -> tf.Tensor:
    """``out[r] = Σ_{i: rows[i] = r} values[i]`` for r < span; ``rows`` sorted.

    Only values of one row are ever added together (no product with other rows'
    values). On a GPU machine: ``unsorted_segment_sum``, whose output size is
    given (a sorted segment sum reads its last id back to the host to size its
    output). On CPU: the sorted segment sum, about 5× faster there, padded to
    ``span`` rows.
    """
    if tf.config.list_logical_devices("GPU"):
        return tf.math.unsorted_segment_sum(values, rows, span)
    sums = tf.math.segment_sum(values, rows)
    padding = [[0, span - tf.shape(sums)[0]]] + [[0, 0]] * (sums.shape.rank - 1)
    return tf.ensure_shape(tf.pad(sums, padding), [span] + sums.shape[1:])


def combine(total, m2, n_a, n_b, chunk_sum, chunk_m2):
    """Chan et al.'s parallel update: with ``n_a`` earlier draws of sum ``S_a``
    and ``n_b`` new draws of sum ``S_b`` and centred sum of squares ``M2_b``,

        M2 = M2_a + M2_b + (S_b/n_b − S_a/n_a)² · n_a n_b / (n_a + n_b),

    so no E[v²] − E[v]² cancellation occurs, whatever |v| is next to its spread.
    """
    mean_b = chunk_sum / tf.maximum(n_b, 1.0)
    delta = mean_b - total / tf.maximum(n_a, 1.0)
    # Terms with n_a = 0 or n_b = 0 vanish; the where keeps 0 · ∞ out of them.
    correction = tf.where(n_a * n_b > 0, delta * delta * (n_a * n_b / tf.maximum(n_a + n_b, 1.0)),
                          0.0)
    return total + chunk_sum, m2 + chunk_m2 + correction


def merge(total, m2, before, value, row, span):
    """Adds a chunk's values (one per draw, in rows ``row``) into per-row sums and
    centred second moments; ``before``: each row's earlier draws."""
    count = segment_sums(tf.ones_like(row, tf.float32), row, span)
    chunk_sum = segment_sums(value, row, span)
    n_b = count[:, None]
    mean_b = chunk_sum / tf.maximum(n_b, 1.0)
    centred = value - tf.gather(mean_b, row)
    chunk_m2 = segment_sums(centred * centred, row, span)
    return combine(total, m2, tf.cast(before, tf.float32)[:, None], n_b, chunk_sum, chunk_m2)


def error_scale(n, weight):
    """``|w| n / √(n (n − 1))``: turns √M2 of n draws of weight w into the standard
    error of their weighted sum (∞ for n = 1, so the error is NaN)."""
    return tf.abs(weight) * n / tf.sqrt(n * (n - 1.0))


def relative_error(heat, heat_m2, scale, weight):
    """``r̂ = ‖SE‖ / √(‖ĥ‖² − ‖SE‖²)`` per row (see the module docstring), from the
    rows' heatmap sums ``Σh`` and centred ``M2(h)`` of draws of weight ``weight``.

    ``scale`` and ``weight`` are (rows, 1)."""
    error2 = tf.reduce_sum(tf.maximum(heat_m2, 0.0), axis=1) * tf.square(scale[:, 0])
    estimate = heat * weight
    norm2 = tf.reduce_sum(estimate * estimate, axis=1)
    signal2 = norm2 - error2
    ratio = tf.sqrt(error2 / tf.maximum(signal2, 1e-37))
    undefined = tf.logical_or(tf.math.is_nan(error2), tf.logical_and(norm2 == 0, error2 == 0))
    return tf.where(undefined, np.nan, tf.where(signal2 > 0, ratio, np.inf))


def standard_errors(stacked, shape, width, heat_width, count, weight):
    """Attributions, per-element standard errors and the heatmap's relative error
    from the rows ``[Σv, M2(v), Σh, M2(h)]`` of ``count`` independent draws of
    weight ``weight`` (each a scalar or one per row):

        A = w Σv,   SE(A) = |w| n √(M2 / (n (n − 1)))

    (w = ±1/n gives SE(A) = √(M2 / (n (n − 1)))), and likewise for the heatmap
    h (channel sums), whose relative error is :func:`relative_error`'s.
    """
    rows = tf.shape(stacked)[0]
    n = tf.broadcast_to(tf.cast(count, tf.float32), [rows])[:, None]
    weight = tf.broadcast_to(tf.cast(weight, tf.float32), [rows])[:, None]
    scale = error_scale(n, weight)
    first, second = stacked[:, :width], stacked[:, width:2 * width]
    attributions = tf.reshape(first * weight, shape)
    standard_error = tf.reshape(tf.sqrt(tf.maximum(second, 0.0)) * scale, shape)
    heat = stacked[:, 2 * width:2 * width + heat_width]
    heat_m2 = stacked[:, 2 * width + heat_width:]
    return attributions, standard_error, relative_error(heat, heat_m2, scale, weight)
