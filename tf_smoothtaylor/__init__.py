"""tf_smoothtaylor: SmoothTaylor, Integrated Gradients and SmoothGrad for Keras.

Example:
  >>> import tf_smoothtaylor as tst
  >>> explainer = tst.SmoothTaylor(model, num_roots=150, noise_scale=0.5)
  >>> maps = tst.heatmap(explainer(images))
"""

from tf_smoothtaylor.adaptive import AdaptiveNoising, AdaptiveResult, adaptive_noising
from tf_smoothtaylor.maps import completeness_gap, heatmap
from tf_smoothtaylor.methods import (Explainer, Gradient, GradientXInput,
                                     IntegratedGradients, SmoothGrad, SmoothTaylor)
from tf_smoothtaylor import callbacks, data, metrics, models, visualize
from tf_smoothtaylor.quadrature import quadrature

__version__ = "0.1.0"

__all__ = [
    "AdaptiveNoising", "AdaptiveResult", "Explainer", "Gradient", "GradientXInput",
    "IntegratedGradients", "SmoothGrad", "SmoothTaylor", "adaptive_noising", "callbacks",
    "completeness_gap", "data", "heatmap", "metrics", "models", "quadrature", "visualize",
    "__version__",
]
