"""Max-sensitivity (Yeh et al., NeurIPS 2019).

    SENS_max(Φ, x) = max_{‖y − x‖∞ ≤ r} ‖Φ(y) − Φ(x)‖₂

estimated by the largest change over ``num_samples`` points y drawn uniformly
in the ℓ∞ ball of radius r (the explained class is fixed to that of x). With
``relative=True`` it is divided by ‖Φ(x)‖₂. Lower is more robust. All B × S
perturbed points go to the explainer in one call, packed into its chunks.
"""

from typing import Callable, Union

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine.logits import resolve_targets
from tf_smoothtaylor.methods.base import Explainer


def max_sensitivity(explainer: Union[Explainer, Callable], images, *, model=None,
                    radius: float = 0.02, num_samples: int = 10, relative: bool = False,
                    targets=None, seed: int = 0) -> tf.Tensor:
    """Max-sensitivity of an explainer per image.

    Args:
      explainer: An explainer of this package, or a factory ``model ->
        explainer`` together with ``model``.
      model: The model (or ModelSpec) for a factory; with an explainer, None or
        another model to run the same method and settings on.
      images: (B, ...) model inputs.
      radius: r, the ℓ∞ radius of the perturbations (model-input space).
      num_samples: Perturbed points per image.
      relative: Divide by ‖Φ(x)‖₂.
      targets: None (top-1 of x), an int or one int per image.
      seed: Seed of the perturbations.

    Returns:
      float32 tensor (B,).
    """
    if isinstance(explainer, Explainer):
        if model is not None and getattr(model, "model", model) is not explainer.model:
            explainer = explainer.with_model(model)
    elif callable(explainer) and not isinstance(explainer, keras.Model):
        if model is None:
            raise ValueError("Expected `model` with an explainer factory. Received: None")
        explainer = explainer(model)
    if not isinstance(explainer, Explainer):
        raise TypeError("Expected `explainer` to be an explainer of tf_smoothtaylor or a "
                        "factory `model -> explainer`. "
                        f"Received: {type(explainer).__name__}")
    radius = _checks.positive_float("radius", radius)
    num_samples = _checks.positive_int("num_samples", num_samples)
    images = explainer._engine.check_images(images)
    batch = int(images.shape[0])
    if batch == 0:
        return tf.zeros([0])
    if not callable(targets):
        targets, _ = resolve_targets(targets, batch, explainer._logits.num_classes,
                                     lambda: explainer._engine.predict(images))
    reference = explainer.explain(images, targets)
    keys = _random.image_keys(images, _checks.seed(seed))
    axes = list(range(1, images.shape.rank))
    # All perturbed copies in one call, so the explainer packs them into full chunks;
    # draws are keyed by image content, so this equals explaining them one sample at a time.
    offsets = [_random.uniform(keys, _random.SENSITIVITY, tf.fill([batch], sample),
                               images.shape[1:]) for sample in range(num_samples)]
    moved = tf.concat([images + radius * (2.0 * offset - 1.0) for offset in offsets], axis=0)
    repeated = targets if callable(targets) else np.tile(np.asarray(targets), num_samples)
    moved_maps = tf.reshape(explainer.explain(moved, repeated), [num_samples, batch, -1])
    changes = moved_maps - tf.reshape(reference, [1, batch, -1])
    worst = tf.reduce_max(tf.norm(changes, axis=-1), axis=0)
    if relative:
        worst = tf.math.divide_no_nan(worst, tf.sqrt(tf.reduce_sum(reference ** 2, axis=axes)))
    return worst
