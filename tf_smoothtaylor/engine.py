"""The hot path shared by every gradient method.

Every method is a weighted sum over sample points (DESIGN.md):

    A(x) = Σ_k w_k · m_k ⊙ ∇f_t(z_k)

A method (a *scheme*) only says how to make the points ``z_k``, the multipliers
``m_k`` and the weights ``w_k`` of one chunk; this module does the rest, once:

* one ``tf.function`` per (explainer, target kind), closed over the model, with a
  ``None`` batch axis so new data of the same image shape never retraces;
* the (images × points) index space is flattened and walked in chunks of exactly
  ``batch_size`` gradient evaluations (several images share a chunk when they have
  fewer points than ``batch_size``), then one chunk with the remainder, so no
  gradient is wasted and memory depends on ``batch_size``, never on the number of
  points (under XLA the remainder is padded, to keep one compiled shape);
* points are made in-graph from stateless random numbers keyed by image content
  and point index (``_random``), so results do not depend on chunking or order;
* per-image sums ``Σ w·m⊙g`` (and ``Σ w·(m⊙g)²`` for second-moment methods) are
  accumulated in float32, whatever the model's compute dtype: a chunk's points
  belong to at most ⌈batch_size / K⌉ + 1 consecutive images, so weighting and
  summing them is one small (images × points) matrix product added into those
  rows only — the cost does not grow with the number of images in the call;
* with ``jit_compile=True`` only the chunk's forward/backward pass is compiled by
  XLA: the points are made by the same kernels, so XLA changes only the
  gradients' round-off.
"""

from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _random
from tf_smoothtaylor._model import LogitModel, resolve_targets, select_target


MAX_CALLABLE_TARGETS = 8


