"""Grad-CAM and Grad-CAM++ against the class activation map's closed form."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst


@pytest.fixture(scope="module")
def cam_model():
    """Conv (same padding, 8×8×5 activations A) → global average pooling → dense w:
    f_t = Σ_k w_k^t mean_ij A_ij^k + b_t, so ∂f_t/∂A_ij^k = w_k^t / 64."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="features")(
        inputs)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    return model, keras.Model(inputs, features), model.layers[-1].get_weights()[0]


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)


def _cam(features, weights, targets):
    """Zhou et al.'s class activation map ReLU(Σ_k w_k^t A^k), divided by hw."""
    return np.maximum(np.einsum("bhwk,kb->bhw", features, weights[:, targets]), 0) / 64


def test_grad_cam_is_the_class_activation_map(cam_model, x):
    model, features, weights = cam_model
    targets = np.array([0, 2, 3])
    expected = _cam(features(x).numpy(), weights, targets)
    cam = tst.GradCAM(model)
    np.testing.assert_allclose(cam.heatmaps(x, targets), expected, atol=1e-7)
    attributions = cam(x, targets)                       # L / C in each of the C channels
    assert attributions.shape == x.shape
    np.testing.assert_allclose(tst.heatmap(attributions), expected, atol=1e-7)


def test_grad_cam_plus_plus_closed_form(cam_model, x):
    """With g_k = w_k^t / 64 constant over the positions: a_k = 1 / (2 + g_k Σ_ij A_ij^k),
    α_k = 64 a_k ReLU(g_k), L = ReLU(Σ_k α_k A^k)."""
    model, features, weights = cam_model
    targets = np.array([1, 1, 3])
    activations = features(x).numpy().astype(np.float64)
    g = weights[:, targets].T / 64.0
    a = np.where(g != 0, 1.0 / (2.0 + g * activations.sum(axis=(1, 2))), 0.0)
    expected = np.maximum(np.einsum("bhwk,bk->bhw", activations, 64 * a * np.maximum(g, 0)), 0)
    got = tst.GradCAMPlusPlus(model).heatmaps(x, targets)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tst.GradCAM(model, plus_plus=True).heatmaps(x, targets), got)


def test_maps_are_upsampled_bilinearly_to_the_input(x):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(
        keras.layers.GlobalAveragePooling2D()(features)))
    small = _cam(keras.Model(inputs, features)(x).numpy(), model.layers[-1].get_weights()[0],
                 np.array([2, 2, 2])) * 64 / 16                       # hw = 4 × 4
    expected = tf.image.resize(small[..., None], (8, 8), method="bilinear")[..., 0]
    np.testing.assert_allclose(tst.GradCAM(model).heatmaps(x, 2), expected, atol=1e-7)


def test_the_layer_is_found_inside_a_nested_trunk_and_softmax_is_removed(x):
    """A trunk model under a new head ending in softmax: the default layer is the
    trunk's last convolution, and the map is the CAM of the logits."""
    keras.utils.set_random_seed(2)
    trunk = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(5, 3, padding="same", activation="relu",
                                                  name="inner_conv")], name="trunk")
    inputs = keras.Input((8, 8, 3))
    head = keras.layers.Dense(4, activation="softmax")
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(trunk(inputs))))
    cam = tst.GradCAM(model, batch_size=2)
    assert tst.methods.grad_cam.find_layer(model).name == "inner_conv"
    expected = _cam(trunk(x).numpy(), head.get_weights()[0], np.array([3, 0, 1]))
    np.testing.assert_allclose(cam.heatmaps(x, [3, 0, 1]), expected, atol=1e-7)
    named = tst.GradCAM(model, layer="inner_conv")
    np.testing.assert_allclose(named.heatmaps(x, [3, 0, 1]), expected, atol=1e-7)


def test_results_ignore_batch_size_and_order_and_top1_is_the_default(cam_model, x):
    model, _, _ = cam_model
    whole = tst.GradCAM(model, batch_size=16).heatmaps(x)
    one_by_one = tst.GradCAM(model, batch_size=1).heatmaps(x[::-1])[::-1]
    np.testing.assert_allclose(one_by_one, whole, atol=1e-8)
    top1 = np.argmax(model(x), axis=-1)
    np.testing.assert_allclose(tst.GradCAM(model).heatmaps(x, top1), whole, atol=1e-8)


