"""The engine: one compiled hot path shared by every method on it.

Every method is a weighted sum over points (DESIGN.md):

    A(x) = Σ_k w_k · m_k ⊙ ∇f_t(z_k)      (forward-only schemes: m_k · (f_t(z_k) − c))

A method (a *scheme*, ``scheme.Scheme``) says how to make the points, the
multipliers and the weights of one chunk; the engine does the rest, once:

* ``loop``: one ``tf.function`` per (explainer, target kind, variant), closed
  over the model, with a ``None`` batch axis (and ``None`` image sides for
  variable-size models) so new data never retraces; the points walked in chunks
  of exactly ``batch_size`` model evaluations, packed across images; per-image
  sums in float32 by segment sums, so a NaN of one image never reaches another;
* ``moments``: the standard errors and the heatmap's noise-corrected relative
  error (``return_error=True``);
* ``auto``: the number of draws chosen per image (``"auto"``): a pilot, then
  planned rounds;
* ``streams``: points made in-graph from counter-based random numbers keyed by
  each image (its content, or a key the caller gives) and the point index, so
  results do not depend on chunking, company or order;
* for forward-only schemes with a control variate, the mean score ``c`` of a few
  extra points per image, subtracted from every score in float32.

Every op outside the model has a GPU kernel, and the only host-side values are
loop counters and the int32 bookkeeping derived from them: the compiled call
never waits for the device. ``explain`` then reads one finiteness flag per image
(to warn about non-finite maps), not the maps.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import auto as _auto
from tf_smoothtaylor.engine import loop as _loop
from tf_smoothtaylor.engine import streams as _random
from tf_smoothtaylor.engine import tracing as _tracing
from tf_smoothtaylor.engine.inputs import InputChecks
from tf_smoothtaylor.engine.logits import LogitModel, resolve_targets
from tf_smoothtaylor.engine.report import finite_rows, warn_if_noise, warn_if_not_finite
from tf_smoothtaylor.engine.scheme import Scheme

__all__ = ["Engine", "Scheme", "graph_classes", "per_point", "warn_if_not_finite"]

MAX_CALLABLE_TARGETS = 8
_tracing.install()


def per_point(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Reshapes (n,) values to broadcast against (n, ...) tensors."""
    return tf.reshape(tf.cast(values, like.dtype), [-1] + [1] * (like.shape.rank - 1))


class Calls(InputChecks):
    """What every explainer's call needs, whatever it computes: the input and target
    checks, the model's forward pass in chunks and the cache of compiled functions.
    Methods that are not sums over points (Grad-CAM) use it alone; :class:`Engine`
    adds a scheme."""

    def __init__(self, model: LogitModel, *, batch_size: int, seed: int,
                 jit_compile: bool = False):
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self.jit_compile = jit_compile
        self.trace_count = 0
        # Compiled functions keyed by (variant, target): one for class indices (target
        # None) and one per callable target, the most recent MAX_CALLABLE_TARGETS of them
        # (a new lambda on every call would otherwise keep every compiled function alive).
        self._compiled: Dict[tuple, tf.types.experimental.GenericFunction] = {}
        self._probabilities_checked = False

    # -- forward pass ----------------------------------------------------------
    def image_spec(self):
        return tf.TensorSpec((None,) + self.model.input_shape, tf.float32)

    def predict(self, images: tf.Tensor, context=()) -> np.ndarray:
        """Float32 logits of ``images``, computed in chunks of ``batch_size``."""
        return self.model.predict(images, self.batch_size, context)

    def check_probabilities(self, images, logits=None, context=()):
        """Warns once per explainer when the model's outputs look like probabilities
        (``logits``: the outputs of ``images`` when already computed)."""
        if self._probabilities_checked or self.model.num_outputs != 1:
            return
        self._probabilities_checked = True
        if logits is None:
            # Once per explainer, through the model's compiled forward pass (traced once
            # per model, as every explainer's graph calls it): an eager call would run
            # the layers one op at a time, ~10x slower than the call.
            logits = self.predict(images[: self.batch_size],
                                  tuple(c[: self.batch_size] for c in context))
        self.model.warn_if_probabilities(logits)

    def start(self, images, targets, keys, context):
        """Checks shared by every call: ``(classes, target_fn, keys)``, classes None
        for an empty batch."""
        if len(context) != len(self.model.context):
            self.model.inputs_of(images, context)            # raises, naming the inputs
        batch = int(images.shape[0])
        self.model.check_outputs(callable(targets))
        keys = self.check_keys(keys, batch)
        if batch == 0:
            return None, None, keys
        logits = []

        def predict():
            logits.append(self.predict(images, context))
            return logits[0]

        classes, target_fn = resolve_targets(targets, batch, self.model.num_classes,
                                             predict)
        self.check_probabilities(images, logits[0] if logits else None, context)
        return tf.constant(classes, tf.int32), target_fn, keys

    def compiled(self, variant, target_fn, build):
        """The function cached under ``(variant, target_fn)``, made by ``build()`` when
        missing; most recently used kept last, and at most ``MAX_CALLABLE_TARGETS``
        functions for callable targets."""
        compiled = self._compiled
        function = compiled.pop((variant, target_fn), None)
        if function is None:
            function = build()
        compiled[(variant, target_fn)] = function
        callables = [key for key in compiled if key[1] is not None]
        for key in callables[:-MAX_CALLABLE_TARGETS]:
            del compiled[key]
        return function

    def check_fixed_points(self) -> None:
        """Serving and tf.distribute need a fixed amount of work per image (always
        so without a scheme)."""


