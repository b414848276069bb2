"""Infidelity (Yeh et al., NeurIPS 2019).

    INFD(Φ, f, x) = E_I[(Iᵀ Φ(x) − (f(x) − f(x − I)))²],   I = σ·N(0, 1) per element

estimated with ``num_samples`` perturbations per image. With
``normalize=True`` Φ is first scaled by the optimal
``β = E[Iᵀ Φ · Δf] / E[(Iᵀ Φ)²]`` (as in Yeh et al.'s experiments). The exact
gradient of a linear model has infidelity 0.
"""

import tensorflow as tf

from tf_smoothtaylor import _checks, _random
from tf_smoothtaylor._model import LogitModel
from tf_smoothtaylor.metrics._variants import VariantScorer, per_image


def infidelity(model, images, attributions, *, noise_scale: float = 0.1,
               num_samples: int = 50, normalize: bool = False, targets=None, seed: int = 0,
               batch_size: int = 64) -> tf.Tensor:
    """Infidelity per image (lower is better).

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
    logits = LogitModel(model)
    images, attributions = _checks.images_and_attributions(images, attributions)
    sigma = _checks.positive_float("noise_scale", noise_scale)
    num_samples = _checks.positive_int("num_samples", num_samples)
    axes = list(range(1, images.shape.rank))

    def make(x, params, keys, variant):
        perturbation = sigma * _random.normal(keys, _random.INFIDELITY, variant, x.shape[1:])
        dot = tf.reduce_sum(perturbation * params["attributions"], axis=axes)
        return x - perturbation, dot

    scorer = VariantScorer(logits, make, num_samples, batch_size=batch_size,
                           seed=_checks.seed(seed),
                           param_specs=lambda shape: {"attributions": per_image(shape)})
    if int(images.shape[0]) == 0:
        return tf.zeros([0])
    classes = scorer.targets(images, targets)
    start = tf.gather(logits(images), classes, batch_dims=1)
    scores, dots = scorer(images, {"attributions": attributions}, classes)
    drops = start[:, None] - scores
    if normalize:
        beta = tf.math.divide_no_nan(tf.reduce_mean(dots * drops, -1),
                                     tf.reduce_mean(dots * dots, -1))
        dots *= beta[:, None]
    return tf.reduce_mean(tf.square(dots - drops), axis=-1)
