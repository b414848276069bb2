"""Model-parameter randomisation check (Adebayo et al., NeurIPS 2018).

A map that explains the model should change when the model's learned weights
are destroyed. The check explains the same images with the model and with a
copy whose weights (all layers, or the named ``layers``) are randomised, and
returns the Spearman rank correlation of the two heatmaps per image (of |h| by
default, as Adebayo et al. report). High correlation is a warning sign.

Randomisation is seeded: each trainable weight tensor is either randomly
permuted (``"permute"``: keeps its values, destroys their arrangement) or
redrawn from a normal with the tensor's own mean and standard deviation
(``"normal"``). Non-trainable statistics (BatchNorm's moving mean and variance)
are left as they are. Ties share their average rank; a constant map has no
rank correlation (NaN, with a warning).
"""

import dataclasses
from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.logits import LogitModel, resolve_targets
from tf_smoothtaylor.methods.maps import heatmap
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.metrics._stats import spearman


def randomized_model(model: keras.Model, *, layers: Optional[Sequence[str]] = None,
                     mode: str = "permute", seed: int = 0) -> keras.Model:
    """A copy of ``model`` with the weights of ``layers`` (default: all) randomised."""
    _checks.one_of("mode", mode, ("permute", "normal"))
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    names = {layer.name for layer in clone.layers}
    chosen = names if layers is None else set(layers)
    unknown = chosen - names
    if unknown:
        raise ValueError(f"Expected `layers` to name layers of the model. Received unknown "
                         f"names {sorted(unknown)}; known: {sorted(names)}")
    rng = np.random.default_rng(seed)
    for layer in clone.layers:
        if layer.name not in chosen:
            continue
        # Learned weights only: statistics such as BatchNorm's moving variance keep
        # their values (redrawn, a variance can turn negative and the maps NaN).
        for variable in layer.trainable_weights:
            value = np.asarray(variable.numpy())
            if mode == "permute":
                new = rng.permutation(value.reshape(-1)).reshape(value.shape)
            else:
                new = rng.normal(value.mean(), value.std(), value.shape)
            variable.assign(new.astype(value.dtype))
    return clone


def randomization_check(explainer: Union[Explainer, Callable[[keras.Model], Explainer]],
                        model=None, images=None, *, targets=None, layers: Optional[Sequence[str]] = None,
                        mode: str = "permute", absolute: bool = True,
                        seed: int = 0) -> tf.Tensor:
    """Spearman correlation between maps of the model and of its randomised copy.

    Args:
      explainer: An explainer (its method and settings are rebuilt on the
        randomised copy with ``Explainer.with_model``), or a factory ``model ->
        explainer`` (e.g. ``lambda m: SmoothTaylor(m, num_roots=50)``).
      model: The trained Keras model (or ModelSpec); None: the explainer's own.
      images: (B, H, W, C) model inputs.
      targets: None (top-1 of the trained model), an int or one int per image;
        both models explain the same classes.
      layers: Names of the layers to randomise (default: all).
      mode: "permute" or "normal" (see the module docstring).
      absolute: Correlate |h| (True) or signed h.
      seed: Seed of the randomisation.

    Returns:
      float32 tensor (B,) in [−1, 1]; NaN (with a warning) where a map is constant.

    Raises:
      ValueError: when either model's maps are not finite.
    """
    if images is None:
        raise TypeError("Expected `images`. Received: None")
    if isinstance(explainer, Explainer):
        instance = explainer
        source = instance.spec if model is None else model

        def make(keras_model):        # the same method and settings on another model
            if dataclasses.is_dataclass(source) and hasattr(source, "model"):
                return instance.with_model(dataclasses.replace(source, model=keras_model))
            return instance.with_model(keras_model)
    elif callable(explainer) and not isinstance(explainer, keras.Model):
        if model is None:
            raise ValueError("Expected `model` with an explainer factory. Received: None")
        instance, source, make = None, model, explainer
    else:
        raise TypeError("Expected `explainer` to be an explainer or a factory `model -> "
                        f"explainer`. Received: {type(explainer).__name__}")
    model = getattr(source, "model", source)
    trained = instance if instance is not None and instance.model is model else make(model)
    images = trained._engine.check_images(images)
    classes, _ = resolve_targets(targets, int(images.shape[0]), LogitModel(model).num_classes,
                                 lambda: trained._engine.predict(images))
    shuffled = make(randomized_model(model, layers=layers, mode=mode,
                                     seed=_checks.seed(seed)))
    first, second = heatmap(trained(images, classes)), heatmap(shuffled(images, classes))
    for maps, which in ((first, "trained"), (second, "randomised")):
        if not bool(tf.reduce_all(tf.math.is_finite(maps))):
            raise ValueError(f"Expected finite maps. Received: non-finite maps of the "
                             f"{which} model")
    if absolute:
        first, second = tf.abs(first), tf.abs(second)
    return spearman(first, second)
