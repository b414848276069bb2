"""Keras callbacks that watch attributions while a model trains.

* :class:`AttributionMetrics` writes attribution metrics of a fixed held-out
  batch into ``logs`` at the end of every ``freq``-th epoch, so ``History``,
  ``CSVLogger`` and ``TensorBoard`` record them (list it *before* those
  callbacks). Epochs in between get NaN, so CSV columns stay fixed.
* :class:`AttributionImages` writes heatmap overlays of the batch as
  TensorBoard image summaries.

The explainer must be built on the model being trained; its compiled function
reads the current weights, so nothing retraces from epoch to epoch.
"""

import math
import os
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.methods.maps import heatmap
from tf_smoothtaylor.methods import registry
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.metrics.aupc import AUPC
from tf_smoothtaylor.metrics.autvc import autvc
from tf_smoothtaylor.metrics.settings import fitted_settings
from tf_smoothtaylor.metrics.deletion import Deletion, Insertion

METRICS = ("autvc", "aupc", "deletion", "insertion", "relative_error")


def _check_explainer(explainer, images):
    if not isinstance(explainer, Explainer):
        raise TypeError("Expected `explainer` to be an explainer of tf_smoothtaylor. "
                        f"Received: {type(explainer).__name__}")
    try:
        return explainer._engine.check_images(images)
    except (ValueError, TypeError) as error:
        raise ValueError(f"Expected `images` that fit the explained model: {error}") from None


def _check_model(callback, explainer):
    if explainer.model is not callback.model:
        raise ValueError("Expected the callback's explainer to be built on the model being "
                         f"trained ({callback.model.name!r}). Received: an explainer of "
                         f"{explainer.model.name!r}")


class AttributionMetrics(keras.callbacks.Callback):
    """Logs attribution metrics of a held-out batch during ``fit``.

    Args:
      explainer: Explainer built on the model being trained.
      images: (B, ...) held-out model inputs.
      targets: Classes to explain (None: top-1 at each evaluation).
      metrics: Names from ``METRICS``; the mean over the batch is logged as
        ``prefix + name``. ``relative_error`` is the heatmaps' Monte Carlo
        relative standard error (``methods.registry.monte_carlo()``; see
        ``Explainer.explain(return_error=True)``).
      freq: Evaluate every ``freq`` epochs.
      prefix: Prefix of the log keys.
      metric_options: Keyword arguments per metric, e.g.
        ``{"aupc": {"preprocess": f, "deprocess": g, "num_copies": 10}}``.

    Example:
      >>> callback = AttributionMetrics(SmoothTaylor(model, num_roots=20), x_val[:8])
      >>> model.fit(x, y, epochs=5, callbacks=[callback, keras.callbacks.CSVLogger("log.csv")])
    """

    def __init__(self, explainer, images, *, targets=None,
                 metrics: Sequence[str] = ("autvc", "aupc"), freq: int = 1,
                 prefix: str = "attr_", metric_options: Optional[Dict[str, dict]] = None):
        super().__init__()
        self.explainer = explainer
        self.images = _check_explainer(explainer, images)
        self.targets = targets
        self.metrics = tuple(_checks.one_of("metrics", name, METRICS) for name in metrics)
        if "relative_error" in self.metrics and not explainer.independent_points:
            raise ValueError(f"Expected an explainer with Monte Carlo draws ({registry.monte_carlo()}) "
                             "for the `relative_error` metric. Received: "
                             f"{type(explainer).__name__}")
        self.freq = _checks.positive_int("freq", freq)
        self.prefix = prefix
        self.metric_options = dict(metric_options or {})
        unknown = set(self.metric_options) - set(self.metrics)
        if unknown:
            raise ValueError(f"Expected `metric_options` keys among {self.metrics}. "
                             f"Received: {sorted(unknown)}")
        # Settings not given are the paper's, fitted to the held-out images' size, so
        # that small images are scored from the first epoch on, not refused after it.
        fitted = fitted_settings(*self.images.shape[1:3])
        for name in ("aupc", "autvc"):
            if name in self.metrics:
                self.metric_options[name] = {**fitted[name], **self.metric_options.get(name, {})}
        scorers = {"aupc": AUPC, "deletion": Deletion, "insertion": Insertion}
        # Built once so that every epoch reuses the same compiled function.
        # On the explainer's ModelSpec when it has one: its preprocess/deprocess are
        # how the scorers perturb pixels (explicit metric_options still win).
        self._scorers = {name: scorers[name](explainer.spec, **self.metric_options.get(name, {}))
                         for name in self.metrics if name in scorers}

    def on_train_begin(self, logs=None):
        _check_model(self, self.explainer)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        keys = [self.prefix + name for name in self.metrics]
        if (epoch + 1) % self.freq:
            logs.update({key: math.nan for key in keys})
            return
        for key, value in zip(keys, self.evaluate()):
            logs[key] = value

    def evaluate(self) -> list:
        """The mean of each metric on the held-out batch, with the current weights."""
        if "relative_error" in self.metrics:
            estimate = self.explainer(self.images, self.targets, return_error=True)
            attributions, relative = estimate.attributions, estimate.relative_error
        else:
            attributions, relative = self.explainer(self.images, self.targets), None
        maps = heatmap(attributions)
        values = []
        for name in self.metrics:
            if name == "relative_error":
                value = relative
            elif name == "autvc":
                value = autvc(maps, **self.metric_options.get(name, {}))
            else:
                result = self._scorers[name](self.images, maps, self.targets)
                value = result.score
            values.append(float(np.mean(value)))
        return values


