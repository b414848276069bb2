"""Blur Integrated Gradients (Xu et al., CVPR 2020).

IG along the path of Gaussian blurs ``L(x, σ)`` from the most blurred image
(σ = σ_max) to the input (σ = 0):

    BlurIG(x) = Σ_k (L(x, σ_k) − L(x, σ_{k+1})) ⊙ ∇f(L(x, σ_k)),   σ_k = k σ_max / K,

k = 0 … K − 1 (the path's increments, each with the gradient at its
less-blurred end). Completeness: ``Σ BlurIG(x) ≈ f(x) − f(L(x, σ_max))``, exact
for a linear model, whose Blur IG is ``w ⊙ (x − L(x, σ_max))``.

The blur is ``scipy.ndimage.gaussian_filter(x, σ, mode="reflect")`` (the filter of
the paper's code), computed in the frequency domain, per point and in the graph:
the image is extended symmetrically to twice its size (so the circular
convolution is scipy's "reflect" boundary, half-sample symmetric, at any kernel
length), transformed by ``fft2d`` and multiplied by the exact transfer function
of scipy's kernel — the sampled Gaussian ``exp(−x²/2σ²)`` on ``|x| ≤ ⌊4σ + ½⌋``
(``truncate=4``), normalised to sum 1 — one factor per axis:

    H(ν) = (Σ_{|x| ≤ r} e^{−x²/2σ²} cos 2πνx) / (Σ_{|x| ≤ r} e^{−x²/2σ²}).

σ = 0 is the identity, and the same FFT serves both ends of a point's increment.
(The continuous Gaussian's ``exp(−2π²σ²ν²)`` differs from scipy's kernel by up
to 0.17 at σ = 0.25: the blur path's first steps.)
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.options import Option
from tf_smoothtaylor.methods.registry import register

TRUNCATE = 4.0          # scipy.ndimage.gaussian_filter's default: r = ⌊4σ + ½⌋


def kernel_radius(sigma: float) -> int:
    """scipy's kernel radius ``⌊truncate · σ + ½⌋`` for ``truncate = 4``."""
    return int(TRUNCATE * float(sigma) + 0.5)


def gaussian_blur(images: tf.Tensor, sigmas) -> tf.Tensor:
    """``images`` (n, H, W, C) blurred with per-image σ (pixels; (n,) or a scalar)
    as ``scipy.ndimage.gaussian_filter(..., mode="reflect")`` per channel. See
    :func:`_blur_pair`."""
    radius = kernel_radius(np.max(np.asarray(sigmas, np.float64)))
    sigmas = tf.broadcast_to(tf.cast(sigmas, tf.float32), tf.shape(images)[:1])
    return _blur_pair(tf.convert_to_tensor(images, tf.float32), sigmas, sigmas, radius)[0]


def _transfer(sigma: tf.Tensor, length: int, radius: int) -> tf.Tensor:
    """(n, length) transfer of scipy's 1-D kernel of σ (n,) at the DFT frequencies
    of ``length`` samples (``radius``: at least the largest kernel radius)."""
    taps = np.arange(radius + 1, dtype=np.float64)
    cosines = np.cos(2 * math.pi * np.fft.fftfreq(length)[None, :] * taps[:, None])
    both_sides = np.where(taps > 0, 2.0, 1.0)             # x and −x
    sigma = tf.reshape(sigma, [-1, 1])
    kept = tf.constant(taps, tf.float32)[None, :] <= tf.floor(TRUNCATE * sigma + 0.5)
    weights = tf.where(kept, tf.exp(-0.5 * tf.constant(taps ** 2, tf.float32)[None, :]
                                    / tf.maximum(sigma * sigma, 1e-30)), 0.0)
    weights *= tf.constant(both_sides, tf.float32)[None, :]
    spectrum = tf.reduce_sum(weights[:, :, None] * tf.constant(cosines, tf.float32)[None],
                             axis=1)
    return spectrum / tf.reduce_sum(weights, axis=1, keepdims=True)


def _blur_pair(images, first, second, radius: int):
    """The images blurred with σ = ``first`` and with σ = ``second`` (per image),
    from one forward FFT (``radius``: at least the largest kernel radius)."""
    height, width = int(images.shape[1]), int(images.shape[2])
    extended = tf.pad(images, [[0, 0], [0, height], [0, width], [0, 0]], mode="SYMMETRIC")
    spectrum = tf.signal.fft2d(tf.cast(tf.transpose(extended, [0, 3, 1, 2]), tf.complex64))

    def blurred(sigma):
        transfer = (_transfer(sigma, 2 * height, radius)[:, None, :, None]
                    * _transfer(sigma, 2 * width, radius)[:, None, None, :])
        spatial = tf.math.real(tf.signal.ifft2d(spectrum * tf.cast(transfer, tf.complex64)))
        return tf.transpose(spatial, [0, 2, 3, 1])[:, :height, :width, :]

    return blurred(first), blurred(second)


class BlurScheme(Scheme):
    """Step k of an image: ``z_k = L(x, kΔ)``, multiplier ``L(x, kΔ) − L(x, (k+1)Δ)``,
    weight 1 (``Δ = σ_max / K``)."""

    point_weight = 1.0

    def __init__(self, *, steps: int, max_sigma: float):
        super().__init__(num_points=steps)
        self.steps, self.max_sigma = steps, max_sigma
        self._radius = kernel_radius(max_sigma)

    def points(self, x, params, keys, k):
        step = self.max_sigma / self.steps
        sigma = tf.cast(k, tf.float32) * step
        near, far = _blur_pair(x, sigma, sigma + step, self._radius)
        return near, near - far, None


@register("blur_ig")
class BlurIntegratedGradients(Explainer):
    """Blur IG attributions.

    Args:
      model: Keras model (explained on its logits).
      steps: K, gradient evaluations along the blur path.
      max_sigma: σ_max in pixels, the blur the path starts from; default the
        paper's 50 at 224 px scaled to the input (50 · min(H, W) / 224).
      batch_size, seed, jit_compile: see ``Explainer``.
    """

    options = {
        "steps": Option("K, gradient evaluations along the blur path", shared=True, minimum=1),
        "max_sigma": Option("σ_max in pixels, the blur the path starts from (default "
                            "50 · min(H, W) / 224)", kind=float, above=0),
    }

    def __init__(self, model, *, steps: int = 100, max_sigma: Optional[float] = None,
                 batch_size: int = 64, seed: int = 0, jit_compile: bool = False):
        self.steps = _checks.positive_int("steps", steps)
        self.max_sigma = None if max_sigma is None else _checks.positive_float(
            "max_sigma", max_sigma)
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        height, width = self._fixed_image_size("Blur IG")
        self._sigma = self.max_sigma or 50.0 * min(height, width) / 224.0

    def make_scheme(self) -> Scheme:
        return BlurScheme(steps=self.steps, max_sigma=self._sigma)

    def path_end(self, images) -> tf.Tensor:
        """The most blurred images ``L(x, σ_max)`` (completeness's baseline)."""
        return gaussian_blur(images, self._sigma)
