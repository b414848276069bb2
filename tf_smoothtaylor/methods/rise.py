"""RISE: randomized input sampling (Petsiuk et al., BMVC 2018).

    S(x) = 1 / (N · p) · Σ_n f(x ⊙ M_n + b ⊙ (1 − M_n)) · M_n

Each mask ``M_n`` is an ``s × s`` grid of cells kept with probability ``p``,
upsampled bilinearly to ``(s + 1) · c`` pixels (``c = ⌈H / s⌉``, likewise for
the width) and cropped to ``H × W`` at a random shift in ``[0, c)``. Every pixel
of a mask has mean ``p``. A series (T, C) — every channel of a step together —
or features (F,) get masks of ``s`` cells along their one axis, made the same way. Forward passes only, on the shared engine; masks and
shifts come from the keyed generator (mask n of an image is the same in every
run), and the masks are independent draws (``return_error=True``,
``num_masks="auto"``).

**Control variate.** On logits, ``f`` carries a level (``E[f]``, or any constant
offset of the logit) that multiplies every mask: it adds ``E[f] · (1/(Np)) Σ M_n``
to ``S``, whose mask noise dominates the map's spread while it says nothing about
where the evidence is. RISE here computes

    S(x) = c + 1 / (N · p) · Σ_n (f(z_n) − c) · M_n,

with ``c`` the mean score over 16 extra masks of a separate random stream (one
per image, independent of the N masks). Since ``E[M_n / p] = 1``, the expectation
is classic RISE's for any ``c``; the level's noise is gone (a constant model gives
exactly ``S = f``, and a logit offset shifts ``S`` by exactly that offset). The
differences ``f(z_n) − c`` are taken in float32.

The Monte Carlo error (``return_error=True``, ``"auto"``) of RISE is judged on the
map minus its spatial mean — what a ranking of pixels (deletion, AUPC) looks at.

``explain`` returns ``S / C`` in each of the C channels, so the heatmap (channel
sum) that the metrics score is ``S``.
"""

from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods import _baselines
from tf_smoothtaylor.methods.base import Explainer, warn_if_16_bit
from tf_smoothtaylor.methods.occlusion import occlusion_size
from tf_smoothtaylor.methods.options import AUTO, Option
from tf_smoothtaylor.methods.registry import register

OFFSET_MASKS = 16          # masks of the control variate's mean score c


