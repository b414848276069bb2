"""Multi-input models: one named input explained, the others held fixed per image."""

import keras
import numpy as np
import pytest

import tf_smoothtaylor as tst


@pytest.fixture(scope="module")
def interaction():
    """f_c(x, m) = (W_c · x) · (V_c · m + b_c): linear in the image x with a slope
    set by each image's metadata m, so ∇ₓf_c = W_c (V_c · m + b_c) per image."""
    keras.utils.set_random_seed(4)
    image = keras.Input((4, 4, 2), name="image")
    meta = keras.Input((3,), name="meta")
    by_image = keras.layers.Dense(3, use_bias=False)(keras.layers.Flatten()(image))
    by_meta = keras.layers.Dense(3)(meta)
    model = keras.Model({"image": image, "meta": meta},
                        keras.layers.Multiply()([by_image, by_meta]))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 4, 2)).astype(np.float32)
    m = rng.normal(size=(5, 3)).astype(np.float32)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    w = next(layer for layer in dense if not layer.use_bias).kernel.numpy()     # (32, 3)
    meta_layer = next(layer for layer in dense if layer.use_bias)
    slope = m @ meta_layer.kernel.numpy() + meta_layer.bias.numpy()             # (5, 3)
    return model, x, m, w, slope


def test_gradient_ig_and_smoothgrad_hold_each_images_metadata(interaction):
    model, x, m, w, slope = interaction
    selected = tst.models.select_input(model, "image")
    targets = np.array([0, 1, 2, 1, 0], np.int32)
    expected = np.stack([w[:, t].reshape(4, 4, 2) * slope[i, t]
                         for i, t in enumerate(targets)])                   # ∇ₓ f per image
    inputs = {"image": x, "meta": m}
    for batch_size in (3, 64):                       # chunks that straddle images, or not
        gradient = tst.Gradient(selected, batch_size=batch_size)(inputs, targets)
        np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6)
        ig = tst.IntegratedGradients(selected, steps=5, batch_size=batch_size)(inputs, targets)
        np.testing.assert_allclose(ig, x * expected, rtol=1e-5, atol=1e-6)   # (x − 0) ⊙ ∇f
        smooth = tst.SmoothGrad(selected, num_samples=4, noise_scale=0.3,
                                batch_size=batch_size)(inputs, targets)
        np.testing.assert_allclose(smooth, expected, rtol=1e-5, atol=1e-6)
    # Top-1 classes are taken with each image's own metadata.
    logits = model.predict({"image": x, "meta": m}, verbose=0)
    top1 = tst.Gradient(selected)(inputs)
    np.testing.assert_allclose(top1, np.stack([w[:, t].reshape(4, 4, 2) * slope[i, t]
                                               for i, t in enumerate(logits.argmax(-1))]),
                               rtol=1e-5, atol=1e-6)


def test_smooth_taylor_on_a_multi_input_model_is_independent_of_batching(interaction):
    model, x, m, _, _ = interaction
    selected = tst.models.select_input(model, "image")
    inputs = {"image": x, "meta": m}
    whole = tst.SmoothTaylor(selected, num_roots=6, batch_size=4)(inputs, 1)
    alone = np.concatenate([tst.SmoothTaylor(selected, num_roots=6, batch_size=64)(
        {"image": x[i:i + 1], "meta": m[i:i + 1]}, 1) for i in range(5)])
    np.testing.assert_allclose(whole, alone, rtol=1e-5, atol=1e-6)


def test_bad_multi_input_use_is_a_clear_error(interaction):
    model, x, m, _, _ = interaction
    with pytest.raises(ValueError, match=r"select_input\(model, 'image'\)"):
        tst.Gradient(model)
    with pytest.raises(ValueError, match="one of the model's inputs"):
        tst.models.select_input(model, "pixels")
    explainer = tst.Gradient(tst.models.select_input(model, "image"))
    with pytest.raises(ValueError, match="dict of every model input"):
        explainer(x)
    with pytest.raises(ValueError, match="'meta' of shape"):
        explainer({"image": x, "meta": m[:2]})
    with pytest.raises(TypeError, match="one input"):
        tst.Gradient(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))(
            {"a": np.zeros((1, 3))})
