"""The hot path shared by every gradient method.

Every method is a weighted sum over sample points (DESIGN.md):

    A(x) = Σ_k w_k · m_k ⊙ ∇f_t(z_k)      (forward-only schemes: m_k · f_t(z_k))

A method (a *scheme*) only says how to make the points ``z_k``, the multipliers
``m_k`` and the weights ``w_k`` of one chunk; this module does the rest, once:

* one ``tf.function`` per (explainer, target kind), closed over the model, with a
  ``None`` batch axis (and ``None`` image sides for variable-size models) so new
  data never retraces;
* the (images × points) index space is flattened and walked in chunks of exactly
  ``batch_size`` gradient evaluations (several images share a chunk when they have
  fewer points than ``batch_size``), then one chunk with the remainder, so no
  gradient is wasted and memory depends on ``batch_size``, never on the number of
  points (under XLA the remainder is padded, to keep one compiled shape);
* points are made in-graph from counter-based random numbers keyed by each image
  (its content, or a key the caller gives) and the point index (``_random``), so
  results do not depend on chunking or order;
* per-image sums ``Σ w·m⊙g`` are accumulated in float32, whatever the model's
  compute dtype, by segment sums: each point is added into its own image's row
  only, so a NaN or Inf gradient of one image never reaches another image's map
  (it makes that image's own map non-finite, which ``explain`` reports), and no
  float32 matrix product is involved (GPUs would run it in TF32). Second-moment
  methods accumulate centred sums of squares merged chunk by chunk (Chan et al.),
  never E[v²] − E[v]²;
* a chunk's points belong to at most ⌈batch_size / K⌉ + 1 consecutive images:
  only those rows are carried through the loop, and each image's row is written
  once, when it is finished, into a ``TensorArray`` — the work per chunk does not
  grow with the number of images in the call;
* with ``jit_compile=True`` only the chunk's forward/backward pass is compiled by
  XLA: the points are made by the same kernels, so XLA changes only the
  gradients' round-off.

Every op outside the model has a GPU kernel, and the only host-side values are
loop counters and the int32 bookkeeping derived from them: the compiled call
never waits for the device. ``explain`` then reads one finiteness flag per image
(to warn about non-finite maps), not the maps.
"""

import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _random, _tracing
from tf_smoothtaylor._model import LogitModel, resolve_targets, select_target


MAX_CALLABLE_TARGETS = 8
ROUND_POINTS = 32           # gradients per image between two checks of ``run_auto``
MIN_DRAWS = 8               # ``run_auto`` trusts no error estimate from fewer draws
_tracing.install()


