"""SavedModel export for TF Serving: images in, predictions and heatmaps out.

:func:`export` writes a SavedModel (through ``keras.export.ExportArchive``, which
tracks the model's variables so TF Serving and ``saved_model_cli`` can run it)
with three signatures; decoding, resize/crop and the model's own
preprocessing all run in the graph:

| signature | inputs | outputs |
|---|---|---|
| ``serving_default`` | ``image_bytes`` (B,) string: JPEG/PNG/GIF/BMP | see below, top-1 class explained |
| ``explain_bytes`` | ``image_bytes``, ``target`` (B,) int32 (−1: top-1) | see below |
| ``explain_pixels`` | ``pixels`` (B, H, W, 3) float32 in [0, 1], ``target`` | see below |

Outputs: ``classes`` and ``scores`` (B, top_k) — the top-k classes and their
softmax probabilities —, ``target`` (B,) the explained class, ``target_logit``,
``heatmap`` (B, H, W) — the signed channel sum of the attributions — and, with
``include_attributions=True``, ``attributions`` (B, H, W, C); with
``include_error=True``, ``relative_error`` (B,), the heatmap's Monte Carlo
relative standard error.

The method and its settings are fixed at export. Requests are bounded: at most
``max_batch`` images and ``max_image_bytes`` per encoded image; corrupt or
non-image bytes, oversized requests, pixels outside [0, 1] and targets out of
range fail with an ``InvalidArgument`` error that names the problem.
"""

import os
from typing import Optional, Union

import keras
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.logits import select_target
from tf_smoothtaylor.engine.tracing import graph_function
from tf_smoothtaylor.data import decode_and_crop
from tf_smoothtaylor.methods import BY_NAME as METHODS, registry
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.models import ModelSpec


