"""Occlusion (Zeiler & Fergus, ECCV 2014).

A window of ``h × w`` pixels (all channels) slides over the image with a
stride; each position k replaces the window by a baseline, giving ``z_k``:

    A_i = f(x) − (1 / c_i) Σ_{k: i ∈ W_k} f(z_k),   c_i = #{k: i ∈ W_k}

the mean drop of the target logit over the windows covering element i (0 for
elements no window covers). For a linear model ``f = w·x + b_t`` this is the
mean, over the windows covering i, of the window sums of ``w ⊙ (x − b)``; with
the stride equal to the window, each element gets its own window's sum.
Forward passes only, on the shared engine: the windows of every image (and one
unoccluded pass per image) are packed into chunks of ``batch_size``.
"""

from typing import Tuple, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _checks
from tf_smoothtaylor.methods.base import Explainer

BASELINES = ("zero", "mean")


def _pair(name, value) -> Tuple[int, int]:
    values = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(values) != 2:
        raise ValueError(f"Expected `{name}` to be an int or (height, width). "
                         f"Received: {name}={value!r}")
    return tuple(_checks.positive_int(name, v) for v in values)


class Occlusion(Explainer):
    """Occlusion attributions.

    Args:
      model: Keras model (explained on its logits).
      window: Window side in pixels, or (height, width).
      stride: Step between windows (default: the window, no overlap).
      baseline: What the window is replaced by: a number (model-input space),
        ``"zero"`` (black pixels through the model's ``preprocess`` when it is a
        ``models.ModelSpec``, else 0) or ``"mean"`` (each image's channel means).
      batch_size: Forward passes per compiled chunk.
      seed, jit_compile: see ``Explainer`` (no random draws).
    """

    forward_only = True
    point_weight = 1.0

    def __init__(self, model, *, window: Union[int, Tuple[int, int]] = 16,
                 stride: Union[None, int, Tuple[int, int]] = None,
                 baseline: Union[str, float] = "zero", batch_size: int = 64, seed: int = 0,
                 jit_compile: bool = False):
        self.window = _pair("window", window)
        self.stride = self.window if stride is None else _pair("stride", stride)
        if isinstance(baseline, str):
            _checks.one_of("baseline", baseline, BASELINES, otherwise="a number")
        else:
            _checks.finite_number("baseline", baseline,
                                  expected="'zero', 'mean' or a finite number")
        self.baseline = baseline
        self._preprocess = getattr(model, "preprocess", None)
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        height, width = self._fixed_image_size("Occlusion")
        if self.window[0] > height or self.window[1] > width:
            raise ValueError(f"Expected `window` to fit the {height}×{width} input. "
                             f"Received: window={self.window}")
        self._tops = np.arange(0, height - self.window[0] + 1, self.stride[0])
        self._lefts = np.arange(0, width - self.window[1] + 1, self.stride[1])
        windows = len(self._tops) * len(self._lefts)
        self.num_points = windows + 1                       # the last: x itself
        coverage = np.zeros((height, width), np.float32)
        for top in self._tops:
            for left in self._lefts:
                coverage[top:top + self.window[0], left:left + self.window[1]] += 1
        self._coverage = tf.constant(coverage[..., None])

    def prepare(self, images, extras):
        if self.baseline == "mean":
            fill = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        elif self.baseline == "zero":
            black = tf.zeros_like(images[:, :1, :1])
            fill = black if self._preprocess is None else tf.cast(self._preprocess(black),
                                                                  tf.float32)
        else:
            fill = tf.fill(tf.shape(images[:, :1, :1]), float(self.baseline))
        return {"fill": tf.broadcast_to(fill, tf.shape(images[:, :1, :1]))}

    def points(self, x, params, keys, k):
        height, width = int(x.shape[1]), int(x.shape[2])
        windows = self.num_points - 1
        index = tf.minimum(k, windows - 1)
        top = tf.gather(tf.constant(self._tops, tf.int32), index // len(self._lefts))
        left = tf.gather(tf.constant(self._lefts, tf.int32), index % len(self._lefts))
        rows = tf.range(height)[None, :, None, None]
        cols = tf.range(width)[None, None, :, None]
        top, left = top[:, None, None, None], left[:, None, None, None]
        inside = ((rows >= top) & (rows < top + self.window[0])
                  & (cols >= left) & (cols < left + self.window[1]))
        occluded = tf.logical_and(inside, (k < windows)[:, None, None, None])
        z = tf.where(occluded, params["fill"], x)
        covered = tf.cast(self._coverage > 0, tf.float32)
        share = tf.cast(inside, tf.float32) / tf.maximum(self._coverage, 1.0)
        # Point K (the image itself) carries f(x) on covered elements; window k its −f(z_k) share.
        m = tf.where((k < windows)[:, None, None, None], -share, covered[None])
        return z, tf.broadcast_to(m, tf.shape(x)), None
