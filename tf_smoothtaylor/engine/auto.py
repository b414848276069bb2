"""How many draws an image gets when its count is ``"auto"``: a pilot, then plans.

A rule that looks at the error after every draw and stops at the first estimate
below the target stops on *lucky* estimates (optional stopping): the error it
returns is larger than the target on average. This rule looks rarely, and only
at counts an earlier estimate asked for:

1. **pilot**: ``n₀`` = ``PILOT_DRAWS`` draws (rounded up to whole units, at most
   ``max_points``), enough for the error estimate itself to be reliable;
2. after each round, with ``n`` draws and the heatmap's relative error ``r̂ₙ``
   (``moments.relative_error``, noise-corrected): the image stops when
   ``r̂ₙ ≤ target``, when it has ``max_points`` draws, or when its map is not
   finite; otherwise it is given

       n' = ⌈n · (r̂ₙ / target)² / u⌉ · u     (at least n + u, at most max_points)

   draws (``2n`` when ``r̂ₙ = ∞``), the count at which the estimate would meet
   the target, and looked at again there.

``u`` = ⌈``ROUND_POINTS`` / ``draw_size``⌉ draws, so a round gives each image at
least ``ROUND_POINTS`` model evaluations (an IG path is ``steps`` of them). Every
image of a round gets its own count in one compiled call (a ragged layout), so a
call needs about two or three reads of the errors, whatever the counts are.

Validated against known truth over many images (``tests/test_precision.py``,
``benchmarks/precision.py``): the realised error ``‖ĥ − h‖ / ‖h‖`` of the returned
maps has an RMS at or below the target.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import moments as _moments, tracing as _tracing
from tf_smoothtaylor.engine.report import (finite_rows, warn_if_noise, warn_if_not_finite,
                                           warn_if_short)

ROUND_POINTS = 32       # model evaluations per image, at least, in a round
PILOT_DRAWS = 32        # draws before the first look


def unit(draw_size: int) -> int:
    """Draws per unit of a round: ⌈ROUND_POINTS / draw_size⌉."""
    return -(-ROUND_POINTS // draw_size)


def pilot(draw_size: int, max_points: int) -> int:
    """Draws of the first round."""
    step = unit(draw_size)
    return min(max_points, -(-PILOT_DRAWS // step) * step)


def smallest_round(draw_size: int, max_points: int) -> int:
    """The fewest draws any round can give an image (bounds the images per chunk)."""
    step = unit(draw_size)
    first = pilot(draw_size, max_points)
    return min(first, step, (max_points - first) % step or step)


def plan(used: np.ndarray, relative: np.ndarray, *, target: float, draw_size: int,
         max_points: int) -> np.ndarray:
    """The next count of draws of images with ``used`` draws and error ``relative``
    still above ``target`` (see the module docstring)."""
    step = unit(draw_size)
    with np.errstate(over="ignore", invalid="ignore"):
        wanted = np.where(np.isfinite(relative), used * (relative / target) ** 2, 2.0 * used)
    wanted = np.minimum(np.nan_to_num(wanted, nan=2.0 * used), float(max_points))
    rounded = np.ceil(wanted / step).astype(np.int64) * step
    return np.minimum(np.maximum(rounded, used + step), max_points)


def run_auto(engine, images: tf.Tensor, targets, extras: Dict[str, tf.Tensor], *,
             target_error: float, max_points: int, keys=None, context=()):
    """Like ``Engine.run(..., with_error=True)``, with as many draws per image as it
    takes to reach ``target_error`` (the rule of ``auto``): ``(attributions,
    standard_error, relative_error, draws per image)``.

    Each round is one compiled call over the images still short of the target,
    each with its own number of new draws, then one read of their errors.
    Draw k of an image is draw k of a fixed-size run, and rounds merge like
    chunks (Chan et al.).
    """
    classes, target_fn, keys = engine.start(images, targets, keys, context)
    batch = int(images.shape[0])
    if classes is None:
        empty = tf.zeros_like(images)
        return empty, empty, tf.zeros([0]), np.zeros([0], np.int64)
    key_values, extras, context, offsets = engine._inputs(
        images, classes, engine._keys(images, keys).value, extras, context, target_fn)
    scheme = engine.scheme
    size = scheme.draw_size
    width = int(np.prod(images.shape[1:]))
    heat_width = width // (int(images.shape[-1]) if images.shape.rank >= 3 else 1)
    state = tf.zeros([batch, 2 * width + 2 * heat_width])
    used = np.zeros(batch, np.int64)
    planned = np.full(batch, pilot(size, max_points), np.int64)
    relative = np.full(batch, np.nan, np.float32)
    active = np.arange(batch)
    function = engine._function(target_fn, "round")
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
        planned[active] = plan(used[active], relative[active], target=target_error,
                               draw_size=size, max_points=max_points)
    weights = np.array([scheme.equal_weight(int(n)) for n in used], np.float32)
    attributions, standard_error, relative = _moments.standard_errors(
        state, tf.shape(images), width, heat_width, used, weights)
    attributions = engine._restore(attributions, offsets, False)
    warn_if_not_finite(finite_rows(attributions).numpy(), stacklevel=6)
    errors = relative.numpy()
    warn_if_noise(errors, stacklevel=6)
    warn_if_short(errors, target_error, used, max_points, stacklevel=6)
    return attributions, standard_error, relative, used


def _column(values) -> tf.Tensor:
    """(rows, 1) float32."""
    return tf.constant(np.asarray(values, np.float32)[:, None])


@_tracing.graph_function(reduce_retracing=True)
def _merge_round(state, added, n_a, n_b, width, heat_width, weight):
    """Merges a round's rows ``[Σv, M2(v), Σh, M2(h)]`` of ``n_b`` draws into rows of
    ``n_a`` earlier draws (the chunk update, ``moments.combine``; n_a, n_b and the
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
