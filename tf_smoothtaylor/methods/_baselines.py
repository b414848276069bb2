"""What ``baseline`` and ``preprocess`` mean, for every method that takes them.

Integrated Gradients, Occlusion and RISE replace (part of) an image by a
baseline; the settings mean the same for all three:

* ``"zero"``: black pixels (0 in [0, 1] pixel space) mapped by ``preprocess`` —
  all zeros when there is no ``preprocess``;
* ``"mean"`` (Occlusion, RISE): each image's own channel means;
* a number, or an array broadcastable to one input: model-input values, as given.

``preprocess`` (pixels in [0, 1] → model inputs, TensorFlow ops) is the one
given, else the model's own when it is a ``models.ModelSpec``, else none.
"""

from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf


def resolve_preprocess(model, preprocess) -> Tuple[Optional[Callable], bool]:
    """``(preprocess, taken_from_model)``; raises unless it is a callable or None."""
    if preprocess is not None and not callable(preprocess):
        raise TypeError("Expected `preprocess` to be a callable or None. "
                        f"Received: preprocess={preprocess!r}")
    if preprocess is None:
        return getattr(model, "preprocess", None), True
    return preprocess, False


def black(images: tf.Tensor, preprocess: Optional[Callable]) -> tf.Tensor:
    """Black pixels mapped by ``preprocess``, shaped like ``images``."""
    zeros = tf.zeros_like(images)
    if preprocess is None:
        return zeros
    return tf.broadcast_to(tf.cast(preprocess(zeros), tf.float32), tf.shape(images))


def check_fill(baseline, valid: tuple, method: str):
    """A baseline of Occlusion or RISE: one of ``valid`` or finite model-input
    values (a number or an array); returns it (arrays as float32)."""
    if isinstance(baseline, str):
        if baseline not in valid:
            raise ValueError(f"Expected `baseline` of {method} to be one of "
                             f"{', '.join(repr(v) for v in valid)}, a number or an array. "
                             f"Received: baseline={baseline!r}")
        return baseline
    try:
        array = np.asarray(baseline, np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"Expected `baseline` of {method} to be one of "
                        f"{', '.join(repr(v) for v in valid)}, a number or an array. "
                        f"Received: baseline of type {type(baseline).__name__}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"Expected `baseline` of {method} to be finite. "
                         f"Received: {baseline!r}")
    return float(array) if array.ndim == 0 else array


def check_shape(baseline, input_shape) -> None:
    """Raises unless an array ``baseline`` broadcasts to one input of ``input_shape``."""
    if not isinstance(baseline, np.ndarray):
        return
    try:
        np.broadcast_shapes(baseline.shape, tuple(1 if s is None else s for s in input_shape))
        fits = len(baseline.shape) <= len(input_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError("Expected `baseline` to be broadcastable to one model input of "
                         f"shape {input_shape}. Received: baseline of shape {baseline.shape}")


def fill(baseline, images: tf.Tensor, preprocess: Optional[Callable]) -> tf.Tensor:
    """Per-image baseline values shaped like ``images`` ("zero", "mean" or values)."""
    if isinstance(baseline, str):
        if baseline == "zero":
            return black(images, preprocess)
        means = tf.reduce_mean(images, axis=list(range(1, images.shape.rank - 1)),
                               keepdims=True)
        return tf.broadcast_to(means, tf.shape(images))
    return tf.broadcast_to(tf.constant(baseline, tf.float32), tf.shape(images))
