"""AUTVC: multi-scale average total variation of a heatmap (Goh et al. 2020).

The paper's noise-level measure (lower is smoother):

1. Gaussian pyramid of the **signed** heatmap ``h``: level 0 is ``h``; each next
   level smooths the previous one with a Gaussian of σ = 2·d/6 (d = ``downscale``;
   kernel truncated at 4σ and renormalised; borders reflected half-sample
   symmetric, ``d c b a | a b c d``) and resizes it bilinearly (half-pixel
   centres, no antialiasing) to ``ceil(size / d)``; levels are kept while both
   sides are ≥ ``min_size`` (224 → 150 → 100 → 67 → 45 → 30: 6 levels).
   This is scikit-image's ``pyramid_gaussian``.
2. At every level, the saliency normalisation
   ``norm(h) = clip((|h| − min|h|) / (p(|h|) − min|h|), 0, 1)`` with ``p`` the
   ``percentile``-th percentile (linear interpolation, as NumPy's default);
   a level whose percentile equals its minimum (e.g. a constant map)
   normalises to 0.
3. ``ATV(S) = (1 / (h·w)) Σ |S[i+1, j] − S[i, j]| + |S[i, j+1] − S[i, j]|``.
4. AUTVC = Simpson's rule (dx = 1, ``integrate.simpson``) over the levels' ATV.
"""

