"""Heatmaps as pictures: colour maps, overlays and titled grids, saved as PNG.

Only NumPy and TensorFlow are used. Colour maps are piecewise linear between
anchor colours:

* ``diverging`` (signed maps): blue (−) → white (0) → red (+); h is divided by
  the ``percentile``-th percentile of |h| and clipped to [−1, 1];
* ``sequential`` (|h|): black → purple → orange → pale yellow; |h| is divided
  by the same percentile and clipped to [0, 1].
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _font

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


def grid(tiles: Sequence[Sequence[np.ndarray]], *, titles: Optional[Sequence[str]] = None,
         gap: int = 4, scale: int = 2) -> np.ndarray:
    """Tiles (rows × columns of (H, W, 3) uint8) on a white sheet, titled columns."""
    rows = [list(row) for row in tiles]
    if not rows or not rows[0]:
        raise ValueError("Expected `tiles` to hold at least one row of tiles.")
    height, width = rows[0][0].shape[:2]
    columns = len(rows[0])
    if any(len(row) != columns for row in rows) or any(
            tile.shape[:2] != (height, width) for row in rows for tile in row):
        raise ValueError("Expected every row of `tiles` to have the same number of tiles "
                         "of the same size.")
    if titles is not None and len(titles) != columns:
        raise ValueError(f"Expected {columns} titles. Received: {len(titles)}")
    column = width
    header = 0 if titles is None else _font.HEIGHT * scale + 2 * gap
    if titles is not None:
        # One font size for all titles: the largest at which every title fits; at the
        # smallest size, columns widen to the longest title rather than cutting it.
        longest = max(len(str(title)) for title in titles)
        fits = [k for k in range(scale, 0, -1) if longest * 6 * k - k <= width]
        scale = fits[0] if fits else 1
        column = max(width, longest * 6 * scale - scale)
    sheet = np.full((header + len(rows) * (height + gap) + gap,
                     columns * (column + gap) + gap, 3), 255, np.uint8)
    for c in range(columns):
        left = gap + c * (column + gap)
        if titles is not None:
            mask = _font.render(str(titles[c]), scale=scale)
            sheet[gap:gap + mask.shape[0], left:left + mask.shape[1]][mask] = 0
        for r, row in enumerate(rows):
            top = header + gap + r * (height + gap)
            sheet[top:top + height, left:left + width] = row[c][..., :3]
    return sheet


def save_png(path: str, image: np.ndarray) -> None:
    """Writes an (H, W, 3) uint8 image as PNG."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("Expected `image` to be (height, width, channels) uint8. "
                         f"Received: {image.dtype} of shape {image.shape}")
    tf.io.write_file(path, tf.io.encode_png(image))


def method_grid(pixels, maps_by_method: dict, *, kind: str = "diverging",
                scale: int = 2) -> np.ndarray:
    """Images in the first column, one overlay column per method, titled."""
    pixels = np.asarray(pixels)
    rows = []
    overlays = {name: overlay(pixels, maps, kind=kind) for name, maps in maps_by_method.items()}
    for i in range(len(pixels)):
        image = np.round(np.clip(pixels[i], 0, 1) * 255).astype(np.uint8)
        rows.append([image] + [overlays[name][i] for name in maps_by_method])
    return grid(rows, titles=["image"] + list(maps_by_method), scale=scale)
