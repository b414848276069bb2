"""AUPC: sensitivity by region perturbation, most relevant first (Goh et al. 2020).

In the style of Samek et al. (2017), as PAPER.md defines it:

1. Score every k×k window (top-left corners at rows and columns
   0 … size − k − 1) by the mean of |h| inside it; rank the windows once and pick
   ``num_regions`` (L) non-overlapping ones greedily, most relevant first (a chosen
   window removes every corner within k − 1 of its own in both directions; ties
   go to the lower row-major index).
2. Step l = 1 … L, in **pixel space [0, 1]**: make P = ``num_copies`` copies of the
   current image with window l replaced by i.i.d. U[0, 1] values, preprocess and
   classify them; ``ȳ(l)`` is their mean target logit; the copy whose logit is
   closest to the median becomes the current image.
3. Curve ``[f(x), ȳ(1), …, ȳ(L)] / |f(x)|`` (L + 1 points); AUPC is Simpson's rule
   (dx = 1) over it. Lower is better; L when nothing changes.

All copies of all images go through the model in chunks of ``batch_size`` inside
one compiled function. The noise of copy p at step l of an image is keyed by
(seed, image content, l, p), so results do not depend on ``batch_size`` or on
the other images in the call.
"""

from typing import Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine.logits import LogitModel, select_target
from tf_smoothtaylor.engine.tracing import graph_function
from tf_smoothtaylor.metrics import registry
from tf_smoothtaylor.metrics._inputs import images_and_heatmaps, images_only
from tf_smoothtaylor.metrics.integrate import simpson

_PIXEL_TOLERANCE = 1e-3


class AUPCResult(NamedTuple):
    """Per-image AUPC, normalised curves (B, L + 1) and windows (B, L, 2)."""
    aupc: tf.Tensor
    curves: tf.Tensor
    regions: tf.Tensor

    @property
    def score(self) -> tf.Tensor:
        """The per-image value (B,), ``aupc``: every metric result has ``.score``."""
        return self.aupc


def select_regions(heatmaps: tf.Tensor, window: int, num_regions: int) -> tf.Tensor:
    """Greedy non-overlapping windows, most relevant first: (B, L, 2) top-left
    corners (row, column), −1 where no window was left."""
    magnitude = tf.abs(heatmaps)[..., None]
    scores = tf.nn.avg_pool2d(magnitude, window, strides=1, padding="VALID")[..., 0]
    scores = scores[:, :-1, :-1]          # corners 0 … size − k − 1
    rows, cols = int(scores.shape[1]), int(scores.shape[2])
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    row_of = tf.range(rows * cols) // cols
    col_of = tf.range(rows * cols) % cols
    available = tf.ones_like(flat, tf.bool)
    chosen = []
    for _ in range(num_regions):
        masked = tf.where(available, flat, -np.inf)
        index = tf.argmax(masked, axis=-1, output_type=tf.int32)
        found = tf.reduce_any(available, axis=-1)
        row, col = index // cols, index % cols
        chosen.append(tf.where(found[:, None], tf.stack([row, col], -1), -1))
        near = ((tf.abs(row_of[None] - row[:, None]) <= window - 1)
                & (tf.abs(col_of[None] - col[:, None]) <= window - 1))
        available &= ~near
    return tf.stack(chosen, axis=1)


