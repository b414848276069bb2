"""Infidelity (Yeh et al., NeurIPS 2019).

    INFD(Φ, f, x) = E_I[(Iᵀ Φ(x) − (f(x) − f(x − I)))²],   I = σ·N(0, 1) per element

estimated with ``num_samples`` perturbations per image. With
``normalize=True`` Φ is first scaled by the optimal
``β = E[Iᵀ Φ · Δf] / E[(Iᵀ Φ)²]`` (as in Yeh et al.'s experiments). The exact
gradient of a linear model has infidelity 0.
"""

import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.metrics._variants import VariantMetric, per_image


class Infidelity(VariantMetric):
    """Reusable, compiled infidelity for one model (one trace per input shape).

    Args:
      model: Keras model (logits are used).
      noise_scale: σ of the Gaussian perturbations I (model-input space).
      num_samples: Perturbations per image.
      normalize: Scale Φ by the optimal β first.
      seed: Seed of the perturbations.
      batch_size: Images per forward pass.
    """

    def __init__(self, model, *, noise_scale: float = 0.1, num_samples: int = 50,
                 normalize: bool = False, seed: int = 0, batch_size: int = 64):
        self.noise_scale = _checks.positive_float("noise_scale", noise_scale)
        self.num_samples = _checks.positive_int("num_samples", num_samples)
        self.normalize = bool(normalize)
        super().__init__(model, self.num_samples, batch_size=batch_size, seed=seed)

    def __call__(self, images, attributions, targets=None) -> tf.Tensor:
        """Infidelity of ``attributions`` (shaped like ``images``) per image, float32 (B,)."""
        images, attributions = _checks.images_and_attributions(images, attributions)
        if int(images.shape[0]) == 0:
            return tf.zeros([0])
        classes, start = self._logits.metric_classes(images, targets, self.batch_size,
                                                     start=True)
        scores, dots = self._scorer(images, {"attributions": attributions}, classes)
        drops = start[:, None] - scores
        if self.normalize:
            beta = tf.math.divide_no_nan(tf.reduce_mean(dots * drops, -1),
                                         tf.reduce_mean(dots * dots, -1))
            dots *= beta[:, None]
        return tf.reduce_mean(tf.square(dots - drops), axis=-1)

    def _specs(self, image_shape):
        return {"attributions": per_image(image_shape)}

    def _make(self, x, params, keys, variant):
        perturbation = self.noise_scale * _random.normal(keys, _random.INFIDELITY, variant,
                                                         x.shape[1:])
        axes = list(range(1, x.shape.rank))
        dot = tf.reduce_sum(perturbation * params["attributions"], axis=axes)
        return x - perturbation, dot


def infidelity(model, images, attributions, *, noise_scale: float = 0.1,
               num_samples: int = 50, normalize: bool = False, targets=None, seed: int = 0,
               batch_size: int = 64) -> tf.Tensor:
    """Infidelity per image, lower is better (one-off form of :class:`Infidelity`).

    Args:
      model: Keras model (logits are used).
      images: (B, ...) model inputs.
      attributions: (B, ...) attributions Φ(x), shaped like the images.
      noise_scale: σ of the Gaussian perturbations I (model-input space).
      num_samples: Perturbations per image.
      normalize: Scale Φ by the optimal β first.
      targets: None (top-1), an int or one int per image.
      seed: Seed of the perturbations.
      batch_size: Images per forward pass.

    Returns:
      float32 tensor (B,).
    """
    return Infidelity(model, noise_scale=noise_scale, num_samples=num_samples,
                      normalize=normalize, seed=seed, batch_size=batch_size)(
                          images, attributions, targets)
