"""SmoothGrad, SquareGrad and VarGrad (Smilkov et al. 2017; Hooker et al. 2019).

    SG(x)       = (1/N) Σ_n M(x + ε_n)             statistic="mean"
    SquareGrad  = (1/N) Σ_n M(x + ε_n)²            statistic="square"
    VarGrad     = SquareGrad − SG²                 statistic="variance"

with ``ε_n ~ N(0, σ² I)``. σ is ``noise_level × (max(x) − min(x))`` per image
(default 0.15, the usual relative setting) or an absolute ``noise_scale``.
The base map ``M`` is the gradient, Gradient × Input (of the noisy input), or —
for ``statistic="mean"`` — any explainer of this package (noise over IG, ...).
"""

from typing import Optional, Union

import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods.base import Explainer, noise_scales
from tf_smoothtaylor.methods.options import AUTO, Option
from tf_smoothtaylor.methods.registry import register
from tf_smoothtaylor.methods.single_pass import SinglePassExplainer

STATISTICS = ("mean", "square", "variance")
BASES = ("gradient", "gradient_x_input")


class SmoothGradScheme(Scheme):
    """Sample n of an image: ``x + ε_n``, then the base's point (one, for a gradient
    base; the base scheme's points ``k mod K_base`` of the noisy image otherwise),
    weighted ``1/N`` times the base's weight."""

    extra_specs = {"noise_scale": tf.float32}
    uses_random = True

    def __init__(self, *, num_samples: int, noise_scale, noise_level, statistic: str,
                 base, **attributes):
        super().__init__(**attributes)
        self.num_samples, self.statistic = num_samples, statistic
        self.noise_scale, self.noise_level = noise_scale, noise_level
        self.base = base                      # a Scheme, or "gradient"/"gradient_x_input"
        self.base_points = base.num_points if isinstance(base, Scheme) else 1
        self.num_points = num_samples * self.base_points
        base_weight = base.point_weight if isinstance(base, Scheme) else 1.0
        # With per-point base weights (IG), 1/N goes into each point's weight.
        self.point_weight = None if base_weight is None else base_weight / num_samples
        self.moments = 1 if statistic == "mean" else 2

    def extras(self, images):
        return {"noise_scale": noise_scales(images, self.noise_scale, self.noise_level)}

    def prepare(self, images, extras):
        params = dict(extras)
        if isinstance(self.base, Scheme):
            params["base"] = self.base.prepare(images, self.base.extras(images))
        return params

    def points(self, x, params, keys, k):
        sample, inner = k // self.base_points, k % self.base_points
        noise = _random.normal(keys, _random.SMOOTHING, sample, _random.row_shape(x),
                               scale=params["noise_scale"])
        noisy = x + noise
        if isinstance(self.base, Scheme):
            z, m, w = self.base.points(noisy, params["base"],
                                       _random.derive_keys(keys, sample), inner)
            if self.base.draw_weights is not None:
                w = self.base.weight_of(inner)
            return z, m, (None if w is None else w / self.num_samples)
        return noisy, (noisy if self.base == "gradient_x_input" else None), None

    def finalize(self, first, second):
        if self.statistic == "mean":
            return first
        # second = M2 / N, the (population) variance, accumulated centred.
        if self.statistic == "square":
            return second + first * first
        return second


@register("smoothgrad", monte_carlo="statistic='mean', a gradient base",
          monte_carlo_flags="always")
