"""Integrated Gradients (Sundararajan et al. 2017), as used by Goh et al. 2020.

    IG(x; b) = (x − b) ⊙ ∫₀¹ ∇f(b + α(x − b)) dα
             ≈ (x − b) ⊙ Σ_m w_m ∇f(b + α_m (x − b))

with ``(α_m, w_m)`` from ``tst.quadrature`` (weights sum to 1; the
paper's rule is the right Riemann sum with M = 50). With ``N`` random baselines
the N maps are averaged. Completeness: ``Σ IG(x; b) ≈ f(x) − f(b)``.
"""

from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine import Scheme, per_point
from tf_smoothtaylor.methods import _baselines
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.options import AUTO, Option
from tf_smoothtaylor.methods.registry import register
from tf_smoothtaylor.engine.quadrature import RULES, quadrature

BASELINES = ("zero", "uniform")


class IntegratedGradientsScheme(Scheme):
    """Path j, step m of an image: ``b_j + α_m (x − b_j)``, multiplier ``x − b_j``;
    one path's weights are the quadrature's ``w_m`` (``draw_weights``); with random
    baselines each path is one independent draw."""

    def __init__(self, *, steps: int, rule: str, paths: int, baseline, preprocess,
                 **attributes):
        super().__init__(**attributes)
        alphas, weights = quadrature(rule, steps)
        self.steps, self.baseline, self.preprocess = steps, baseline, preprocess
        self.uses_random = isinstance(baseline, str) and baseline == "uniform"
        # Random baselines: each path (``steps`` points) is one independent draw.
        self.independent_points, self.draw_size = self.uses_random, steps
        self.alphas = tf.constant(alphas, tf.float32)
        self.draw_weights = weights                  # one path's quadrature weights
        self.num_points = steps * paths

    def _pixels_to_inputs(self, pixels):
        return pixels if self.preprocess is None else tf.cast(
            self.preprocess(pixels), tf.float32)

    def baselines(self, images: tf.Tensor) -> tf.Tensor:
        """The deterministic baselines of ``images`` (not for ``"uniform"``)."""
        if isinstance(self.baseline, str):
            if self.baseline == "uniform":
                raise ValueError("baseline='uniform' draws a baseline per point")
            return _baselines.black(images, self.preprocess)
        if callable(self.baseline):
            result = tf.cast(self.baseline(images), tf.float32)
            if not result.shape.is_compatible_with(images.shape):
                raise ValueError("Expected the callable `baseline` to return one "
                                 f"baseline per image, shape {images.shape}. "
                                 f"Received: shape {result.shape}")
            return tf.ensure_shape(result, images.shape)
        return tf.broadcast_to(tf.constant(self.baseline), tf.shape(images))

    def prepare(self, images, extras):
        if isinstance(self.baseline, str) and self.baseline == "uniform":
            return {}
        return {"baseline": self.baselines(images)}

    def points(self, x, params, keys, k):
        j, step = k // self.steps, k % self.steps
        if "baseline" in params:
            b = params["baseline"]
        else:
            b = self._pixels_to_inputs(
                _random.uniform(keys, _random.BASELINES, j, _random.row_shape(x)))
        alpha = per_point(tf.gather(self.alphas, step), x)
        return b + alpha * (x - b), x - b, None            # weights: draw_weights


@register("integrated_gradients", monte_carlo="baseline='uniform'",
          monte_carlo_flags="--baseline uniform")
