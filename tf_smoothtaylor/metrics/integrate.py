"""Simpson's rule along the last axis, as the paper's metrics use it.

For an odd number of points N ≥ 3 (an even number of intervals) this is the
composite Simpson rule, exact for cubics:

    ∫ ≈ dx/3 · (y₀ + 4y₁ + 2y₂ + 4y₃ + … + 4y_{N−2} + y_{N−1})

For an even number of points it is the average of two variants — Simpson on
the first N − 1 points plus a trapezoid on the last interval, and a trapezoid
on the first interval plus Simpson on the last N − 1 points — as SciPy's
``simps(..., even="avg")`` did before 1.11 and as the paper's numbers were
computed. That variant is exact for linear functions, not for cubics. Two
points give the trapezoid rule; one point gives 0.
"""

import tensorflow as tf


def _composite(y, dx):
    """Composite Simpson over an odd number (≥ 3) of points on the last axis."""
    inner = y[..., 1:-1]
    return dx / 3.0 * (y[..., 0] + y[..., -1] + 4.0 * tf.reduce_sum(inner[..., ::2], -1)
                       + 2.0 * tf.reduce_sum(inner[..., 1::2], -1))


def simpson(y, dx: float = 1.0) -> tf.Tensor:
    """Integral of samples ``y`` (spacing ``dx``) along the last axis.

    Args:
      y: (..., N) samples.
      dx: Spacing between samples.

    Returns:
      (...) float32 integrals.

    Example:
      >>> float(simpson([0.0, 1.0, 4.0]))    # ∫₀² x² dx
      2.6666667
    """
    y = tf.convert_to_tensor(y, tf.float32)
    n = y.shape[-1]
    if n is None:
        raise ValueError("Expected `y` with a known number of points on its last axis. "
                         f"Received: shape {y.shape}")
    if n == 1:
        return tf.zeros_like(y[..., 0])
    if n == 2:
        return dx * 0.5 * (y[..., 0] + y[..., 1])
    if n % 2 == 1:
        return _composite(y, dx)
    first = _composite(y[..., :-1], dx) + dx * 0.5 * (y[..., -2] + y[..., -1])
    last = dx * 0.5 * (y[..., 0] + y[..., 1]) + _composite(y[..., 1:], dx)
    return 0.5 * (first + last)
