"""Input checks shared by the metrics."""

import tensorflow as tf


def check_heatmaps(heatmaps, name: str = "heatmaps") -> tf.Tensor:
    """Returns (B, H, W) float32 finite heatmaps or raises."""
    try:
        maps = tf.convert_to_tensor(heatmaps, tf.float32)
    except (TypeError, ValueError):
        raise TypeError(f"Expected `{name}` to be a numeric (batch, height, width) array. "
                        f"Received: {type(heatmaps).__name__}") from None
    if maps.shape.rank != 3:
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
