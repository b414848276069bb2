"""Attribution methods, one module each: the gradient family on the shared engine,
Grad-CAM on one forward and backward pass per image."""

from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.blur_ig import BlurIntegratedGradients
from tf_smoothtaylor.methods.expected_gradients import ExpectedGradients
from tf_smoothtaylor.methods.grad_cam import GradCAM, GradCAMPlusPlus
from tf_smoothtaylor.methods.gradient import Gradient, GradientXInput
from tf_smoothtaylor.methods.integrated_gradients import IntegratedGradients
from tf_smoothtaylor.methods.lrp import LRP
from tf_smoothtaylor.methods.occlusion import Occlusion
from tf_smoothtaylor.methods.rise import RISE
from tf_smoothtaylor.methods.smooth_taylor import SmoothTaylor
from tf_smoothtaylor.methods.smoothgrad import SmoothGrad

BY_NAME = {"smooth_taylor": SmoothTaylor, "integrated_gradients": IntegratedGradients,
           "smoothgrad": SmoothGrad, "gradient": Gradient, "gradient_x_input": GradientXInput,
           "grad_cam": GradCAM, "grad_cam_plus_plus": GradCAMPlusPlus, "rise": RISE,
           "occlusion": Occlusion, "blur_ig": BlurIntegratedGradients,
           "expected_gradients": ExpectedGradients, "lrp": LRP}

__all__ = ["BY_NAME", "BlurIntegratedGradients", "ExpectedGradients", "Explainer", "GradCAM",
           "GradCAMPlusPlus", "Gradient", "GradientXInput", "IntegratedGradients", "LRP", "Occlusion",
           "RISE", "SmoothGrad", "SmoothTaylor"]
