"""A model seen from one of its layers: ``activations -> logits``.

Layer attribution explains the target logit as a function of a layer's output
``a = L(x)`` (an embedding, a block's features): the methods' points are made in
that layer's space (IG's path from a baseline activation, SmoothTaylor's roots,
SmoothGrad's noise) and the model's inputs ``x`` are held fixed per example (the
token ids, a padding mask, segment ids). The model is run on ``x`` with the layer's
output replaced by the point ``z`` — the layer's ``call`` swapped only while the
forward pass is traced, so the user's model is never modified and the layer's
weights stay shared. Works for layers inside nested models.

This is how models on integer inputs (token ids) are explained: the gradient with
respect to the ids does not exist, the gradient with respect to their embeddings
does.
"""

import contextlib
import difflib
from typing import Callable, List, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine.inputs import check_input
from tf_smoothtaylor.engine.logits import LogitModel, as_float32
from tf_smoothtaylor.engine.structure import (InputSelection, all_layers,  # noqa: F401
                                              embedding_layers, unwrap)
from tf_smoothtaylor.engine.tracing import graph_function


@contextlib.contextmanager
def swapped_call(layer: keras.layers.Layer, make: Callable[[Callable], Callable]):
    """Within the block, ``layer.call`` is ``make(its own call)`` (only while a pass
    is traced: the model is not modified and its weights stay shared); restored
    after, also when the block raises."""
    own = layer.__dict__.get("call")
    layer.call = make(layer.call)
    try:
        yield
    finally:
        if own is None:
            del layer.call
        else:
            layer.call = own


@contextlib.contextmanager
def recorded(layer: keras.layers.Layer, *, side: str = "output"):
    """Within the block, every output of ``layer`` (``side="input"``: every first
    input it is called on) is appended to the list yielded.

    Raises:
      ValueError: After the block, when the layer was not called in it.
    """
    seen = []

    def recording(call):
        def record(*args, **kwargs):
            if side == "input":
                seen.append(args[0] if args else kwargs["inputs"])
            output = call(*args, **kwargs)
            if side == "output":
                seen.append(output)
            return output
        return record

    with swapped_call(layer, recording):
        yield seen
    if not seen:
        raise ValueError(f"Expected layer {layer.name!r} to be used by the model's "
                         "forward pass. Received: a layer the pass does not call")


def find(model, layer: Union[str, keras.layers.Layer]) -> keras.layers.Layer:
    """The layer ``layer`` names (its name, its path through nested models, or the
    layer itself) in ``model``.

    Raises:
      ValueError: No such layer (the message lists the closest names).
      TypeError: ``layer`` is neither a string nor a Keras layer.
    """
    layers = all_layers(model)
    if isinstance(layer, keras.layers.Layer):
        if any(found is layer for _, found in layers):
            return layer
        raise ValueError(f"Expected `layer` to be a layer of model {model.name!r}. Received: "
                         f"layer {layer.name!r}, which the model does not use")
    if not isinstance(layer, str):
        raise TypeError("Expected `layer` to be a layer name, a path such as "
                        f"'backbone/token_embedding', or a Keras layer. Received: {layer!r}")
    for path, found in layers:
        if layer in (path, found.name):
            return found
    names = [path for path, _ in layers]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.4)
    raise ValueError(f"Expected `layer` to name a layer of model {model.name!r}. Received: "
                     f"{layer!r}; closest: {close or names[-5:]}")


def integer_input_error(model, names: List[str]) -> ValueError:
    """The error for an integer (token id) input explained without ``layer=``."""
    embeddings = embedding_layers(model)
    hint = (f"layer={embeddings[0]!r}" + (f" (embedding layers: {embeddings})"
                                          if len(embeddings) > 1 else "")
            if embeddings else "layer=<the layer that turns them into vectors>")
    return ValueError(f"Expected a float input to attribute to. Received: model "
                      f"{model.name!r} whose input {names} holds integers (e.g. token ids), "
                      f"which have no gradient: attribute to their embeddings with {hint}")


SIDES = ("output", "input")


