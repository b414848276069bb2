"""Relevance mass inside a ground-truth mask (Arras et al. 2022).

    mass(h, M) = Σ_{i ∈ M} r_i / Σ_i r_i,   r = max(h, 0) ("positive") or |h| ("absolute")

A value in [0, 1]; higher means the relevance concentrates on the object. A map
with no relevance of the chosen kind scores 0.
"""

import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.metrics import registry
from tf_smoothtaylor.metrics._inputs import check_heatmaps


def relevance_mass(heatmaps, masks, *, relevance: str = "positive") -> tf.Tensor:
    """Fraction of relevance inside ``masks``, per image.

    Args:
      heatmaps: (B, H, W) heatmaps.
      masks: (B, H, W) ground-truth masks (non-zero = object).
      relevance: "positive" (max(h, 0), the usual choice) or "absolute" (|h|).

    Returns:
      float32 tensor (B,) in [0, 1].
    """
    maps = check_heatmaps(heatmaps)
    masks = tf.convert_to_tensor(masks)
    if tuple(masks.shape) != tuple(maps.shape):
        raise ValueError(f"Expected `masks` shaped like `heatmaps` {tuple(maps.shape)}. "
                         f"Received: {tuple(masks.shape)}")
    _checks.one_of("relevance", relevance, ("positive", "absolute"))
    values = tf.nn.relu(maps) if relevance == "positive" else tf.abs(maps)
    inside = tf.reduce_sum(tf.where(tf.cast(masks, tf.bool), values, 0.0), axis=[1, 2])
    return tf.math.divide_no_nan(inside, tf.reduce_sum(values, axis=[1, 2]))


@registry.register("relevance_mass", lower_is_better=False, needs_mask=True)
def _scores(spec, **settings):
    def scores(images, maps, targets, masks):
        if masks is None:
            return tf.fill([len(maps)], float("nan"))
        return relevance_mass(maps, masks, **settings)
    return scores