def test_bad_settings_and_inputs(cam_model, x):
    model, _, _ = cam_model
    with pytest.raises(ValueError, match="name a layer of the model.*'nope'"):
        tst.GradCAM(model, layer="nope")
    dense = model.layers[-1].name
    with pytest.raises(ValueError, match=f"4-D output.*'{dense}'"):
        tst.GradCAM(model, layer=dense)
    flat = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"token ids \(tokens,\) for Grad-CAM"):
        tst.GradCAM(flat)
    with pytest.raises(TypeError, match="plus_plus"):
        tst.GradCAM(model, plus_plus="yes")
    with pytest.raises(ValueError, match="deterministic"):
        tst.GradCAM(model)(x, 0, return_error=True)
    with pytest.raises(ValueError, match="targets"):
        tst.GradCAM(model)(x, 7)


def test_grad_cam_serves_and_is_scored(tmp_path):
    """The exported SavedModel's heatmap is the explainer's (Grad-CAM runs outside
    the engine), and the metrics score it."""
    from tf_smoothtaylor import demo
    spec = demo.load()
    pixels = demo.samples()[0][:2]
    for name, explainer in (("cam", tst.GradCAMPlusPlus(spec)),):
        expected = tst.heatmap(explainer(spec.preprocess(pixels)))
        tst.serving.export(explainer, str(tmp_path / name), crop=False)
        served = tf.saved_model.load(str(tmp_path / name)).signatures["explain_pixels"](
            pixels=tf.constant(pixels), target=tf.constant([-1, -1]))
        np.testing.assert_allclose(served["heatmap"], expected, rtol=1e-5, atol=1e-6)
        assert np.isfinite(tst.metrics.autvc(expected)).all()


def test_grad_cam_plus_plus_on_negative_activations_is_clipped_and_warned(x):
    """A linear convolution (A < 0 in places) under global average pooling and a
    dense layer: g_k = w_k / hw everywhere, so a_k = g² / (2g² + ΣA g³) = 1 / (2 +
    g_k Σ_ij A_ij^k), which for Σ A < 0 leaves (0, ½] (negative, or huge near a
    zero denominator); it is clipped to [0, ½] and the layer is named in a warning."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="linear_features")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling2D()(features)))
    weights = np.array([[4.0, -1.0], [-2.0, 1.0], [1.5, 0.5], [3.0, 2.0]], np.float32)
    model.layers[-1].set_weights([weights, np.zeros(2, np.float32)])
    activations = keras.Model(inputs, features)(x).numpy().astype(np.float64)
    assert (activations < 0).any()
    g = weights[:, 0] / 64.0
    with np.errstate(divide="ignore"):
        a = np.clip(1.0 / (2.0 + g * activations.sum(axis=(1, 2))), 0.0, 0.5)
    alpha = 64 * a * np.maximum(g, 0)
    expected = np.maximum(np.einsum("bhwk,bk->bhw", activations, alpha), 0)
    unclipped = 1.0 / (2.0 + g * activations.sum(axis=(1, 2)))
    assert ((unclipped < 0) | (unclipped > 0.5))[:, g > 0].any()    # the clip matters here
    with pytest.warns(UserWarning, match="'linear_features'.*negative activations"):
        got = tst.GradCAMPlusPlus(model).heatmaps(x, 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_grad_cam_warns_about_non_finite_maps_naming_the_images():
    """Like every method: a NaN gradient of one image (here √(mean(x) − ¼) of an
    all-zero image) makes that image's map NaN, with a warning naming it."""
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(features))
    scale = keras.layers.Lambda(lambda v: keras.ops.sqrt(
        keras.ops.mean(v, axis=(1, 2, 3))[:, None] - 0.25))(inputs)
    model = keras.Model(inputs, keras.layers.Multiply()([logits, scale]))
    x = np.stack([np.ones((8, 8, 3)), np.zeros((8, 8, 3))]).astype(np.float32)
    with pytest.warns(UserWarning, match=r"images \[1\].*not finite"):
        maps = tst.GradCAM(model).heatmaps(x, 0).numpy()
    assert np.isfinite(maps[0]).all() and not np.isfinite(maps[1]).all()


