"""RISE: randomized input sampling (Petsiuk et al., BMVC 2018).

    S(x) = 1 / (N · p) · Σ_n f(x ⊙ M_n + b ⊙ (1 − M_n)) · M_n

Each mask ``M_n`` is an ``s × s`` grid of cells kept with probability ``p``,
upsampled bilinearly to ``(s + 1) · c`` pixels (``c = ⌈H / s⌉``, likewise for
the width) and cropped to ``H × W`` at a random shift in ``[0, c)``. Since every
pixel of a mask has mean ``p``, ``E[S] = f`` for a model whose output is a
constant. Forward passes only, on the shared engine; masks and shifts come from
the keyed generator (sample n of an image is the same in every run), and the
samples are independent draws (``return_error=True``, ``num_masks="auto"``).

``explain`` returns ``S / C`` in each of the C channels, so the heatmap (channel
sum) that the metrics score is ``S``.
"""

from typing import Optional, Union

import tensorflow as tf

from tf_smoothtaylor import _checks, _random
from tf_smoothtaylor.methods.base import Explainer


class RISE(Explainer):
    """RISE saliency.

    Args:
      model: Keras model (explained on its logits).
      num_masks: N masks per image (the paper: 4000–8000 at 224 px); or "auto"
        (see SmoothTaylor's ``num_roots``).
      grid_size: s, cells per side of a mask (the paper: 7).
      keep_probability: p, the chance a cell is kept (the paper: 0.5).
      baseline: Value (model-input space) of masked-out pixels (default 0).
      target_error, max_points: With ``num_masks="auto"``.
      batch_size: Forward passes per compiled chunk.
      seed, jit_compile: see ``Explainer``.
    """

    uses_random = True
    independent_points = True
    forward_only = True
    draw_setting = "num_masks"            # the setting that counts the draws

    def __init__(self, model, *, num_masks: Union[int, str] = 2000, grid_size: int = 7,
                 keep_probability: float = 0.5, baseline: float = 0.0,
                 target_error: Optional[float] = None, max_points: Optional[int] = None,
                 batch_size: int = 64, seed: int = 0, jit_compile: bool = False):
        self.num_masks, self.target_error, self.max_points = _checks.point_count(
            "num_masks", num_masks, target_error, max_points)
        self.grid_size = _checks.positive_int("grid_size", grid_size)
        self.keep_probability = _checks.positive_float("keep_probability", keep_probability)
        if self.keep_probability > 1:
            raise ValueError("Expected `keep_probability` in (0, 1]. "
                             f"Received: keep_probability={keep_probability!r}")
        self.baseline = _checks.finite_number("baseline", baseline)
        self.num_points = self.max_points or self.num_masks
        self.point_weight = self.equal_weight(self.num_points)
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        self._fixed_image_size("RISE")

    def equal_weight(self, num_points):
        return 1.0 / (num_points * self.keep_probability)

    def masks(self, keys, k) -> tf.Tensor:
        """(n, H, W, 1) masks of points ``k`` (keyed like every draw)."""
        height, width, _ = self._logits.input_shape
        s = self.grid_size
        cell_h, cell_w = -(-height // s), -(-width // s)
        u = _random.uniform(keys, _random.MASKS, k, [s * s + 2])
        grid = tf.cast(u[:, :s * s] < self.keep_probability, tf.float32)
        grid = tf.reshape(grid, [-1, s, s, 1])
        upsampled = tf.image.resize(grid, ((s + 1) * cell_h, (s + 1) * cell_w),
                                    method="bilinear")
        top = tf.cast(u[:, s * s] * cell_h, tf.int32)
        left = tf.cast(u[:, s * s + 1] * cell_w, tf.int32)
        rows = top[:, None] + tf.range(height)[None, :]
        cols = left[:, None] + tf.range(width)[None, :]
        cropped = tf.gather(upsampled, rows, axis=1, batch_dims=1)
        return tf.gather(cropped, cols, axis=2, batch_dims=1)

    def points(self, x, params, keys, k):
        mask = self.masks(keys, k)
        channels = int(x.shape[-1])
        z = x * mask + self.baseline * (1.0 - mask)
        return z, tf.broadcast_to(mask / channels, tf.shape(x)), None
