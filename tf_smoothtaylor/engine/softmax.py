"""Logits beneath a final softmax or sigmoid.

Attribution methods explain the **pre-softmax logit** of a class (PAPER.md). A model
whose last layer turns logits into probabilities — a softmax or a sigmoid
(multi-label heads), as a ``Softmax``/``Activation``/``Lambda`` layer, as any
layer's ``activation`` (``"softmax"``, ``keras.activations.softmax``,
``tf.nn.softmax``, ...; Keras Applications use this form), or as the last layer of
a nested sub-model — is explained on the logits beneath it; the user's model is
never modified.
"""

from typing import Callable, NamedTuple, Optional

import keras
import tensorflow as tf

from tf_smoothtaylor.engine.structure import model_inputs

PROBABILITY_FUNCTIONS = ("softmax", "softmax_v2", "sigmoid")


def is_softmax(fn) -> bool:
    """Whether ``fn`` maps logits to probabilities (softmax or sigmoid)."""
    return fn in (keras.activations.softmax, keras.activations.sigmoid) or getattr(
        fn, "__name__", "") in PROBABILITY_FUNCTIONS


class Logits(NamedTuple):
    """The logits of a model whose last layer was a softmax: ``fn(z)`` and their dtype."""

    fn: Callable
    output_dtype: tf.DType


def _last_call(model: keras.Model, output):
    """The layer whose call made ``output`` in ``model``'s graph, and that call's input
    (a nested model's own ``.output`` is its inner graph's, so the call is read from
    the output's history); ``(None, None)`` when it cannot be told."""
    history = getattr(output, "_keras_history", None)
    last = model.layers[-1] if model.layers else None
    try:
        if history is not None and history.operation is last:
            inputs = last._inbound_nodes[history.node_index].input_tensors
            return last, inputs[0] if len(inputs) == 1 else list(inputs)
        if last is not None and last.output is output:
            return last, last.input
    except (AttributeError, ValueError, IndexError):
        pass
    return None, None


def strip_softmax(model: keras.Model, structure, output) -> Optional[Logits]:
    """The logits beneath ``model``'s final softmax or sigmoid (see the module
    docstring), or None when its last layer is none; ``structure`` is the model's
    own input structure and ``output`` its one output."""
    last, below = _last_call(model, output)
    if last is None:
        return None
    activation = getattr(last, "activation", None)
    # The model's own input structure (a single input as a tensor, not a one-element
    # list): the trunk is called like the model (no "structure of inputs" warning).
    if isinstance(last, keras.layers.Softmax) or (
            isinstance(last, (keras.layers.Activation, keras.layers.Lambda))
            and is_softmax(getattr(last, "function", activation))):
        trunk = keras.Model(structure, below)
        return Logits(lambda z: trunk(z, training=False), tf.as_dtype(below.dtype))
    if isinstance(last, keras.Model) and not isinstance(below, (list, tuple)):
        try:
            inner = model_inputs(last, None)          # a nested sub-model: strip inside it
        except (ValueError, TypeError):                # subclassed: no graph to look into
            return None
        stripped = strip_softmax(last, inner.structure, inner.outputs[0]) \
            if len(inner.outputs) == 1 else None
        if stripped is None:
            return None
        trunk = keras.Model(structure, below)
        return Logits(lambda z: stripped.fn(trunk(z, training=False)), stripped.output_dtype)
    if is_softmax(activation):
        trunk = keras.Model(structure, below)

        def logits(z):
            # The layer's own weights with its activation bypassed: swapped
            # only while tracing, restored at once, so weights stay shared.
            features = trunk(z, training=False)
            last.activation = keras.activations.linear
            try:
                return last(features, training=False)
            finally:
                last.activation = activation

        return Logits(logits, tf.as_dtype(getattr(last, "compute_dtype", below.dtype)))
    return None