class RISEScheme(Scheme):
    """Mask n of an image: ``z_n = x ⊙ M_n + fill ⊙ (1 − M_n)``, multiplier
    ``M_n / C``, weight ``1/(N p)``; the mean score of ``OFFSET_MASKS`` masks of
    another stream is the control variate ``c``, added back by
    :meth:`restore_offset`."""

    uses_random = True
    independent_points = True
    forward_only = True
    offset_points = OFFSET_MASKS
    centred_error = True

    def __init__(self, *, size, grid_size: int, keep_probability: float, baseline,
                 preprocess, **attributes):
        super().__init__(**attributes)
        self.size, self.grid_size, self.keep_probability = size, grid_size, keep_probability
        self.baseline, self.preprocess = baseline, preprocess
        self.point_weight = self.equal_weight(self.num_points)

    def equal_weight(self, num_points):
        return 1.0 / (num_points * self.keep_probability)

    def masks(self, keys, k, *, draw=0) -> tf.Tensor:
        """(n, H, W, 1) masks of points ``k`` (keyed like every draw; ``draw=1``: the
        control variate's masks); a series or features (W = 1) has ``s`` cells along
        its one axis."""
        height, width = self.size
        s = self.grid_size
        across = 1 if width == 1 else s
        cell_h, cell_w = -(-height // s), -(-width // across)
        u = _random.uniform(keys, _random.MASKS, k, [s * across + 2], draw=draw)
        grid = tf.cast(u[:, :s * across] < self.keep_probability, tf.float32)
        grid = tf.reshape(grid, [-1, s, across, 1])
        upsampled = tf.image.resize(grid, ((s + 1) * cell_h, (across + 1) * cell_w if
                                           across > 1 else 1), method="bilinear")
        top = tf.cast(u[:, s * across] * cell_h, tf.int32)
        left = tf.cast(u[:, s * across + 1] * cell_w, tf.int32) if across > 1 else \
            tf.zeros_like(top)
        rows = top[:, None] + tf.range(height)[None, :]
        cols = left[:, None] + tf.range(width)[None, :]
        cropped = tf.gather(upsampled, rows, axis=1, batch_dims=1)
        return tf.gather(cropped, cols, axis=2, batch_dims=1)

    def prepare(self, images, extras):
        return {"fill": _baselines.fill(self.baseline, images, self.preprocess)}

    @staticmethod
    def _shaped(mask, x):
        """An (n, H, W, 1) mask in the shape of ``x``: images as they are, a series
        (n, T, 1), features (n, F)."""
        if x.shape.rank == 4:
            return mask
        return mask[:, :, 0, :] if x.shape.rank == 3 else mask[:, :, 0, 0]

    @staticmethod
    def _channels(x) -> int:
        return int(x.shape[-1]) if x.shape.rank >= 3 else 1

    def points(self, x, params, keys, k):
        mask = self._shaped(self.masks(keys, k), x)
        z = x * mask + params["fill"] * (1.0 - mask)
        return z, tf.broadcast_to(mask / self._channels(x), tf.shape(x)), None

    def offset_point(self, x, params, keys, k):
        mask = self._shaped(self.masks(keys, k, draw=1), x)
        return x * mask + params["fill"] * (1.0 - mask)

    def restore_offset(self, attributions, offsets):
        shape = [-1] + [1] * (attributions.shape.rank - 1)
        return attributions + tf.reshape(offsets, shape) / self._channels(attributions)


@register("rise", needs="forwards", monte_carlo="always")
class RISE(Explainer):
    """RISE saliency.

    Args:
      model: Keras model (explained on its logits).
      num_masks: N masks per image (the paper: 4000–8000 at 224 px); or "auto"
        (see SmoothTaylor's ``num_roots``).
      grid_size: s, cells per side of a mask (the paper: 7).
      keep_probability: p, the chance a cell is kept (the paper: 0.5).
      baseline: What masked-out pixels become: ``"zero"`` (black pixels through
        ``preprocess``, the default), ``"mean"`` (each image's channel means), or
        model-input values (a number or an array broadcastable to one input).
      preprocess: Pixels in [0, 1] -> model inputs, for ``"zero"``; default the
        model's when it is a ``models.ModelSpec``.
      target_error, max_points: With ``num_masks="auto"``.
      batch_size: Forward passes per compiled chunk.
      seed, jit_compile: see ``Explainer``.

    Example:
      >>> rise = RISE(spec, num_masks=4000)
      >>> estimate = rise(images, return_error=True)   # error of the centred map
    """

    draw_setting = "num_masks"            # the setting that counts the draws
    options = {
        "num_masks": Option("N, masks per image, or 'auto'", count=True),
        "grid_size": Option("s, mask cells per side", minimum=1),
        "keep_probability": Option("p, the chance a cell is kept", above=0, maximum=1),
        "baseline": Option("What masked-out pixels become: 'zero' (black pixels through "
                           "preprocess), 'mean' (each image's channel means) or a "
                           "model-input value", flag="rise_baseline",
                           choices=("zero", "mean"), number=True),
        "preprocess": Option("Pixels in [0, 1] -> model inputs, for 'zero' (the model's "
                             "own when it is a ModelSpec)", flag=None),
        **AUTO,
    }

    def __init__(self, model, *, num_masks: Union[int, str] = 2000, grid_size: int = 7,
                 keep_probability: float = 0.5,
                 baseline: Union[str, float, np.ndarray] = "zero",
                 preprocess: Optional[Callable] = None,
                 target_error: Optional[float] = None, max_points: Optional[int] = None,
                 batch_size: int = 64, seed: int = 0, jit_compile: bool = False):
        self.num_masks, self.target_error, self.max_points = _checks.point_count(
            "num_masks", num_masks, target_error, max_points)
        self.grid_size = _checks.positive_int("grid_size", grid_size)
        self.keep_probability = _checks.positive_float("keep_probability", keep_probability)
        if self.keep_probability > 1:
            raise ValueError("Expected `keep_probability` in (0, 1]. "
                             f"Received: keep_probability={keep_probability!r}")
        self.baseline = _baselines.check_fill(baseline, ("zero", "mean"), "RISE")
        self.preprocess, self._preprocess_from_model = _baselines.resolve_preprocess(
            model, preprocess)
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        occlusion_size(self._logits.input_shape, "RISE")
        _baselines.check_shape(self.baseline, self._logits.input_shape)
        warn_if_16_bit(self._logits, "RISE")

    def _check_against(self, images):
        _baselines.warn_if_outside(self.baseline, images, "RISE")

    def make_scheme(self) -> Scheme:
        return RISEScheme(
            size=occlusion_size(self._logits.input_shape, "RISE"), grid_size=self.grid_size,
            keep_probability=self.keep_probability, baseline=self.baseline,
            preprocess=self.preprocess, num_points=self.max_points or self.num_masks,
            target_error=self.target_error, max_points=self.max_points)
