"""The engine: one compiled hot path shared by every method on it.

Every method is a weighted sum over points (DESIGN.md):

    A(x) = Σ_k w_k · m_k ⊙ ∇f_t(z_k)      (forward-only schemes: m_k · (f_t(z_k) − c))

A method (a *scheme*, ``_scheme.Scheme``) says how to make the points, the
multipliers and the weights of one chunk; the engine does the rest, once:

* ``_loop``: one ``tf.function`` per (explainer, target kind, variant), closed
  over the model, with a ``None`` batch axis (and ``None`` image sides for
  variable-size models) so new data never retraces; the points walked in chunks
  of exactly ``batch_size`` model evaluations, packed across images; per-image
  sums in float32 by segment sums, so a NaN of one image never reaches another;
* ``_moments``: the standard errors and the heatmap's noise-corrected relative
  error (``return_error=True``);
* ``_auto``: the number of draws chosen per image (``"auto"``): a pilot, then
  planned rounds;
* ``_random``: points made in-graph from counter-based random numbers keyed by
  each image (its content, or a key the caller gives) and the point index, so
  results do not depend on chunking, company or order;
* for forward-only schemes with a control variate, the mean score ``c`` of a few
  extra points per image, subtracted from every score in float32.

Every op outside the model has a GPU kernel, and the only host-side values are
loop counters and the int32 bookkeeping derived from them: the compiled call
never waits for the device. ``explain`` then reads one finiteness flag per image
(to warn about non-finite maps), not the maps.
"""

import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _auto, _loop, _moments, _random, _tracing
from tf_smoothtaylor._model import LogitModel, resolve_targets
from tf_smoothtaylor._scheme import Scheme

__all__ = ["Engine", "Scheme", "graph_classes", "per_point", "warn_if_not_finite"]

MAX_CALLABLE_TARGETS = 8
_tracing.install()


