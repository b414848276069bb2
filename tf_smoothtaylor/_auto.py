"""How many draws an image gets when its count is ``"auto"``: a pilot, then plans.

A rule that looks at the error after every draw and stops at the first estimate
below the target stops on *lucky* estimates (optional stopping): the error it
returns is larger than the target on average. This rule looks rarely, and only
at counts an earlier estimate asked for:

1. **pilot**: ``n₀`` = ``PILOT_DRAWS`` draws (rounded up to whole units, at most
   ``max_points``), enough for the error estimate itself to be reliable;
2. after each round, with ``n`` draws and the heatmap's relative error ``r̂ₙ``
   (``_moments.relative_error``, noise-corrected): the image stops when
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

import numpy as np

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
