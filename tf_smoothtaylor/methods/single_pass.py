"""The base of methods that are not sums over points (Grad-CAM): one forward and
backward pass per chunk of images, on the engine's calls (input and target checks,
compiled-function cache) without a scheme."""

import functools

import tensorflow as tf

from tf_smoothtaylor.engine import Calls
from tf_smoothtaylor.methods.base import Explainer


class SinglePassExplainer(Explainer):
    """An explainer computed in one pass per image (see the module docstring): one
    model evaluation per image, no random draws, no standard errors."""

    def make_scheme(self):
        raise TypeError(f"{type(self).__name__} is not a sum over points: it has no scheme "
                        "(and cannot be SmoothGrad's base)")

    @functools.cached_property
    def _engine(self) -> Calls:
        with tf.init_scope():
            return Calls(self.engine_model(), batch_size=self.batch_size, seed=self.seed,
                         jit_compile=self.jit_compile)

    @property
    def num_points(self) -> int:
        """Model evaluations per image: one."""
        return 1

    @property
    def independent_points(self) -> bool:
        """No random draws, so no standard errors."""
        return False

    @property
    def points_per_image(self) -> int:
        return 1