def per_point(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Reshapes (n,) values to broadcast against (n, ...) tensors."""
    return tf.reshape(tf.cast(values, like.dtype), [-1] + [1] * (like.shape.rank - 1))


class Scheme:
    """What a method tells the engine. Subclasses override the hooks below.

    Attributes:
      num_points: Gradient evaluations per image (K).
      moments: 1 to accumulate ``Σ w·v``, where ``v = m ⊙ ∇f(z)``; 2 to also
        accumulate the centred ``M2 = Σ (v − v̄)²`` (needs ``point_weight``:
        equal weights).
      point_weight: When every point has the same weight, that weight: then
        ``points`` returns ``w=None`` and the sums are scaled once at the end
        (one pass per point less on the hot path).
      extra_specs: Per-image extra inputs of the compiled function, name ->
        dtype (each fed as a ``(batch,)`` tensor).
      uses_random: Whether ``points`` draws random numbers (else no image keys
        are computed).
      independent_points: Whether an image's draws (``draw_size`` points each)
        are independent draws of one estimator with equal weights (SmoothTaylor,
        SmoothGrad, IG with random baselines): then their spread gives the Monte
        Carlo standard error (``return_error=True``) and ``run_auto`` applies.
      forward_only: Whether the engine evaluates ``f(z)`` instead of ``∇f(z)``
        (forward passes only: Occlusion, RISE): then ``v = m · f(z)`` and
        ``points`` must return multipliers.
      draw_size: Points per independent draw (IG with random baselines: the
        steps of one path); with ``independent_points`` the draws, not the
        points, are the Monte Carlo samples.
      target_error: None for a fixed ``num_points``; else the heatmap's relative
        error at which ``run_auto`` stops drawing points for an image (at most
        ``num_points`` of them).
    """

    num_points: int = 1
    moments: int = 1
    point_weight: Optional[float] = None
    extra_specs: Dict[str, tf.DType] = {}
    uses_random: bool = False
    independent_points: bool = False
    target_error: Optional[float] = None
    draw_size: int = 1
    forward_only: bool = False

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

    def equal_weight(self, num_points: int) -> float:
        """The weight of each of ``num_points`` equally weighted draws: ``1/n`` (a
        mean); schemes whose estimate is scaled otherwise override it."""
        return 1.0 / num_points

    def finalize(self, first, second):
        """Attributions from ``first = Σ w·v`` and, with ``moments == 2``,
        ``second = point_weight · M2`` (else None)."""
        return first


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
        # Variants: None (attributions), "error" (with standard errors), or the number of
        # points of one round of ``run_auto``.
        self._compiled: Dict[tuple, tf.types.experimental.GenericFunction] = {}
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
    def _image_spec(self):
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

    def run(self, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor], *,
            keys=None, context=(), with_error: bool = False):
        """Attributions of checked ``images`` for ``targets`` (see ``explain``);
        ``context``: the other inputs of a multi-input model (``check_inputs``).
        With ``with_error``: ``(attributions, standard_error, relative_error)``."""
        classes, target_fn, keys = self._start(images, targets, keys, context)
        if classes is None:
            empty = tf.zeros_like(images)
            return (empty, empty, tf.zeros([0])) if with_error else empty
        function = self._function(target_fn, "error" if with_error else None)
        outputs = function(images, classes, self._keys(images, keys).value,
                           self._cast_extras(extras), tuple(context))
        _warn_if_not_finite(_finite_rows(outputs[0] if with_error else outputs).numpy())
        return outputs

    def run_auto(self, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor], *,
                 target_error: float, max_points: int, keys=None, context=()):
        """Like ``run(..., with_error=True)``, with as many points per image as it
        takes to reach ``target_error``: ``(attributions, standard_error,
        relative_error, num_points)``.

        Draws (points; IG: paths of ``draw_size`` points) are added in rounds of
        ⌈``ROUND_POINTS`` / ``draw_size``⌉ per image (fewer in a last round capped
        by ``max_points`` draws); after each round an image whose heatmap relative
        error is ≤ ``target_error`` (from ``MIN_DRAWS`` draws on), whose map is
        not finite, or that has ``max_points`` draws leaves the stream, so later
        rounds hold only the images still short of the target. Each round is one
        compiled call over the remaining images (chunked as ever), then one read of
        their relative errors. The point with index k is the k-th point of a
        fixed-size run, and rounds are merged with the same update as chunks: for
        SmoothTaylor and SmoothGrad with ``batch_size == ROUND_POINTS`` and a cap
        that is a multiple of it, an unreachable target gives exactly the
        fixed-size result.
        """
        classes, target_fn, keys = self._start(images, targets, keys, context)
        batch = int(images.shape[0])
        if classes is None:
            empty = tf.zeros_like(images)
            return empty, empty, tf.zeros([0]), np.zeros([0], np.int64)
        key_values = self._keys(images, keys).value
        extras = self._cast_extras(extras)
        width = int(np.prod(images.shape[1:]))
        heat_width = width // int(images.shape[-1])
        state = tf.zeros([batch, 2 * width + 2 * heat_width])
        used = np.zeros(batch, np.int64)
        active = np.arange(batch)
        round_draws = -(-ROUND_POINTS // self.scheme.draw_size)
        while active.size:
            done = int(used[active[0]])                # every active image has as many
            count = min(round_draws, max_points - done)
            rows = tf.constant(active)
            pick = lambda t: tf.gather(t, rows)         # noqa: E731
            function = self._function(target_fn, count)
            added = function(pick(images), pick(classes), pick(key_values),
                             {name: pick(value) for name, value in extras.items()},
                             tuple(pick(c) for c in context),
                             tf.constant(done * self.scheme.draw_size, tf.int32))
            merged, relative, finite = _merge_round(
                pick(state), added, tf.constant(float(done)), tf.constant(float(count)),
                width, heat_width, tf.constant(self.scheme.equal_weight(done + count)))
            state = tf.tensor_scatter_nd_update(state, rows[:, None], merged)
            used[active] += count
            met = (used[active] >= MIN_DRAWS) & (relative.numpy() <= target_error)
            finished = (used[active] >= max_points) | met | ~finite.numpy()
            active = active[~finished]
        weights = np.array([self.scheme.equal_weight(int(n)) for n in used], np.float32)
        attributions, standard_error, relative = _standard_errors(
            state, tf.shape(images), width, heat_width, used, weights)
        _warn_if_not_finite(_finite_rows(attributions).numpy())
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
        "error": with standard errors; an int: one round of that many points per
        image)."""
        return self.compiled(variant, target_fn, lambda: self._build(target_fn, variant))

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
        function = self._function(None, "error" if with_error else None)
        return (function(images, classes, self._keys(images, keys).value,
                         self._cast_extras(self.scheme.extras(images)), ()), logits, classes)

    def _build(self, target_fn, variant=None):
        model, scheme = self.model, self.scheme
        rounds = isinstance(variant, int)
        with_error = rounds or variant == "error"
        # With errors, the values of each draw's points are summed first (one value per
        # draw): chunks then hold whole draws.
        group = scheme.draw_size if with_error else 1
        points_per_image = variant * group if rounds else scheme.num_points
        draws = points_per_image // group              # draws per image in this call
        size = self.batch_size if group == 1 else max(group, self.batch_size // group * group)
        # Per-point weights of grouped schemes hold 1 / (draws of a full run): a draw's
        # own estimate is its points' weighted sum times that many.
        draw_scale = float(scheme.num_points // scheme.draw_size)

        def gradients(z, targets, context):
            if scheme.forward_only:                      # f(z), shaped to scale m
                value = select_target(model(z, context), targets, target_fn)
                return tf.reshape(tf.cast(value, tf.float32), [-1] + [1] * (z.shape.rank - 1))
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = select_target(model(z, context), targets, target_fn)
            grad = tape.gradient(value, z)
            if grad is None:
                raise ValueError(
                    "Expected `model` to be differentiable with respect to its "
                    "input. Received: a model whose output has no gradient "
                    "with respect to the input (e.g. argmax, casts to int, or "
                    "an input that is not used)")
            return tf.cast(grad, tf.float32)

        if self.jit_compile:
            gradients = _tracing.graph_function(gradients, jit_compile=True)

        def attribute(images, targets, key_values, extras, context, first_point=0):
            """Sums over each image's points ``first_point + [0, points_per_image)``
            (``first_point`` > 0: a later round of ``run_auto``)."""
            self.trace_count += 1
            batch = tf.shape(images)[0]
            image_shape = tf.shape(images)[1:]
            width = (int(np.prod(images.shape[1:])) if images.shape[1:].is_fully_defined()
                     else tf.reduce_prod(image_shape))          # values per image
            total = batch * points_per_image
            keys = _random.Keys(key_values, tf.range(batch))
            params = scheme.prepare(images, extras)
            # A chunk holds consecutive points of at most `span` consecutive images.
            span = min(size, -(-size // points_per_image) + 1)
            # With standard errors: the centred M2 of the values and of their channel
            # sums (the heatmap) are merged as well.
            moments = 2 if with_error else scheme.moments
            channels = int(images.shape[-1]) if with_error else 1
            heat_width = width // channels if with_error else 0

            def chunk(offset, count, state):
                """Folds the points [offset, offset + count) into the open rows.

                ``state`` = (finished images, first image of the open rows, open
                rows of Σ w·v, open rows of M2). ``count`` is ``size``, or what
                remains for the last chunk; points past ``total`` (padding, under
                XLA only) are dropped.
                """
                done, open_start, first, second, heat, heat_m2 = state
                start = offset // points_per_image           # the chunk's first image
                # Rows before `start` are final: write each once, shift the window.
                shift = start - open_start
                done = _write_rows(done, open_start, first[:shift],
                                   second[:shift] if moments == 2 else None,
                                   (heat[:shift], heat_m2[:shift]) if with_error else None)
                first = _shift(first, shift, span, width)
                if moments == 2:
                    second = _shift(second, shift, span, width)
                if with_error:
                    heat = _shift(heat, shift, span, heat_width)
                    heat_m2 = _shift(heat_m2, shift, span, heat_width)

                flat = tf.minimum(offset + tf.range(count), total - 1)
                image = flat // points_per_image
                z, m, w = scheme.points(
                    tf.gather(images, image),
                    tf.nest.map_structure(lambda t: tf.gather(t, image), params),
                    keys.gather(image), first_point + flat % points_per_image)
                value = gradients(z, tf.gather(targets, image),
                                  tuple(tf.gather(c, image) for c in context))
                if m is not None:
                    value *= m
                value = tf.reshape(value, [count, width])
                if w is not None:
                    value *= tf.cast(w, tf.float32)[:, None]
                if self.jit_compile:                        # drop the padding
                    valid = tf.minimum(count, total - offset)
                    value, image = value[:valid], image[:valid]
                if group > 1:                                # one value per draw
                    value = tf.reduce_sum(tf.reshape(value, [-1, group, width]), 1) * draw_scale
                    image = image[::group]
                # Each point is added into its own image's row only, by sorted segment
                # sums: a non-finite gradient never reaches another image.
                row = image - start
                if moments == 1:
                    first += _segment_sums(value, row, span)
                else:
                    before = tf.clip_by_value(                # earlier draws of each row
                        offset // group - (start + tf.range(span)) * draws, 0, draws)
                    first, second = _merge_moments(first, second, before, value, row, span)
                    if with_error:
                        channel_sums = tf.reduce_sum(
                            tf.reshape(value, [-1, heat_width, channels]), axis=-1)
                        heat, heat_m2 = _merge_moments(heat, heat_m2, before, channel_sums,
                                                       row, span)
                return done, start, first, second, heat, heat_m2

            done = tf.TensorArray(tf.float32, size=batch, element_shape=[None])
            zeros = tf.zeros([span, width]) if isinstance(width, int) else tf.zeros(
                tf.stack([span, width]))
            heat_zeros = (tf.zeros(tf.stack([span, heat_width])) if with_error
                          else tf.zeros([]))
            state = (done, tf.constant(0), zeros, zeros if moments == 2 else tf.zeros([]),
                     heat_zeros, heat_zeros)

            def step(index, *state):
                # The last chunk runs at its own size (no wasted gradients), except
                # under XLA, where a new shape means a new compilation: there it is
                # padded to `size`. One loop body: the model is traced once.
                offset = index * size
                count = size if self.jit_compile else tf.minimum(size, total - offset)
                return (index + 1, *chunk(offset, count, state))

            _, done, open_start, first, second, heat, heat_m2 = tf.while_loop(
                lambda index, *_: index < (total + size - 1) // size, step,
                [tf.constant(0), *state], parallel_iterations=1)
            rows = batch - open_start
            done = _write_rows(done, open_start, first[:rows],
                               second[:rows] if moments == 2 else None,
                               (heat[:rows], heat_m2[:rows]) if with_error else None)
            stacked = done.stack()
            if rounds:
                return stacked
            if with_error:
                return _standard_errors(stacked, tf.shape(images), width, heat_width,
                                        draws, scheme.equal_weight(draws))
            sums = tf.reshape(stacked, [batch, 2 if moments == 2 else 1, -1])
            first = tf.reshape(sums[:, 0], tf.shape(images))
            second = tf.reshape(sums[:, -1], tf.shape(images))
            if scheme.point_weight is not None:
                first, second = first * scheme.point_weight, second * scheme.point_weight
            return scheme.finalize(first, second if moments == 2 else None)

        extra_specs = {name: tf.TensorSpec((None,), dtype)
                       for name, dtype in scheme.extra_specs.items()}
        context_specs = tuple(tf.TensorSpec((None,) + shape, dtype)
                              for _, shape, dtype in self.model.context)
        signature = [self._image_spec(), tf.TensorSpec((None,), tf.int32),
                     tf.TensorSpec((None,), tf.int64), extra_specs, context_specs]
        if rounds:
            signature.append(tf.TensorSpec((), tf.int32))
        return _tracing.graph_function(attribute, input_signature=signature)


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


def _warn_if_not_finite(finite: np.ndarray) -> None:
    """Warns, naming them, about images whose map is not finite."""
    if not finite.all():
        warnings.warn(
            f"The attributions of images {np.flatnonzero(~finite).tolist()} (0-based, "
            "in this call) are not finite: the model's gradient was NaN or Inf at "
            "some of their points (e.g. a float16 overflow, or a division by zero). "
            "Those rows hold NaN/Inf; every other image's map is unaffected.",
            stacklevel=5)


@_tracing.graph_function(input_signature=[tf.TensorSpec(None, tf.float32)])
def _finite_rows(result: tf.Tensor) -> tf.Tensor:
    """Whether each image's map is finite everywhere."""
    return tf.reduce_all(tf.math.is_finite(tf.reshape(result, [tf.shape(result)[0], -1])),
                         axis=1)


def _shift(rows: tf.Tensor, shift, span: int, width) -> tf.Tensor:
    """Drops the first ``shift`` rows and appends as many zero rows."""
    return tf.reshape(tf.concat([rows[shift:], tf.zeros(tf.stack([shift, width]))], 0),
                      [span, width])


def _write_rows(done: tf.TensorArray, start, first, second, heat=None) -> tf.TensorArray:
    """Writes finished rows (one image each) at ``start, start + 1, ...``: the
    sums, then the M2 and the heatmap's sums and M2 when they are kept."""
    parts = [first] + ([] if second is None else [second]) + list(heat or ())
    rows = parts[0] if len(parts) == 1 else tf.concat(parts, 1)
    return done.scatter(start + tf.range(tf.shape(rows)[0]), rows)


def _standard_errors(stacked, shape, width, heat_width, count, weight):
    """Attributions, per-element standard errors and the heatmap's relative error
    from the rows ``[Σv, M2(v), Σh, M2(h)]`` of ``count`` independent draws of
    weight ``weight`` (each a scalar or one per row):

        A = w Σv,   SE(A) = |w| n √(M2 / (n (n − 1))),

    (w = ±1/n gives SE(A) = √(M2 / (n (n − 1)))), and likewise for the heatmap h
    (channel sums): relative error = ‖SE(h)‖₂ / ‖h‖₂ (NaN when n < 2 or h = 0).
    """
    rows = tf.shape(stacked)[0]
    n = tf.broadcast_to(tf.cast(count, tf.float32), [rows])[:, None]
    weight = tf.broadcast_to(tf.cast(weight, tf.float32), [rows])[:, None]
    scale = _error_scale(n, weight)
    first, second = stacked[:, :width], stacked[:, width:2 * width]
    attributions = tf.reshape(first * weight, shape)
    standard_error = tf.reshape(tf.sqrt(tf.maximum(second, 0.0)) * scale, shape)
    return attributions, standard_error, _relative_error(stacked[:, 2 * width:], heat_width,
                                                          scale, weight)


def _error_scale(n, weight):
    """``|w| n / √(n (n − 1))``: turns √M2 of n draws of weight w into the standard
    error of their weighted sum (∞ for n = 1, so the error is NaN)."""
    return tf.abs(weight) * n / tf.sqrt(n * (n - 1.0))


def _relative_error(heat_rows, heat_width, scale, weight):
    """``‖SE(h)‖₂ / ‖h‖₂`` from rows ``[Σh, M2(h)]`` (see ``_standard_errors``)."""
    heat, heat_m2 = heat_rows[:, :heat_width], heat_rows[:, heat_width:]
    error = tf.sqrt(tf.reduce_sum(tf.maximum(heat_m2, 0.0), axis=1)) * scale[:, 0]
    norm = tf.norm(heat * weight, axis=1)
    return tf.where(norm > 0, error / tf.maximum(norm, 1e-30), np.nan)


def _segment_sums(values: tf.Tensor, rows: tf.Tensor, span: int) -> tf.Tensor:
    """``out[r] = Σ_{i: rows[i] = r} values[i]`` for r < span; ``rows`` sorted.

    Only values of one row are ever added together (no product with other rows'
    values). On a GPU machine: ``unsorted_segment_sum``, whose output size is
    given (a sorted segment sum reads its last id back to the host to size its
    output). On CPU: the sorted segment sum, about 5× faster there, padded to
    ``span`` rows.
    """
    if tf.config.list_logical_devices("GPU"):
        return tf.math.unsorted_segment_sum(values, rows, span)
    sums = tf.math.segment_sum(values, rows)
    padding = [[0, span - tf.shape(sums)[0]]] + [[0, 0]] * (sums.shape.rank - 1)
    return tf.ensure_shape(tf.pad(sums, padding), [span] + sums.shape[1:])


def _merge_moments(total, m2, before, value, row, span):
    """Adds a chunk's values into per-row sums and centred second moments
    (``before``: each row's earlier points; see ``_combine_moments``)."""
    count = _segment_sums(tf.ones_like(row, tf.float32), row, span)
    chunk_sum = _segment_sums(value, row, span)
    n_b = count[:, None]
    mean_b = chunk_sum / tf.maximum(n_b, 1.0)
    centred = value - tf.gather(mean_b, row)
    chunk_m2 = _segment_sums(centred * centred, row, span)
    return _combine_moments(total, m2, tf.cast(before, tf.float32)[:, None], n_b,
                            chunk_sum, chunk_m2)


def _combine_moments(total, m2, n_a, n_b, chunk_sum, chunk_m2):
    """Chan et al.'s parallel update: with ``n_a`` earlier points of sum ``S_a``
    and ``n_b`` new points of sum ``S_b`` and centred sum of squares ``M2_b``,

        M2 = M2_a + M2_b + (S_b/n_b − S_a/n_a)² · n_a n_b / (n_a + n_b),

    so no E[v²] − E[v]² cancellation occurs, whatever |v| is next to its spread.
    """
    mean_b = chunk_sum / tf.maximum(n_b, 1.0)
    delta = mean_b - total / tf.maximum(n_a, 1.0)
    # Terms with n_a = 0 or n_b = 0 vanish; the where keeps 0 · ∞ out of them.
    correction = tf.where(n_a * n_b > 0, delta * delta * (n_a * n_b / tf.maximum(n_a + n_b, 1.0)),
                          0.0)
    return total + chunk_sum, m2 + chunk_m2 + correction


@_tracing.graph_function(reduce_retracing=True)
def _merge_round(state, added, n_a, n_b, width, heat_width, weight):
    """Merges a round's rows ``[Σv, M2(v), Σh, M2(h)]`` of ``n_b`` points into rows of
    ``n_a`` earlier points (the chunk update, ``_combine_moments``): ``(merged,
    relative error of the heatmap, whether the map is finite)``."""
    parts = []
    for start, stop in ((0, width), (2 * width, 2 * width + heat_width)):
        middle = stop + (stop - start)
        parts += _combine_moments(state[:, start:stop], state[:, stop:middle], n_a, n_b,
                                  added[:, start:stop], added[:, stop:middle])
    merged = tf.concat(parts, 1)
    n = n_a + n_b
    weight = tf.reshape(tf.cast(weight, tf.float32), [1, 1])
    relative = _relative_error(tf.concat(parts[2:], 1), heat_width, _error_scale(n, weight),
                               weight)
    finite = tf.reduce_all(tf.math.is_finite(parts[0]), axis=1)
    return merged, relative, finite
