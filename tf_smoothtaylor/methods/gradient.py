"""Plain gradient and Gradient × Input.

    Gradient(x)        = ∇f(x)
    GradientXInput(x)  = x ⊙ ∇f(x)
"""

from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.registry import register


class GradientScheme(Scheme):
    """One point per image, ``z = x``, weight 1; multiplier 1 or ``x``."""

    point_weight = 1.0

    def __init__(self, *, times_input: bool):
        super().__init__()
        self.times_input = times_input

    def points(self, x, params, keys, k):
        return x, (x if self.times_input else None), None


@register("gradient")
class Gradient(Explainer):
    """Saliency: the gradient of the target logit with respect to the input.

    Example:
      >>> explainer = Gradient(model)
      >>> maps = explainer.explain(images)           # top-1 class logits
    """

    def make_scheme(self) -> Scheme:
        return GradientScheme(times_input=False)


@register("gradient_x_input")
class GradientXInput(Explainer):
    """Gradient × Input: ``x ⊙ ∇f(x)``, IG with a zero baseline and one step."""

    def make_scheme(self) -> Scheme:
        return GradientScheme(times_input=True)
