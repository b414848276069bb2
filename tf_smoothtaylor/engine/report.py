"""What a call says about its maps: warnings that name the images concerned.

Maps are not read back to say this: one flag or error per image is.
"""

import warnings

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import tracing as _tracing


def warn_if_not_finite(finite: np.ndarray, *, stacklevel: int = 5) -> None:
    """Warns, naming them, about images whose map is not finite."""
    if not finite.all():
        warnings.warn(
            f"The attributions of images {np.flatnonzero(~finite).tolist()} (0-based, "
            "in this call) are not finite: the model's output or its gradient was NaN "
            "or Inf at some of their points (e.g. a float16 overflow, or a division by zero). "
            "Those rows hold NaN/Inf; every other image's map is unaffected.",
            stacklevel=stacklevel)


@_tracing.graph_function(input_signature=[tf.TensorSpec(None, tf.float32)])
def finite_rows(result: tf.Tensor) -> tf.Tensor:
    """Whether each image's map is finite everywhere."""
    return tf.reduce_all(tf.math.is_finite(tf.reshape(result, [tf.shape(result)[0], -1])),
                         axis=1)


def warn_if_noise(relative: np.ndarray, *, stacklevel: int = 5) -> None:
    """Warns, naming them, about images whose map cannot be told from its noise."""
    noise = np.isposinf(relative)
    if noise.any():
        warnings.warn(
            f"The maps of images {np.flatnonzero(noise).tolist()} (0-based, in this call) "
            "are indistinguishable from their own Monte Carlo noise (‖ĥ‖² ≤ ‖SE‖²): "
            "their relative error is reported as inf. Use more draws, or a target "
            "(class) whose score the inputs move.", stacklevel=stacklevel)


def warn_if_short(relative: np.ndarray, target: float, used: np.ndarray,
                  max_points: int, *, stacklevel: int = 5) -> None:
    """Warns, naming them, about "auto" images that stopped at ``max_points`` above
    the target error."""
    short = (used >= max_points) & ~(relative <= target)
    if short.any():
        listed = ", ".join(f"{i} ({relative[i]:.3g})" for i in np.flatnonzero(short)[:20])
        warnings.warn(
            f"{int(short.sum())} image(s) reached max_points={max_points} draws above "
            f"target_error={target}: images (0-based, in this call) and their relative "
            f"errors: {listed}. Raise max_points, or accept a larger target_error.",
            stacklevel=stacklevel)


