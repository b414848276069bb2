"""Sensitivity-n (Ancona et al., ICLR 2018).

For random subsets S of n pixels (all channels together) — or time steps of a
series, or features —, removing S (setting it to the baseline) changes the target logit by ``Δf(S) = f(x) − f(x[S = b])``.
Sensitivity-n is the Pearson correlation, over ``num_subsets`` subsets,
between ``Σ_{i ∈ S} h_i`` and ``Δf(S)``. It is 1 for every n when the heatmap
sums exactly to the output change, e.g. Gradient × Input (or IG) of a linear
model with a zero baseline.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.metrics._inputs import units
from tf_smoothtaylor.metrics._stats import pearson
from tf_smoothtaylor.metrics._variants import VariantMetric, per_image


class SensitivityN(VariantMetric):
    """Reusable, compiled Sensitivity-n for one model (one trace per image shape).

    Args:
      model: Keras model (logits are used).
      ns: Subset sizes n (each ≤ the pixels, steps or features of the inputs).
      num_subsets: Random subsets per n (≥ 2).
      baseline: Value of removed pixels (model-input space), broadcastable to images.
      seed: Seed of the subsets.
      batch_size: Images per forward pass.
    """

    def __init__(self, model, *, ns: Sequence[int] = (1, 10, 100, 1000),
                 num_subsets: int = 100, baseline=0.0, seed: int = 0, batch_size: int = 64):
        self.ns = [_checks.positive_int("ns", n) for n in ns]
        if not self.ns:
            raise ValueError("Expected `ns` to be non-empty. Received: ns=[]")
        self.num_subsets = _checks.positive_int("num_subsets", num_subsets, minimum=2)
        self.baseline = baseline
        self._sizes = np.repeat(self.ns, self.num_subsets).astype(np.int32)
        super().__init__(model, len(self.ns) * self.num_subsets, batch_size=batch_size,
                         seed=seed)

    def __call__(self, images, heatmaps, targets=None) -> tf.Tensor:
        """Sensitivity-n of ``heatmaps`` for model inputs ``images``.

        Args:
          images: (B, H, W, C) images, (B, T, C) series or (B, F) features.
          heatmaps: (B, H, W), (B, T) or (B, F): one value per pixel, step or feature.
          targets: None (top-1), an int or one int per image.

        Returns:
          float32 tensor (B, len(ns)) of correlations in [−1, 1].
        """
        given = units(images, heatmaps)
        view, maps = given.view, given.maps
        pixels = int(maps.shape[1] * maps.shape[2])
        if max(self.ns) > pixels:
            raise ValueError(f"Expected `ns` to be sizes in [1, {pixels}] for {given.kind} "
                             f"of shape {given.shape}. Received: ns={self.ns}")
        batch = int(view.shape[0])
        try:
            baseline = tf.reshape(tf.broadcast_to(tf.cast(self.baseline, tf.float32),
                                                  [batch, *given.shape]), tf.shape(view))
        except (ValueError, tf.errors.InvalidArgumentError):
            raise ValueError("Expected `baseline` broadcastable to `images`. "
                             f"Received: shape {np.shape(self.baseline)}") from None
        if batch == 0:
            return tf.zeros([0, len(self.ns)])
        classes, start = self._logits.metric_classes(
            tf.reshape(view, [-1, *given.shape]), targets, self.batch_size, start=True)
        scores, relevance = self._scorer(view, {"heatmap": maps, "baseline": baseline},
                                         classes, given.shape)
        drop = start[:, None] - scores
        shape = [-1, len(self.ns), self.num_subsets]
        return pearson(tf.reshape(relevance, shape), tf.reshape(drop, shape))

    def _specs(self, image_shape):
        return {"heatmap": per_image(image_shape[:2]), "baseline": per_image(image_shape)}

    def _make(self, x, params, keys, variant):
        pixels = int(x.shape[1]) * int(x.shape[2])
        noise = _random.uniform(keys, _random.SUBSETS, variant, [pixels])
        ranks = tf.argsort(tf.argsort(noise, axis=-1), axis=-1)
        sizes = tf.gather(tf.constant(self._sizes), variant)
        removed = tf.reshape(ranks < sizes[:, None], tf.shape(x)[:3])
        relevance = tf.reduce_sum(tf.where(removed, params["heatmap"], 0.0), axis=[1, 2])
        return tf.where(removed[..., None], params["baseline"], x), relevance


def sensitivity_n(model, images, heatmaps, *, ns: Sequence[int] = (1, 10, 100, 1000),
                  num_subsets: int = 100, baseline=0.0, targets=None, seed: int = 0,
                  batch_size: int = 64) -> tf.Tensor:
    """Sensitivity-n per image and n (one-off form of :class:`SensitivityN`).

    Args:
      model: Keras model (logits are used).
      images: (B, H, W, C) images, (B, T, C) series or (B, F) features (model inputs).
      heatmaps: (B, H, W), (B, T) or (B, F): relevance per pixel, step or feature.
      ns: Subset sizes n (each ≤ the number of pixels, steps or features).
      num_subsets: Random subsets per n.
      baseline: Value of removed pixels (model-input space), broadcastable to images.
      targets: None (top-1), an int or one int per image.
      seed: Seed of the subsets.
      batch_size: Images per forward pass.

    Returns:
      float32 tensor (B, len(ns)) of correlations in [−1, 1].
    """
    return SensitivityN(model, ns=ns, num_subsets=num_subsets, baseline=baseline, seed=seed,
                        batch_size=batch_size)(images, heatmaps, targets)