def per_point(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Reshapes (n,) values to broadcast against (n, ...) tensors."""
    return tf.reshape(tf.cast(values, like.dtype), [-1] + [1] * (like.shape.rank - 1))


class Scheme:
    """What a method tells the engine. Subclasses override the hooks below.

    Attributes:
      num_points: Gradient evaluations per image (K).
      moments: 1 to accumulate ``Σ w·v``; 2 to also accumulate ``Σ w·v²``,
        where ``v = m ⊙ ∇f(z)``.
      point_weight: When every point has the same weight, that weight: then
        ``points`` returns ``w=None`` and the sums are scaled once at the end
        (one pass per point less on the hot path).
      extra_specs: Per-image extra inputs of the compiled function, name ->
        dtype (each fed as a ``(batch,)`` tensor).
    """

    num_points: int = 1
    moments: int = 1
    point_weight: Optional[float] = None
    extra_specs: Dict[str, tf.DType] = {}

    def extras(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Default values of the extra inputs for ``images`` (eager)."""
        return {}

    def prepare(self, images, extras) -> Dict[str, tf.Tensor]:
        """Per-image tensors (leading axis = image) used by :meth:`points`."""
        return {}

    def points(self, x, params, keys, k):
        """Points of one chunk.

        Args:
          x: (n, ...) the image of each point.
          params: ``prepare``'s tensors gathered per point.
          keys: (n,) int64 random keys of the points' images.
          k: (n,) int32 index of each point within its image, in [0, K).

        Returns:
          ``(z, m, w)``: points (n, ...), multipliers (n, ...) or None for 1,
          weights (n,) or None when ``point_weight`` is set.
        """
        raise NotImplementedError

    def finalize(self, first, second):
        """Attributions from the accumulated sums."""
        return first


class Engine:
    """Compiled ``(images, targets) -> attributions`` for one scheme and model."""

    def __init__(self, model: LogitModel, scheme: Scheme, *, batch_size: int,
                 seed: int, jit_compile: bool = False):
        self.model = model
        self.scheme = scheme
        self.batch_size = batch_size
        self.seed = seed
        self.jit_compile = jit_compile
        self.trace_count = 0
        # One compiled function for class indices (key None) and one per callable target,
        # the most recent MAX_CALLABLE_TARGETS of them (a new lambda on every call would
        # otherwise keep every compiled function alive).
        self._compiled: Dict[Optional[Callable], tf.types.experimental.GenericFunction] = {}
        self._probabilities_checked = False

    # -- input checks --------------------------------------------------------
    def check_images(self, images) -> tf.Tensor:
        """Returns ``images`` as a float32 tensor after checking it fits the model."""
        if isinstance(images, (str, bytes)) or images is None:
            raise TypeError("Expected `images` to be a numeric array or tensor. "
                            f"Received: images of type {type(images).__name__}")
        try:
            images = tf.convert_to_tensor(images)
        except (ValueError, TypeError) as error:
            raise TypeError("Expected `images` to be a numeric array or tensor. "
                            f"Received: {type(images).__name__} ({error})") from None
        if not (images.dtype.is_floating or images.dtype.is_integer):
            raise TypeError("Expected `images` to be a numeric array or tensor. "
                            f"Received: images of dtype {images.dtype.name}")
        expected = self.model.input_shape
        shape = tuple(images.shape)
        fits = len(shape) == len(expected) + 1 and all(
            e is None or e == s for e, s in zip(expected, shape[1:]))
        if not fits:
            wanted = "(batch, " + ", ".join(str(e) for e in expected) + ")"
            raise ValueError(f"Expected `images` of shape {wanted} to fit the "
                             f"model's input. Received: images of shape {shape}")
        images = tf.cast(images, tf.float32)
        if not bool(tf.reduce_all(tf.math.is_finite(images))):
            raise ValueError("Expected `images` to hold finite values. "
                             "Received: images containing NaN or Inf")
        return images

    # -- forward pass ----------------------------------------------------------
    def _image_spec(self):
        return tf.TensorSpec((None,) + self.model.input_shape, tf.float32)

    def predict(self, images: tf.Tensor) -> np.ndarray:
        """Float32 logits of ``images``, computed in chunks of ``batch_size``."""
        return self.model.predict(images, self.batch_size)

    def _check_probabilities(self, images, logits=None):
        if self._probabilities_checked or self.model.num_outputs != 1:
            return
        self._probabilities_checked = True
        if logits is None:
            # Once per explainer, eagerly: no extra compiled function to trace.
            logits = self.model(images[: self.batch_size]).numpy()
        self.model.warn_if_probabilities(logits)

    # -- attribution -----------------------------------------------------------
    def run(self, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Attributions of checked ``images`` for ``targets`` (see ``explain``)."""
        batch = int(images.shape[0])
        self.model.check_outputs(callable(targets))
        if batch == 0:
            return tf.zeros_like(images)
        logits = []

        def predict():
            logits.append(self.predict(images))
            return logits[0]

        classes, target_fn = resolve_targets(targets, batch, self.model.num_classes,
                                             predict)
        self._check_probabilities(images, logits[0] if logits else None)
        function = self._compiled.pop(target_fn, None)
        if function is None:
            function = self._build(target_fn)
        self._compiled[target_fn] = function                 # most recently used last
        callables = [key for key in self._compiled if key is not None]
        for key in callables[:-MAX_CALLABLE_TARGETS]:
            del self._compiled[key]
        extras = {name: tf.cast(extras[name], dtype)
                  for name, dtype in self.scheme.extra_specs.items()}
        return function(images, tf.constant(classes, tf.int32), extras)

    def run_in_graph(self, images: tf.Tensor, targets: tf.Tensor):
        """Graph-only attribution for serving and ``tf.distribute``.

        No Python-side checks: ``targets`` (batch,) int32 where a negative value
        means the top-1 class; classes out of range fail with an
        ``InvalidArgumentError``.

        Returns:
          ``(attributions, logits, classes)``.
        """
        self.model.check_outputs(False)
        logits = self.model(images)
        top1 = tf.argmax(logits, axis=-1, output_type=tf.int32)
        targets = tf.cast(targets, tf.int32)
        classes = tf.where(targets < 0, top1, targets)
        checks = [tf.debugging.assert_less(
            classes, tf.shape(logits)[-1],
            message="target is not a class index of the model (use -1 for the top-1 class)")]
        with tf.control_dependencies(checks):
            classes = tf.identity(classes)
        function = self._compiled.get(None)
        if function is None:
            function = self._compiled[None] = self._build(None)
        extras = {name: tf.cast(value, self.scheme.extra_specs[name])
                  for name, value in self.scheme.extras(images).items()}
        return function(images, classes, extras), logits, classes

    def _build(self, target_fn):
        model, scheme = self.model, self.scheme
        size = self.batch_size

        def gradients(z, targets):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = select_target(model(z), targets, target_fn)
            grad = tape.gradient(value, z)
            if grad is None:
                raise ValueError(
                    "Expected `model` to be differentiable with respect to its "
                    "input. Received: a model whose output has no gradient "
                    "with respect to the input (e.g. argmax, casts to int, or "
                    "an input that is not used)")
            return tf.cast(grad, tf.float32)

        if self.jit_compile:
            gradients = tf.function(gradients, jit_compile=True)

        def attribute(images, targets, extras):
            self.trace_count += 1
            batch = tf.shape(images)[0]
            total = batch * scheme.num_points
            keys = _random.image_keys(images, self.seed)
            params = scheme.prepare(images, extras)

            # A chunk holds consecutive points of at most `span` consecutive images.
            span = min(size, -(-size // scheme.num_points) + 1)

            def chunk_sums(offset, count, first, second):
                """Adds the points [offset, offset + count) into the per-image sums.

                ``count`` is ``size`` in the loop and the remainder at the end; points
                past ``total`` (padding, under XLA only) get weight 0.
                """
                flat = offset + tf.range(count)
                valid = flat < total
                flat = tf.minimum(flat, total - 1)
                image = flat // scheme.num_points
                z, m, w = scheme.points(
                    tf.gather(images, image),
                    tf.nest.map_structure(lambda t: tf.gather(t, image), params),
                    tf.gather(keys, image), flat % scheme.num_points)
                value = gradients(z, tf.gather(targets, image))
                if m is not None:
                    value *= m
                # Per-point weights as a (span × points) matrix: weighting and summing
                # per image is one small matrix product added into those rows only.
                start = offset // scheme.num_points
                weights = tf.transpose(tf.one_hot(tf.where(valid, image - start, -1), span))
                if w is not None:
                    weights *= tf.cast(w, tf.float32)[None, :]
                rows = tf.minimum(start + tf.range(span), batch - 1)[:, None]  # past the end: +0

                def add(total_sum, values):
                    partial = tf.matmul(weights, tf.reshape(values, [count, -1]))
                    return tf.tensor_scatter_nd_add(total_sum, rows, tf.reshape(
                        partial, tf.concat([[span], tf.shape(total_sum)[1:]], 0)))

                first = add(first, value)
                if scheme.moments == 2:
                    second = add(second, value * value)
                return first, second

            zeros = tf.zeros_like(images)
            first = zeros
            second = zeros if scheme.moments == 2 else tf.zeros([])
            full = total // size
            _, first, second = tf.while_loop(
                lambda chunk, *_: chunk < full,
                lambda chunk, first, second: (chunk + 1, *chunk_sums(chunk * size, size,
                                                                     first, second)),
                [tf.constant(0), first, second], parallel_iterations=1)
            remainder = total - full * size
            # The remainder runs at its own size (no wasted gradients), except under XLA,
            # where a new shape means a new compilation: there it is padded to `size`.
            count = size if self.jit_compile else remainder
            first, second = tf.cond(remainder > 0,
                                    lambda: chunk_sums(full * size, count, first, second),
                                    lambda: (first, second))
            if scheme.point_weight is not None:
                first, second = first * scheme.point_weight, second * scheme.point_weight
            return scheme.finalize(first, second)

        extra_specs = {name: tf.TensorSpec((None,), dtype)
                       for name, dtype in scheme.extra_specs.items()}
        return tf.function(attribute, input_signature=[
            self._image_spec(), tf.TensorSpec((None,), tf.int32), extra_specs])