def per_point(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Reshapes (n,) values to broadcast against (n, ...) tensors."""
    return tf.reshape(tf.cast(values, like.dtype), [-1] + [1] * (like.shape.rank - 1))


class Engine:
    """Compiled ``(images, targets) -> attributions`` for one scheme and model."""

    def __init__(self, model: LogitModel, scheme: Scheme, *, batch_size: int,
                 seed: int, jit_compile: bool = False):
        if scheme.moments == 2 and scheme.point_weight is None:
            raise ValueError("A scheme with second moments needs equal point weights "
                             "(`point_weight`)")
        self.model = model
        self.scheme = scheme
        self.batch_size = batch_size
        self.seed = seed
        self.jit_compile = jit_compile
        self.trace_count = 0
        # Compiled functions keyed by (variant, target): one for class indices (target
        # None) and one per callable target, the most recent MAX_CALLABLE_TARGETS of them
        # (a new lambda on every call would otherwise keep every compiled function alive).
        # Variants: None (attributions), "error" (with standard errors), "round" (one
        # round of ``run_auto``).
        self._compiled: Dict[tuple, tf.types.experimental.GenericFunction] = {}
        self._probabilities_checked = False
        self._offset_engine = (Engine(model, _MeanScore(scheme), batch_size=batch_size,
                                      seed=seed, jit_compile=jit_compile)
                               if scheme.offset_points else None)

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

    def check_inputs(self, inputs) -> Tuple[tf.Tensor, Tuple[tf.Tensor, ...]]:
        """``(images, context)``: the explained input, checked, and the inputs held
        fixed per image (multi-input models: ``inputs`` is a dict of every input)."""
        context_specs = self.model.context
        if not context_specs:
            if isinstance(inputs, dict):
                raise TypeError("Expected `images` to be an array or tensor (the model has "
                                f"one input). Received: a dict of {sorted(inputs)}")
            return self.check_images(inputs), ()
        names = self.model.input_names
        explained = names[self.model.input_index]
        if not isinstance(inputs, dict) or set(inputs) != set(names):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"Expected a dict of every model input {names} (the one "
                             f"explained: {explained!r}). Received: {got}")
        images = self.check_images(inputs[explained])
        batch = int(images.shape[0])
        context = []
        for name, shape, dtype in context_specs:
            value = tf.convert_to_tensor(inputs[name])
            if (value.shape.rank != len(shape) + 1 or value.shape[0] != batch or not all(
                    e is None or e == s for e, s in zip(shape, value.shape[1:]))):
                wanted = "(" + ", ".join(str(e) for e in (batch,) + shape) + ")"
                raise ValueError(f"Expected input {name!r} of shape {wanted}, one row per "
                                 f"image. Received: shape {tuple(value.shape)}")
            context.append(tf.cast(value, dtype))
        return images, tuple(context)

    # -- forward pass ----------------------------------------------------------
    def image_spec(self):
        return tf.TensorSpec((None,) + self.model.input_shape, tf.float32)

    def predict(self, images: tf.Tensor, context=()) -> np.ndarray:
        """Float32 logits of ``images``, computed in chunks of ``batch_size``."""
        return self.model.predict(images, self.batch_size, context)

    def _check_probabilities(self, images, logits=None, context=()):
        if self._probabilities_checked or self.model.num_outputs != 1:
            return
        self._probabilities_checked = True
        if logits is None:
            # Once per explainer, eagerly: no extra compiled function to trace.
            logits = self.model(images[: self.batch_size],
                                tuple(c[: self.batch_size] for c in context)).numpy()
        self.model.warn_if_probabilities(logits)

    # -- attribution -----------------------------------------------------------
    def check_keys(self, keys, batch: int) -> Optional[tf.Tensor]:
        """Caller-given random keys: None, or one integer per image."""
        if keys is None:
            return None
        array = np.asarray(keys)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError("Expected `keys` to be None or one integer per image. "
                            f"Received: keys of dtype {array.dtype}")
        if array.shape != (batch,):
            raise ValueError(f"Expected `keys` to hold one integer per image ({batch}). "
                             f"Received: keys of shape {array.shape}")
        return tf.constant(array.astype(np.int64))

    def _start(self, images, targets, keys, context):
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
        self._check_probabilities(images, logits[0] if logits else None, context)
        return tf.constant(classes, tf.int32), target_fn, keys

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
        if self._offset_engine is not None:
            mean = self._offset_engine._function(target_fn)(images, classes, key_values,
                                                            extras, context)
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
        classes, target_fn, keys = self._start(images, targets, keys, context)
        if classes is None:
            empty = tf.zeros_like(images)
            return (empty, empty, tf.zeros([0])) if with_error else empty
        inputs = self._inputs(images, classes, self._keys(images, keys).value, extras,
                              context, target_fn)
        function = self._function(target_fn, "error" if with_error else None)
        outputs = self._restore(function(images, classes, *inputs[:3]), inputs[3], with_error)
        warn_if_not_finite(_finite_rows(outputs[0] if with_error else outputs).numpy())
        if with_error:
            _warn_if_noise(outputs[2].numpy())
        return outputs

    def run_auto(self, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor], *,
                 target_error: float, max_points: int, keys=None, context=()):
        """Like ``run(..., with_error=True)``, with as many draws per image as it
        takes to reach ``target_error`` (the rule of ``_auto``): ``(attributions,
        standard_error, relative_error, draws per image)``.

        Each round is one compiled call over the images still short of the target,
        each with its own number of new draws, then one read of their errors.
        Draw k of an image is draw k of a fixed-size run, and rounds merge like
        chunks (Chan et al.).
        """
        classes, target_fn, keys = self._start(images, targets, keys, context)
        batch = int(images.shape[0])
        if classes is None:
            empty = tf.zeros_like(images)
            return empty, empty, tf.zeros([0]), np.zeros([0], np.int64)
        key_values, extras, context, offsets = self._inputs(
            images, classes, self._keys(images, keys).value, extras, context, target_fn)
        scheme = self.scheme
        size = scheme.draw_size
        width = int(np.prod(images.shape[1:]))
        heat_width = width // int(images.shape[-1])
        state = tf.zeros([batch, 2 * width + 2 * heat_width])
        used = np.zeros(batch, np.int64)
        planned = np.full(batch, _auto.pilot(size, max_points), np.int64)
        relative = np.full(batch, np.nan, np.float32)
        active = np.arange(batch)
        function = self._function(target_fn, "round")
        while active.size:
            rows = tf.constant(active)
            pick = lambda t: tf.gather(t, rows)         # noqa: E731
            added = function(pick(images), pick(classes), pick(key_values),
                             {name: pick(value) for name, value in extras.items()},
                             tuple(pick(c) for c in context),
                             tf.constant((planned[active] - used[active]) * size, tf.int32),
                             tf.constant(used[active] * size, tf.int32))
            weights = [scheme.equal_weight(int(n)) for n in planned[active]]
            merged, errors, finite = _merge_round(
                pick(state), added, _column(used[active]),
                _column(planned[active] - used[active]), width, heat_width, _column(weights))
            state = tf.tensor_scatter_nd_update(state, rows[:, None], merged)
            used[active] = planned[active]
            relative[active] = errors.numpy()
            met = relative[active] <= target_error
            finished = (used[active] >= max_points) | met | ~finite.numpy()
            active = active[~finished]
            planned[active] = _auto.plan(used[active], relative[active], target=target_error,
                                         draw_size=size, max_points=max_points)
        weights = np.array([scheme.equal_weight(int(n)) for n in used], np.float32)
        attributions, standard_error, relative = _moments.standard_errors(
            state, tf.shape(images), width, heat_width, used, weights)
        attributions = self._restore(attributions, offsets, False)
        warn_if_not_finite(_finite_rows(attributions).numpy())
        errors = relative.numpy()
        _warn_if_noise(errors)
        _warn_if_short(errors, target_error, used, max_points)
        return attributions, standard_error, relative, used

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


def warn_if_not_finite(finite: np.ndarray, *, stacklevel: int = 5) -> None:
    """Warns, naming them, about images whose map is not finite."""
    if not finite.all():
        warnings.warn(
            f"The attributions of images {np.flatnonzero(~finite).tolist()} (0-based, "
            "in this call) are not finite: the model's gradient was NaN or Inf at "
            "some of their points (e.g. a float16 overflow, or a division by zero). "
            "Those rows hold NaN/Inf; every other image's map is unaffected.",
            stacklevel=stacklevel)


@_tracing.graph_function(input_signature=[tf.TensorSpec(None, tf.float32)])
def _finite_rows(result: tf.Tensor) -> tf.Tensor:
    """Whether each image's map is finite everywhere."""
    return tf.reduce_all(tf.math.is_finite(tf.reshape(result, [tf.shape(result)[0], -1])),
                         axis=1)


def _warn_if_noise(relative: np.ndarray) -> None:
    """Warns, naming them, about images whose map cannot be told from its noise."""
    noise = np.isposinf(relative)
    if noise.any():
        warnings.warn(
            f"The maps of images {np.flatnonzero(noise).tolist()} (0-based, in this call) "
            "are indistinguishable from their own Monte Carlo noise (‖ĥ‖² ≤ ‖SE‖²): "
            "their relative error is reported as inf. Use more draws, or a target "
            "(class) whose score the inputs move.", stacklevel=5)


def _warn_if_short(relative: np.ndarray, target: float, used: np.ndarray,
                   max_points: int) -> None:
    """Warns, naming them, about "auto" images that stopped at ``max_points`` above
    the target error."""
    short = (used >= max_points) & ~(relative <= target)
    if short.any():
        listed = ", ".join(f"{i} ({relative[i]:.3g})" for i in np.flatnonzero(short)[:20])
        warnings.warn(
            f"{int(short.sum())} image(s) reached max_points={max_points} draws above "
            f"target_error={target}: images (0-based, in this call) and their relative "
            f"errors: {listed}. Raise max_points, or accept a larger target_error.",
            stacklevel=5)


def _column(values) -> tf.Tensor:
    """(rows, 1) float32."""
    return tf.constant(np.asarray(values, np.float32)[:, None])


@_tracing.graph_function(reduce_retracing=True)
def _merge_round(state, added, n_a, n_b, width, heat_width, weight):
    """Merges a round's rows ``[Σv, M2(v), Σh, M2(h)]`` of ``n_b`` draws into rows of
    ``n_a`` earlier draws (the chunk update, ``_moments.combine``; n_a, n_b and the
    draws' weight are (rows, 1)): ``(merged, relative error of the heatmap, whether
    the map is finite)``."""
    parts = []
    for start, stop in ((0, width), (2 * width, 2 * width + heat_width)):
        middle = stop + (stop - start)
        parts += _moments.combine(state[:, start:stop], state[:, stop:middle], n_a, n_b,
                                  added[:, start:stop], added[:, stop:middle])
    merged = tf.concat(parts, 1)
    relative = _moments.relative_error(parts[2], parts[3],
                                       _moments.error_scale(n_a + n_b, weight), weight)
    finite = tf.reduce_all(tf.math.is_finite(parts[0]), axis=1)
    return merged, relative, finite
