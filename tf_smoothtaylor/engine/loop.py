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
    ``(images, classes, keys, extras, context[, counts, firsts]) -> result``."""
    model, scheme = engine.model, engine.scheme
    check(scheme)
    rounds = variant == "round"
    with_error = rounds or variant == "error"
    # With errors, each draw's points are summed first (one value per draw).
    group = scheme.draw_size if with_error else 1
    size = engine.batch_size
    jit = engine.jit_compile
    # Per-point weights of grouped schemes hold 1 / (draws of a full run): a draw's
    # own estimate is its points' weighted sum times that many.
    draw_scale = float(scheme.num_points // scheme.draw_size)
    max_draws = -(-size // group) + 1                  # draws one chunk can touch
    offsets_on = scheme.offset_points > 0

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

    if jit:
        gradients = _tracing.graph_function(gradients, jit_compile=True)

    def attribute(images, targets, key_values, extras, context, counts=None, firsts=None):
        engine.trace_count += 1
        batch = tf.shape(images)[0]
        width = (int(np.prod(images.shape[1:])) if images.shape[1:].is_fully_defined()
                 else tf.reduce_prod(tf.shape(images)[1:]))          # values per image
        keys = _random.Keys(key_values, tf.range(batch))
        params = scheme.prepare(images, extras)
        offsets = extras[SCORE_OFFSET] if offsets_on else None
        layout = (_Ragged(counts, firsts, engine.smallest_round() * group) if rounds
                  else _Uniform(batch, scheme.num_points))
        total = layout.total
        span = min(size, -(-size // layout.min_points) + 1)
        moments = 2 if with_error else scheme.moments
        channels = int(images.shape[-1]) if with_error else 1
        heat_width = width // channels if with_error else 0

        def zeros(*shape):
            return (tf.zeros(shape) if all(isinstance(d, int) for d in shape)
                    else tf.zeros(tf.stack(shape)))

        def evaluate(offset, count):
            """``(values (count, width), image of each, flat index of each, end)``."""
            flat = tf.minimum(offset + tf.range(count), total - 1)
            image = layout.image_of(flat)
            k = layout.index_of(flat, image)
            z, m, w = scheme.points(
                tf.gather(images, image),
                tf.nest.map_structure(lambda t: tf.gather(t, image), params),
                keys.gather(image), k)
            if scheme.draw_weights is not None:
                w = scheme.weight_of(k)
            value = gradients(z, tf.gather(targets, image),
                              tuple(tf.gather(c, image) for c in context))
            if offsets is not None:                   # the control variate, in float32
                value -= tf.reshape(tf.gather(offsets, image), [-1] + [1] * (z.shape.rank - 1))
            if m is not None:
                value *= m
            value = tf.reshape(value, [count, width])
            if w is not None:
                value *= tf.cast(w, tf.float32)[:, None]
            end = offset + count
            if jit:                                   # drop the padding
                valid = tf.minimum(count, total - offset)
                value, image, flat, end = value[:valid], image[:valid], flat[:valid], \
                    offset + valid
            return value, image, flat, end

        def by_draw(value, flat, offset, end, pending):
            """Sums each draw's points: ``(one value per draw completed in this chunk,
            their images, the partial sum of a draw continued in the next chunk)``."""
            first_draw = offset // group
            sums = _moments.segment_sums(value, flat // group - first_draw, max_draws)
            sums = tf.concat([sums[:1] + pending[None], sums[1:]], 0)
            complete = end // group - first_draw
            # Selected, not multiplied: a NaN of a finished draw never leaks on.
            pending = tf.where(end % group != 0, sums[complete], tf.zeros_like(pending))
            image = layout.image_of((first_draw + tf.range(complete)) * group)
            return sums[:complete] * draw_scale, image, pending

        def chunk(offset, count, state):
            """Folds the points [offset, offset + count) into the open rows.

            ``state`` = (finished images, first image of the open rows, open rows of
            Σ w·v, of M2, of the heatmap's Σ and M2, a draw's pending partial sum).
            """
            done, open_start, first, second, heat, heat_m2, pending = state
            start = layout.image_of(offset)                # the chunk's first image
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

            value, image, flat, end = evaluate(offset, count)
            if group > 1:
                value, image, pending = by_draw(value, flat, offset, end, pending)
            # Each value is added into its own image's row only, by sorted segment
            # sums: a non-finite gradient never reaches another image.
            row = image - start
            if moments == 1:
                first += _moments.segment_sums(value, row, span)
            else:
                before = layout.draws_before(offset // group, start + tf.range(span), group)
                first, second = _moments.merge(first, second, before, value, row, span)
                if with_error:
                    heat_values = tf.reduce_sum(tf.reshape(value, [-1, heat_width, channels]),
                                                axis=-1)
                    if scheme.centred_error:      # judge the map without its mean
                        heat_values -= tf.reduce_mean(heat_values, axis=1, keepdims=True)
                    heat, heat_m2 = _moments.merge(heat, heat_m2, before, heat_values, row,
                                                   span)
            return done, start, first, second, heat, heat_m2, pending

        rows = zeros(span, width)
        heat_rows = zeros(span, heat_width) if with_error else tf.zeros([])
        state = (tf.TensorArray(tf.float32, size=batch, element_shape=[None]),
                 tf.constant(0), rows, rows if moments == 2 else tf.zeros([]),
                 heat_rows, heat_rows, zeros(width) if group > 1 else tf.zeros([]))

        def step(index, *state):
            # The last chunk runs at its own size (no wasted gradients), except
            # under XLA, where a new shape means a new compilation: there it is
            # padded to `size`. One loop body: the model is traced once.
            offset = index * size
            count = size if jit else tf.minimum(size, total - offset)
            return (index + 1, *chunk(offset, count, state))

        _, done, open_start, first, second, heat, heat_m2, _ = tf.while_loop(
            lambda index, *_: index < (total + size - 1) // size, step,
            [tf.constant(0), *state], parallel_iterations=1)
        left = batch - open_start
        done = _write_rows(done, open_start, first[:left],
                           second[:left] if moments == 2 else None,
                           (heat[:left], heat_m2[:left]) if with_error else None)
        stacked = done.stack()
        if rounds:
            return stacked
        if with_error:
            draws = scheme.num_points // group
            return _moments.standard_errors(stacked, tf.shape(images), width, heat_width,
                                            draws, scheme.equal_weight(draws))
        sums = tf.reshape(stacked, [batch, 2 if moments == 2 else 1, -1])
        first = tf.reshape(sums[:, 0], tf.shape(images))
        second = tf.reshape(sums[:, -1], tf.shape(images))
        if scheme.point_weight is not None:
            first, second = first * scheme.point_weight, second * scheme.point_weight
        return scheme.finalize(first, second if moments == 2 else None)

    extra_specs = {name: tf.TensorSpec((None,), dtype)
                   for name, dtype in engine.extra_specs().items()}
    context_specs = tuple(tf.TensorSpec((None,) + shape, dtype)
                          for _, shape, dtype in model.context)
    signature = [engine.image_spec(), tf.TensorSpec((None,), tf.int32),
                 tf.TensorSpec((None,), tf.int64), extra_specs, context_specs]
    if rounds:
        signature += [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32)]
    return _tracing.graph_function(attribute, input_signature=signature)


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


def _write_rows(done: tf.TensorArray, start, first, second, heat=None) -> tf.TensorArray:
    """Writes finished rows (one image each) at ``start, start + 1, ...``: the
    sums, then the M2 and the heatmap's sums and M2 when they are kept."""
    parts = [first] + ([] if second is None else [second]) + list(heat or ())
    rows = parts[0] if len(parts) == 1 else tf.concat(parts, 1)
    return done.scatter(start + tf.range(tf.shape(rows)[0]), rows)
