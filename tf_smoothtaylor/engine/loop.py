"""The chunk loop: one compiled function per (explainer, target kind, variant).

For a scheme (``engine.Scheme``) the compiled function computes, per image,

    Σ_k w_k · m_k ⊙ ∇f_t(z_k)        (forward-only schemes: m_k · (f_t(z_k) − c))

over the image's points k. The (images × points) index space is flattened and
walked in chunks of exactly ``batch_size`` model evaluations (several images share
a chunk when they have fewer points), then one chunk with the remainder: memory
depends on ``batch_size``, never on the number of points (under XLA the remainder
is padded, to keep one compiled shape).

Variants:

* ``None``: the attributions;
* ``"error"``: also their Monte Carlo standard errors. The values of each
  *draw* (``draw_size`` points: one IG path) are summed first, then the draws'
  sums and centred second moments are merged (``moments``). A draw may straddle
  two chunks: its partial sum is carried to the next chunk (``pending``), so a
  chunk still holds ``batch_size`` points, whatever ``draw_size`` is;
* ``"round"``: one round of ``run_auto``: image i gets ``counts[i]`` points
  starting at its point ``firsts[i]`` (a ragged layout), and the function returns
  the raw rows ``[Σv, M2(v), Σh, M2(h)]`` for the caller to merge.

A chunk's points belong to at most ``span`` consecutive images (``span`` follows
from the fewest points an image can have); only those rows are carried through
the loop and each image's row is written once, when it is finished, into a
``TensorArray``: the work per chunk does not grow with the number of images.
"""

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import moments as _moments, streams as _random, tracing as _tracing
from tf_smoothtaylor.engine.logits import select_target

SCORE_OFFSET = "score_offset"       # the extra holding c of forward-only control variates


class _Uniform:
    """``points`` points per image, image i's points are ``i·points + [0, points)``."""

    def __init__(self, batch, points: int):
        self.points, self.min_points = points, points
        self.total = batch * points

    def image_of(self, flat):
        return flat // self.points

    def index_of(self, flat, image):
        return flat % self.points

    def draws_before(self, first_draw, rows, group):
        """Each row's draws before global draw ``first_draw`` (rows: image indices)."""
        draws = self.points // group
        return tf.clip_by_value(first_draw - rows * draws, 0, draws)


