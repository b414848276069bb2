"""Blur Integrated Gradients (Xu et al., CVPR 2020).

IG along the path of Gaussian blurs ``L(x, σ)`` from the most blurred image
(σ = σ_max) to the input (σ = 0):

    BlurIG(x) = Σ_k (L(x, σ_k) − L(x, σ_{k+1})) ⊙ ∇f(L(x, σ_k)),   σ_k = k σ_max / K,

k = 0 … K − 1 (the path's increments, each with the gradient at its
less-blurred end). Completeness: ``Σ BlurIG(x) ≈ f(x) − f(L(x, σ_max))``, exact
for a linear model, whose Blur IG is ``w ⊙ (x − L(x, σ_max))``.

The blur is computed in the frequency domain, per point and in the graph: the
image is extended symmetrically to twice its size (so the circular convolution
is the "reflect" boundary of ``scipy.ndimage.gaussian_filter``), transformed by
``fft2d`` and multiplied by the Gaussian's transfer ``exp(−2π²σ²|ν|²)`` — exact
identity at σ = 0, and the same FFT serves both ends of a point's increment.
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import _checks
from tf_smoothtaylor.methods.base import Explainer


def gaussian_blur(images: tf.Tensor, sigmas) -> tf.Tensor:
    """``images`` (n, H, W, C) blurred with per-image σ (pixels; (n,) or a scalar),
    reflect boundary. See :func:`_blur_pair`."""
    sigmas = tf.broadcast_to(tf.cast(sigmas, tf.float32), tf.shape(images)[:1])
    return _blur_pair(tf.convert_to_tensor(images, tf.float32), sigmas, sigmas)[0]


def _blur_pair(images, first, second):
    """The images blurred with σ = ``first`` and with σ = ``second`` (per image),
    from one forward FFT."""
    height, width = int(images.shape[1]), int(images.shape[2])
    extended = tf.pad(images, [[0, 0], [0, height], [0, width], [0, 0]], mode="SYMMETRIC")
    spectrum = tf.signal.fft2d(tf.cast(tf.transpose(extended, [0, 3, 1, 2]), tf.complex64))
    nu_y = np.fft.fftfreq(2 * height).astype(np.float32)
    nu_x = np.fft.fftfreq(2 * width).astype(np.float32)
    radius2 = tf.constant((nu_y[:, None] ** 2 + nu_x[None, :] ** 2)[None, None])

    def blurred(sigma):
        transfer = tf.exp(-2.0 * math.pi ** 2 * tf.reshape(sigma, [-1, 1, 1, 1]) ** 2 * radius2)
        spatial = tf.math.real(tf.signal.ifft2d(spectrum * tf.cast(transfer, tf.complex64)))
        return tf.transpose(spatial, [0, 2, 3, 1])[:, :height, :width, :]

    return blurred(first), blurred(second)


class BlurIntegratedGradients(Explainer):
    """Blur IG attributions.

    Args:
      model: Keras model (explained on its logits).
      steps: K, gradient evaluations along the blur path.
      max_sigma: σ_max in pixels, the blur the path starts from; default the
        paper's 50 at 224 px scaled to the input (50 · min(H, W) / 224).
      batch_size, seed, jit_compile: see ``Explainer``.
    """

    def __init__(self, model, *, steps: int = 100, max_sigma: Optional[float] = None,
                 batch_size: int = 64, seed: int = 0, jit_compile: bool = False):
        self.steps = _checks.positive_int("steps", steps)
        self.max_sigma = None if max_sigma is None else _checks.positive_float(
            "max_sigma", max_sigma)
        self.num_points = self.steps
        self.point_weight = 1.0
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        height, width = self._fixed_image_size("Blur IG")
        self._sigma = self.max_sigma or 50.0 * min(height, width) / 224.0

    def points(self, x, params, keys, k):
        step = self._sigma / self.steps
        sigma = tf.cast(k, tf.float32) * step
        near, far = _blur_pair(x, sigma, sigma + step)
        return near, near - far, None

    def path_end(self, images) -> tf.Tensor:
        """The most blurred images ``L(x, σ_max)`` (completeness's baseline)."""
        return gaussian_blur(images, self._sigma)
