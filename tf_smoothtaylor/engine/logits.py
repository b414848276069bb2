"""Turns a Keras model into the function the methods differentiate: logits.

Attribution methods explain the **pre-softmax logit** of a class (PAPER.md): a
final softmax or sigmoid is looked through (``engine.softmax``); the input
explained, and those held fixed per image, come from ``engine.structure``. The
user's model is never modified.
"""

import warnings
from typing import Callable, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine.softmax import strip_softmax
from tf_smoothtaylor.engine.structure import InputSelection, model_inputs, unwrap
from tf_smoothtaylor.engine.tracing import graph_function

__all__ = ["InputSelection", "LogitModel", "as_float32", "resolve_targets", "select_target"]


class LogitModel:
    """A Keras model seen as ``images -> float32 logits (batch, classes)``.

    Attributes:
      model: The wrapped Keras model.
      input_shape: Shape of one input (without the batch axis); may hold None.
      stripped: Whether a final softmax was removed.
    """

    def __init__(self, model):
        selected = getattr(model, "input_name", None) if isinstance(
            model, InputSelection) else None
        model = unwrap(model)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Expected `model` to be a Keras model (keras.Model). "
                f"Received: model of type {type(model).__name__}")
        self.model = model
        self.stripped = False
        self._fn = lambda z: model(z, training=False)
        found = model_inputs(model, selected)
        self.input_names = list(found.names)
        self.input_index = found.index
        self._structure = found.structure
        # The inputs held fixed per image: name, shape (without batch) and dtype.
        self.context = found.context
        self.input_shape = found.input_shape
        self.input_dtype = found.input_dtype
        self.num_outputs = len(found.outputs)
        self.output_shape = tuple(found.outputs[0].shape)
        # The dtype of the explained scores (16-bit logits lose the differences that
        # forward-only methods take).
        self.output_dtype = tf.as_dtype(found.outputs[0].dtype)
        if self.num_outputs == 1:
            logits = strip_softmax(model, found.structure, found.outputs[0])
            if logits is not None:
                self._fn, self.output_dtype, self.stripped = logits.fn, logits.output_dtype, True

    def compiled(self):
        """The model's compiled forward pass for the explained input: ``(images,
        context) -> float32 outputs``, with a ``None`` batch axis.

        One per Keras model and explained input, shared by every explainer and metric
        of that model: their graphs call it, so the model is traced once (and its
        gradient built once) however many explainers use it. TensorFlow inlines the
        call when it runs a graph, so the computation is the same as a direct call.
        """
        return self.shared(self.input_index, self._fn)

    def shared(self, key, fn: Callable):
        """The compiled ``(images, context) -> float32 fn(model inputs)``, kept on the
        Keras model under ``key`` (hashable, naming everything ``fn`` computes with):
        the first caller's ``fn`` is traced once and every later caller with the same
        key calls that function. :meth:`compiled` is the model's own forward pass."""
        return self.cached(key, lambda: graph_function(
            lambda x, c: as_float32(fn(self.inputs_of(x, c))), input_signature=[
                self.input_spec(), self.context_specs()]))

    def cached(self, key, build: Callable[[], Callable]):
        """The function kept on the Keras model under ``key``, made by ``build()`` the
        first time (see ``_forwards``)."""
        functions = _forwards(self.model)
        if key not in functions:
            functions[key] = build()
        return functions[key]

    def input_spec(self) -> tf.TensorSpec:
        """A batch of explained inputs, float32."""
        return tf.TensorSpec((None,) + self.input_shape, tf.float32)

    def context_specs(self) -> tuple:
        """A batch of each input held fixed."""
        return tuple(tf.TensorSpec((None,) + shape, dtype) for _, shape, dtype in self.context)

    def predict(self, images, batch_size: int, context=()) -> np.ndarray:
        """Float32 outputs of ``images`` as NumPy, in chunks of ``batch_size``
        (through :meth:`compiled`)."""
        forward = self.compiled()
        images = tf.convert_to_tensor(images, tf.float32)
        chunks = [forward(images[i:i + batch_size],
                          tuple(c[i:i + batch_size] for c in context)).numpy()
                  for i in range(0, int(images.shape[0]), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros([0, 0], np.float32)

    def metric_classes(self, images, targets, batch_size: int, *, start: bool = False):
        """Class per image for a metric: top-1 when None, else an int or one int per image
        (metrics score one class, so no callables). With ``start``, returns
        ``(classes, f(x))``: also each image's target logit, from the same chunked
        forward pass that picks the top-1 classes."""
        if callable(targets):
            raise TypeError("Expected `targets` to be None, an int or one int per image for "
                            "a metric. Received: a callable")
        self.check_outputs(False)
        outputs = []

        def predict():
            outputs.append(self.predict(images, batch_size))
            return outputs[0]

        batch = int(images.shape[0])
        classes, _ = resolve_targets(targets, batch, self.num_classes, predict)
        if not start:
            return classes
        logits = outputs[0] if outputs else predict()
        return classes, tf.constant(logits[np.arange(batch), classes])

    @property
    def num_classes(self) -> Optional[int]:
        if len(self.output_shape) == 2:
            return self.output_shape[-1]
        return None

    def inputs_of(self, z: tf.Tensor, context=()):
        """The model's input structure: ``z`` as the explained input, ``context``
        (one tensor per other input, in ``self.context`` order) as the others."""
        if not self.context:
            return z
        if len(context) != len(self.context):
            raise ValueError(
                f"Expected the inputs held fixed per image ({[c[0] for c in self.context]}) "
                "with the images: pass a dict of every input to `explain`. Received: "
                f"{len(context)} of them (metrics and serving take single-input models)")
        flat = list(context)
        flat.insert(self.input_index, z)
        return tf.nest.pack_sequence_as(self._structure, flat)

    def __call__(self, z: tf.Tensor, context=()):
        """Float32 outputs of ``z``; inside a graph, a call of :meth:`compiled`."""
        if tf.executing_eagerly():
            return self.traced(z, context)
        return self.compiled()(tf.cast(z, tf.float32), tuple(context))

    def traced(self, z: tf.Tensor, context=()):
        """Float32 outputs of ``z``, the model's layers called here (in a graph: traced
        into it, so that a layer's own outputs can be reached, as Grad-CAM does)."""
        return as_float32(self._fn(self.inputs_of(z, context)))

    def check_outputs(self, target_is_callable: bool) -> None:
        """Raises unless outputs are (batch, classes) or the target is callable."""
        if target_is_callable:
            return
        if self.num_outputs != 1:
            raise ValueError(
                "Expected `targets` to be a callable `(model_output) -> (batch,)` "
                f"for a model with {self.num_outputs} outputs. "
                "Received: targets that are class indices")
        if len(self.output_shape) != 2 or self.output_shape[-1] is None:
            raise ValueError(
                "Expected `model` to output (batch, classes) logits, or "
                "`targets` to be a callable `(model_output) -> (batch,)`. "
                f"Received: model output of shape {self.output_shape}")

    def warn_if_probabilities(self, outputs: np.ndarray) -> None:
        """Warns when outputs look like probabilities that could not be stripped."""
        if self.stripped or outputs.ndim != 2 or outputs.shape[-1] < 2:
            return
        sums = outputs.sum(axis=-1)
        if np.all(outputs >= 0) and np.allclose(sums, 1.0, atol=1e-3):
            warnings.warn(
                f"The outputs of model {self.model.name!r} look like softmax "
                "probabilities, and no final softmax layer could be removed: "
                "attributions will explain probabilities, not logits. Build the "
                "model with a linear last layer to explain logits.",
                stacklevel=3)


def as_float32(outputs):
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)


def _forwards(model) -> dict:
    """The model's compiled functions by key (see ``shared``): its forward pass per
    explained input, LRP's rewritten passes per rules. Kept
    on the model itself, outside Keras's attribute tracking (saving and weights never
    see it), so they live exactly as long as the model: a cache beside the model would
    keep it alive through the functions' references to it."""
    forwards = model.__dict__.get("_tst_forwards")
    if forwards is None:
        forwards = {}
        object.__setattr__(model, "_tst_forwards", forwards)
    return forwards


def select_target(outputs, targets, target_fn: Optional[Callable]) -> tf.Tensor:
    """Per-example scalar to differentiate: ``outputs[i, targets[i]]`` or
    ``target_fn(outputs)``."""
    if target_fn is not None:
        value = target_fn(outputs)
        dtype = tf.as_dtype(getattr(value, "dtype", tf.float32))
        if not dtype.is_floating:
            raise ValueError(
                "Expected the callable `targets` to return the value to explain, one "
                "float per example (e.g. `lambda out: out[:, 3]`). Received: values of "
                f"dtype {dtype.name} — to explain a class index per image, pass the "
                "indices as `targets` instead of a callable")
        value = tf.cast(value, tf.float32)
        if value.shape.rank != 1:
            raise ValueError(
                "Expected the callable `targets` to return one scalar per "
                f"example, shape (batch,). Received: shape {value.shape}")
        return value
    # gather_nd, not gather(..., batch_dims=1): the same values, and a gradient of a
    # few ops (a scatter) instead of about a hundred of shape bookkeeping.
    rows = tf.range(tf.shape(targets, out_type=targets.dtype)[0])
    return tf.gather_nd(outputs, tf.stack([rows, targets], axis=1))


def resolve_targets(targets, batch: int, num_classes: Optional[int],
                    predict: Callable[[], np.ndarray]) -> Tuple[np.ndarray, Optional[Callable]]:
    """Normalises ``targets`` into (int32 class per image, callable or None).

    ``predict`` is called (lazily) to get logits for ``targets=None``.
    """
    if callable(targets):
        return np.zeros([batch], np.int32), targets
    if targets is None:
        return np.argmax(predict(), axis=-1).astype(np.int32), None
    array = np.asarray(targets)
    if not np.issubdtype(array.dtype, np.integer):   # also rejects bool, float, object
        raise TypeError(
            "Expected `targets` to be None, an int class index, one int per "
            "image, or a callable. " f"Received: targets={targets!r}")
    if array.ndim == 0:
        array = np.full([batch], int(array))
    if array.shape != (batch,):
        raise ValueError(
            f"Expected `targets` to hold one class index per image ({batch}). "
            f"Received: targets of shape {array.shape}")
    if num_classes is not None and batch and (array.min() < 0 or array.max() >= num_classes):
        bad = array[(array < 0) | (array >= num_classes)][0]
        raise ValueError(
            f"Expected `targets` to be class indices in [0, {num_classes - 1}]. "
            f"Received: targets containing {int(bad)}")
    return array.astype(np.int32), None