class IntegratedGradients(Explainer):
    """Integrated Gradients.

    Args:
      model: Keras model (explained on its logits).
      steps: M, gradient evaluations along each path.
      rule: Quadrature rule, one of ``tf_smoothtaylor.engine.quadrature.RULES``.
      baseline: ``"zero"`` — a black image in pixel space mapped by
        ``preprocess`` (all zeros without ``preprocess``); ``"uniform"`` — U[0, 1]
        pixels mapped by ``preprocess``, ``num_baselines`` of them averaged; an
        array broadcastable to one image; or a callable ``images -> baselines``
        (same shape as the images, traced into the graph).
      num_baselines: N, random baselines per image (``"uniform"`` only); or
        ``"auto"``: baselines are drawn until the heatmap's relative Monte Carlo
        error is at most ``target_error`` or ``max_points`` baselines (see
        SmoothTaylor).
      target_error, max_points: With ``num_baselines="auto"`` (defaults 0.05 and
        2000 baselines).
      preprocess: Pixels in [0, 1] -> model inputs (TensorFlow ops), used to map
        ``"zero"`` and ``"uniform"`` baselines into model-input space; taken from
        ``model.preprocess`` when ``model`` is a ``models.ModelSpec``.
      batch_size, seed, jit_compile: see ``Explainer``.

    Example:
      >>> ig = IntegratedGradients(model, steps=50, baseline="uniform",
      ...                          num_baselines=20, preprocess=preprocess)
      >>> attributions = ig(images, targets=labels)
    """

    draw_setting = "num_baselines"        # the setting that counts the draws
    options = {
        "steps": Option("M, gradient evaluations along each path", shared=True, minimum=1),
        "rule": Option("The quadrature rule of the path integral", choices=tuple(RULES)),
        "baseline": Option("'zero' (black pixels through preprocess) or 'uniform' (U[0, 1] "
                           "pixels through preprocess, averaged); in Python also an array "
                           "or a callable", choices=BASELINES),
        "num_baselines": Option("N, uniform baselines per image, or 'auto'", count=True),
        "preprocess": Option("Pixels in [0, 1] -> model inputs (the model's own when it is "
                             "a ModelSpec)", flag=None),
        **AUTO,
    }

    def __init__(self, model, *, steps: int = 50, rule: str = "riemann_right",
                 baseline: Union[str, np.ndarray, Callable] = "zero",
                 num_baselines: Union[int, str] = 1, preprocess: Optional[Callable] = None,
                 target_error: Optional[float] = None, max_points: Optional[int] = None,
                 layer=None, layer_input: bool = False, batch_size: int = 64,
                 seed: int = 0, jit_compile: bool = False):
        quadrature(rule, steps)                      # checks both
        self.steps, self.rule = int(steps), rule
        self.num_baselines, self.target_error, self.max_points = _checks.point_count(
            "num_baselines", num_baselines, target_error, max_points)
        if isinstance(baseline, str):
            _checks.one_of("baseline", baseline, BASELINES, otherwise="an array or a callable")
        elif not isinstance(baseline, str) and not callable(baseline):
            try:
                baseline = np.asarray(baseline, np.float32)
            except (TypeError, ValueError):
                raise TypeError("Expected `baseline` to be 'zero', 'uniform', an "
                                "array or a callable. "
                                f"Received: baseline of type {type(baseline).__name__}") from None
        if self.num_baselines != 1 and not (isinstance(baseline, str)
                                            and baseline == "uniform"):
            raise ValueError("Expected `num_baselines` to be 1 unless "
                             "baseline='uniform' (other baselines are not random). "
                             f"Received: num_baselines={num_baselines}")
        preprocess, self._preprocess_from_model = _baselines.resolve_preprocess(
            model, preprocess)
        self.baseline, self.preprocess = baseline, preprocess
        if layer is not None:                          # baselines in the layer's space
            if isinstance(baseline, str) and baseline == "uniform":
                raise ValueError("Expected `baseline` 'zero', an array or a callable with "
                                 "`layer` (a baseline in the layer's space). Received: "
                                 "baseline='uniform' (U[0, 1] pixels)")
            self.preprocess, self._preprocess_from_model = None, False
        super().__init__(model, layer=layer, layer_input=layer_input, batch_size=batch_size,
                         seed=seed, jit_compile=jit_compile)
        _baselines.check_shape(baseline, self._logits.input_shape)

    def _check_against(self, images):
        _baselines.warn_if_outside(self.baseline, images, "IntegratedGradients")

    def make_scheme(self) -> Scheme:
        return IntegratedGradientsScheme(
            steps=self.steps, rule=self.rule, paths=self.max_points or self.num_baselines,
            baseline=self.baseline, preprocess=self.preprocess,
            target_error=self.target_error, max_points=self.max_points)

    def baselines(self, images: tf.Tensor) -> tf.Tensor:
        """The deterministic baselines of ``images`` (not for ``"uniform"``)."""
        return self.scheme.baselines(images)