def test_the_served_graph_runs_one_forward_pass(cam_model, x):
    """Logits, the top-1 class and the map come from one forward pass."""
    from test_engine import _CountingLayer
    model, _, _ = cam_model
    counter = _CountingLayer()
    counted = keras.Sequential([keras.Input((8, 8, 3)), counter, model])
    cam = tst.GradCAM(counted)
    attributions, logits, classes = cam.run_in_graph(tf.constant(x), tf.constant([-1, 2, -1]))
    assert float(counter.seen.numpy()) == len(x)
    np.testing.assert_allclose(logits, model(x), rtol=1e-6)
    np.testing.assert_array_equal(classes, [np.argmax(model(x)[0]), 2,
                                            np.argmax(model(x)[2])])
    np.testing.assert_allclose(tst.heatmap(attributions), cam.heatmaps(x, classes.numpy()),
                               atol=1e-7)


# The heads where "the last 4-D layer" is not a feature map: pooling then 1×1
# convolutions (MobileNetV3: the old default picked its 1×1 `logits` convolution, a
# constant map), and a top map of 1×1 at the smallest input (InceptionV3 at 75 px: an
# earlier layer is taken). Every registry model: the opt-in test below.
HEADS = ["mobilenet_v3_small", "inception_v3"]


def _default_layer_is_a_feature_map(name):
    from tf_smoothtaylor import models
    size = max(models.FAMILIES[name].min_size, 64)
    keras.utils.set_random_seed(0)
    spec = models.load(name, weights=None, input_size=size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # ConvNeXt: negative activations
        cam = tst.GradCAM(spec, batch_size=4)
        shape = cam._layer.output.shape
        assert shape[1] * shape[2] > 1, (name, cam.settings()["layer"], shape)
        assert cam.settings()["layer"] == cam._layer.name
        pixels = np.random.default_rng(0).uniform(0, 1, (1, size, size, 3)).astype(np.float32)
        x = np.repeat(spec.preprocess(pixels), 4, axis=0)
        maps = cam.heatmaps(x, np.arange(4)).numpy().reshape(4, -1)
    spread = (maps.max(1) - maps.min(1)) / np.maximum(np.abs(maps).max(1), 1e-30)
    assert spread.max() > 1e-3, (name, spread)          # some class's map varies


@pytest.mark.parametrize("name", HEADS)
def test_the_default_layer_of_each_head_is_a_feature_map(name):
    """weights=None, the smallest input with at least 2×2 at the top: the default
    layer has h·w > 1, is named in settings(), and the map varies in space."""
    _default_layer_is_a_feature_map(name)


def test_the_default_layer_of_every_registry_model_is_a_feature_map():
    """Every registry family (30 Keras Applications, about 6 minutes here): opt in with
    TST_ALL_MODELS=1; the two heads above run in every suite."""
    import os
    from tf_smoothtaylor import models
    if os.environ.get("TST_ALL_MODELS") != "1":
        pytest.skip("builds all 30 registry models (about 6 minutes); "
                    "run with TST_ALL_MODELS=1")
    for name in models.FAMILIES:
        _default_layer_is_a_feature_map(name)
        keras.backend.clear_session()


def test_grad_cam_is_not_a_sum_over_points(cnn):
    """Grad-CAM runs on the engine's calls without a scheme: SmoothGrad refuses it as
    a base, naming it, and it reports one pass per image and no standard errors."""
    from tf_smoothtaylor.methods.single_pass import SinglePassExplainer
    explainer = tst.GradCAM(cnn)
    assert isinstance(explainer, SinglePassExplainer)
    assert (explainer.num_points, explainer.points_per_image) == (1, 1)
    assert not explainer.independent_points
    with pytest.raises(ValueError, match="`base` .* Received: GradCAM"):
        tst.SmoothGrad(cnn, base=explainer)
    with pytest.raises(TypeError, match="no scheme"):
        explainer.scheme
