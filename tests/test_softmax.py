"""Logits beneath a final softmax (``engine.softmax``), also at the end of nested
functional and Sequential sub-models: the explained function is the logits whose
softmax is the model's output, and the model itself is left as it was."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_smoothtaylor.engine.logits import LogitModel


def _head(kind: str):
    keras.utils.set_random_seed(0)
    if kind == "sequential":
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, activation="relu"),
                                 keras.layers.Dense(3, activation="softmax")], name="head")
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(6, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden),
                       name="head")


@pytest.mark.parametrize("inner", ["functional", "sequential"])
@pytest.mark.parametrize("outer", ["functional", "sequential"])
def test_a_softmax_at_the_end_of_a_nested_sub_model_is_looked_through(inner, outer):
    head = _head(inner)
    if outer == "sequential":
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), head])
    else:
        inputs = keras.Input((8,))
        model = keras.Model(inputs, head(keras.layers.Dense(8)(inputs)))
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    logits = LogitModel(model)
    assert logits.stripped
    z = logits(tf.constant(x)).numpy()
    np.testing.assert_allclose(tf.nn.softmax(z).numpy(), model(x).numpy(), atol=1e-6)
    # The logits, not probabilities: the last Dense's own output before its softmax.
    features = head.layers[-2](model.layers[-2](x) if outer == "sequential"
                               else model.layers[1](x))
    dense = head.layers[-1]
    np.testing.assert_allclose(z, features.numpy() @ dense.kernel.numpy()
                               + dense.bias.numpy(), rtol=1e-5, atol=1e-5)
    assert head.layers[-1].activation is keras.activations.softmax     # left as it was


def test_a_nested_model_followed_by_more_layers_is_not_stripped():
    head = _head("functional")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(head(inputs)))
    assert not LogitModel(model).stripped
