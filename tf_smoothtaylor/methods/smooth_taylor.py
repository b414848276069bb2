"""SmoothTaylor (Goh et al., ICPR 2020).

    ST(x) = (1/R) Σ_r (x − z_r) ⊙ ∇f(z_r),   z_r = x + ε_r,  ε_r ~ N(0, σ² I)

An average of first-order Taylor expansions of the logit ``f`` around ``R``
noisy roots. It is SmoothGrad with base map ``M(z) = ∇f(z) ⊙ (x − z)``; for
``f(x) = ½ xᵀAx`` its expectation is ``−σ² diag(A)``.
"""

from typing import Optional, Union

import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods.base import Explainer, noise_scales
from tf_smoothtaylor.methods.options import AUTO, Option
from tf_smoothtaylor.methods.registry import register


class SmoothTaylorScheme(Scheme):
    """Root r of an image: ``z_r = x + ε_r``, multiplier ``ε_r``, weight ``−1/R``
    (the sign of ``x − z = −ε``); per-image extras σ and the draw index."""

    extra_specs = {"noise_scale": tf.float32, "draw": tf.int64}
    uses_random = True
    independent_points = True

    def __init__(self, *, noise_scale, noise_level, **attributes):
        super().__init__(**attributes)
        self.noise_scale, self.noise_level = noise_scale, noise_level
        self.point_weight = self.equal_weight(self.num_points)

    def extras(self, images):
        return {"noise_scale": noise_scales(images, self.noise_scale, self.noise_level),
                "draw": tf.zeros([tf.shape(images)[0]], tf.int64)}

    def prepare(self, images, extras):
        return extras

    def equal_weight(self, num_points):
        return -1.0 / num_points

    def points(self, x, params, keys, k):
        # ε = σ·n; the multiplier x − z = −ε, with the sign in point_weight.
        eps = _random.normal(keys, _random.ROOTS, k, _random.row_shape(x),
                             draw=params["draw"], scale=params["noise_scale"])
        return x + eps, eps, None


@register("smooth_taylor", monte_carlo="always", default=True)
class SmoothTaylor(Explainer):
    """SmoothTaylor attributions.

    Args:
      model: Keras model (explained on its logits).
      num_roots: R, the number of roots ``z_r``; or ``"auto"``: roots are drawn
        in rounds of 32 per image until the heatmap's relative Monte Carlo error
        ``‖SE(h)‖₂ / ‖h‖₂`` is at most ``target_error``, or ``max_points`` roots
        (each image stops on its own; root r is root r of a fixed-R run).
      target_error: With ``num_roots="auto"``: the relative error to reach
        (default 0.05).
      max_points: With ``num_roots="auto"``: the most roots per image (default
        2000).
      noise_scale: σ, absolute, in model-input space (the paper's choice:
        0.3–0.7 for inputs normalised by the ImageNet mean/std); 0.5 when
        neither this nor ``noise_level`` is given.
      noise_level: Instead of ``noise_scale``: σ = ``noise_level`` ×
        (max(x) − min(x)) of each image. Give at most one of the two.
      batch_size, seed, jit_compile: see ``Explainer``.

    Raises:
      ValueError, TypeError: for invalid settings.

    Example:
      >>> explainer = SmoothTaylor(model, num_roots=150, noise_scale=0.5)
      >>> attributions = explainer(images)                 # (B, H, W, C)
      >>> maps = tf_smoothtaylor.heatmap(attributions)     # (B, H, W)
      >>> auto = SmoothTaylor(model, num_roots="auto", target_error=0.05)
      >>> estimate = auto(images, return_error=True)       # .num_points per image
    """

    draw_setting = "num_roots"           # the setting that counts the draws
    options = {
        "num_roots": Option("R, the roots per image, or 'auto'", count=True),
        "noise_scale": Option("σ, absolute, in model-input space (0.5 when no σ is given)",
                              shared=True, kind=float, above=0, exclusive="noise_level"),
        "noise_level": Option("σ as a fraction of each image's value range", shared=True,
                              kind=float, above=0),
        **AUTO,
    }

    def __init__(self, model, *, num_roots: Union[int, str] = 150,
                 noise_scale: Optional[float] = None,
                 noise_level: Optional[float] = None,
                 target_error: Optional[float] = None, max_points: Optional[int] = None,
                 layer=None, layer_input: bool = False, batch_size: int = 64,
                 seed: int = 0, jit_compile: bool = False):
        self.num_roots, self.target_error, self.max_points = _checks.point_count(
            "num_roots", num_roots, target_error, max_points)
        self.noise_scale, self.noise_level = _checks.noise_setting(
            noise_scale, noise_level, default=(0.5, None))
        super().__init__(model, layer=layer, layer_input=layer_input, batch_size=batch_size,
                         seed=seed, jit_compile=jit_compile)

    def explain(self, images, targets=None, *, noise_scale=None, draw=0,
                keys=None, return_error: bool = False):
        """Attributions; see ``Explainer.explain``.

        Args:
          images, targets: see ``Explainer.explain``.
          noise_scale: Optional per-image σ overriding the settings, shape
            (batch,) or a scalar (used by adaptive noising).
          draw: Non-negative int (or one per image) selecting an independent set
            of roots; the same ``draw`` gives the same roots.
          keys, return_error: see ``Explainer.explain``.
        """
        if not tf.executing_eagerly():                 # traced in a tf.function
            if noise_scale is not None or not isinstance(draw, int) or draw:
                raise ValueError("Expected no `noise_scale` and `draw` inside a tf.function "
                                 "(call it eagerly for adaptive noising)")
            return self._traced(images, targets, keys, return_error)
        images, context = self._inputs(images)
        extras = self.scheme.extras(images)
        batch = int(images.shape[0])
        if noise_scale is not None:
            sigma = tf.broadcast_to(tf.cast(noise_scale, tf.float32), [batch])
            if not bool(tf.reduce_all(sigma > 0)) or not bool(
                    tf.reduce_all(tf.math.is_finite(sigma))):
                raise ValueError("Expected `noise_scale` to be positive and "
                                 f"finite. Received: noise_scale={noise_scale!r}")
            extras["noise_scale"] = sigma
        extras["draw"] = tf.broadcast_to(tf.cast(draw, tf.int64), [batch])
        return self._run(images, targets, extras, keys, context, return_error)

    __call__ = explain

    def make_scheme(self) -> Scheme:
        return SmoothTaylorScheme(
            num_points=self.max_points or self.num_roots, target_error=self.target_error,
            max_points=self.max_points, noise_scale=self.noise_scale,
            noise_level=self.noise_level)
