"""Attribution to a layer's output (``engine.at_layer``): token ids explained through
their embeddings, inside nested models and with inputs held fixed, against the
head's own gradient and integrated gradients' completeness."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from conftest import max_abs_diff

IDS = np.random.default_rng(0).integers(1, 50, (4, 10)).astype(np.int32)


def _text_model(nested: bool = False, masked: bool = False):
    """Token ids -> embedding -> Conv1D -> mean -> 3 logits; the embedding inside a
    nested "backbone" model, and a mask input that zeroes padded positions."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((10,), dtype="int32", name="ids")
    inputs = [ids]
    if nested:
        inner = keras.Input((10,), dtype="int32")
        backbone = keras.Model(inner, keras.layers.Embedding(50, 8, name="tok")(inner),
                               name="backbone")
        vectors = backbone(ids)
    else:
        vectors = keras.layers.Embedding(50, 8, name="tok")(ids)
    if masked:
        mask = keras.Input((10,), name="mask")
        inputs.append(mask)
        vectors = keras.layers.Multiply()([vectors, keras.layers.Reshape((10, 1))(mask)])
    hidden = keras.layers.Conv1D(8, 3, padding="same", activation="tanh", name="conv")(vectors)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(hidden))
    return keras.Model(inputs if masked else ids, outputs)


def _head_gradient(model, vectors, target, mask=None):
    """The gradient of logit ``target`` with respect to the embeddings, by hand."""
    z = tf.constant(vectors)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = z if mask is None else z * mask[..., None]
        hidden = model.get_layer("conv")(x)
        logit = model.get_layer("head")(tf.reduce_mean(hidden, axis=1))[:, target]
    return tape.gradient(logit, z).numpy(), logit.numpy()


def test_token_ids_without_a_layer_name_the_embedding_and_a_wrong_name_the_close_ones():
    model = _text_model()
    with pytest.raises(ValueError, match="holds integers .* layer='tok'"):
        tst.IntegratedGradients(model)
    with pytest.raises(ValueError, match=r"Received: 'tk'; closest: \['tok'\]"):
        tst.Gradient(model, layer="tk")
    with pytest.raises(ValueError, match="does not use"):
        tst.Gradient(model, layer=keras.layers.Dense(2))
    with pytest.raises(TypeError, match="layer name"):
        tst.Gradient(model, layer=3)


@pytest.mark.parametrize("nested", [False, True])
def test_gradients_and_integrated_gradients_at_the_embeddings(nested):
    model = _text_model(nested=nested)
    layer = "backbone/tok" if nested else "tok"
    embedding = (model.get_layer("backbone") if nested else model).get_layer("tok")
    vectors = embedding(IDS).numpy()
    expected, logit = _head_gradient(model, vectors, 1)
    assert max_abs_diff(tst.Gradient(model, layer=layer)(IDS, 1), expected) <= 1e-6
    assert max_abs_diff(tst.GradientXInput(model, layer=embedding)(IDS, 1),
                        vectors * expected) <= 1e-6
    ig = tst.IntegratedGradients(model, layer=layer, steps=32, rule="gauss_legendre")
    maps = ig(IDS, 1).numpy()
    _, at_zero = _head_gradient(model, np.zeros_like(vectors), 1)
    # Completeness at the layer: Σ IG = f(a) − f(0).
    np.testing.assert_allclose(maps.reshape(4, -1).sum(1), logit - at_zero, atol=1e-5)
    scores = tst.position_scores(maps)
    assert scores.shape == (4, 10)
    np.testing.assert_allclose(scores.numpy().sum(1), logit - at_zero, atol=1e-5)
    assert np.all(tst.position_scores(maps, reduce="norm").numpy() >= 0)
    with pytest.raises(ValueError, match="'uniform'"):
        tst.IntegratedGradients(model, layer=layer, baseline="uniform")


def test_inputs_held_fixed_and_noise_methods_at_the_layer():
    """A mask input is held fixed per example; SmoothTaylor and SmoothGrad draw their
    points in embedding space, repeat with the seed and do not depend on chunks."""
    model = _text_model(masked=True)
    mask = np.ones((4, 10), np.float32)
    mask[:, 7:] = 0.0
    inputs = {"ids": IDS, "mask": mask}
    vectors = model.get_layer("tok")(IDS).numpy()
    expected, _ = _head_gradient(model, vectors, 2, mask)
    maps = tst.Gradient(model, layer="tok")(inputs, 2).numpy()
    assert max_abs_diff(maps, expected) <= 1e-6
    assert np.abs(maps[:, 7:]).max() == 0.0                       # masked tokens: nothing
    for method in (tst.SmoothTaylor(model, layer="tok", num_roots=12, noise_scale=0.05),
                   tst.SmoothGrad(model, layer="tok", num_samples=12)):
        first = method(inputs, 2).numpy()
        assert first.shape == (4, 10, 8) and np.isfinite(first).all()
        again = type(method).from_settings(model, {**method.settings(), "batch_size": 5})
        assert max_abs_diff(again(inputs, 2), first) <= 1e-5
    with pytest.raises(ValueError, match=r"dict of every model input \['ids', 'mask'\]"):
        tst.Gradient(model, layer="tok")(IDS, 2)


def test_attributing_to_a_layers_input_is_attributing_to_the_previous_output():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    logits = keras.layers.Dense(3, name="head")(hidden)
    model = keras.Model(inputs, logits)
    x = np.random.default_rng(4).normal(size=(4, 6)).astype(np.float32)
    at_input = tst.IntegratedGradients(model, steps=16, rule="gauss_legendre", layer="head",
                                       layer_input=True)(x, 1).numpy()
    at_output = tst.IntegratedGradients(model, steps=16, rule="gauss_legendre",
                                        layer="hidden")(x, 1).numpy()
    np.testing.assert_allclose(at_input, at_output, rtol=1e-5, atol=1e-7)
    a = np.tanh(x @ model.get_layer("hidden").get_weights()[0]
                + model.get_layer("hidden").get_weights()[1])
    w, b = model.get_layer("head").get_weights()
    np.testing.assert_allclose(at_input, a * w[:, 1], rtol=1e-5, atol=1e-6)  # linear head
    first = tst.Gradient(model, layer="hidden", layer_input=True)(x, 2).numpy()
    np.testing.assert_allclose(first, tst.Gradient(model)(x, 2).numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="layer_input=True"):
        tst.Gradient(model, layer_input=True)
    with pytest.raises(TypeError, match="layer_input"):
        tst.Gradient(model, layer="head", layer_input="yes")


def test_expected_gradients_at_the_embeddings_of_a_linear_head_is_closed_form():
    """Token ids → embedding → mean → Dense: the logit is linear in the embeddings, so
    with one reference text b, every sample gives (e(x) − e(b)) ⊙ ∇, exactly IG's."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((10,), dtype="int32"),
                              keras.layers.Embedding(30, 4, name="embed"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    ids = np.random.default_rng(5).integers(1, 30, size=(3, 10))
    reference = np.zeros((1, 10), np.int64)                          # all padding
    eg = tst.ExpectedGradients(model, references=reference, num_samples=8, layer="embed")
    maps = eg(ids, 2).numpy()
    embed = model.get_layer("embed").get_weights()[0]
    w = model.layers[-1].get_weights()[0][:, 2]
    expected = (embed[ids] - embed[reference])[...] * w / 10.0
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    ig = tst.IntegratedGradients(model, steps=4, layer="embed",
                                 baseline=embed[reference[0]])(ids, 2).numpy()
    np.testing.assert_allclose(maps, ig, rtol=1e-5, atol=1e-6)
