"""Attribution methods, one module each, all on the shared engine."""

from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.gradient import Gradient, GradientXInput
from tf_smoothtaylor.methods.integrated_gradients import IntegratedGradients
from tf_smoothtaylor.methods.smooth_taylor import SmoothTaylor
from tf_smoothtaylor.methods.smoothgrad import SmoothGrad

BY_NAME = {"smooth_taylor": SmoothTaylor, "integrated_gradients": IntegratedGradients,
           "smoothgrad": SmoothGrad, "gradient": Gradient, "gradient_x_input": GradientXInput}

__all__ = ["BY_NAME", "Explainer", "Gradient", "GradientXInput", "IntegratedGradients",
           "SmoothGrad", "SmoothTaylor"]
