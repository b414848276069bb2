"""What a method tells the engine: its points, multipliers and weights.

Every method on the engine is a weighted sum over points (DESIGN.md):

    A(x) = Σ_k w_k · m_k ⊙ ∇f_t(z_k)      (forward-only schemes: m_k · (f_t(z_k) − c))

A method supplies, for the points of one chunk, ``z_k``, ``m_k`` and ``w_k``
(:meth:`Scheme.points`), and says how many points an image has and how they group
into independent draws. The engine derives the rest: the chunking, the per-image
sums, the per-draw weights and standard errors (``moments``), the ``"auto"``
rounds (``auto``) and, for forward-only schemes with ``offset_points``, the
control variate ``c``.
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf


class Scheme:
    """What a method tells the engine. Subclasses override the hooks below.

    A user-facing explainer (``methods.base.Explainer``) holds the settings and
    makes its scheme from them (``Explainer.make_scheme``) when the engine is first
    needed; the engine reads only the scheme.

    Attributes:
      num_points: Model evaluations per image (K).
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
        SmoothGrad, IG with random baselines, RISE): then their spread gives the
        Monte Carlo standard error (``return_error=True``) and ``"auto"`` counts
        apply.
      forward_only: Whether the engine evaluates ``f(z)`` instead of ``∇f(z)``
        (forward passes only: Occlusion, RISE): then ``v = m · (f(z) − c)`` and
        ``points`` must return multipliers.
      offset_points: Forward-only schemes: the number of points (per image, made
        by :meth:`offset_point`) whose mean score ``c`` is subtracted from every
        score, in float32, before it is multiplied (0: ``c = 0``). A control
        variate: the scheme's :meth:`restore_offset` adds back what ``c`` took
        out, so the estimate's expectation is unchanged and its variance loses
        the part carried by the score's level.
      centred_error: Judge the heatmap's relative error on the map minus its
        spatial mean (what a ranking of pixels looks at; RISE).
      draw_size: Points per independent draw (IG with random baselines: the
        steps of one path); with ``independent_points`` the draws, not the
        points, are the Monte Carlo samples. A scheme with several points per
        draw gives their weights as ``draw_weights`` (the engine refuses it
        otherwise), never through ``points``.
      draw_weights: The weights of the points of one group of ``L`` consecutive
        points (float64, e.g. IG's quadrature weights, one path): point k weighs
        ``draw_weights[k mod L] / G``, with ``G = num_points / L`` groups, so that
        the estimate is the mean of the groups' weighted sums; with errors, each
        group (a draw) is an estimate of its own, weighted by ``equal_weight``.
        The engine, not the method, divides by the number of groups.
      target_error: None for a fixed ``num_points``; else the heatmap's relative
        error at which ``"auto"`` stops drawing points for an image.
      max_points: With ``target_error``: the most draws per image.
    """

    num_points: int = 1
    moments: int = 1
    point_weight: Optional[float] = None
    extra_specs: Dict[str, tf.DType] = {}
    uses_random: bool = False
    independent_points: bool = False
    target_error: Optional[float] = None
    max_points: Optional[int] = None
    draw_size: int = 1
    forward_only: bool = False
    offset_points: int = 0
    centred_error: bool = False
    draw_weights: Optional[np.ndarray] = None

    def __init__(self, **attributes):
        """Sets the attributes above (a method's scheme adds its own state in its
        constructor); any other name is a ``TypeError``."""
        for name, value in attributes.items():
            if name not in Scheme.__annotations__:
                raise TypeError(f"Expected a scheme attribute ({', '.join(Scheme.__annotations__)}"
                                f"). Received: {name}={value!r}")
            setattr(self, name, value)

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

    def weight_of(self, k) -> tf.Tensor:
        """The weights (n,) of points ``k`` from ``draw_weights``: the table
        ``draw_weights / G`` is made in float64, then rounded to float32 once."""
        groups = self.num_points // len(self.draw_weights)
        table = np.asarray(self.draw_weights, np.float64) / groups
        return tf.gather(tf.constant(table, tf.float32), k % len(table))

    def offset_point(self, x, params, keys, k):
        """Point ``k`` < ``offset_points`` of the control variate's mean score."""
        raise NotImplementedError

    def restore_offset(self, attributions, offsets):
        """Attributions with what the offsets ``c`` (B,) took out added back."""
        return attributions

    def equal_weight(self, num_points: int) -> float:
        """The weight of each of ``num_points`` equally weighted draws: ``1/n`` (a
        mean); schemes whose estimate is scaled otherwise override it."""
        return 1.0 / num_points

    def finalize(self, first, second):
        """Attributions from ``first = Σ w·v`` and, with ``moments == 2``,
        ``second = point_weight · M2`` (else None)."""
        return first
