"""Occlusion (Zeiler & Fergus, ECCV 2014).

A window of ``h × w`` pixels (all channels) slides over the image with a
stride — or, for a series (T, C), a window of time steps (all channels), and for
features (F,), a window of features; each position k replaces the window by a
baseline, giving ``z_k``:

    A_i = f(x) − (1 / c_i) Σ_{k: i ∈ W_k} f(z_k),   c_i = #{k: i ∈ W_k}

the mean drop of the target logit over the windows covering element i (0 for
elements no window covers). Token ids (an integer input) are occluded as
features: a window of tokens becomes the baseline's id (``"zero"``: id 0, the
padding id of Keras and KerasHub vocabularies; or a mask id you give). For a linear model ``f = w·x + b_t`` this is the
mean, over the windows covering i, of the window sums of ``w ⊙ (x − b)``; with
the stride equal to the window, each element gets its own window's sum.
Forward passes only, on the shared engine: the windows of every image are packed
into chunks of ``batch_size``, after one unoccluded pass per image that gives
``f(x)``; each drop ``f(x) − f(z_k)`` is taken in float32 before it is summed.
"""

from typing import Callable, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods import _baselines
from tf_smoothtaylor.methods.base import Explainer, warn_if_16_bit
from tf_smoothtaylor.methods.options import Option
from tf_smoothtaylor.methods.registry import register

BASELINES = ("zero", "mean")


def _pair(name, value) -> Tuple[int, int]:
    values = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(values) != 2:
        raise ValueError(f"Expected `{name}` to be an int or (height, width). "
                         f"Received: {name}={value!r}")
    return tuple(_checks.positive_int(name, v) for v in values)


def _as_image(x: tf.Tensor) -> tf.Tensor:
    """``x`` (batch, ...) as (batch, rows, columns, channels): images unchanged, a
    series (batch, T, C) as (batch, T, 1, C), features (batch, F) as (batch, F, 1, 1)."""
    if x.shape.rank == 4:
        return x
    if x.shape.rank == 3:
        return x[:, :, None, :]
    return x[:, :, None, None]


def occlusion_size(input_shape, method: str = "Occlusion") -> Tuple[int, int]:
    """The (rows, columns) windows slide over: an image's (H, W), a series' (T, 1),
    features' (F, 1).

    Raises:
      ValueError: Another input shape, or an unknown size (naming ``method``).
    """
    if len(input_shape) in (1, 2, 3) and all(isinstance(d, int) for d in input_shape):
        return (int(input_shape[0]), int(input_shape[1])) if len(input_shape) == 3 \
            else (int(input_shape[0]), 1)
    raise ValueError(f"Expected images (H, W, C), series (T, C) or features (F,) of fixed "
                     f"size for {method}. Received: input shape {input_shape}")


