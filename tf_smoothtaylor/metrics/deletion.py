"""Deletion and insertion curves (Petsiuk et al. 2018), most relevant first.

Pixels (all channels together) are ranked by the heatmap, most relevant first.
For step s = 0 … S the first ``⌈s·HW/S⌉`` pixels are

* **deletion**: replaced by ``replacement`` in ``x``: ``x_s = M_s ⊙ r + (1 − M_s) ⊙ x``;
* **insertion**: copied from ``x`` into the replacement: ``x_s = M_s ⊙ x + (1 − M_s) ⊙ r``;

and the curve is the target logit ``f(x_s)``. AUC is the trapezoid rule over
the fraction of pixels in [0, 1]. A good map gives a *low* deletion AUC and a
*high* insertion AUC. Replacements (in model-input space): ``"zero"``,
``"mean"`` (each image's per-channel mean), ``"blur"`` (Gaussian blur, σ =
``blur_sigma`` pixels), a number, or an array broadcastable to the images.
"""

from typing import NamedTuple, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _checks
from tf_smoothtaylor._model import LogitModel
from tf_smoothtaylor.metrics._inputs import images_and_heatmaps
from tf_smoothtaylor.metrics._variants import VariantScorer, pixel_ranks
from tf_smoothtaylor.metrics.autvc import _gaussian_kernel, _smooth

REPLACEMENTS = ("zero", "mean", "blur")


class CurveResult(NamedTuple):
    """Per-image AUC (B,) and curves (B, S + 1) of the target logit."""
    auc: tf.Tensor
    curves: tf.Tensor


def replacement_images(images: tf.Tensor, replacement, blur_sigma: float = 5.0) -> tf.Tensor:
    """The replacement values for ``images`` (see the module docstring)."""
    if isinstance(replacement, str):
        _checks.one_of("replacement", replacement, REPLACEMENTS,
                       otherwise="a number or an array")
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
    try:
        return tf.broadcast_to(tf.cast(replacement, tf.float32), tf.shape(images))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        raise ValueError("Expected `replacement` to be 'zero', 'mean', 'blur', a number or "
                         "an array broadcastable to the images. "
                         f"Received: replacement of shape {np.shape(replacement)}") from None


def _curve(model, images, heatmaps, targets, steps, replacement, blur_sigma, batch_size,
           insert: bool) -> CurveResult:
    logits = LogitModel(model)
    images, maps = images_and_heatmaps(images, heatmaps)
    steps = _checks.positive_int("steps", steps)
    batch_size = _checks.positive_int("batch_size", batch_size)
    pixels = int(maps.shape[1] * maps.shape[2])
    counts = tf.constant(np.ceil(np.arange(steps + 1) * pixels / steps).astype(np.int32))

    def make(x, params, keys, variant):
        shown = params["ranks"] < tf.gather(counts, variant)[:, None, None]
        shown = shown[..., None]
        if insert:
            return tf.where(shown, x, params["replacement"]), None
        return tf.where(shown, params["replacement"], x), None

    spec = {"ranks": tf.TensorSpec((None,) + tuple(maps.shape[1:]), tf.int32),
            "replacement": tf.TensorSpec((None,) + tuple(images.shape[1:]), tf.float32)}
    scorer = VariantScorer(logits, make, steps + 1, batch_size=batch_size, seed=0,
                           param_specs=spec)
    if int(images.shape[0]) == 0:
        return CurveResult(tf.zeros([0]), tf.zeros([0, steps + 1]))
    classes = scorer.targets(images, targets)
    params = {"ranks": pixel_ranks(maps),
              "replacement": replacement_images(images, replacement, blur_sigma)}
    curves, _ = scorer(images, params, classes)
    auc = tf.reduce_sum((curves[:, 1:] + curves[:, :-1]) * 0.5, axis=-1) / steps
    return CurveResult(auc, curves)


def deletion(model, images, heatmaps, *, targets=None, steps: int = 100,
             replacement: Union[str, float, np.ndarray] = "zero", blur_sigma: float = 5.0,
             batch_size: int = 64) -> CurveResult:
    """Deletion curve and AUC (lower is better); see the module docstring.

    Args:
      model: Keras model (logits are used).
      images: (B, H, W, C) model inputs.
      heatmaps: (B, H, W).
      targets: None (top-1), an int or one int per image.
      steps: S, curve points after the start.
      replacement: What deleted pixels become (model-input space).
      blur_sigma: σ in pixels for ``replacement="blur"``.
      batch_size: Images per forward pass.

    Returns:
      ``CurveResult(auc (B,), curves (B, S + 1))``.
    """
    return _curve(model, images, heatmaps, targets, steps, replacement, blur_sigma,
                  batch_size, insert=False)


def insertion(model, images, heatmaps, *, targets=None, steps: int = 100,
              replacement: Union[str, float, np.ndarray] = "blur", blur_sigma: float = 5.0,
              batch_size: int = 64) -> CurveResult:
    """Insertion curve and AUC (higher is better); arguments as :func:`deletion`."""
    return _curve(model, images, heatmaps, targets, steps, replacement, blur_sigma,
                  batch_size, insert=True)