class _Ragged:
    """Image i has ``counts[i]`` points, numbered from ``firsts[i]`` within the image."""

    def __init__(self, counts, firsts, min_points: int):
        self.counts, self.firsts, self.min_points = counts, firsts, min_points
        self.ends = tf.cumsum(counts)
        self.begins = self.ends - counts
        self.total = tf.reduce_sum(counts)

    def image_of(self, flat):
        if flat.shape.rank == 0:
            return self.image_of(flat[None])[0]
        return tf.searchsorted(self.ends, flat, side="right", out_type=tf.int32)

    def index_of(self, flat, image):
        return tf.gather(self.firsts, image) + flat - tf.gather(self.begins, image)

    def draws_before(self, first_draw, rows, group):
        rows = tf.minimum(rows, tf.shape(self.counts)[0] - 1)
        return tf.clip_by_value(first_draw - tf.gather(self.begins, rows) // group, 0,
                                tf.gather(self.counts, rows) // group)


def build(engine, target_fn, variant=None):
    """The compiled function of ``engine`` for ``target_fn`` and ``variant``:
    ``(images, classes, keys, extras, context[, counts, firsts]) -> result``.

    Each trace pairs an :class:`_Evaluator` (the chunk's points and their values)
    with the accumulator of the variant (:class:`_Sums`, :class:`_Moments` or, with
    errors, :class:`_Draws`), and walks the chunks in one ``tf.while_loop``.
    """
    model, scheme = engine.model, engine.scheme
    check(scheme)
    rounds = variant == "round"
    with_error = rounds or variant == "error"
    gradients = _gradients(model, scheme, target_fn, engine.jit_compile)
    size, jit = engine.batch_size, engine.jit_compile

    def attribute(images, targets, key_values, extras, context, counts=None, firsts=None):
        engine.trace_count += 1
        evaluator = _Evaluator(scheme, gradients, images, targets, key_values, extras,
                               context, counts, firsts, size=size, jit=jit,
                               group=scheme.draw_size if with_error else 1,
                               smallest_round=engine.smallest_round() if rounds else None)
        rows = (_Draws(evaluator, size) if with_error else
                _Moments(evaluator) if scheme.moments == 2 else _Sums(evaluator))
        total = evaluator.layout.total

        def step(index, open_start, done, state):
            # The last chunk runs at its own size (no wasted gradients), except
            # under XLA, where a new shape means a new compilation: there it is
            # padded to `size`. One loop body: the model is traced once.
            offset = index * size
            count = size if jit else tf.minimum(size, total - offset)
            start = evaluator.layout.image_of(offset)        # the chunk's first image
            # Rows before `start` are final: write each once, shift the window.
            shift = start - open_start
            done = _write_rows(done, open_start, rows.finished(state, shift))
            state = rows.shifted(state, shift)
            value, image, flat, end = evaluator.evaluate(offset, count)
            state = rows.add(state, value, image, flat, offset, end, start)
            return index + 1, start, done, state

        done = tf.TensorArray(tf.float32, size=evaluator.batch, element_shape=[None])
        _, open_start, done, state = tf.while_loop(
            lambda index, *_: index < (total + size - 1) // size, step,
            [tf.constant(0), tf.constant(0), done, rows.initial()], parallel_iterations=1)
        done = _write_rows(done, open_start,
                           rows.finished(state, evaluator.batch - open_start))
        stacked = done.stack()
        return stacked if rounds else rows.result(stacked)

    extra_specs = {name: tf.TensorSpec((None,), dtype)
                   for name, dtype in engine.extra_specs().items()}
    context_specs = tuple(tf.TensorSpec((None,) + shape, dtype)
                          for _, shape, dtype in model.context)
    signature = [engine.image_spec(), tf.TensorSpec((None,), tf.int32),
                 tf.TensorSpec((None,), tf.int64), extra_specs, context_specs]
    if rounds:
        signature += [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32)]
    return _tracing.graph_function(attribute, input_signature=signature)


def _gradients(model, scheme, target_fn, jit: bool):
    """``(z, targets, context) -> v``: the target's gradient at the points, or (a
    forward-only scheme) its score shaped to scale the multipliers."""
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

    return _tracing.graph_function(gradients, jit_compile=True) if jit else gradients