import math
from typing import List

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.metrics import registry
from tf_smoothtaylor.metrics._inputs import check_heatmaps
from tf_smoothtaylor.metrics.integrate import simpson


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def _smooth(maps: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    """Separable Gaussian blur of (B, H, W) maps with symmetric borders."""
    radius = len(kernel) // 2
    x = maps[..., None]
    for axis in (1, 2):
        paddings = [[0, 0], [0, 0], [0, 0], [0, 0]]
        paddings[axis] = [radius, radius]
        # Half-sample symmetric padding may not exceed the side; repeat if needed.
        while paddings[axis][0] > 0:
            step = min(paddings[axis][0], int(x.shape[axis]))
            pad = [[0, 0]] * 4
            pad[axis] = [step, step]
            x = tf.pad(x, pad, mode="SYMMETRIC")
            paddings[axis] = [paddings[axis][0] - step] * 2
        shape = [len(kernel), 1, 1, 1] if axis == 1 else [1, len(kernel), 1, 1]
        x = tf.nn.conv2d(x, tf.reshape(kernel, shape), strides=1, padding="VALID")
    return x[..., 0]


def pyramid(heatmaps, *, downscale: float = 1.5, min_size: int = 30) -> List[tf.Tensor]:
    """Gaussian pyramid levels of (B, H, W) heatmaps (level 0 = the heatmaps)."""
    maps = tf.convert_to_tensor(heatmaps, tf.float32)
    kernel = _gaussian_kernel(2.0 * downscale / 6.0)
    levels = [maps]
    while True:
        height, width = levels[-1].shape[1:3]
        size = (math.ceil(height / downscale), math.ceil(width / downscale))
        if min(size) < min_size or size == (height, width):
            return levels
        smoothed = _smooth(levels[-1], kernel)
        levels.append(tf.image.resize(smoothed[..., None], size, method="bilinear",
                                      antialias=False)[..., 0])


def largest_min_size(height: int, width: int, *, downscale: float = 1.5) -> int:
    """The largest ``min_size`` that keeps two pyramid levels of an H×W map."""
    return min(math.ceil(height / downscale), math.ceil(width / downscale))


def _percentile(values: tf.Tensor, q: float) -> tf.Tensor:
    """Per-row percentile of (B, N) values, linear interpolation (NumPy default)."""
    n = int(values.shape[-1])
    position = q / 100.0 * (n - 1)
    low = int(math.floor(position))
    high = min(low + 1, n - 1)
    ordered = tf.sort(values, axis=-1)
    fraction = position - low
    return ordered[:, low] + fraction * (ordered[:, high] - ordered[:, low])


def saliency_norm(maps, *, percentile: float = 99.0) -> tf.Tensor:
    """``clip((|h| − min|h|) / (p(|h|) − min|h|), 0, 1)`` per map; 0 where p = min."""
    magnitude = tf.abs(tf.convert_to_tensor(maps, tf.float32))
    flat = tf.reshape(magnitude, [tf.shape(magnitude)[0], -1])
    low = tf.reduce_min(flat, axis=-1)
    span = _percentile(flat, percentile) - low
    scale = tf.math.divide_no_nan(1.0, span)[:, None, None]
    return tf.clip_by_value((magnitude - low[:, None, None]) * scale, 0.0, 1.0)


def average_total_variation(maps) -> tf.Tensor:
    """ATV of (B, H, W) maps: ℓ1 neighbour differences over h·w."""
    maps = tf.convert_to_tensor(maps, tf.float32)
    vertical = tf.reduce_sum(tf.abs(maps[:, 1:, :] - maps[:, :-1, :]), axis=[1, 2])
    horizontal = tf.reduce_sum(tf.abs(maps[:, :, 1:] - maps[:, :, :-1]), axis=[1, 2])
    return (vertical + horizontal) / float(maps.shape[1] * maps.shape[2])


def autvc(heatmaps, *, downscale: float = 1.5, min_size: int = 30,
          percentile: float = 99.0) -> tf.Tensor:
    """Area under the multi-scale average-total-variation curve, per heatmap.

    Args:
      heatmaps: (B, H, W) signed heatmaps (``tf_smoothtaylor.heatmap``).
      downscale: Pyramid factor d > 1 (Gaussian σ = 2·d/6).
      min_size: Smallest side a kept level may have.
      percentile: Upper percentile of the saliency normalisation, in (0, 100].

    Returns:
      float32 tensor (B,); lower is smoother. A constant heatmap scores 0.

    Raises:
      ValueError, TypeError: on bad heatmaps or settings, and for heatmaps too
        small to keep two pyramid levels at ``min_size`` (Simpson's rule over one
        level would be 0 whatever the map): lower ``min_size`` to at most
        ``largest_min_size(H, W)``.

    Example:
      >>> scores = autvc(tf_smoothtaylor.heatmap(attributions))
    """
    if np.ndim(heatmaps) == 2:
        raise ValueError("AUTVC is defined on image heatmaps (batch, height, width); for "
                         "series, features or tokens use deletion, insertion or "
                         f"sensitivity_n. Received: heatmaps of shape {np.shape(heatmaps)}")
    maps = check_heatmaps(heatmaps)
    downscale = _checks.positive_float("downscale", downscale)
    if downscale <= 1.0:
        raise ValueError(f"Expected `downscale` to be > 1. Received: downscale={downscale}")
    min_size = _checks.positive_int("min_size", min_size)
    percentile = _checks.positive_float("percentile", percentile)
    if percentile > 100.0:
        raise ValueError("Expected `percentile` in (0, 100]. "
                         f"Received: percentile={percentile}")
    levels = pyramid(maps, downscale=downscale, min_size=min_size)
    if len(levels) < 2:
        height, width = int(maps.shape[1]), int(maps.shape[2])
        raise ValueError(
            f"Expected heatmaps large enough for two pyramid levels with min_size={min_size} "
            f"(both sides at least about {math.ceil(downscale * min_size)}). Received: "
            f"{height}×{width} heatmaps; use min_size <= "
            f"{largest_min_size(height, width, downscale=downscale)} for this size")
    if int(maps.shape[0]) == 0:
        return tf.zeros([0])
    values = [average_total_variation(saliency_norm(level, percentile=percentile))
              for level in levels]
    return simpson(tf.stack(values, axis=-1))


@registry.register("autvc", lower_is_better=True)
def _scores(spec, **settings):
    return lambda images, maps, targets, masks: autvc(maps, **settings)