class AUPC:
    """Reusable, compiled AUPC for one model (one trace per image shape).

    Args:
      model: Keras model (explained class on its logits), or an object holding
        one as ``.model`` with ``.preprocess``/``.deprocess``.
      preprocess: Pixels [0, 1] -> model inputs (TensorFlow ops); identity if None.
      deprocess: Model inputs -> pixels [0, 1]; identity if None.
      window: k, the side of a perturbed window.
      num_regions: L, windows perturbed one after another.
      num_copies: P, random copies per step.
      seed: Seed of the replacement noise.
      batch_size: Copies per forward pass.
    """

    def __init__(self, model, *, preprocess: Optional[Callable] = None,
                 deprocess: Optional[Callable] = None, window: int = 15,
                 num_regions: int = 30, num_copies: int = 50, seed: int = 0,
                 batch_size: int = 64):
        self._logits = LogitModel(model)
        self.preprocess = preprocess or getattr(model, "preprocess", None) or (lambda p: p)
        self.deprocess = deprocess or getattr(model, "deprocess", None) or (lambda x: x)
        for name, fn in (("preprocess", self.preprocess), ("deprocess", self.deprocess)):
            if not callable(fn):
                raise TypeError(f"Expected `{name}` to be a callable or None. "
                                f"Received: {name}={fn!r}")
        self.window = _checks.positive_int("window", window)
        self.num_regions = _checks.positive_int("num_regions", num_regions)
        self.num_copies = _checks.positive_int("num_copies", num_copies)
        self.seed = _checks.seed(seed)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.trace_count = 0
        self._functions = {}

    def __call__(self, images, heatmaps, targets=None) -> AUPCResult:
        """AUPC of ``heatmaps`` (B, H, W) for model inputs ``images`` (B, H, W, C)."""
        images, maps = self._check(images, heatmaps)
        batch = int(images.shape[0])
        if batch == 0:
            return AUPCResult(tf.zeros([0]), tf.zeros([0, self.num_regions + 1]),
                              tf.zeros([0, self.num_regions, 2], tf.int32))
        classes = self._logits.metric_classes(images, targets, self.batch_size)
        function = self._function(images.shape[1:])
        regions = select_regions(maps, self.window, self.num_regions)
        if bool(tf.reduce_any(regions < 0)):
            raise ValueError(
                f"Expected `num_regions` to fit in the image without overlap: only "
                f"{int(tf.reduce_min(tf.reduce_sum(tf.cast(regions[..., 0] >= 0, tf.int32), 1)))}"
                f" windows of {self.window}×{self.window} fit in {tuple(maps.shape[1:])}. "
                f"Received: num_regions={self.num_regions}")
        pixels = tf.clip_by_value(tf.cast(self.deprocess(images), tf.float32), 0.0, 1.0)
        curves = function(images, pixels, regions, tf.constant(classes))
        return AUPCResult(simpson(curves), curves, regions)

    def _check(self, images, heatmaps):
        images_only("AUPC", images)
        images, maps = images_and_heatmaps(images, heatmaps)
        expected = self._logits.input_shape
        if any(e is not None and e != s for e, s in zip(expected, images.shape[1:])):
            raise ValueError("Expected `images` of shape (batch, height, width, channels) "
                             f"fitting the model input {expected}. "
                             f"Received: images of shape {tuple(images.shape)}")
        if self.window >= min(images.shape[1:3]):
            raise ValueError(f"Expected `window` smaller than the image side "
                             f"{min(images.shape[1:3])}. Received: window={self.window}")
        if not bool(tf.reduce_all(tf.math.is_finite(images))):
            raise ValueError("Expected `images` to hold finite values. "
                             "Received: images containing NaN or Inf")
        if int(images.shape[0]):
            pixels = tf.cast(self.deprocess(images), tf.float32)
            low, high = float(tf.reduce_min(pixels)), float(tf.reduce_max(pixels))
            if low < -_PIXEL_TOLERANCE or high > 1 + _PIXEL_TOLERANCE:
                raise ValueError(
                    "Expected `images` whose pixels (`deprocess(images)`) lie in [0, 1]; "
                    "pass `preprocess`/`deprocess` for normalised inputs. "
                    f"Received: pixels in [{low:.3g}, {high:.3g}]")
        return images, maps

    def _function(self, image_shape):
        key = tuple(image_shape)
        if key not in self._functions:
            self._functions[key] = self._build(key)
        return self._functions[key]

    def _build(self, image_shape):
        height, width, channels = image_shape
        k, copies, size = self.window, self.num_copies, self.batch_size
        logits = self._logits

        def perturb(current, region, keys, step, copy):
            """Copies of ``current`` with the k×k window at ``region`` replaced."""
            noise = _random.uniform(keys, _random.PERTURBATION, copy, [k, k, channels],
                                    draw=step)
            n = tf.shape(current)[0]
            rows = region[:, 0, None, None] + tf.range(k)[None, :, None]
            cols = region[:, 1, None, None] + tf.range(k)[None, None, :]
            index = tf.stack([tf.broadcast_to(tf.range(n)[:, None, None], [n, k, k]),
                              tf.broadcast_to(rows, [n, k, k]),
                              tf.broadcast_to(cols, [n, k, k])], axis=-1)
            return tf.tensor_scatter_nd_update(current, index, noise)

        def curve(images, pixels, regions, targets):
            self.trace_count += 1
            batch = tf.shape(images)[0]
            total = batch * copies
            keys = _random.image_keys(pixels, self.seed)
            start = select_target(logits(images), targets, None)

            def step_body(step, current, means):
                region = regions[:, step]

                def chunk_body(chunk, values):
                    # Exactly the copies left, up to batch_size: the last chunk of a step
                    # is not padded (no forward pass is thrown away).
                    first = chunk * size
                    flat = first + tf.range(tf.minimum(size, total - first))
                    image = flat // copies
                    batch_pixels = perturb(tf.gather(current, image), tf.gather(region, image),
                                           keys.gather(image), step, flat % copies)
                    out = logits(tf.cast(self.preprocess(batch_pixels), tf.float32))
                    value = select_target(out, tf.gather(targets, image), None)
                    return chunk + 1, tf.tensor_scatter_nd_update(values, flat[:, None], value)

                _, values = tf.while_loop(
                    lambda chunk, _: chunk * size < total, chunk_body,
                    [tf.constant(0), tf.zeros([total])], parallel_iterations=1)
                values = tf.reshape(values, [batch, copies])
                ordered = tf.sort(values, axis=-1)
                median = 0.5 * (ordered[:, (copies - 1) // 2] + ordered[:, copies // 2])
                keep = tf.argmin(tf.abs(values - median[:, None]), axis=-1, output_type=tf.int32)
                current = perturb(current, region, keys, step, keep)
                means = means.write(step, tf.reduce_mean(values, axis=-1))
                return step + 1, current, means

            _, _, means = tf.while_loop(
                lambda step, *_: step < self.num_regions, step_body,
                [tf.constant(0), pixels, tf.TensorArray(tf.float32, size=self.num_regions)],
                parallel_iterations=1)
            raw = tf.concat([start[:, None], tf.transpose(means.stack())], axis=1)
            scale = tf.maximum(tf.abs(start), 1e-12)[:, None]
            return raw / scale

        spec = tf.TensorSpec((None, height, width, channels), tf.float32)
        return graph_function(curve, input_signature=[
            spec, spec, tf.TensorSpec((None, self.num_regions, 2), tf.int32),
            tf.TensorSpec((None,), tf.int32)])


def aupc(model, images, heatmaps, *, targets=None, preprocess=None, deprocess=None,
         window: int = 15, num_regions: int = 30, num_copies: int = 50, seed: int = 0,
         batch_size: int = 64) -> AUPCResult:
    """Area under the perturbation curve, per image (see the module docstring).

    Args:
      model: Keras model or an object holding one as ``.model``.
      images: (B, H, W, C) model inputs (``deprocess(images)`` in [0, 1]).
      heatmaps: (B, H, W) heatmaps to evaluate.
      targets: None (top-1 class), an int, or one int per image.
      preprocess, deprocess, window, num_regions, num_copies, seed, batch_size:
        see ``AUPC``.

    Returns:
      ``AUPCResult(aupc (B,), curves (B, L + 1), regions (B, L, 2))``.

    Example:
      >>> result = aupc(model, images, tf_smoothtaylor.heatmap(attributions),
      ...               preprocess=preprocess, deprocess=deprocess)
      >>> result.aupc           # lower is better
    """
    return AUPC(model, preprocess=preprocess, deprocess=deprocess, window=window,
                num_regions=num_regions, num_copies=num_copies, seed=seed,
                batch_size=batch_size)(images, heatmaps, targets)


@registry.register("aupc", lower_is_better=True)
def _scores(spec, **settings):
    metric = AUPC(spec, **settings)
    return lambda images, maps, targets, masks: metric(images, maps, targets).score