class _Evaluator:
    """One trace's points: the layout of (image, point) pairs, and each chunk's
    weighted values ``w · m ⊙ v`` (``v``: the gradient, or the score minus the
    control variate ``c``)."""

    def __init__(self, scheme, gradients, images, targets, key_values, extras, context,
                 counts, firsts, *, size: int, jit: bool, group: int, smallest_round):
        self.scheme, self.gradients, self.jit = scheme, gradients, jit
        self.images, self.targets, self.context = images, targets, context
        self.group = group
        self.batch = tf.shape(images)[0]
        self.width = (int(np.prod(images.shape[1:])) if images.shape[1:].is_fully_defined()
                      else tf.reduce_prod(tf.shape(images)[1:]))      # values per image
        self.keys = _random.Keys(key_values, tf.range(self.batch))
        self.params = scheme.prepare(images, extras)
        self.offsets = extras[SCORE_OFFSET] if scheme.offset_points > 0 else None
        self.layout = (_Ragged(counts, firsts, smallest_round * group)
                       if smallest_round is not None else _Uniform(self.batch, scheme.num_points))
        self.span = min(size, -(-size // self.layout.min_points) + 1)

    def evaluate(self, offset, count):
        """``(values (count, width), image of each, flat index of each, end)``."""
        scheme, layout, total = self.scheme, self.layout, self.layout.total
        flat = tf.minimum(offset + tf.range(count), total - 1)
        image = layout.image_of(flat)
        k = layout.index_of(flat, image)
        z, m, w = scheme.points(
            tf.gather(self.images, image),
            tf.nest.map_structure(lambda t: tf.gather(t, image), self.params),
            self.keys.gather(image), k)
        if scheme.draw_weights is not None:
            w = scheme.weight_of(k)
        value = self.gradients(z, tf.gather(self.targets, image),
                               tuple(tf.gather(c, image) for c in self.context))
        if self.offsets is not None:                  # the control variate, in float32
            value -= tf.reshape(tf.gather(self.offsets, image), [-1] + [1] * (z.shape.rank - 1))
        if m is not None:
            value *= m
        value = tf.reshape(value, [count, self.width])
        if w is not None:
            value *= tf.cast(w, tf.float32)[:, None]
        end = offset + count
        if self.jit:                                  # drop the padding
            valid = tf.minimum(count, total - offset)
            value, image, flat, end = value[:valid], image[:valid], flat[:valid], \
                offset + valid
        return value, image, flat, end


def _zeros(*shape):
    return (tf.zeros(shape) if all(isinstance(d, int) for d in shape)
            else tf.zeros(tf.stack(shape)))


class _Sums:
    """Accumulates ``Σ w·v`` per image (one moment); the open rows are the state."""

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def initial(self):
        return (_zeros(self.evaluator.span, self.evaluator.width),)

    def finished(self, state, count):
        return [state[0][:count]]

    def shifted(self, state, shift):
        return (_shift(state[0], shift, self.evaluator.span, self.evaluator.width),)

    def add(self, state, value, image, flat, offset, end, start):
        # Each value is added into its own image's row only, by sorted segment
        # sums: a non-finite gradient never reaches another image.
        return (state[0] + _moments.segment_sums(value, image - start, self.evaluator.span),)

    def result(self, stacked):
        first = self._finish(stacked, 1)[0]
        return self.evaluator.scheme.finalize(first, None)

    def _finish(self, stacked, moments):
        evaluator = self.evaluator
        sums = tf.reshape(stacked, [evaluator.batch, moments, -1])
        parts = [tf.reshape(sums[:, 0], tf.shape(evaluator.images)),
                 tf.reshape(sums[:, -1], tf.shape(evaluator.images))]
        weight = evaluator.scheme.point_weight
        return [part * weight for part in parts] if weight is not None else parts


class _Moments(_Sums):
    """Accumulates ``Σ w·v`` and the centred second moment ``M2`` per image (the
    statistics of SquareGrad and VarGrad)."""

    def initial(self):
        rows = _zeros(self.evaluator.span, self.evaluator.width)
        return rows, rows

    def finished(self, state, count):
        return [state[0][:count], state[1][:count]]

    def shifted(self, state, shift):
        span, width = self.evaluator.span, self.evaluator.width
        return _shift(state[0], shift, span, width), _shift(state[1], shift, span, width)

    def add(self, state, value, image, flat, offset, end, start):
        before = self.evaluator.layout.draws_before(
            offset, start + tf.range(self.evaluator.span), 1)
        return _moments.merge(state[0], state[1], before, value, image - start,
                              self.evaluator.span)

    def result(self, stacked):
        first, second = self._finish(stacked, 2)
        return self.evaluator.scheme.finalize(first, second)


class _Draws(_Moments):
    """With standard errors: each draw's points summed first (a draw may straddle two
    chunks: its partial sum is carried, ``pending``), then the draws' sums and
    centred second moments merged, for the attributions and the heatmap."""

    def __init__(self, evaluator, size: int):
        super().__init__(evaluator)
        scheme = evaluator.scheme
        # The heatmap sums channels (images, series); features are their own map.
        images = evaluator.images
        self.channels = int(images.shape[-1]) if images.shape.rank >= 3 else 1
        self.heat_width = evaluator.width // self.channels
        # Per-point weights of grouped schemes hold 1 / (draws of a full run): a draw's
        # own estimate is its points' weighted sum times that many.
        self.draw_scale = float(scheme.num_points // scheme.draw_size)
        self.max_draws = -(-size // evaluator.group) + 1   # draws one chunk can touch

    def initial(self):
        rows, heat = super().initial(), _zeros(self.evaluator.span, self.heat_width)
        return (*rows, heat, heat, _zeros(self.evaluator.width) if self.evaluator.group > 1
                else tf.zeros([]))

    def finished(self, state, count):
        return super().finished(state, count) + [state[2][:count], state[3][:count]]

    def shifted(self, state, shift):
        span = self.evaluator.span
        return (*super().shifted(state, shift), _shift(state[2], shift, span, self.heat_width),
                _shift(state[3], shift, span, self.heat_width), state[4])

    def _by_draw(self, value, flat, offset, end, pending):
        """Sums each draw's points: ``(one value per draw completed in this chunk,
        their images, the partial sum of a draw continued in the next chunk)``."""
        group = self.evaluator.group
        first_draw = offset // group
        sums = _moments.segment_sums(value, flat // group - first_draw, self.max_draws)
        sums = tf.concat([sums[:1] + pending[None], sums[1:]], 0)
        complete = end // group - first_draw
        # Selected, not multiplied: a NaN of a finished draw never leaks on.
        pending = tf.where(end % group != 0, sums[complete], tf.zeros_like(pending))
        image = self.evaluator.layout.image_of((first_draw + tf.range(complete)) * group)
        return sums[:complete] * self.draw_scale, image, pending

    def add(self, state, value, image, flat, offset, end, start):
        evaluator, (first, second, heat, heat_m2, pending) = self.evaluator, state
        group, span = evaluator.group, evaluator.span
        if group > 1:
            value, image, pending = self._by_draw(value, flat, offset, end, pending)
        row = image - start
        before = evaluator.layout.draws_before(offset // group, start + tf.range(span), group)
        first, second = _moments.merge(first, second, before, value, row, span)
        heat_values = tf.reduce_sum(tf.reshape(value, [-1, self.heat_width, self.channels]),
                                    axis=-1)
        if evaluator.scheme.centred_error:            # judge the map without its mean
            heat_values -= tf.reduce_mean(heat_values, axis=1, keepdims=True)
        heat, heat_m2 = _moments.merge(heat, heat_m2, before, heat_values, row, span)
        return first, second, heat, heat_m2, pending

    def result(self, stacked):
        evaluator = self.evaluator
        draws = evaluator.scheme.num_points // evaluator.group
        return _moments.standard_errors(stacked, tf.shape(evaluator.images), evaluator.width,
                                        self.heat_width, draws,
                                        evaluator.scheme.equal_weight(draws))


def check(scheme) -> None:
    """Raises ``ValueError`` for a scheme the engine would get wrong silently."""
    if scheme.moments == 2 and scheme.point_weight is None:
        raise ValueError("A scheme with second moments needs equal point weights "
                         "(`point_weight`)")
    if scheme.independent_points and scheme.draw_size > 1 and scheme.draw_weights is None:
        raise ValueError(
            f"A scheme whose draws have several points ({type(scheme).__name__}: "
            f"draw_size={scheme.draw_size}) gives their weights as `draw_weights` (the "
            "weights within one draw), so that the engine can weigh each draw's estimate "
            "for its standard error")
    if scheme.draw_weights is not None and scheme.num_points % len(scheme.draw_weights):
        raise ValueError(f"Expected {type(scheme).__name__}'s num_points "
                         f"({scheme.num_points}) to be whole groups of its "
                         f"{len(scheme.draw_weights)} draw_weights")


def _shift(rows: tf.Tensor, shift, span: int, width) -> tf.Tensor:
    """Drops the first ``shift`` rows and appends as many zero rows."""
    return tf.reshape(tf.concat([rows[shift:], tf.zeros(tf.stack([shift, width]))], 0),
                      [span, width])


def _write_rows(done: tf.TensorArray, start, parts) -> tf.TensorArray:
    """Writes finished rows (one image each) at ``start, start + 1, ...``: the
    sums, then the M2 and the heatmap's sums and M2 when they are kept."""
    rows = parts[0] if len(parts) == 1 else tf.concat(parts, 1)
    return done.scatter(start + tf.range(tf.shape(rows)[0]), rows)
