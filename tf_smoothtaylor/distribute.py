"""Explaining datasets under any ``tf.distribute.Strategy``.

:func:`explain_dataset` runs an explainer over a batched ``tf.data.Dataset``:
each global batch is split across the strategy's replicas
(``experimental_distribute_dataset``), every replica runs the explainer's
compiled graph (``Engine.run_in_graph``) on its share, and the per-replica
results are concatenated back in input order. The default strategy is one
device; ``MirroredStrategy`` spreads batches over local GPUs (or logical CPU
devices), ``MultiWorkerMirroredStrategy`` over hosts. Results equal the
single-device ones: random draws are keyed by image content, not by device or
position. For resumable runs over many images, use the command line, which
writes each image's results as it goes.
"""

from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.maps import heatmap
from tf_smoothtaylor.methods.base import Explainer


def _images_of(element):
    return element[0] if isinstance(element, (tuple, list)) else element


def explain_dataset(explainer: Explainer, dataset: tf.data.Dataset, *,
                    strategy: Optional[tf.distribute.Strategy] = None,
                    keyed: bool = False) -> Dict[str, np.ndarray]:
    """Attributions of every image of a batched dataset, in input order.

    Args:
      explainer: An explainer of this package.
      dataset: Batched dataset of model inputs, or of tuples whose first item is
        the model inputs (labels, ids, ... are ignored). Each image's top-1 class
        is explained.
      strategy: A ``tf.distribute.Strategy`` (default: the current one).
      keyed: Whether each element's second item holds int64 random keys, one
        per image (see ``Explainer.explain``); otherwise draws are keyed by
        image content.

    Returns:
      ``{"attributions": (N, ...), "targets": (N,), "logits": (N, classes)}``.
    """
    if not isinstance(explainer, Explainer):
        raise TypeError("Expected `explainer` to be an explainer of tf_smoothtaylor. "
                        f"Received: {type(explainer).__name__}")
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"Expected `dataset` to be a tf.data.Dataset. Received: "
                        f"{type(dataset).__name__}")
    strategy = strategy or tf.distribute.get_strategy()
    engine = explainer._engine

    @tf.function
    def step(images, keys):
        images = tf.cast(images, tf.float32)
        targets = -tf.ones(tf.shape(images)[:1], tf.int32)
        attributions, logits, classes = engine.run_in_graph(images, targets, keys=keys)
        return attributions, classes, logits

    parts = {"attributions": [], "targets": [], "logits": []}
    for element in strategy.experimental_distribute_dataset(dataset):
        keys = element[1] if keyed else None
        results = strategy.run(step, args=(_images_of(element), keys))
        for name, value in zip(("attributions", "targets", "logits"), results):
            parts[name].extend(t.numpy() for t in strategy.experimental_local_results(value))
    if not parts["attributions"]:
        raise ValueError("Expected `dataset` to yield at least one batch. Received: none")
    return {name: _join(values) for name, values in parts.items()}


def _join(values):
    """Concatenates per-replica results; a replica may get none of a last batch."""
    filled = [value for value in values if len(value)]
    return np.concatenate(filled) if filled else values[0]


def evaluate_dataset(explainer: Explainer, dataset: tf.data.Dataset,
                     metrics: Dict[str, Callable], *,
                     strategy: Optional[tf.distribute.Strategy] = None,
                     batch_size: int = 64) -> Dict[str, np.ndarray]:
    """:func:`explain_dataset`, then each metric per image.

    Args:
      metrics: name -> ``(images, heatmaps, targets) -> (B,)``, e.g.
        ``{"autvc": lambda x, h, t: metrics.autvc(h)}``.
      batch_size: Images per metric call.

    Returns:
      The outputs of :func:`explain_dataset` plus one (N,) array per metric.
    """
    result = explain_dataset(explainer, dataset, strategy=strategy)
    images = np.concatenate([np.asarray(_images_of(e)) for e in dataset])
    maps = heatmap(result["attributions"]).numpy()
    for name, metric in metrics.items():
        result[name] = np.concatenate([
            np.asarray(metric(images[i:i + batch_size], maps[i:i + batch_size],
                              result["targets"][i:i + batch_size]))
            for i in range(0, len(images), batch_size)])
    return result
