"""Shared hot path of perturbation metrics: score many variants of each image.

A metric describes variant v of image i by ``make(x, params, keys, v) ->
(inputs, extra)`` on a chunk of (image, variant) pairs; this module runs all
(images × variants) through the model in chunks of ``batch_size`` inside one
compiled function (one per image shape, reused across calls) and returns the
target logit of every variant (B, V) and the optional per-variant scalar
``extra`` (B, V). Variants made in the metrics' view of a series or of features
(``_inputs.units``) reach the model in its own input shape. Random draws are keyed by image content, so results do not
depend on the chunk size or on the other images.
"""

from typing import Callable, Dict, Tuple

import tensorflow as tf

from tf_smoothtaylor.engine import streams as _random
from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.logits import LogitModel, select_target
from tf_smoothtaylor.engine.tracing import graph_function


class VariantScorer:
    """Compiled ``(images, params, targets) -> (scores (B, V), extras (B, V))``.

    Args:
      model: The model's logits.
      make: ``(x, params, keys, variants) -> (inputs, extra or None)`` for a chunk.
      num_variants: V, variants per image.
      batch_size: Variants per forward pass.
      seed: Seed of the image keys.
      param_specs: ``image_shape -> {name: tf.TensorSpec}`` of the per-image params.
    """

    def __init__(self, model: LogitModel, make: Callable, num_variants: int, *,
                 batch_size: int, seed: int,
                 param_specs: Callable[[Tuple[int, ...]], Dict[str, tf.TensorSpec]]):
        self.model, self.make = model, make
        self.num_variants, self.batch_size, self.seed = num_variants, batch_size, seed
        self.trace_count = 0
        self._param_specs = param_specs
        self._functions = {}

    def __call__(self, images, params, classes, shape=None):
        """Scores of ``images`` (B, ...) — a view whose variants the model takes
        reshaped to ``shape`` (one input's own shape) when given."""
        key = (tuple(images.shape[1:]), None if shape is None else tuple(shape))
        if key not in self._functions:
            self._functions[key] = self._build(*key)
        return self._functions[key](images, params, tf.constant(classes, tf.int32))

    def _build(self, image_shape, shape=None):
        size, variants, model = self.batch_size, self.num_variants, self.model

        def run(images, params, targets):
            self.trace_count += 1
            batch = tf.shape(images)[0]
            total = batch * variants
            keys = _random.image_keys(images, self.seed)

            def body(chunk, scores, extras):
                flat = tf.minimum(chunk * size + tf.range(size), total - 1)
                image = flat // variants
                inputs, extra = self.make(
                    tf.gather(images, image),
                    {name: tf.gather(value, image) for name, value in params.items()},
                    keys.gather(image), flat % variants)
                if shape is not None:
                    inputs = tf.reshape(inputs, [-1, *shape])
                value = select_target(model(inputs), tf.gather(targets, image), None)
                index = flat[:, None]
                scores = tf.tensor_scatter_nd_update(scores, index, value)
                if extra is not None:
                    extras = tf.tensor_scatter_nd_update(extras, index, extra)
                return chunk + 1, scores, extras

            _, scores, extras = tf.while_loop(
                lambda chunk, *_: chunk * size < total, body,
                [tf.constant(0), tf.zeros([total]), tf.zeros([total])],
                parallel_iterations=1)
            return tf.reshape(scores, [batch, variants]), tf.reshape(extras, [batch, variants])

        spec = tf.TensorSpec((None,) + tuple(image_shape), tf.float32)
        return graph_function(run, input_signature=[spec, self._param_specs(image_shape),
                                                 tf.TensorSpec((None,), tf.int32)])


class VariantMetric:
    """Base of the reusable metrics scored by a :class:`VariantScorer`.

    Subclasses define ``_make`` (see the module docstring) and ``_specs(image_shape)``
    (the per-image params' specs).
    """

    def __init__(self, model, num_variants: int, *, batch_size: int, seed: int):
        self._logits = LogitModel(model)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self._scorer = VariantScorer(self._logits, self._make, num_variants,
                                     batch_size=self.batch_size, seed=_checks.seed(seed),
                                     param_specs=self._specs)

    @property
    def trace_count(self) -> int:
        """How many times the compiled function was traced."""
        return self._scorer.trace_count

    def _make(self, x, params, keys, variant):
        raise NotImplementedError

    def _specs(self, image_shape):
        raise NotImplementedError


def per_image(shape, dtype=tf.float32) -> tf.TensorSpec:
    """Spec of a batch of per-image values of ``shape``."""
    return tf.TensorSpec((None,) + tuple(shape), dtype)


def pixel_ranks(heatmaps: tf.Tensor) -> tf.Tensor:
    """(B, H, W) rank of every pixel, 0 = most relevant (ties: row-major order)."""
    flat = tf.reshape(heatmaps, [tf.shape(heatmaps)[0], -1])
    order = tf.argsort(flat, axis=-1, direction="DESCENDING", stable=True)
    ranks = tf.argsort(order, axis=-1, stable=True)
    return tf.reshape(ranks, tf.shape(heatmaps))