class OcclusionScheme(Scheme):
    """Window k of an image (row-major over the positions): ``z_k`` = x with the
    window filled, multiplier ``−1/c_i`` on the window's elements; ``c = f(x)``
    (one offset point, ``z = x``) is subtracted from each score in float32."""

    forward_only = True
    point_weight = 1.0
    offset_points = 1                  # c = f(x): each drop f(x) − f(z_k) in float32

    def __init__(self, *, size: Tuple[int, int], window: Tuple[int, int],
                 stride: Tuple[int, int], baseline, preprocess):
        super().__init__()
        (height, width), self.window = size, window
        self.baseline, self.preprocess = baseline, preprocess
        self._tops = np.arange(0, height - window[0] + 1, stride[0])
        self._lefts = np.arange(0, width - window[1] + 1, stride[1])
        self.num_points = len(self._tops) * len(self._lefts)
        coverage = np.zeros((height, width), np.float32)
        for top in self._tops:
            for left in self._lefts:
                coverage[top:top + window[0], left:left + window[1]] += 1
        self._coverage = tf.constant(coverage[..., None])

    def prepare(self, images, extras):
        return {"fill": _baselines.fill(self.baseline, images, self.preprocess)}

    def points(self, x, params, keys, k):
        # Series (T, C) and features (F,) are windowed as (T, 1, C) and (F, 1, 1) images.
        shape = tf.shape(x)
        x4 = _as_image(x)
        height, width = int(x4.shape[1]), int(x4.shape[2])
        top = tf.gather(tf.constant(self._tops, tf.int32), k // len(self._lefts))
        left = tf.gather(tf.constant(self._lefts, tf.int32), k % len(self._lefts))
        rows = tf.range(height)[None, :, None, None]
        cols = tf.range(width)[None, None, :, None]
        top, left = top[:, None, None, None], left[:, None, None, None]
        inside = ((rows >= top) & (rows < top + self.window[0])
                  & (cols >= left) & (cols < left + self.window[1]))
        z = tf.where(inside, _as_image(params["fill"]), x4)
        # Window k's share of the mean drop: −(f(z_k) − f(x)) / c_i on its elements.
        share = tf.cast(inside, tf.float32) / tf.maximum(self._coverage, 1.0)
        return (tf.reshape(z, shape), tf.reshape(tf.broadcast_to(-share, tf.shape(x4)), shape),
                None)

    def offset_point(self, x, params, keys, k):
        return x


@register("occlusion", needs="forwards")
class Occlusion(Explainer):
    """Occlusion attributions.

    Args:
      model: Keras model (explained on its logits).
      window: Window side in pixels, or (height, width); for a series (T, C),
        time steps (a window covers every channel); for features (F,), features.
      stride: Step between windows (default: the window, no overlap).
      baseline: What the window is replaced by: ``"zero"`` (black pixels through
        ``preprocess``), ``"mean"`` (each image's channel means), or model-input
        values (a number or an array broadcastable to one input).
      preprocess: Pixels in [0, 1] -> model inputs, for ``"zero"``; default the
        model's when it is a ``models.ModelSpec``.
      batch_size: Forward passes per compiled chunk.
      seed, jit_compile: see ``Explainer`` (no random draws).
    """

    takes_ids = True                   # token ids: a window becomes the baseline's id

    options = {
        "window": Option("Window side in pixels, time steps or features (Python: or "
                         "(height, width))",
                         flag="occlusion_window", minimum=1),
        "stride": Option("Step between windows (default: the window)",
                         flag="occlusion_stride", kind=int, minimum=1),
        "baseline": Option("What a window becomes: 'zero' (black pixels through "
                           "preprocess), 'mean' (each image's channel means) or a "
                           "model-input value", flag="occlusion_baseline",
                           choices=BASELINES, number=True),
        "preprocess": Option("Pixels in [0, 1] -> model inputs, for 'zero' (the model's "
                             "own when it is a ModelSpec)", flag=None),
    }

    def __init__(self, model, *, window: Union[int, Tuple[int, int]] = 16,
                 stride: Union[None, int, Tuple[int, int]] = None,
                 baseline: Union[str, float, np.ndarray] = "zero",
                 preprocess: Optional[Callable] = None, batch_size: int = 64, seed: int = 0,
                 jit_compile: bool = False):
        self.window = _pair("window", window)
        self.stride = self.window if stride is None else _pair("stride", stride)
        self.baseline = _baselines.check_fill(baseline, BASELINES, "Occlusion")
        self.preprocess, self._preprocess_from_model = _baselines.resolve_preprocess(
            model, preprocess)
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        _baselines.check_shape(self.baseline, self._logits.input_shape)
        warn_if_16_bit(self._logits, "Occlusion")
        if len(self._logits.input_shape) < 3:          # series and features: 1-D windows
            if isinstance(window, (tuple, list)) or isinstance(stride, (tuple, list)):
                raise ValueError("Expected `window` and `stride` to be ints for series "
                                 "and features (windows over time steps or features). "
                                 f"Received: window={window!r}, stride={stride!r}")
            if isinstance(baseline, str) and baseline == "mean" and \
                    len(self._logits.input_shape) == 1:
                raise ValueError("Expected `baseline` 'zero' or values for features (an "
                                 "example's own mean over features means nothing). "
                                 "Received: baseline='mean'")
            self.window, self.stride = (self.window[0], 1), (self.stride[0], 1)
        height, width = occlusion_size(self._logits.input_shape)
        if self.window[0] > height or self.window[1] > width:
            raise ValueError(f"Expected `window` to fit the {height}×{width} input. "
                             f"Received: window={self.window}")

    def _check_against(self, images):
        _baselines.warn_if_outside(self.baseline, images, "Occlusion")

    def make_scheme(self) -> Scheme:
        return OcclusionScheme(size=occlusion_size(self._logits.input_shape), window=self.window,
                               stride=self.stride, baseline=self.baseline,
                               preprocess=self.preprocess)