class AttributionImages(keras.callbacks.Callback):
    """Writes heatmap overlays of a held-out batch to TensorBoard during ``fit``.

    Images are logged under ``"attributions"`` in ``log_dir``/attributions, one
    step per epoch.

    Args:
      explainer: Explainer built on the model being trained.
      images: (B, H, W, C) held-out model inputs.
      log_dir: TensorBoard log directory (the same as the TensorBoard callback's).
      targets: Classes to explain (None: top-1).
      freq: Log every ``freq`` epochs.
      max_images: At most this many images per step.
      deprocess: Model inputs → pixels in [0, 1] for the background (taken from a
        ``ModelSpec``'s ``deprocess`` if given there; else inputs are clipped).
    """

    def __init__(self, explainer, images, *, log_dir: str, targets=None, freq: int = 1,
                 max_images: int = 8, deprocess=None):
        super().__init__()
        try:
            import tensorboard  # noqa: F401 — tf.summary needs it to write images
        except ImportError:
            raise ImportError("AttributionImages writes TensorBoard summaries and needs the "
                              "tensorboard package: pip install 'tf-smoothtaylor[tensorboard]'"
                              ) from None
        self.explainer = explainer
        self.images = _check_explainer(explainer, images)
        if self.images.shape.rank != 4:
            raise ValueError("Expected `images` of shape (batch, height, width, channels). "
                             f"Received: {tuple(self.images.shape)}")
        self.log_dir = log_dir
        self.targets = targets
        self.freq = _checks.positive_int("freq", freq)
        self.max_images = _checks.positive_int("max_images", max_images)
        self.deprocess = deprocess or getattr(explainer.spec, "deprocess", None)
        self._writer = None

    def on_train_begin(self, logs=None):
        _check_model(self, self.explainer)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "attributions"))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.freq:
            return
        images = self.images[: self.max_images]
        targets = self.targets
        if targets is not None and not isinstance(targets, int) and not callable(targets):
            targets = np.asarray(targets)[: self.max_images]
        maps = heatmap(self.explainer(images, targets)).numpy()
        pixels = self.deprocess(images) if self.deprocess else images
        pixels = np.clip(np.asarray(pixels, np.float32), 0.0, 1.0)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        from tf_smoothtaylor.viz import plot
        # The explained class of each image and its logit, over the image.
        logits = np.asarray(self.explainer._engine.predict(
            tf.convert_to_tensor(images, tf.float32)))
        classes = logits.argmax(axis=-1)
        if targets is not None and not callable(targets):
            classes = np.broadcast_to(np.asarray(targets, np.int64), classes.shape)
        names = getattr(self.explainer.spec, "_class_names", None)
        figure = plot.attributions(
            pixels, {type(self.explainer).__name__: maps}, labels=classes.tolist(),
            scores=logits[np.arange(len(classes)), classes], score_name="logit",
            class_names=names)
        picture = tf.io.decode_png(plot.to_bytes(figure), channels=3)
        with self._writer.as_default():
            tf.summary.image("attributions", picture[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
