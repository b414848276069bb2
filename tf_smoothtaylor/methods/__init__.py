"""Attribution methods, one module each: the gradient family on the shared engine,
Grad-CAM on one forward and backward pass per image.

Each method registers itself where it is defined (``methods.registry``); ``BY_NAME``
and ``__all__`` are the registry's. The modules are imported in the order the
command line and the tables list the methods.
"""

from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.registry import BY_NAME, ENTRIES, register
from tf_smoothtaylor.methods.smooth_taylor import SmoothTaylor  # noqa: I001 (registry order)
from tf_smoothtaylor.methods.integrated_gradients import IntegratedGradients
from tf_smoothtaylor.methods.smoothgrad import SmoothGrad
from tf_smoothtaylor.methods.gradient import Gradient, GradientXInput
from tf_smoothtaylor.methods.grad_cam import GradCAM, GradCAMPlusPlus
from tf_smoothtaylor.methods.rise import RISE
from tf_smoothtaylor.methods.occlusion import Occlusion
from tf_smoothtaylor.methods.blur_ig import BlurIntegratedGradients
from tf_smoothtaylor.methods.expected_gradients import ExpectedGradients
from tf_smoothtaylor.methods.lrp import LRP

__all__ = ["BY_NAME", "ENTRIES", "Explainer", "register"] + sorted(
    cls.__name__ for cls in BY_NAME.values())
