"""Heatmaps as pictures of their exact pixel size: colour maps and overlays, as PNG
(figures with titles and colour bars: ``plot``).

Colour maps are piecewise linear between
anchor colours:

* ``diverging`` (signed maps): blue (−) → white (0) → red (+); h is divided by
  the ``percentile``-th percentile of |h| and clipped to [−1, 1];
* ``sequential`` (|h|): black → purple → orange → pale yellow; |h| is divided
  by the same percentile and clipped to [0, 1].
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.methods.maps import heatmap

DIVERGING = np.array([[0.019, 0.188, 0.380], [0.263, 0.576, 0.765], [1.0, 1.0, 1.0],
                      [0.839, 0.376, 0.302], [0.404, 0.0, 0.122]])
SEQUENTIAL = np.array([[0.0, 0.0, 0.016], [0.341, 0.063, 0.431], [0.735, 0.216, 0.330],
                       [0.976, 0.557, 0.035], [0.988, 1.0, 0.643]])
KINDS = ("diverging", "sequential")


def _apply(anchors: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB floats by linear interpolation between anchors."""
    position = np.clip(values, 0.0, 1.0) * (len(anchors) - 1)
    low = np.minimum(np.floor(position).astype(int), len(anchors) - 2)
    fraction = (position - low)[..., None]
    return anchors[low] * (1 - fraction) + anchors[low + 1] * fraction


def normalize(heatmaps, *, kind: str = "diverging", percentile: float = 99.0) -> np.ndarray:
    """Heatmaps scaled to [−1, 1] (diverging) or [0, 1] (sequential), per map."""
    if kind not in KINDS:
        raise ValueError(f"Expected `kind` to be one of {KINDS}. Received: kind={kind!r}")
    maps = np.asarray(heatmaps, np.float64)
    if maps.ndim != 3:
        raise ValueError("Expected `heatmaps` of shape (batch, height, width). "
                         f"Received: shape {maps.shape}")
    scale = np.percentile(np.abs(maps).reshape(len(maps), -1), percentile, axis=1)
    scale = np.where(scale > 0, scale, 1.0)[:, None, None]
    if kind == "diverging":
        return np.clip(maps / scale, -1.0, 1.0)
    return np.clip(np.abs(maps) / scale, 0.0, 1.0)


def colorize(heatmaps, *, kind: str = "diverging", percentile: float = 99.0) -> np.ndarray:
    """(B, H, W) heatmaps → (B, H, W, 3) uint8 RGB.

    Example:
      >>> colorize(np.array([[[-1.0, 0.0, 1.0]]]), percentile=100)[0, 0].tolist()
      [[5, 48, 97], [255, 255, 255], [103, 0, 31]]
    """
    scaled = normalize(heatmaps, kind=kind, percentile=percentile)
    if kind == "diverging":
        rgb = _apply(DIVERGING, (scaled + 1.0) / 2.0)
    else:
        rgb = _apply(SEQUENTIAL, scaled)
    return np.round(rgb * 255.0).astype(np.uint8)


def overlay(pixels, heatmaps, *, kind: str = "diverging", alpha: float = 0.7,
            percentile: float = 99.0) -> np.ndarray:
    """Heatmaps over grey-scale images; each pixel's opacity grows with |h|.

    ``out = (1 − a) · grey(image) + a · colour(h)``, ``a = alpha · |norm(h)|``.

    Args:
      pixels: (B, H, W, 3) images in [0, 1].
      heatmaps: (B, H, W).

    Returns:
      (B, H, W, 3) uint8.
    """
    pixels = np.asarray(pixels, np.float64)
    if pixels.ndim != 4 or pixels.shape[:3] != np.shape(heatmaps):
        raise ValueError("Expected `pixels` (batch, height, width, channels) matching "
                         f"`heatmaps` {np.shape(heatmaps)}. Received: {pixels.shape}")
    grey = np.repeat(pixels.mean(axis=-1, keepdims=True), 3, axis=-1)
    colours = colorize(heatmaps, kind=kind, percentile=percentile) / 255.0
    weight = alpha * np.abs(normalize(heatmaps, kind=kind, percentile=percentile))[..., None]
    return np.round(255.0 * ((1 - weight) * grey + weight * colours)).astype(np.uint8)


def save_png(path: str, image: np.ndarray) -> None:
    """Writes an (H, W, 3) uint8 image as PNG."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("Expected `image` to be (height, width, channels) uint8. "
                         f"Received: {image.dtype} of shape {image.shape}")
    tf.io.write_file(path, tf.io.encode_png(image))


def map_pngs(attributions: np.ndarray, pixels: np.ndarray) -> Dict[str, bytes]:
    """PNG files of one image's map, as a run directory stores them: its heatmap
    coloured (``heatmap_png``) and laid over the image (``overlay_png``).

    Args:
      attributions: (H, W, C) attributions of one image.
      pixels: (H, W, 3) the image in [0, 1].
    """
    maps = heatmap(attributions[None]).numpy()
    return {"heatmap_png": tf.io.encode_png(colorize(maps)[0]).numpy(),
            "overlay_png": tf.io.encode_png(overlay(pixels[None], maps)[0]).numpy()}
