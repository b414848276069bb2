"""A synthetic image-classification dataset with ground-truth object masks.

Each image (default 64×64 RGB) shows one coloured shape — circle, square,
triangle or cross — at a random position, size, rotation and colour, on a
textured background (smooth colour noise, stripes of random frequency and
angle, and pixel noise). The class is the shape; the mask marks its pixels.
Everything is drawn with NumPy from a seed, so a dataset is reproducible.
"""

from typing import NamedTuple

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "cross")


class Shapes(NamedTuple):
    """pixels (N, S, S, 3) float32 in [0, 1], labels (N,) int64, masks (N, S, S) bool."""
    pixels: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def _shape_mask(kind: int, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Mask of a shape of circumradius ``radius`` in rotated coordinates (u, v)."""
    if kind == 0:
        return u ** 2 + v ** 2 <= (0.85 * radius) ** 2
    if kind == 1:
        half = 0.7 * radius
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if kind == 2:
        inside = np.ones_like(u, bool)
        for k in range(3):
            angle = np.pi / 2 + 2 * np.pi * k / 3
            inside &= u * np.cos(angle) + v * np.sin(angle) <= radius / 2
        return inside
    arm = radius / 3.2
    return (((np.abs(u) <= arm) & (np.abs(v) <= radius))
            | ((np.abs(v) <= arm) & (np.abs(u) <= radius)))


def _background(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray):
    coarse = rng.uniform(0, 1, (4, 4, 3))
    index = np.minimum((np.stack([yy, xx]) / size * 3).astype(int), 2)
    fy, fx = (yy / size * 3) % 1, (xx / size * 3) % 1
    c00 = coarse[index[0], index[1]]
    c01 = coarse[index[0], index[1] + 1]
    c10 = coarse[index[0] + 1, index[1]]
    c11 = coarse[index[0] + 1, index[1] + 1]
    smooth = (c00 * ((1 - fy) * (1 - fx))[..., None] + c01 * ((1 - fy) * fx)[..., None]
              + c10 * (fy * (1 - fx))[..., None] + c11 * (fy * fx)[..., None])
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)
    stripes = 0.5 + 0.5 * np.sin(frequency * (xx * np.cos(angle) + yy * np.sin(angle)))
    tint = rng.uniform(0, 1, 3)
    texture = 0.55 * smooth + 0.3 * stripes[..., None] * tint
    return texture + rng.normal(0, 0.04, (size, size, 3))


def generate(count: int, *, size: int = 64, seed: int = 0) -> Shapes:
    """``count`` images with balanced classes (class i for image i mod 4), shuffled.

    Example:
      >>> data = generate(8, seed=1)
      >>> data.pixels.shape, data.masks.dtype
      ((8, 64, 64, 3), dtype('bool'))
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    pixels = np.empty((count, size, size, 3), np.float32)
    masks = np.empty((count, size, size), bool)
    labels = rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.int64)
    for i, kind in enumerate(labels):
        radius = rng.uniform(0.16, 0.3) * size
        cy, cx = rng.uniform(radius + 1, size - radius - 1, 2)
        theta = rng.uniform(0, 2 * np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        mask = _shape_mask(int(kind), u, v, radius)
        colour = rng.uniform(0, 1, 3)
        colour[rng.integers(3)] = rng.choice([0.05, 0.95])          # saturated
        shading = 1.0 - 0.15 * (u / radius)[..., None]
        image = _background(rng, size, yy, xx)
        image = np.where(mask[..., None], colour * shading + rng.normal(0, 0.03, image.shape),
                         image)
        pixels[i] = np.clip(image, 0.0, 1.0)
        masks[i] = mask
    return Shapes(pixels, labels, masks)
