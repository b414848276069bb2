"""Input checks shared by the metrics, and the one view they perturb any input in.

Images (B, H, W, C) are perturbed by pixel (all channels together), series
(B, T, C) by time step (all channels together), features (B, F) — tabular rows or
token ids — by feature. The perturbation metrics work on one view of all three:
``(B, rows, columns, channels)`` = images as they are, a series as (B, T, 1, C),
features as (B, F, 1, 1), with heatmaps (B, rows, columns); the model gets each
variant back in its own shape.
"""

from typing import NamedTuple, Tuple

import numpy as np
import tensorflow as tf

KINDS = {4: "images", 3: "series", 2: "features"}


class Units(NamedTuple):
    """Inputs and heatmaps in the metrics' view, and the inputs' own shape."""
    view: tf.Tensor                    # (B, rows, columns, channels)
    maps: tf.Tensor                    # (B, rows, columns)
    shape: Tuple[int, ...]             # one input's own shape
    kind: str                          # "images", "series" or "features"


def check_heatmaps(heatmaps, name: str = "heatmaps", ranks=(3,)) -> tf.Tensor:
    """Returns finite float32 heatmaps of one of ``ranks`` (default (B, H, W)) or raises."""
    try:
        maps = tf.convert_to_tensor(heatmaps, tf.float32)
    except (TypeError, ValueError):
        raise TypeError(f"Expected `{name}` to be a numeric (batch, height, width) array. "
                        f"Received: {type(heatmaps).__name__}") from None
    if maps.shape.rank not in ranks:
        raise ValueError(f"Expected `{name}` of shape (batch, height, width); sum "
                         "attributions over channels with tf_smoothtaylor.heatmap. "
                         f"Received: shape {tuple(maps.shape)}")
    if not bool(tf.reduce_all(tf.math.is_finite(maps))):
        raise ValueError(f"Expected `{name}` to hold finite values. "
                         f"Received: {name} containing NaN or Inf")
    return maps


def images_and_heatmaps(images, heatmaps):
    """(B, H, W, C) float32 images and matching finite (B, H, W) heatmaps, or raises."""
    images = tf.convert_to_tensor(images, tf.float32)
    maps = check_heatmaps(heatmaps)
    if images.shape.rank != 4 or tuple(maps.shape) != tuple(images.shape[:3]):
        raise ValueError("Expected `heatmaps` (batch, height, width) matching `images` "
                         "(batch, height, width, channels). Received: heatmaps "
                         f"{tuple(maps.shape)} and images {tuple(images.shape)}")
    return images, maps


def units(inputs, heatmaps) -> Units:
    """Any input and its heatmap (one value per pixel, step or feature) in the view
    of the module docstring, or raises naming what does not match."""
    try:
        inputs = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
    except (TypeError, ValueError):
        raise TypeError("Expected `images` to be a numeric array. "
                        f"Received: {type(inputs).__name__}") from None
    rank = inputs.shape.rank
    if rank not in KINDS:
        raise ValueError("Expected `images` (batch, height, width, channels), a series "
                         "(batch, steps, channels) or features (batch, features). "
                         f"Received: shape {tuple(inputs.shape)}")
    maps = check_heatmaps(heatmaps, ranks=(rank - 1,) if rank > 2 else (2,))
    wanted = tuple(inputs.shape[:3]) if rank == 4 else tuple(inputs.shape[:2])
    if tuple(maps.shape) != wanted:
        kind = {4: "(batch, height, width)", 3: "(batch, steps)", 2: "(batch, features)"}
        raise ValueError(f"Expected `heatmaps` {kind[rank]} = {wanted} for {KINDS[rank]} "
                         f"of shape {tuple(inputs.shape)} (tf_smoothtaylor.heatmap gives "
                         f"it from attributions). Received: heatmaps {tuple(maps.shape)}")
    if rank == 4:
        view, view_maps = inputs, maps
    elif rank == 3:
        view, view_maps = inputs[:, :, None, :], maps[:, :, None]
    else:
        view, view_maps = inputs[:, :, None, None], maps[:, :, None]
    return Units(view, view_maps, tuple(int(d) for d in inputs.shape[1:]), KINDS[rank])


def images_only(name: str, images) -> None:
    """Raises naming metric ``name`` unless ``images`` is a batch of images."""
    rank = len(np.shape(images))
    if rank != 4:
        raise ValueError(f"{name} is defined on images (batch, height, width, channels); "
                         "for series, features or tokens use deletion, insertion or "
                         "sensitivity_n. Received: `images` of rank "
                         f"{rank}")
