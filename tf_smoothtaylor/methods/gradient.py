"""Plain gradient and Gradient × Input.

    Gradient(x)        = ∇f(x)
    GradientXInput(x)  = x ⊙ ∇f(x)
"""

from tf_smoothtaylor.methods.base import Explainer


class Gradient(Explainer):
    """Saliency: the gradient of the target logit with respect to the input.

    Example:
      >>> explainer = Gradient(model)
      >>> maps = explainer.explain(images)           # top-1 class logits
    """

    point_weight = 1.0

    def points(self, x, params, keys, k):
        return x, None, None


class GradientXInput(Explainer):
    """Gradient × Input: ``x ⊙ ∇f(x)``, IG with a zero baseline and one step."""

    point_weight = 1.0

    def points(self, x, params, keys, k):
        return x, x, None
