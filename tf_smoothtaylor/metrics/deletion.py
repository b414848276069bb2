"""Deletion and insertion curves (Petsiuk et al. 2018), most relevant first.

Pixels (all channels together) are ranked by the heatmap, most relevant first —
or the time steps of a series (all channels together), or features (a tabular
row's columns, a sequence's token ids). For step s = 0 … S the first
``⌈s·N/S⌉`` of the N pixels, steps or features are

* **deletion**: replaced by ``replacement`` in ``x``: ``x_s = M_s ⊙ r + (1 − M_s) ⊙ x``;
* **insertion**: copied from ``x`` into the replacement: ``x_s = M_s ⊙ x + (1 − M_s) ⊙ r``;

and the curve is the target logit ``f(x_s)``. AUC is the trapezoid rule over
the fraction of pixels in [0, 1]. A good map gives a *low* deletion AUC and a
*high* insertion AUC. Replacements (in model-input space): ``"zero"``,
``"mean"`` (each input's per-channel mean over its pixels or steps; over its
features for tabular rows), ``"blur"`` (images only: Gaussian blur, σ =
``blur_sigma`` pixels), a number (e.g. a mask token's id), or an array
broadcastable to the inputs (e.g. a reference set's mean row).
"""

from typing import NamedTuple, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.metrics import registry
from tf_smoothtaylor.metrics._inputs import units
from tf_smoothtaylor.metrics._variants import VariantMetric, per_image, pixel_ranks
from tf_smoothtaylor.metrics.autvc import _gaussian_kernel, _smooth

REPLACEMENTS = ("zero", "mean", "blur")


class CurveResult(NamedTuple):
    """Per-image AUC (B,) and curves (B, S + 1) of the target logit."""
    auc: tf.Tensor
    curves: tf.Tensor

    @property
    def score(self) -> tf.Tensor:
        """The per-image value (B,), ``auc``: every metric result has ``.score``."""
        return self.auc


def replacement_images(images: tf.Tensor, replacement, blur_sigma: float = 5.0, *,
                       shape=None) -> tf.Tensor:
    """The replacement values for ``images`` (B, rows, columns, channels), the view of
    inputs of their own ``shape`` (default: the images themselves); see the module
    docstring."""
    if isinstance(replacement, str):
        _checks.one_of("replacement", replacement, REPLACEMENTS,
                       otherwise="a number or an array")
        if replacement == "blur" and shape is not None and len(shape) != 3:
            raise ValueError("Expected `replacement` other than 'blur' for inputs that are "
                             "not images ('blur' is a Gaussian blur over pixels). Received: "
                             f"replacement='blur' for inputs of shape {tuple(shape)}")
        if replacement == "zero":
            return tf.zeros_like(images)
        if replacement == "mean":
            return tf.broadcast_to(tf.reduce_mean(images, axis=[1, 2], keepdims=True),
                                   tf.shape(images))
        kernel = _gaussian_kernel(blur_sigma)
        channels = tf.transpose(images, [0, 3, 1, 2])
        shape = tf.shape(channels)
        blurred = _smooth(tf.reshape(channels, [-1, shape[2], shape[3]]), kernel)
        return tf.transpose(tf.reshape(blurred, shape), [0, 2, 3, 1])
    own = tuple(images.shape[1:]) if shape is None else tuple(shape)
    try:
        values = tf.broadcast_to(tf.cast(replacement, tf.float32), [int(images.shape[0]), *own])
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        raise ValueError("Expected `replacement` to be 'zero', 'mean', 'blur', a number or "
                         f"an array broadcastable to the inputs {own}. "
                         f"Received: replacement of shape {np.shape(replacement)}") from None
    return tf.reshape(values, tf.shape(images))


