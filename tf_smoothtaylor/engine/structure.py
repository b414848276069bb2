"""A Keras model's inputs: the one explained and those held fixed per image.

A model with one input explains it; a multi-input model names the input to explain
(``InputSelection``, made by ``tf_smoothtaylor.models.select_input``), and its other
inputs are held fixed per image, given with the images as a dict.
"""

import dataclasses
from typing import Any, List, Optional, Tuple

import keras
import tensorflow as tf


class InputSelection:
    """A multi-input Keras model with the input to explain named (see
    ``tf_smoothtaylor.models.select_input``); the other inputs are held fixed
    per image and given with the images as a dict."""

    def __init__(self, model, input_name: str):
        self.model, self.input_name = unwrap(model), input_name
        for name in ("preprocess", "deprocess"):       # a ModelSpec's transforms
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))


def unwrap(model):
    """Accepts a Keras model or an object holding one as ``.model``."""
    inner = getattr(model, "model", None)
    if not isinstance(model, keras.Model) and isinstance(inner, keras.Model):
        return inner
    return model


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """What a model takes, as the methods see it.

    Attributes:
      structure: The model's own input structure (a tensor, a list, a dict).
      names: The inputs' names, flattened.
      index: The position of the explained input in ``names``.
      context: ``(name, shape without batch, dtype)`` of each input held fixed.
      input_shape: Shape of one explained input (without the batch axis).
      outputs: The model's output tensors.
      input_dtype: The explained input's dtype (integer for token ids).
    """

    structure: Any
    names: Tuple[str, ...]
    index: int
    context: Tuple[Tuple[str, tuple, tf.DType], ...]
    input_shape: tuple
    outputs: tuple
    input_dtype: tf.DType = tf.float32


def model_inputs(model: keras.Model, selected: Optional[str]) -> ModelInputs:
    """The inputs of a built Keras ``model``, the one named ``selected`` explained
    (None: the model's only input).

    Raises:
      ValueError: The model is not built, has several inputs and none is named, or
        ``selected`` is not one of them.
    """
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
    names = tuple(tensor.name for tensor in flat)
    if selected is None and len(flat) != 1:
        floats = [name for name, t in zip(names, flat) if tf.as_dtype(t.dtype).is_floating]
        if floats:
            hint = (f"tf_smoothtaylor.models.select_input(model, {floats[0]!r}) (the other "
                    "inputs are then held fixed per image)")
        else:
            found = embedding_layers(model)
            hint = ("layer=" + (repr(found[0]) if found else "<the layer that turns them into "
                                "vectors>") + " (its inputs hold integers such as token ids, "
                    "explained through their embeddings), with a dict of every input"
                    + (f"; embedding layers: {found}" if len(found) > 1 else ""))
        raise ValueError(
            f"Expected `model` to have one input, or the input to explain named: {hint}. "
            f"Received: a model with inputs {list(names)}")
    if selected is not None and selected not in names:
        raise ValueError(f"Expected `input_name` to be one of the model's inputs "
                         f"{list(names)}. Received: {selected!r}")
    index = names.index(selected) if selected is not None else 0
    context = tuple((name, tuple(t.shape[1:]), tf.as_dtype(t.dtype))
                    for i, (name, t) in enumerate(zip(names, flat)) if i != index)
    return ModelInputs(structure, names, index, context, tuple(flat[index].shape[1:]),
                       tuple(outputs), tf.as_dtype(flat[index].dtype))


def all_layers(model) -> List[Tuple[str, keras.layers.Layer]]:
    """Every layer of ``model`` with its path (``"backbone/token_embedding"``), nested
    models included, inputs excluded."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        found.append((layer.name, layer))
        if isinstance(layer, keras.Model) or getattr(layer, "layers", None):
            found += [(f"{layer.name}/{path}", inner) for path, inner in all_layers(layer)]
    return found


def embedding_layers(model) -> List[str]:
    """The paths of ``model``'s embedding layers (what an integer input reaches)."""
    return [path for path, layer in all_layers(model)
            if isinstance(layer, keras.layers.Embedding)
            or "embedding" in type(layer).__name__.lower()]
