"""Explaining datasets on the devices of one host, batch by batch.

:func:`iter_explain_dataset` runs an explainer over a batched ``tf.data.Dataset``
and yields each batch's results as soon as they are computed, so memory does
not grow with the number of images. Under a ``tf.distribute`` strategy each
batch is split in order across the replicas (replica r takes rows
[r·B/n, (r+1)·B/n)), every replica runs the explainer's compiled graph
(``Explainer.run_in_graph``) on its share, and the shares are joined back in input
order. ``MirroredStrategy`` spreads batches over the local GPUs (or logical CPU
devices). Results equal the single-device ones: random draws are keyed per
image, not by device or position. The compiled step is built once per
explainer, strategy and image shape.

Several hosts are not run here in lock-step: explaining a dataset is
independent per image, so past one machine run the command line on an Apache
Beam runner (``tf_smoothtaylor.cli.beam``); multi-worker strategies are refused.
"""

from typing import Callable, Dict, Iterator, Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine.tracing import graph_function
from tf_smoothtaylor.methods.maps import heatmap
from tf_smoothtaylor.methods.base import Explainer

_OUTPUTS = ("attributions", "targets", "logits")


def _images_of(element):
    return element[0] if isinstance(element, (tuple, list)) else element


def _checked(explainer, dataset, strategy):
    if not isinstance(explainer, Explainer):
        raise TypeError("Expected `explainer` to be an explainer of tf_smoothtaylor. "
                        f"Received: {type(explainer).__name__}")
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"Expected `dataset` to be a tf.data.Dataset. Received: "
                        f"{type(dataset).__name__}")
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError("Expected `strategy` to be a tf.distribute.Strategy. Received: "
                        f"{type(strategy).__name__}")
    if strategy.extended._in_multi_worker_mode():  # pylint: disable=protected-access
        raise ValueError(
            "Expected `strategy` to use the devices of this host (default, OneDevice or "
            f"MirroredStrategy). Received: {type(strategy).__name__} across several "
            "workers; to explain a dataset on several machines run `tf-smoothtaylor ... "
            "--runner=<Beam runner>` (see README, Scaling out)")
    return strategy


def _step(explainer: Explainer, strategy: tf.distribute.Strategy, image_shape, keyed):
    """The compiled per-replica step, cached on the explainer (one trace per
    strategy and image shape, whatever the batch sizes)."""
    cache = explainer.__dict__.setdefault("_dataset_steps", {})
    key = (id(strategy), tuple(image_shape), keyed)
    if key not in cache:
        signature = (tf.TensorSpec([None, *image_shape], tf.float32),
                     tf.TensorSpec([None], tf.int64))

        @graph_function(input_signature=signature)
        def step(images, keys):
            targets = -tf.ones(tf.shape(images)[:1], tf.int32)
            attributions, logits, classes = explainer.run_in_graph(
                images, targets, keys=keys if keyed else None)
            return attributions, classes, logits

        cache[key] = (strategy, step)             # holds the strategy: ids stay unique
    return cache[key][1]