class LayerLogits(LogitModel):
    """``activations of layer -> float32 logits``, the model's inputs held fixed per
    example (see the module docstring). ``side="input"``: the activations are what
    the layer receives (its one input), replaced before the layer's own call.

    Attributes (besides ``LogitModel``'s):
      layer: The Keras layer attributed to.
      side: "output" or "input".
      input_shape: The shape of one example's activations (without the batch axis).
      context: Every model input, ``(name, shape, dtype)``: held fixed per example.
    """

    def __init__(self, model, layer: Union[str, keras.layers.Layer], *, side: str = "output"):
        if side not in SIDES:
            raise ValueError(f"Expected `side` among {SIDES}. Received: side={side!r}")
        self.side = side
        model = unwrap(model)
        if not isinstance(model, keras.Model):
            raise TypeError("Expected `model` to be a Keras model (keras.Model). "
                            f"Received: model of type {type(model).__name__}")
        # The parent sees the first input as explained and the others as held fixed;
        # here every input is held fixed and the layer's output is explained.
        first = _first_input(model)
        super().__init__(model if first is None else InputSelection(model, first))
        flat = tf.nest.flatten(self._structure)
        self.context = tuple((name, tuple(t.shape[1:]), tf.as_dtype(t.dtype))
                             for name, t in zip(self.input_names, flat))
        self.layer = find(self.model, layer)
        try:
            tensor = getattr(self.layer, side)
        except (AttributeError, ValueError):          # a layer called several times
            tensor = None
        shape = tuple(tensor.shape[1:]) if tensor is not None and hasattr(tensor, "shape") \
            else None
        # Axes of unknown size (a sequence length) take each call's own.
        if not shape or not isinstance(shape[-1], int) or any(
                s is not None and not isinstance(s, int) for s in shape):
            found = f"{len(tensor)} {side}s" if isinstance(tensor, (list, tuple)) else shape
            raise ValueError(f"Expected `layer` {self.layer.name!r} to have one {side} of a "
                             f"known shape. Received: {found}")
        self.input_shape, self.input_dtype = shape, tf.float32
        self.input_index = ("layer", id(self.layer), side)

    def inputs_of(self, z, context=()):
        """The model's inputs, all from ``context`` (``z`` enters at the layer)."""
        if len(context) != len(self.context):
            raise ValueError(f"Expected the model's inputs {[c[0] for c in self.context]} "
                             f"with the activations. Received: {len(context)} of them")
        return tf.nest.pack_sequence_as(self._structure, list(context))

    def traced(self, z, context=()):
        """The logits with the layer's output (or input) replaced by ``z``."""
        dtype = self.layer.compute_dtype
        if self.side == "output":
            def make(call):
                return lambda *a, **k: tf.cast(z, dtype)
        else:
            def make(call):
                def receive(*a, **k):
                    if a:
                        return call(tf.cast(z, dtype), *a[1:], **k)
                    return call(**{**k, "inputs": tf.cast(z, dtype)})
                return receive
        with swapped_call(self.layer, make):
            return as_float32(self._fn(self.inputs_of(z, context)))

    def compiled(self):
        """The compiled ``(activations, inputs) -> float32 logits`` (see ``LogitModel``)."""
        return self.cached(self.input_index, lambda: graph_function(
            self.traced, input_signature=[self.input_spec(), self.context_specs()]))

    def activations(self, context, batch_size: int) -> tf.Tensor:
        """The layer's float32 outputs for the model's inputs ``context`` (one tensor
        per input), in chunks of ``batch_size``."""
        record = self.cached(("activations", id(self.layer), self.side), lambda: graph_function(
            self._record, input_signature=[self.context_specs()]))
        batch = int(context[0].shape[0])
        chunks = [record(tuple(c[i:i + batch_size] for c in context))
                  for i in range(0, batch, batch_size)]
        if not chunks:
            return tf.zeros((0,) + self.input_shape, tf.float32)
        return tf.concat(chunks, 0)

    def _record(self, context):
        with recorded(self.layer, side=self.side) as seen:
            self._fn(self.inputs_of(None, context))
        return tf.cast(seen[0], tf.float32)


def _first_input(model) -> Optional[str]:
    """The name of the model's first input when it has several (None otherwise)."""
    inputs = getattr(model, "inputs", None) or []
    return inputs[0].name if len(inputs) > 1 else None


def split_inputs(model: LayerLogits, inputs) -> Tuple[tf.Tensor, ...]:
    """The model's inputs as one tensor per input (``context`` order): an array for a
    single-input model, or a dict of every input.

    Raises:
      ValueError: Missing inputs, or inputs of other shapes or numbers of rows.
      TypeError: An input that is not numeric.
    """
    names = [name for name, _, _ in model.context]
    if len(names) == 1 and not isinstance(inputs, dict):
        inputs = {names[0]: inputs}
    if not isinstance(inputs, dict) or set(inputs) != set(names):
        got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(f"Expected a dict of every model input {names}. Received: {got}")
    first = np.shape(inputs[names[0]])
    batch = first[0] if first else None               # check_input names a missing axis
    return tuple(check_input(name, inputs[name], shape, dtype, batch)
                 for name, shape, dtype in model.context)


__all__ = ["LayerLogits", "all_layers", "embedding_layers", "find", "integer_input_error",
           "recorded", "split_inputs", "swapped_call"]