def export(spec: Union[ModelSpec, Explainer], export_dir: str, *, method=None, top_k: int = 5,
           resize: Optional[int] = None, crop: bool = True, max_batch: int = 16,
           max_image_bytes: int = 20 * 2 ** 20, include_attributions: bool = False,
           include_error: bool = False, **method_options) -> str:
    """Writes a servable SavedModel that explains its predictions.

    Args:
      spec: A :class:`~tf_smoothtaylor.models.ModelSpec` (``models.load``,
        ``models.wrap`` or ``demo.load``): its model and pixel transforms; or an
        explainer built on one (its method and settings are exported).
      export_dir: Output directory (must not exist yet).
      method: A name in ``METHODS`` (default: the registry's default method,
        SmoothTaylor) or an explainer built on ``spec``.
      top_k: Classes returned per image.
      resize: Shorter side before the centre crop of decoded images (default:
        input size × 256 / 224, the paper's ratio).
      crop: False resizes decoded images straight to the input size instead.
      max_batch: Largest accepted batch.
      max_image_bytes: Largest accepted encoded image.
      include_attributions: Also return the full attributions.
      include_error: Also return ``relative_error`` (B,), the heatmap's Monte
        Carlo relative standard error (``methods.registry.monte_carlo()``).
      **method_options: Settings of the method (e.g. ``num_roots=50``).

    Returns:
      ``export_dir``.

    Example:
      >>> export(models.load("densenet121"), "/models/densenet/1", num_roots=50)
    """
    if isinstance(spec, Explainer):
        if method is not None and method is not spec:
            raise ValueError("Expected no `method` when `spec` is an explainer (it is the "
                             f"method). Received: method={method!r}")
        spec, method = spec.spec, spec
        if not isinstance(spec, ModelSpec):
            raise TypeError("Expected an explainer built on a ModelSpec (models.load/wrap), "
                            "whose pixel transforms the export needs. Received: an explainer "
                            f"built on {type(spec).__name__}")
    if not isinstance(spec, ModelSpec):
        raise TypeError("Expected `spec` to be a ModelSpec (tf_smoothtaylor.models.load/wrap) "
                        f"or an explainer built on one. Received: {type(spec).__name__}")
    if os.path.exists(export_dir):
        raise ValueError(f"Expected `export_dir` not to exist. Received: {export_dir!r}")
    if isinstance(method, Explainer):
        if method.model is not spec.model:
            raise ValueError("Expected `method` to explain `spec.model`.")
        if method_options:
            raise ValueError("Expected no method settings with an explainer (its own "
                             f"settings are exported). Received: {sorted(method_options)}")
        explainer = method
    else:
        method = registry.default_name() if method is None else method
        _checks.one_of("method", method, tuple(METHODS), otherwise="an explainer")
        explainer = METHODS[method](spec, **method_options)
    explainer._engine.check_fixed_points()
    if include_error and not explainer.independent_points:
        raise ValueError(f"Expected a Monte Carlo method ({registry.monte_carlo(flags=True)}) "
                         f"with `include_error=True`. Received: {type(explainer).__name__}")
    top_k = _checks.positive_int("top_k", top_k)
    max_batch = _checks.positive_int("max_batch", max_batch)
    max_image_bytes = _checks.positive_int("max_image_bytes", max_image_bytes)
    if spec.input_size is None:
        raise ValueError("Expected an image model to export (the SavedModel takes encoded "
                         "images). Received: a model whose input is not (height, width, "
                         "channels)")
    height, width = spec.input_size
    # The paper's ratio on the shorter side (256 → 224); non-square inputs are covered
    # then centre-cropped.
    resize = (resize or int(round(min(height, width) * 256 / 224))) if crop else None

    def explain_pixels(pixels, target):
        pixels = tf.ensure_shape(pixels, [None, height, width, 3])
        count = tf.shape(pixels)[0]
        checks = [
            tf.debugging.assert_less_equal(
                count, max_batch,
                message=f"request too large: at most {max_batch} images per request"),
            tf.debugging.assert_greater(count, 0,
                                        message="empty request: send at least one image"),
            tf.debugging.assert_equal(
                tf.shape(target)[0], count,
                message="target must hold one class per image (-1: the predicted class)"),
            tf.debugging.assert_greater_equal(
                target, -1, message="target is not a class index: 0 to classes − 1, or -1 "
                                    "for the predicted class")]
        with tf.control_dependencies(checks):
            inputs = tf.cast(spec.preprocess(pixels), tf.float32)
        attributions, logits, classes = explainer.run_in_graph(inputs, target,
                                                               with_error=include_error)
        if include_error:
            attributions, _, relative_error = attributions
        scores, top = tf.math.top_k(tf.nn.softmax(logits), k=min(top_k, logits.shape[-1]))
        outputs = {"classes": top, "scores": scores, "target": classes,
                   "target_logit": select_target(logits, classes, None),
                   "heatmap": tf.reduce_sum(attributions, axis=-1)}
        if include_attributions:
            outputs["attributions"] = attributions
        if include_error:
            outputs["relative_error"] = relative_error
        return outputs

    def decode(image_bytes):
        checks = [
            tf.debugging.assert_less_equal(
                tf.size(image_bytes), max_batch,
                message=f"request too large: at most {max_batch} images per request"),
            tf.debugging.assert_less_equal(
                tf.strings.length(image_bytes), max_image_bytes,
                message=f"image too large: at most {max_image_bytes} encoded bytes per image"),
            tf.debugging.assert_greater(tf.strings.length(image_bytes), 0,
                                        message="empty image bytes")]
        with tf.control_dependencies(checks):
            image_bytes = tf.identity(image_bytes)
        return tf.map_fn(lambda b: decode_and_crop(b, size=(height, width), resize=resize),
                         image_bytes,
                         fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))

    archive = keras.export.ExportArchive()
    archive.track(spec.model)
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    target_spec = tf.TensorSpec([None], tf.int32, name="target")
    archive.add_endpoint(
        "serving_default",
        graph_function(lambda image_bytes: explain_pixels(
            decode(image_bytes), -tf.ones_like(image_bytes, tf.int32)),
            input_signature=[bytes_spec]))
    archive.add_endpoint(
        "explain_bytes",
        graph_function(lambda image_bytes, target: explain_pixels(decode(image_bytes), target),
                       input_signature=[bytes_spec, target_spec]))
    archive.add_endpoint(
        "explain_pixels",
        graph_function(explain_pixels, input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.float32, name="pixels"), target_spec]))
    archive.write_out(export_dir, verbose=False)
    return export_dir