def _split(strategy, images, keys):
    """Per-replica shares of one batch, in order, and each share's image count. A
    replica left without images gets the batch's first one, whose result is
    dropped (some convolution kernels fail on an empty batch)."""
    count, replicas = int(images.shape[0]), strategy.num_replicas_in_sync
    bounds = [count * r // replicas for r in range(replicas + 1)]
    counts = [bounds[r + 1] - bounds[r] for r in range(replicas)]

    def share(values):
        def of_replica(context):
            r = context.replica_id_in_sync_group
            return values[bounds[r]:bounds[r + 1]] if counts[r] else values[:1]
        return strategy.experimental_distribute_values_from_function(of_replica)

    return (share(images), share(keys)), counts


def iter_explain_dataset(explainer: Explainer, dataset: tf.data.Dataset, *,
                         strategy: Optional[tf.distribute.Strategy] = None,
                         keyed: bool = False) -> Iterator[Dict[str, np.ndarray]]:
    """Attributions of each batch of a dataset, batch by batch, in input order.

    Args:
      explainer: An explainer of this package.
      dataset: Batched dataset of model inputs, or of tuples whose first item is
        the model inputs (labels, ids, ... are ignored). Each image's top-1 class
        is explained.
      strategy: A single-host ``tf.distribute.Strategy`` (default: the current one).
      keyed: Whether each element's second item holds int64 random keys, one
        per image (see ``Explainer.explain``); otherwise draws are keyed by
        image content.

    Yields:
      Per batch: ``{"attributions": (B, ...), "targets": (B,), "logits": (B, classes)}``.
    """
    for _, result in _batches(explainer, dataset, strategy, keyed):
        yield result


def _batches(explainer, dataset, strategy, keyed):
    """(images, results) per batch; the dataset is read once."""
    strategy = _checked(explainer, dataset, strategy)
    for element in dataset:
        images = tf.cast(_images_of(element), tf.float32)
        keys = (tf.cast(element[1], tf.int64) if keyed
                else tf.zeros(tf.shape(images)[:1], tf.int64))    # unused: content keys
        step = _step(explainer, strategy, images.shape[1:], keyed)
        # Through a lambda: each replica calls the compiled step with its own share.
        shares, counts = _split(strategy, images, keys)
        results = strategy.run(lambda x, k: step(x, k),  # pylint: disable=unnecessary-lambda
                               args=shares)
        yield images, {name: np.concatenate([
            t.numpy()[:n] for t, n in zip(strategy.experimental_local_results(value), counts)])
            for name, value in zip(_OUTPUTS, results)}


def explain_dataset(explainer: Explainer, dataset: tf.data.Dataset, *,
                    strategy: Optional[tf.distribute.Strategy] = None,
                    keyed: bool = False) -> Dict[str, np.ndarray]:
    """:func:`iter_explain_dataset` joined into whole arrays (N images in memory:
    for large datasets iterate instead, or use the command line).

    Returns:
      ``{"attributions": (N, ...), "targets": (N,), "logits": (N, classes)}``.
    """
    parts = list(iter_explain_dataset(explainer, dataset, strategy=strategy, keyed=keyed))
    if not parts:
        raise ValueError("Expected `dataset` to yield at least one batch. Received: none")
    return {name: np.concatenate([part[name] for part in parts]) for name in _OUTPUTS}


def iter_evaluate_dataset(explainer: Explainer, dataset: tf.data.Dataset,
                          metrics: Dict[str, Callable], *,
                          strategy: Optional[tf.distribute.Strategy] = None,
                          keyed: bool = False) -> Iterator[Dict[str, np.ndarray]]:
    """:func:`iter_explain_dataset`, then each metric on the batch's maps.

    Args:
      metrics: name -> ``(images, heatmaps, targets) -> (B,)``, e.g.
        ``{"autvc": lambda x, h, t: metrics.autvc(h)}``.

    Yields:
      Per batch: the outputs of :func:`iter_explain_dataset` plus one (B,) array
      per metric.
    """
    for images, result in _batches(explainer, dataset, strategy, keyed):
        maps = heatmap(result["attributions"])
        for name, metric in metrics.items():
            result[name] = np.asarray(metric(images, maps, result["targets"]))
        yield result


def evaluate_dataset(explainer: Explainer, dataset: tf.data.Dataset,
                     metrics: Dict[str, Callable], *,
                     strategy: Optional[tf.distribute.Strategy] = None,
                     keyed: bool = False) -> Dict[str, np.ndarray]:
    """:func:`iter_evaluate_dataset` joined into whole arrays.

    Returns:
      The outputs of :func:`explain_dataset` plus one (N,) array per metric.
    """
    parts = list(iter_evaluate_dataset(explainer, dataset, metrics, strategy=strategy,
                                       keyed=keyed))
    if not parts:
        raise ValueError("Expected `dataset` to yield at least one batch. Received: none")
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
