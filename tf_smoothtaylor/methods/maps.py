"""From attributions to the paper's heatmaps, and the completeness diagnostic."""

from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.logits import LogitModel, resolve_targets, select_target


def heatmap(attributions, *, data_format: Optional[str] = None) -> tf.Tensor:
    """The paper's heatmap: the signed sum over channels — one value per pixel, per
    time step or per feature.

        h[b, i, j] = Σ_c A[b, i, j, c]      images (B, H, W, C), channels last
        h[b, t]    = Σ_c A[b, t, c]         series (B, T, C)
        h[b, f]    = A[b, f]                features (B, F)

    Args:
      attributions: (B, H, W, C) or, channels first, (B, C, H, W) attributions;
        (B, T, C) series or (B, C, T) channels first; (B, F) features.
      data_format: "channels_last" or "channels_first"; None follows Keras's
        ``keras.config.image_data_format()`` (the layout Keras models use).

    Returns:
      float32 tensor (B, H, W), (B, T) or (B, F).

    Raises:
      ValueError: if ``attributions`` is not of rank 2, 3 or 4 or ``data_format``
        is unknown.

    Example:
      >>> heatmap(tf.ones([2, 8, 8, 3])).shape
      TensorShape([2, 8, 8])
    """
    if data_format is None:
        import keras
        data_format = keras.config.image_data_format()
    _checks.one_of("data_format", data_format, ("channels_last", "channels_first"))
    attributions = tf.convert_to_tensor(attributions, tf.float32)
    rank = attributions.shape.rank
    if rank not in (2, 3, 4):
        layout = "height, width, channels" if data_format == "channels_last" else \
            "channels, height, width"
        raise ValueError(f"Expected `attributions` of shape (batch, {layout}), a series "
                         "(batch, steps, channels) or features (batch, features). "
                         f"Received: shape {attributions.shape}")
    if rank == 2:
        return attributions
    return tf.reduce_sum(attributions, axis=-1 if data_format == "channels_last" else 1)


def completeness_gap(model, images, attributions, baselines,
                     targets: Optional[Union[int, np.ndarray, Callable]] = None) -> tf.Tensor:
    """Completeness gap of path attributions: ``Σ A(x) − (f(x) − f(b))``.

    For exact Integrated Gradients the gap is 0 (the completeness axiom); for a
    quadrature with M steps it shrinks as M grows.

    Args:
      model: The Keras model explained (its logits are used).
      images: (B, ...) model inputs.
      attributions: (B, ...) attributions of ``images``.
      baselines: (B, ...) or one baseline broadcastable to ``images``.
      targets: As for explainers; None uses each image's top-1 class.

    Returns:
      float32 tensor (B,).
    """
    logits = LogitModel(model)
    images, attributions = _checks.images_and_attributions(images, attributions)
    try:
        baselines = tf.broadcast_to(tf.convert_to_tensor(baselines, tf.float32),
                                    tf.shape(images))
    except (ValueError, tf.errors.InvalidArgumentError):
        raise ValueError("Expected `baselines` broadcastable to `images` "
                         f"{tuple(images.shape)}. Received: shape "
                         f"{tuple(np.shape(baselines))}") from None
    logits.check_outputs(callable(targets))
    outputs_x = logits(images)
    classes, target_fn = resolve_targets(
        targets, int(images.shape[0]), logits.num_classes, lambda: outputs_x.numpy())
    f_x = select_target(outputs_x, classes, target_fn)
    f_b = select_target(logits(baselines), classes, target_fn)
    axes = list(range(1, images.shape.rank))
    return tf.reduce_sum(attributions, axis=axes) - (f_x - f_b)


def position_scores(attributions, *, reduce: str = "sum") -> tf.Tensor:
    """One score per position — a token, a time step, a pixel — from attributions
    whose last axis holds a position's values (an embedding, channels):

        s = Σ_d A[..., d]        (``reduce="sum"``: signed, sums to the total)
        s = ‖A[..., :]‖₂         (``reduce="norm"``: magnitude, sign-free)

    Args:
      attributions: (batch, ..., d) attributions, e.g. (B, tokens, embedding) from
        ``layer=`` an embedding layer.
      reduce: "sum" or "norm".

    Returns:
      (batch, ...) float32 scores.
    """
    _checks.one_of("reduce", reduce, ("sum", "norm"))
    values = tf.convert_to_tensor(attributions, tf.float32)
    if values.shape.rank is None or values.shape.rank < 3:
        raise ValueError("Expected `attributions` of shape (batch, positions..., values). "
                         f"Received: shape {tuple(values.shape)}")
    if reduce == "sum":
        return tf.reduce_sum(values, axis=-1)
    return tf.norm(values, axis=-1)