class SmoothGrad(Explainer):
    """SmoothGrad and its variants.

    Args:
      model: Keras model (explained on its logits).
      num_samples: N, noisy copies per image; or ``"auto"`` (statistic "mean"
        with a gradient base): samples are drawn until the heatmap's relative
        error is at most ``target_error`` or ``max_points`` (see SmoothTaylor).
      noise_scale: Absolute σ in model-input space; or
      noise_level: σ as a fraction of each image's value range (0.15 when
        neither is given). Give at most one of the two.
      statistic: ``"mean"`` (SmoothGrad), ``"square"`` (SquareGrad) or
        ``"variance"`` (VarGrad).
      base: ``"gradient"``, ``"gradient_x_input"``, or an explainer of this
        package built on the same model (then ``statistic`` must be "mean").
      target_error, max_points: With ``num_samples="auto"`` (defaults 0.05 and
        2000).
      batch_size, seed, jit_compile: see ``Explainer``.

    Example:
      >>> sg = SmoothGrad(model, num_samples=50, noise_level=0.15)
      >>> vg = SmoothGrad(model, statistic="variance")
      >>> noisy_ig = SmoothGrad(model, base=IntegratedGradients(model, steps=20))
    """

    draw_setting = "num_samples"          # the setting that counts the draws
    options = {
        "num_samples": Option("N, the noisy samples per image, or 'auto'", shared=True,
                              count=True),
        "noise_scale": Option("σ, absolute, in model-input space", shared=True, kind=float,
                              above=0, exclusive="noise_level"),
        "noise_level": Option("σ as a fraction of each image's value range (0.15 when no σ "
                              "is given)", shared=True, kind=float, above=0),
        "statistic": Option("What is averaged: the map (SmoothGrad), its square "
                            "(SquareGrad) or their variance (VarGrad)", choices=STATISTICS),
        "base": Option("The map averaged: the gradient, gradient × input, or (Python) "
                       "another explainer", flag="smoothgrad_base", choices=BASES),
        **AUTO,
    }

    def __init__(self, model, *, num_samples: Union[int, str] = 50,
                 noise_scale: Optional[float] = None,
                 noise_level: Optional[float] = None, statistic: str = "mean",
                 base: Union[str, Explainer] = "gradient",
                 target_error: Optional[float] = None, max_points: Optional[int] = None,
                 layer=None, layer_input: bool = False, batch_size: int = 64,
                 seed: int = 0, jit_compile: bool = False):
        self.num_samples, self.target_error, self.max_points = _checks.point_count(
            "num_samples", num_samples, target_error, max_points)
        self.noise_scale, self.noise_level = _checks.noise_setting(
            noise_scale, noise_level, default=(None, 0.15))
        self.statistic = _checks.one_of("statistic", statistic, STATISTICS)
        if isinstance(base, SinglePassExplainer):
            raise ValueError("Expected `base` to be a method on the engine's points (the "
                             "gradient, IG, LRP, ...). Received: "
                             f"{type(base).__name__}, computed in one pass per image")
        if isinstance(base, Explainer):
            if statistic != "mean":
                raise ValueError(
                    "Expected `statistic` to be 'mean' when `base` is an explainer "
                    "(its maps are sums over many points). "
                    f"Received: statistic={statistic!r}")
        else:
            _checks.one_of("base", base, BASES, otherwise="an explainer")
        self.base = base
        if self.target_error is not None and not self._independent():
            raise ValueError("Expected statistic='mean' and a gradient base for "
                             "num_samples='auto' (its samples must be independent draws of "
                             f"one mean). Received: statistic={statistic!r}, base="
                             f"{type(base).__name__ if isinstance(base, Explainer) else base!r}")
        super().__init__(model, layer=layer, layer_input=layer_input, batch_size=batch_size,
                         seed=seed, jit_compile=jit_compile)
        if isinstance(base, Explainer) and base.model is not self.model:
            raise ValueError("Expected `base` to explain the same model as "
                             "SmoothGrad. Received: a base built on model "
                             f"{base.model.name!r}")

    def _independent(self) -> bool:
        # Each sample one point (a gradient base) and a mean: the samples' spread is the
        # Monte Carlo error. (With an explainer base a sample spans several points.)
        return self.statistic == "mean" and not isinstance(self.base, Explainer)

    def engine_model(self):
        # Noise over an explainer base differentiates what the base does (LRP's rules).
        if isinstance(self.base, Explainer):
            return self.base.engine_model()
        return self._logits

    def make_scheme(self) -> Scheme:
        base = self.base.scheme if isinstance(self.base, Explainer) else self.base
        return SmoothGradScheme(
            num_samples=self.max_points or self.num_samples, noise_scale=self.noise_scale,
            noise_level=self.noise_level, statistic=self.statistic, base=base,
            independent_points=self._independent(), target_error=self.target_error,
            max_points=self.max_points)
