"""Turns a Keras model into the function the methods differentiate: logits.

Attribution methods explain the **pre-softmax logit** of a class (PAPER.md).
A model whose last layer turns logits into probabilities — a softmax or a
sigmoid (multi-label heads), as a ``Softmax``/``Activation``/``Lambda`` layer,
as any layer's ``activation`` (``"softmax"``, ``keras.activations.softmax``,
``tf.nn.softmax``, ...; Keras Applications use this form), or as the last layer
of a nested sub-model — is explained on the logits beneath it; the user's model
is never modified.
"""

import warnings
from typing import Callable, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine.tracing import graph_function


_PROBABILITY_FUNCTIONS = ("softmax", "softmax_v2", "sigmoid")


def _is_softmax(fn) -> bool:
    """Whether ``fn`` maps logits to probabilities (softmax or sigmoid)."""
    return fn in (keras.activations.softmax, keras.activations.sigmoid) or getattr(
        fn, "__name__", "") in _PROBABILITY_FUNCTIONS


class InputSelection:
    """A multi-input Keras model with the input to explain named (see
    ``tf_smoothtaylor.models.select_input``); the other inputs are held fixed
    per image and given with the images as a dict."""

    def __init__(self, model, input_name: str):
        self.model, self.input_name = _unwrap(model), input_name
        for name in ("preprocess", "deprocess"):       # a ModelSpec's transforms
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))


def _unwrap(model):
    """Accepts a Keras model or an object holding one as ``.model``."""
    inner = getattr(model, "model", None)
    if not isinstance(model, keras.Model) and isinstance(inner, keras.Model):
        return inner
    return model


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
        model = _unwrap(model)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Expected `model` to be a Keras model (keras.Model). "
                f"Received: model of type {type(model).__name__}")
        self.model = model
        self.stripped = False
        self._fn = lambda z: model(z, training=False)
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs or not outputs:
            raise ValueError(
                "Expected `model` to be a built Keras model with known inputs "
                "(call it once on data, or build it with keras.Input). "
                f"Received: model {model.name!r} with no inputs")
        # The model's own input structure (a dict for dict-input models). Not
        # ``model.input``: for a sub-model called inside another, that is the input of
        # its latest call, not its own.
        structure = getattr(model, "_inputs_struct", None)
        functional = getattr(model, "_functional", None)     # Sequential
        if structure is None and functional is not None:
            structure = getattr(functional, "_inputs_struct", None)
        if structure is None or len(tf.nest.flatten(structure)) != len(inputs):
            structure = inputs[0] if len(inputs) == 1 else list(inputs)
        flat = tf.nest.flatten(structure)
        names = [tensor.name for tensor in flat]
        if selected is None and len(flat) != 1:
            raise ValueError(
                "Expected `model` to have one input, or the input to explain named: "
                f"tf_smoothtaylor.models.select_input(model, {names[0]!r}) (the other inputs "
                f"are then held fixed per image). Received: a model with inputs {names}")
        if selected is not None and selected not in names:
            raise ValueError(f"Expected `input_name` to be one of the model's inputs {names}. "
                             f"Received: {selected!r}")
        self.input_names = names
        self.input_index = names.index(selected) if selected is not None else 0
        self._structure = structure
        explained = flat[self.input_index]
        # The inputs held fixed per image: name, shape (without batch) and dtype.
        self.context = tuple((name, tuple(t.shape[1:]), tf.as_dtype(t.dtype))
                             for i, (name, t) in enumerate(zip(names, flat))
                             if i != self.input_index)
        self.input_shape = tuple(explained.shape[1:])
        self.num_outputs = len(outputs)
        self.output_shape = tuple(outputs[0].shape)
        # The dtype of the explained scores (16-bit logits lose the differences that
        # forward-only methods take).
        self.output_dtype = tf.as_dtype(outputs[0].dtype)
        if self.num_outputs == 1:
            self._strip_softmax(model, inputs, outputs[0])

    def _strip_softmax(self, model, inputs, output):
        last = model.layers[-1] if model.layers else None
        if last is None:
            return
        try:
            if last.output is not output:
                return
            below = last.input
        except (AttributeError, ValueError):
            return
        activation = getattr(last, "activation", None)
        # The model's own input structure (a single input as a tensor, not a one-element
        # list): the trunk is called like the model (no "structure of inputs" warning).
        inputs = self._structure
        if isinstance(last, keras.layers.Softmax) or (
                isinstance(last, (keras.layers.Activation, keras.layers.Lambda))
                and _is_softmax(getattr(last, "function", activation))):
            trunk = keras.Model(inputs, below)
            self._fn = lambda z: trunk(z, training=False)
            self.stripped = True
            self.output_dtype = tf.as_dtype(below.dtype)
        elif isinstance(last, keras.Model) and not isinstance(below, (list, tuple)):
            try:
                inner = LogitModel(last)             # a nested sub-model: strip inside it
            except (ValueError, TypeError):          # subclassed: no graph to look into
                return
            if inner.stripped:
                trunk = keras.Model(inputs, below)
                self._fn = lambda z: inner._fn(trunk(z, training=False))
                self.stripped = True
                self.output_dtype = inner.output_dtype
        elif _is_softmax(activation):
            trunk = keras.Model(inputs, below)

            def logits(z):
                # The layer's own weights with its activation bypassed: swapped
                # only while tracing, restored at once, so weights stay shared.
                features = trunk(z, training=False)
                last.activation = keras.activations.linear
                try:
                    return last(features, training=False)
                finally:
                    last.activation = activation

            self._fn = logits
            self.stripped = True
            self.output_dtype = tf.as_dtype(getattr(last, "compute_dtype", below.dtype))

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
        functions = _forwards(self.model)
        function = functions.get(key)
        if function is None:
            function = functions[key] = graph_function(
                lambda x, c: as_float32(fn(self.inputs_of(x, c))), input_signature=[
                    tf.TensorSpec((None,) + self.input_shape, tf.float32),
                    tuple(tf.TensorSpec((None,) + shape, dtype)
                          for _, shape, dtype in self.context)])
        return function

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