class _PixelCurve(VariantMetric):
    """Reusable, compiled curve for one model (one trace per image shape)."""

    _insert = False
    _default_replacement = "zero"

    def __init__(self, model, *, steps: int = 100,
                 replacement: Union[str, float, np.ndarray, None] = None,
                 blur_sigma: float = 5.0, batch_size: int = 64):
        self.steps = _checks.positive_int("steps", steps)
        self._default_is_used = replacement is None
        self.replacement = self._default_replacement if replacement is None else replacement
        if isinstance(self.replacement, str):
            _checks.one_of("replacement", self.replacement, REPLACEMENTS,
                           otherwise="a number or an array")
        self.blur_sigma = _checks.positive_float("blur_sigma", blur_sigma)
        super().__init__(model, self.steps + 1, batch_size=batch_size, seed=0)

    def __call__(self, images, heatmaps, targets=None) -> CurveResult:
        """Curves and AUC of ``heatmaps`` for model inputs ``images``.

        Args:
          images: (B, H, W, C) images, (B, T, C) series or (B, F) features (model inputs).
          heatmaps: (B, H, W), (B, T) or (B, F): one value per pixel, step or feature.
          targets: None (top-1), an int or one int per image.

        Returns:
          ``CurveResult(auc (B,), curves (B, S + 1))``.
        """
        given = units(images, heatmaps)
        view = given.view
        if int(view.shape[0]) == 0:
            return CurveResult(tf.zeros([0]), tf.zeros([0, self.steps + 1]))
        inputs = tf.reshape(view, [-1, *given.shape])
        classes = self._logits.metric_classes(inputs, targets, self.batch_size)
        replacement = self.replacement
        if self._default_is_used and given.kind != "images":
            replacement = "zero"              # the default for series and features
        params = {"ranks": pixel_ranks(given.maps),
                  "replacement": replacement_images(view, replacement, self.blur_sigma,
                                                    shape=given.shape)}
        curves, _ = self._scorer(view, params, classes, given.shape)
        auc = tf.reduce_sum((curves[:, 1:] + curves[:, :-1]) * 0.5, axis=-1) / self.steps
        return CurveResult(auc, curves)

    def _specs(self, image_shape):
        return {"ranks": per_image(image_shape[:2], tf.int32),
                "replacement": per_image(image_shape)}

    def _make(self, x, params, keys, variant):
        pixels = int(x.shape[1]) * int(x.shape[2])
        counts = tf.constant(shown_counts(self.steps, pixels))
        shown = (params["ranks"] < tf.gather(counts, variant)[:, None, None])[..., None]
        if self._insert:
            return tf.where(shown, x, params["replacement"]), None
        return tf.where(shown, params["replacement"], x), None


def shown_counts(steps: int, pixels: int) -> np.ndarray:
    """Pixels changed at step s = 0 … S: ⌈s·HW/S⌉ (exact integer arithmetic)."""
    return ((np.arange(steps + 1, dtype=np.int64) * pixels + steps - 1) // steps).astype(
        np.int32)


class Deletion(_PixelCurve):
    """Reusable deletion curve (lower AUC is better); see the module docstring.

    Args:
      model: Keras model (logits are used).
      steps: S, curve points after the start.
      replacement: What deleted pixels, steps or features become (model-input space);
        ``"zero"`` if None.
      blur_sigma: σ in pixels for ``replacement="blur"``.
      batch_size: Images per forward pass.

    Example:
      >>> score = Deletion(model, steps=50)
      >>> score(images, tf_smoothtaylor.heatmap(attributions)).auc
    """


class Insertion(_PixelCurve):
    """Reusable insertion curve (higher AUC is better); arguments as :class:`Deletion`
    (``replacement`` defaults to ``"blur"`` for images, ``"zero"`` for other inputs)."""

    _insert = True
    _default_replacement = "blur"



def deletion(model, images, heatmaps, *, targets=None, steps: int = 100,
             replacement: Union[str, float, np.ndarray] = "zero", blur_sigma: float = 5.0,
             batch_size: int = 64) -> CurveResult:
    """Deletion curve and AUC (lower is better); see the module docstring.

    One-off form of :class:`Deletion` (which compiles once and can be reused).

    Args:
      model: Keras model (logits are used).
      images: (B, H, W, C) images, (B, T, C) series or (B, F) features (model inputs).
      heatmaps: (B, H, W), (B, T) or (B, F).
      targets: None (top-1), an int or one int per image.
      steps: S, curve points after the start.
      replacement: What deleted pixels, steps or features become (model-input space).
      blur_sigma: σ in pixels for ``replacement="blur"``.
      batch_size: Images per forward pass.

    Returns:
      ``CurveResult(auc (B,), curves (B, S + 1))``.
    """
    return Deletion(model, steps=steps, replacement=replacement, blur_sigma=blur_sigma,
                    batch_size=batch_size)(images, heatmaps, targets)


def insertion(model, images, heatmaps, *, targets=None, steps: int = 100,
              replacement: Union[str, float, np.ndarray, None] = None, blur_sigma: float = 5.0,
              batch_size: int = 64) -> CurveResult:
    """Insertion curve and AUC (higher is better); arguments as :func:`deletion`
    (``replacement``: ``"blur"`` for images, ``"zero"`` for other inputs if None).

    One-off form of :class:`Insertion`.
    """
    return Insertion(model, steps=steps, replacement=replacement, blur_sigma=blur_sigma,
                     batch_size=batch_size)(images, heatmaps, targets)


@registry.register("deletion", lower_is_better=True)
def _deletion_scores(spec, **settings):
    curve = Deletion(spec, **settings)
    return lambda images, maps, targets, masks: curve(images, maps, targets).score


@registry.register("insertion", lower_is_better=False)
def _insertion_scores(spec, **settings):
    curve = Insertion(spec, **settings)
    return lambda images, maps, targets, masks: curve(images, maps, targets).score
