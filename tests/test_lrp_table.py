"""The open LRP table: a layer class LRP does not know is refused with the way out,
and taken once a handler is registered — a ready one (relevance passes through an
elementwise scale: the map equals the same model with the scale folded into the next
kernel) or the user's own, which sees the layer and its inputs."""

import keras
import numpy as np
import pytest

import tf_smoothtaylor as tst


class Scale2(keras.layers.Layer):
    """x ↦ 2x, a layer LRP has no built-in kind for."""

    def call(self, x):
        return 2.0 * x


def _models():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    scaled = Scale2(name="scale")(hidden)
    outputs = keras.layers.Dense(3, name="head")(scaled)
    with_scale = keras.Model(inputs, outputs)
    folded_inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(folded_inputs)
    folded = keras.Model(folded_inputs, keras.layers.Dense(3, name="head")(hidden))
    folded.get_layer("hidden").set_weights(with_scale.get_layer("hidden").get_weights())
    kernel, bias = with_scale.get_layer("head").get_weights()
    folded.get_layer("head").set_weights([2.0 * kernel, bias])
    return with_scale, folded


@pytest.fixture
def clean_table():
    yield
    tst.lrp.unregister(Scale2)


def test_a_registered_passing_handler_equals_the_folded_model(clean_table):
    model, folded = _models()
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"tf_smoothtaylor.lrp.register\). Received: layer "
                                         r"'scale' of type Scale2"):
        tst.LRP(model, composite="epsilon")
    tst.lrp.register(Scale2, tst.lrp.passing)
    assert tst.lrp.registered() == [Scale2]
    maps = tst.LRP(model, composite="epsilon", epsilon=1e-3)(x, 1).numpy()
    expected = tst.LRP(folded, composite="epsilon", epsilon=1e-3)(x, 1).numpy()
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x).numpy(), folded(x).numpy(), rtol=1e-5, atol=1e-6)
    tst.lrp.unregister(Scale2)
    with pytest.raises(ValueError, match="Scale2"):
        tst.LRP(model, composite="epsilon")


def test_a_users_own_handler_sees_the_layer_and_its_inputs(clean_table):
    model, folded = _models()
    x = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    seen = []

    def plain_gradient(call):
        seen.append((call.layer.name, tuple(call.inputs[0].shape[1:]), call.last))
        return call.layer(call.inputs[0])            # the plain gradient

    tst.lrp.register(Scale2, plain_gradient, kind="route")
    maps = tst.LRP(model, composite="epsilon", epsilon=1e-3)(x, 0).numpy()
    assert seen and seen[0] == ("scale", (8,), False)
    # The plain gradient through x ↦ 2x doubles the relevance reaching the hidden layer.
    expected = tst.LRP(folded, composite="epsilon", epsilon=1e-3)(x, 0).numpy()
    np.testing.assert_allclose(maps, 2.0 * expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match="Keras layer class"):
        tst.lrp.register(int, tst.lrp.passing)
    with pytest.raises(TypeError, match="callable"):
        tst.lrp.register(Scale2, "pass")
