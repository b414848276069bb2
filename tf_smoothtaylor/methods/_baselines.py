"""What ``baseline`` and ``preprocess`` mean, for every method that takes them.

Integrated Gradients, Occlusion and RISE replace (part of) an image by a
baseline; the settings mean the same for all three:

* ``"zero"``: black pixels (0 in [0, 1] pixel space) mapped by ``preprocess`` —
  all zeros when there is no ``preprocess``;
* ``"mean"`` (Occlusion, RISE): each image's own channel means;
* a number, or an array broadcastable to one input: model-input values, as given.

``preprocess`` (pixels in [0, 1] → model inputs, TensorFlow ops) is the one
given, else the model's own when it is a ``models.ModelSpec``, else none.

For series and tabular rows a baseline belongs in the data's own terms: a
reference set's mean (``baseline=references.mean(axis=0)``), or the reference set
itself (``ExpectedGradients(references=...)``). ``warn_if_outside`` says when a
baseline given as values lies outside the range of the inputs explained, and
``"uniform"`` (pixels) says so for inputs that are not images.
"""

import warnings
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

MARGIN = 0.05              # beyond the inputs' range by more than 5 % of its span


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


def warn_if_outside(baseline, images: tf.Tensor, method: str, *, stacklevel: int = 4) -> None:
    """Warns when ``baseline`` — values given by the caller (a number or an array), or
    ``"uniform"`` pixels for an input that is not an image — lies outside the range
    of ``images``: per channel over the batch and positions for images and series
    (B, ..., C), per feature over the batch for features (B, F) (two rows or more:
    one row has no range). Beyond the range by more than ``MARGIN`` of its span."""
    rank = images.shape.rank
    if isinstance(baseline, str):
        if baseline == "uniform" and rank != 4:
            warnings.warn(f"{method}: baseline='uniform' draws pixels in [0, 1], an image "
                          "notion; for series or features use a reference set's mean "
                          "(baseline=references.mean(axis=0)) or "
                          "ExpectedGradients(references=...)", stacklevel=stacklevel)
        return
    if callable(baseline) or (rank == 2 and int(images.shape[0]) < 2):
        return
    values = np.asarray(images, np.float64)
    given = np.broadcast_to(np.asarray(baseline, np.float64), values.shape[1:])
    if rank == 2:                                   # per feature, over the batch
        low, high, reference = values.min(0), values.max(0), given
        unit = "feature"
    else:                                           # per channel, over batch and positions
        axes = tuple(range(rank - 1))
        low, high = values.min(axes), values.max(axes)
        reference = given.reshape(-1, given.shape[-1])
        unit = "channel"
    margin = MARGIN * np.maximum(high - low, 1e-12)
    if rank == 2:
        outside = (reference < low - margin) | (reference > high + margin)
        where = np.flatnonzero(outside)
        example = (lambda j: f"{unit} {j}: baseline {reference[j]:.3g}, inputs in "
                             f"[{low[j]:.3g}, {high[j]:.3g}]")
    else:
        outside = ((reference < low - margin) | (reference > high + margin)).any(axis=0)
        where = np.flatnonzero(outside)

        def example(c):
            worst = reference[:, c][np.argmax(np.maximum(low[c] - reference[:, c],
                                                          reference[:, c] - high[c]))]
            return (f"{unit} {c}: baseline {worst:.3g}, inputs in [{low[c]:.3g}, "
                    f"{high[c]:.3g}]")
    if where.size:
        warnings.warn(f"{method}: the baseline lies outside the range of the inputs given "
                      f"for {where.size} of {outside.size} {unit}s ({example(where[0])}); a "
                      "path from where the data never is explains the model there — a "
                      "reference set's mean (baseline=references.mean(axis=0)) stays in "
                      "the data", stacklevel=stacklevel)
