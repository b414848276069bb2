"""Plain gradient and Gradient × Input.

    Gradient(x)        = ∇f(x)
    GradientXInput(x)  = x ⊙ ∇f(x)
"""

import tensorflow as tf

from tf_smoothtaylor.methods.base import Explainer


class Gradient(Explainer):
    """Saliency: the gradient of the target logit with respect to the input.

    Example:
      >>> explainer = Gradient(model)
      >>> maps = explainer.explain(images)           # top-1 class logits
    """

    def points(self, x, params, keys, k):
        return x, None, tf.ones_like(k, tf.float32)


class GradientXInput(Explainer):
    """Gradient × Input: ``x ⊙ ∇f(x)``, IG with a zero baseline and one step."""

    def points(self, x, params, keys, k):
        return x, x, tf.ones_like(k, tf.float32)