class Engine(Calls):
    """Compiled ``(images, targets) -> attributions`` for one scheme and model."""

    def __init__(self, model: LogitModel, scheme: Scheme, *, batch_size: int,
                 seed: int, jit_compile: bool = False):
        # The scheme is only read when a function is built (``loop.build``), so a
        # method may set its attributes before or after making its engine.
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        self.scheme = scheme
        # Variants of the compiled functions: None (attributions), "error" (with
        # standard errors), "round" (one round of ``run_auto``).
        self._offset = None                  # the control variate's engine, when used

    # -- attribution -----------------------------------------------------------
    def _cast_extras(self, extras):
        return {name: tf.cast(extras[name], dtype)
                for name, dtype in self.scheme.extra_specs.items()}

    def extra_specs(self) -> Dict[str, tf.DType]:
        """The compiled function's per-image extra inputs: the scheme's, and the
        control variate's offsets when the scheme has one."""
        specs = dict(self.scheme.extra_specs)
        if self.scheme.offset_points:
            specs[_loop.SCORE_OFFSET] = tf.float32
        return specs

    def smallest_round(self) -> int:
        """The fewest draws a round of ``run_auto`` gives an image."""
        return _auto.smallest_round(self.scheme.draw_size, self.scheme.max_points)

    def _inputs(self, images, classes, key_values, extras, context, target_fn):
        """The compiled functions' inputs after the images and classes: ``(keys,
        extras, context, offsets)``, the offsets c (B,) of a control variate (or None)
        added to the extras."""
        extras = self._cast_extras(extras)
        offsets = None
        if self.scheme.offset_points:
            if self._offset is None:
                self._offset = Engine(self.model, _MeanScore(self.scheme),
                                      batch_size=self.batch_size, seed=self.seed,
                                      jit_compile=self.jit_compile)
            mean = self._offset._function(target_fn)(images, classes, key_values, extras,
                                                     context)
            offsets = tf.reshape(mean, [tf.shape(images)[0], -1])[:, 0]
            extras = {**extras, _loop.SCORE_OFFSET: offsets}
        return key_values, extras, tuple(context), offsets

    def _restore(self, outputs, offsets, with_error: bool):
        if offsets is None:
            return outputs
        if with_error:
            return (self.scheme.restore_offset(outputs[0], offsets), *outputs[1:])
        return self.scheme.restore_offset(outputs, offsets)

    def run(self, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor], *,
            keys=None, context=(), with_error: bool = False):
        """Attributions of checked ``images`` for ``targets`` (see ``explain``);
        ``context``: the other inputs of a multi-input model (``check_inputs``).
        With ``with_error``: ``(attributions, standard_error, relative_error)``."""
        classes, target_fn, keys = self.start(images, targets, keys, context)
        if classes is None:
            empty = tf.zeros_like(images)
            return (empty, empty, tf.zeros([0])) if with_error else empty
        inputs = self._inputs(images, classes, self._keys(images, keys).value, extras,
                              context, target_fn)
        function = self._function(target_fn, "error" if with_error else None)
        outputs = self._restore(function(images, classes, *inputs[:3]), inputs[3], with_error)
        warn_if_not_finite(finite_rows(outputs[0] if with_error else outputs).numpy())
        if with_error:
            warn_if_noise(outputs[2].numpy())
        return outputs

    def run_auto(self, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor], *,
                 target_error: float, max_points: int, keys=None, context=()):
        """``run(..., with_error=True)`` with as many draws per image as it takes to
        reach ``target_error`` (``auto.run_auto``): ``(attributions,
        standard_error, relative_error, draws per image)``."""
        return _auto.run_auto(self, images, targets, extras, target_error=target_error,
                              max_points=max_points, keys=keys, context=context)

    def _keys(self, images, keys) -> _random.Keys:
        """Random keys: the caller's, a hash of each image, or zeros when unused."""
        if keys is not None:
            return _random.user_keys(keys, self.seed)
        if self.scheme.uses_random:
            return _random.image_keys(images, self.seed)
        batch = tf.shape(images)[0]
        return _random.Keys(tf.zeros([batch], tf.int64), tf.range(batch))

    def _function(self, target_fn, variant=None):
        """The compiled function for ``target_fn`` and ``variant`` (None: attributions;
        "error": with standard errors; "round": one round of ``run_auto``)."""
        return self.compiled(variant, target_fn, lambda: _loop.build(self, target_fn, variant))

    def check_fixed_points(self) -> None:
        """Serving and tf.distribute compile one graph of work per call: they need a
        fixed number of points per image."""
        if self.scheme.target_error is not None:
            raise ValueError("Expected a fixed number of points for serving and "
                             "tf.distribute (one compiled graph of work per call). "
                             "Received: a number of points chosen per image ('auto')")

    def run_in_graph(self, images: tf.Tensor, targets: tf.Tensor, *, keys=None,
                     with_error: bool = False):
        """Graph-only attribution for serving and ``tf.distribute``.

        No Python-side checks: ``targets`` (batch,) int32 where a negative value
        means the top-1 class; classes out of range fail with an
        ``InvalidArgumentError``; ``keys`` (batch,) int64 or None (content keys).

        Returns:
          ``(attributions, logits, classes)``; with ``with_error``, ``attributions``
          is ``(attributions, standard_error, relative_error)``.
        """
        self.model.check_outputs(False)
        self.check_fixed_points()
        if self.model.context:
            raise ValueError("Expected a single-input model for serving and tf.distribute. "
                             "Received: a model with inputs held fixed per image")
        logits = self.model(images)
        classes = graph_classes(logits, targets)
        inputs = self._inputs(images, classes, self._keys(images, keys).value,
                              self.scheme.extras(images), (), None)
        function = self._function(None, "error" if with_error else None)
        return (self._restore(function(images, classes, *inputs[:3]), inputs[3], with_error),
                logits, classes)


class _MeanScore(Scheme):
    """The control variate's c: the mean score over a scheme's ``offset_points``
    points per image (every element of the result holds it)."""

    forward_only = True

    def __init__(self, scheme: Scheme):
        self.base = scheme
        self.num_points = scheme.offset_points
        self.point_weight = 1.0 / scheme.offset_points
        self.uses_random = scheme.uses_random
        self.extra_specs = scheme.extra_specs

    def prepare(self, images, extras):
        return self.base.prepare(images, extras)

    def points(self, x, params, keys, k):
        return self.base.offset_point(x, params, keys, k), tf.ones_like(x), None


def graph_classes(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """In-graph classes: ``targets`` where ≥ 0, else the top-1 class; a class out of
    range fails with an ``InvalidArgumentError`` naming the problem."""
    top1 = tf.argmax(logits, axis=-1, output_type=tf.int32)
    targets = tf.cast(targets, tf.int32)
    classes = tf.where(targets < 0, top1, targets)
    checks = [tf.debugging.assert_less(
        classes, tf.shape(logits)[-1],
        message="target is not a class index of the model (use -1 for the top-1 class)")]
    with tf.control_dependencies(checks):
        return tf.identity(classes)
