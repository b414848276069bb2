"""tf_smoothtaylor: SmoothTaylor, Integrated Gradients and SmoothGrad for Keras.

Example:
  >>> import tf_smoothtaylor as tst
  >>> explainer = tst.SmoothTaylor(model, num_roots=150, noise_scale=0.5)
  >>> maps = tst.heatmap(explainer(images))

Names are imported on first use (PEP 562), so ``import tf_smoothtaylor`` and
the ``tf-smoothtaylor`` command start without loading TensorFlow until needed.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_NAMES = {
    "AdaptiveNoising": "tf_smoothtaylor.adaptive",
    "AdaptiveResult": "tf_smoothtaylor.adaptive",
    "adaptive_noising": "tf_smoothtaylor.adaptive",
    "BlurIntegratedGradients": "tf_smoothtaylor.methods",
    "completeness_gap": "tf_smoothtaylor.maps",
    "heatmap": "tf_smoothtaylor.maps",
    "ExpectedGradients": "tf_smoothtaylor.methods",
    "Explainer": "tf_smoothtaylor.methods",
    "GradCAM": "tf_smoothtaylor.methods",
    "GradCAMPlusPlus": "tf_smoothtaylor.methods",
    "Gradient": "tf_smoothtaylor.methods",
    "GradientXInput": "tf_smoothtaylor.methods",
    "IntegratedGradients": "tf_smoothtaylor.methods",
    "LRP": "tf_smoothtaylor.methods",
    "Occlusion": "tf_smoothtaylor.methods",
    "RISE": "tf_smoothtaylor.methods",
    "SmoothGrad": "tf_smoothtaylor.methods",
    "SmoothTaylor": "tf_smoothtaylor.methods",
    "quadrature": "tf_smoothtaylor.engine.quadrature",
}
_MODULES = ("beam", "callbacks", "config", "convergence", "data", "demo", "distribute",
            "lrp", "metrics", "models", "plot", "serving", "visualize")

__all__ = sorted(_NAMES) + list(_MODULES) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = importlib.import_module(f"tf_smoothtaylor.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'tf_smoothtaylor' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
