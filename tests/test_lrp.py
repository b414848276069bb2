"""LRP and Deep Taylor decomposition against hand-computed answers, conservation
and the model's own computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor.lrp import (AlphaBeta, Box, Composite, Epsilon, Gamma, RelevanceFunction,
                                 Zero, ZPlus)

L = keras.layers


def relevance(model, composite, x, target, **kwargs):
    """Eager relevance of ``x`` for class ``target`` (the rewritten model's gradient)."""
    function = RelevanceFunction(model, composite, **kwargs)
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = function(x)[:, target]
    return tape.gradient(value, x).numpy(), value.numpy()


def dense_model(*kernels, biases=None, activation="relu"):
    """Dense layers with the given kernels (ReLU between them, logits out)."""
    inputs = keras.Input((kernels[0].shape[0],))
    x = inputs
    for index, kernel in enumerate(kernels):
        last = index == len(kernels) - 1
        layer = L.Dense(kernel.shape[1], activation=None if last else activation,
                        use_bias=biases is not None)
        x = layer(x)
        layer.set_weights([kernel] + ([biases[index]] if biases is not None else []))
    return keras.Model(inputs, x)


def bias_free_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 2)),
        L.Conv2D(4, 3, activation="relu", use_bias=False),
        L.MaxPooling2D(),
        L.Conv2D(5, 2, activation="relu", use_bias=False),
        L.Flatten(),
        L.Dense(3, use_bias=False)])


def test_lrp_0_on_a_bias_free_relu_network_is_gradient_times_input_and_conserves():
    model = bias_free_cnn()
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 2)).astype(np.float32)
    lrp = tst.LRP(model, composite="zero")(x, targets=1).numpy()
    np.testing.assert_allclose(lrp, tst.GradientXInput(model)(x, targets=1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(lrp.sum(axis=(1, 2, 3)), model(x).numpy()[:, 1], rtol=1e-5)
    near_zero, _ = relevance(model, Composite(Epsilon(1e-9), Epsilon(1e-9)), x, 1)
    np.testing.assert_allclose(near_zero.sum(axis=(1, 2, 3)), model(x).numpy()[:, 1],
                               rtol=1e-4)


def test_epsilon_rule_of_a_linear_model_is_weight_times_input_shrunk_by_epsilon():
    w = np.array([[1.0, -2.0], [0.5, 1.0], [-3.0, 0.25]], np.float32)
    model = dense_model(w)
    x = np.array([[0.2, -1.0, 0.7], [1.0, 1.0, 1.0]], np.float32)
    got, _ = relevance(model, Composite(Epsilon(0.5), Epsilon(0.5)), x, 0)
    z = x @ w[:, 0]
    np.testing.assert_allclose(got, x * w[:, 0] * (z / (z + 0.5 * np.sign(z)))[:, None],
                               rtol=1e-6)
    tiny, _ = relevance(model, Composite(Epsilon(1e-9), Epsilon(1e-9)), x, 0)
    np.testing.assert_allclose(tiny, x * w[:, 0], rtol=1e-5)


def test_lrp_explainers_share_one_rewritten_pass_per_model_and_rules_and_no_more():
    """Explainers of one model with equal rules call one compiled rewritten pass
    (traced once); other rules, and the box rule (bounds from each explainer's own
    preprocess), get their own. Each explainer still gives its rules' closed form."""
    w = np.array([[1.0, -2.0], [0.5, 1.0], [-3.0, 0.25]], np.float32)
    model = dense_model(w)
    x = np.array([[0.2, -1.0, 0.7], [1.0, 1.0, 1.0]], np.float32)
    z = x @ w[:, 0]

    def expected(eps):
        return x * w[:, 0] * (z / (z + eps * np.sign(z)))[:, None]

    for eps in (0.5, 2.0, 0.5, 2.0, 0.5):
        got = tst.LRP(model, composite="epsilon", epsilon=eps, batch_size=3)(x, 0).numpy()
        np.testing.assert_allclose(got, expected(eps), rtol=1e-5)
    functions = model.__dict__["_tst_forwards"]
    rewritten = [key for key in functions if isinstance(key, tuple) and key[0] == "lrp"]
    assert len(rewritten) == 2                                  # ε = 0.5 and ε = 2
    assert [functions[key].experimental_get_tracing_count() for key in rewritten] == [1, 1]
    # Box-rule explainers trace their own pass, with their own bounds.
    for low in (0.0, -1.0):
        box = tst.LRP(model, composite=Composite(Epsilon(0.5), Epsilon(0.5), Box()),
                      preprocess=lambda p, low=low: low + (1.0 - low) * p)
        box((x + 1.0) / 2.0, 0)
    assert len([key for key in functions if isinstance(key, tuple)]) == 2


def test_alpha1_beta0_is_z_plus_by_hand_and_conserves_on_nonnegative_inputs():
    rng = np.random.default_rng(3)
    kernels = [rng.normal(size=(4, 6)).astype(np.float32),
               rng.normal(size=(6, 2)).astype(np.float32)]
    biases = [rng.normal(size=6).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    kernels[0][0] = np.abs(kernels[0][0]) + 0.1      # every output has a positive weight
    kernels[1][0, 0] = abs(kernels[1][0, 0]) + 0.1
    model = dense_model(*kernels, biases=biases)
    x = rng.uniform(0.1, 1, (5, 4)).astype(np.float32)
    # With biases in the forward pass, the hand formula needs the same activations.
    hidden = np.maximum(x @ kernels[0] + biases[0], 0)
    logit = hidden @ kernels[1][:, 0] + biases[1][0]
    r_hidden = hidden * ((logit[:, None] / (hidden @ np.maximum(kernels[1][:, :1], 0)))
                         @ np.maximum(kernels[1][:, :1], 0).T)
    positive = np.maximum(kernels[0], 0)
    expected = x * ((r_hidden / (x @ positive)) @ positive.T)
    for composite in (Composite(AlphaBeta(1, 0), AlphaBeta(1, 0)), Composite(ZPlus(), ZPlus())):
        got, value = relevance(model, composite, x, 0)
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(got.sum(axis=1), value, rtol=1e-4)


def test_gamma_rule_by_hand_for_a_positive_and_a_negative_output():
    w = np.array([[1.0, -1.0], [-2.0, 0.5], [0.5, -1.0]], np.float32)
    b = np.array([0.25, -0.5], np.float32)
    model = dense_model(w, biases=[b])
    x = np.array([[1.0, 0.25, 2.0]], np.float32)
    z = x @ w + b                                  # [1.75, -3.375]: one of each sign
    assert z[0, 0] > 0 > z[0, 1]
    gamma = 0.5
    for j in (0, 1):
        contributions = x[0] * w[:, j]
        favoured = np.maximum(contributions, 0) if z[0, j] > 0 else np.minimum(contributions, 0)
        bias = max(b[j], 0) if z[0, j] > 0 else min(b[j], 0)
        denominator = z[0, j] + gamma * (favoured.sum() + bias)
        expected = (contributions + gamma * favoured) / denominator * z[0, j]
        got, _ = relevance(model, Composite(Gamma(gamma), Gamma(gamma)), x, j)
        np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_box_rule_by_hand_on_a_two_layer_network():
    w1 = np.array([[1.0, -0.5], [-1.0, 2.0], [0.5, 1.0]], np.float32)
    w2 = np.array([[1.5], [-0.5]], np.float32)
    model = dense_model(w1, w2)
    x = np.array([[0.9, 0.1, 0.4]], np.float32)
    low, high = -np.ones(3, np.float32), 2 * np.ones(3, np.float32)
    got, value = relevance(model, Composite(Zero(), Zero(), first=Box()), x, 0,
                           bounds=lambda t: (low + 0 * t, high + 0 * t))
    h = np.maximum(x @ w1, 0)
    r_hidden = h * w2[:, 0]                          # LRP-0 of the top (bias-free) layer
    q = x[0][:, None] * w1 - low[:, None] * np.maximum(w1, 0) - high[:, None] * np.minimum(w1, 0)
    expected = (q / q.sum(axis=0)) @ r_hidden[0]
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)
    np.testing.assert_allclose(got.sum(), value[0], rtol=1e-5)


def _conv_bn(canonical):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(5)
    model.get_layer("bn").set_weights([rng.uniform(0.5, 2, 3), rng.normal(size=3),
                                       rng.normal(size=3), rng.uniform(0.5, 2, 3)])
    gamma, beta, mean, variance = model.get_layer("bn").get_weights()
    kernel, bias = model.get_layer("conv").get_weights()
    scale = gamma / np.sqrt(variance + model.get_layer("bn").epsilon)
    folded = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(3, 3), L.ReLU(),
                               L.GlobalAveragePooling2D(), L.Dense(2)])
    folded.layers[0].set_weights([kernel * scale, (bias - mean) * scale + beta])
    folded.layers[-1].set_weights(model.get_layer("head").get_weights())
    return model, folded


def test_the_batch_norm_canonizer_equals_the_model_with_bn_folded_by_hand():
    model, folded = _conv_bn(True)
    x = np.random.default_rng(6).uniform(0, 1, (3, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model(x), folded(x), rtol=1e-5, atol=1e-5)
    bounds = dict(bounds=lambda t: (tf.zeros_like(t), tf.ones_like(t)))
    for name in ("epsilon_gamma_box", "epsilon"):
        composite = tst.lrp.preset(name, epsilon=1e-6, gamma=0.25)
        np.testing.assert_allclose(relevance(model, composite, x, 0, **bounds)[0],
                                   relevance(folded, composite, x, 0, **bounds)[0],
                                   rtol=1e-4, atol=1e-6)
    # Without the canonizer the BN passes relevance through and the ε rule sees the
    # convolution's own bias: another map.
    epsilon = Composite(Epsilon(1e-6), Epsilon(1e-6))
    plain, _ = relevance(model, epsilon, x, 0, canonize=False)
    assert np.abs(plain - relevance(folded, epsilon, x, 0)[0]).max() > 1e-4


def test_a_residual_block_conserves_relevance():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, activation="relu")(inputs)
    branch = L.Conv2D(4, 3, padding="same", use_bias=False, activation="relu")(x)
    branch = L.Conv2D(4, 3, padding="same", use_bias=False)(branch)
    x = L.ReLU()(L.Add()([x, branch]))
    outputs = L.Dense(3, use_bias=False)(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(4).uniform(0, 1, (3, 6, 6, 2)).astype(np.float32)
    logits = model(x).numpy()
    for name in ("zero", "deep_taylor", "alpha1_beta0"):
        maps, _ = relevance(model, tst.lrp.preset(name, epsilon=0.0, gamma=0.25), x, 2,
                            bounds=lambda t: (tf.zeros_like(t), tf.ones_like(t)))
        np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), logits[:, 2], rtol=1e-4)


def residual_se_model(seed=0):
    """Residual block, a squeeze-and-excitation gate, concatenation, BN, depthwise
    and separable convolutions, padding, pooling, a nested model, and a softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10, 10, 3))
    x = L.Rescaling(2.0, offset=-1.0)(inputs)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(6, 3, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    branch = L.DepthwiseConv2D(3, padding="same")(x)
    branch = L.BatchNormalization()(branch)
    branch = L.Activation("relu")(branch)
    branch = L.SeparableConv2D(6, 3, padding="same", activation="relu")(branch)
    x = L.Add()([x, branch])
    squeeze = L.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = L.Conv2D(6, 1, activation="sigmoid")(squeeze)
    x = L.Multiply()([x, squeeze])
    x = L.Concatenate()([L.MaxPooling2D()(x), L.AveragePooling2D(2)(x)])
    inner = keras.Sequential([keras.Input((5, 5, 12)), L.Conv2D(4, 1, activation="relu"),
                              L.Dropout(0.5), L.Flatten()])
    x = inner(x)
    outputs = L.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_a_model_with_every_kind_of_layer_keeps_its_outputs_and_conserves_under_z_plus():
    model = residual_se_model()
    weights = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(7).uniform(0, 1, (4, 10, 10, 3)).astype(np.float32)
    logits = tst.LRP(model)._relevance(tf.constant(x)).numpy()
    trunk = keras.Model(model.input, model.layers[-1].input)
    expected = trunk(x).numpy() @ model.layers[-1].kernel.numpy() + model.layers[-1].bias.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)   # softmax removed
    for name in ("deep_taylor", "epsilon_plus_flat", "alpha1_beta0"):
        maps, _ = relevance(model, tst.lrp.preset(name, epsilon=0.0, gamma=0.25), x, 1,
                            bounds=lambda t: (tf.zeros_like(t), tf.ones_like(t)))
        assert np.isfinite(maps).all() and maps.std() > 0
        if name != "epsilon_plus_flat":          # the ε top layer gives its bias a share
            # Conserved but for the outputs with no positive contribution (a 3×3
            # depthwise window can have none): under 1 % here.
            np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), expected[:, 1], rtol=1e-2)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert model.layers[-1].activation.__name__ == "softmax"


def test_batch_composition_order_and_chunk_size_do_not_change_relevance():
    model = residual_se_model(seed=1)
    x = np.random.default_rng(8).uniform(0, 1, (5, 10, 10, 3)).astype(np.float32)
    reference = tst.LRP(model, batch_size=64)(x).numpy()
    order = np.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(tst.LRP(model, batch_size=2)(x[order]).numpy(),
                               reference[order], atol=1e-6)


def test_smoothgrad_over_lrp_averages_lrp_maps_of_noisy_images():
    model = bias_free_cnn(seed=2)
    x = np.random.default_rng(9).uniform(0, 1, (2, 8, 8, 2)).astype(np.float32)
    lrp = tst.LRP(model, composite="epsilon_plus")
    smooth = tst.SmoothGrad(model, base=lrp, noise_scale=1e-30, num_samples=2)
    np.testing.assert_allclose(smooth(x, 0), lrp(x, 0), atol=1e-6)
    noisy = tst.SmoothGrad(model, base=lrp, noise_scale=0.3, num_samples=4)(x, 0).numpy()
    assert np.abs(noisy - lrp(x, 0).numpy()).max() > 1e-4


def test_unsupported_layers_and_inputs_are_named():
    inputs = keras.Input((6, 4))
    outputs = L.Dense(2)(L.LSTM(3)(inputs))
    with pytest.raises(ValueError, match="'lstm'.*LSTM"):
        tst.LRP(keras.Model(inputs, outputs))
    model = bias_free_cnn()
    with pytest.raises(ValueError, match="box rule's bounds"):
        tst.LRP(model, composite="deep_taylor")(np.full((1, 8, 8, 2), 3.0, np.float32))
    with pytest.raises(ValueError, match="composite"):
        tst.LRP(model, composite="epsilon_gamma")
    with pytest.raises(ValueError, match="beta"):
        AlphaBeta(2, 0)


def test_lrp_served_from_a_saved_model_and_under_tf_distribute(tmp_path):
    """The SavedModel's map (loaded the way TF Serving loads it) and
    ``distribute.explain_dataset`` equal ``explain``."""
    from tf_smoothtaylor import distribute, serving
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"),
                              L.BatchNormalization(), L.GlobalAveragePooling2D(), L.Dense(3)])
    spec = tst.models.wrap(model, preprocess=lambda p: 2.0 * p - 1.0,
                           deprocess=lambda x: (x + 1.0) / 2.0)
    explainer = tst.LRP(spec, composite="epsilon_gamma_box")
    pixels = np.random.default_rng(10).uniform(0, 1, (3, 8, 8, 3)).astype(np.float32)
    expected = explainer(spec.preprocess(pixels), [0, 2, 1]).numpy()
    loaded = tf.saved_model.load(serving.export(explainer, str(tmp_path / "model")))
    out = loaded.signatures["explain_pixels"](pixels=tf.constant(pixels),
                                              target=tf.constant([0, 2, 1], tf.int32))
    np.testing.assert_allclose(out["heatmap"], tst.heatmap(expected), atol=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices(
        (spec.preprocess(pixels), np.arange(3))).batch(2)
    result = distribute.explain_dataset(explainer, dataset)
    np.testing.assert_allclose(result["attributions"], explainer(spec.preprocess(pixels)),
                               atol=1e-6)


def test_gamma_skips_the_negative_outputs_only_where_a_relu_silences_them(monkeypatch):
    """Outputs that a ReLU follows carry no relevance when negative: the γ rule's
    shortcut there (one transpose fewer) gives the full rule's relevance."""
    keras.utils.set_random_seed(8)
    inputs = keras.Input((7, 7, 3))
    x = L.Conv2D(5, 3, activation="relu")(inputs)
    x = L.BatchNormalization()(L.Conv2D(6, 3)(x))
    x = L.ReLU()(x)
    x = L.Add()([L.Conv2D(6, 1)(x), x])                  # not followed by a ReLU
    outputs = L.Dense(3)(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(11).normal(size=(2, 7, 7, 3)).astype(np.float32)
    composite = Composite(Gamma(0.5), Gamma(0.5))
    seen = []
    original = RelevanceFunction._rectified
    monkeypatch.setattr(RelevanceFunction, "_rectified",
                        lambda *a: seen.append(original(*a)) or seen[-1])
    fast, _ = relevance(model, composite, x, 1)
    assert seen == [True, True, False, False]
    monkeypatch.setattr(RelevanceFunction, "_rectified", lambda *a: False)
    full, _ = relevance(model, composite, x, 1)
    np.testing.assert_allclose(fast, full, rtol=1e-5, atol=1e-7)
    assert np.abs(full).max() > 0


@pytest.mark.parametrize("rank", [1, 3])
def test_one_and_three_dimensional_convolutions_keep_the_outputs_and_lrp_0_is_gradient_x_input(
        rank):
    keras.utils.set_random_seed(9)
    shape = (9, 3) if rank == 1 else (5, 5, 5, 2)
    conv = {1: L.Conv1D, 3: L.Conv3D}[rank]
    layers = [keras.Input(shape), conv(4, 3, activation="relu", use_bias=False)]
    if rank == 1:
        layers += [L.DepthwiseConv1D(3, activation="relu", use_bias=False),
                   L.SeparableConv1D(3, 2, activation="relu", use_bias=False)]
    model = keras.Sequential(layers + [L.Flatten(), L.Dense(2, use_bias=False)])
    x = np.random.default_rng(12).normal(size=(2,) + shape).astype(np.float32)
    got, value = relevance(model, Composite(Zero(), Zero()), x, 1)
    np.testing.assert_allclose(value, model(x).numpy()[:, 1], rtol=1e-5)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        logit = model(inputs)[:, 1]
    np.testing.assert_allclose(got, (tape.gradient(logit, inputs) * inputs).numpy(),
                               atol=1e-6)


def test_every_composite_on_the_keras_applications():
    """MobileNetV2, ResNet50, DenseNet121, VGG16 and EfficientNetB0 (weights=None, 64 px,
    BatchNormalization statistics of one batch; about 6 minutes): opt in with
    TST_ALL_MODELS=1. Every composite gives finite maps that are not constant; z⁺, α1β0
    and Deep Taylor conserve relevance to 1e-3 on the ReLU networks (ResNet50,
    DenseNet121, VGG16). The figures: benchmarks/lrp.py models."""
    import os
    from tf_smoothtaylor.lrp import PRESETS
    if os.environ.get("TST_ALL_MODELS") != "1":
        pytest.skip("builds five Keras Applications and traces nine composites on each "
                    "(about 6 minutes); run with TST_ALL_MODELS=1")
    for name in ("MobileNetV2", "ResNet50", "DenseNet121", "VGG16", "EfficientNetB0"):
        keras.utils.set_random_seed(0)
        spec = tst.models.load(name, weights=None, input_size=64)
        norms = [layer for layer in spec.model._flatten_layers()
                 if isinstance(layer, L.BatchNormalization)]
        for layer in norms:
            layer.momentum = 0.0
        spec.model(spec.preprocess(tf.random.stateless_uniform((16, 64, 64, 3), (3, 4))),
                   training=True)
        x = spec.preprocess(tf.random.stateless_uniform((2, 64, 64, 3), (1, 2)))
        top = spec.model(x).numpy().max(axis=1)
        for composite in PRESETS:
            maps = tst.LRP(spec, composite=composite, batch_size=2)(x).numpy()
            assert np.isfinite(maps).all(), (name, composite)
            assert (maps.reshape(2, -1).std(axis=1) > 0).all(), (name, composite)
            if name in ("ResNet50", "DenseNet121", "VGG16") and composite in (
                    "alpha1_beta0", "epsilon_plus", "deep_taylor"):
                np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), top, rtol=1e-3,
                                           err_msg=f"{name} {composite}")
        keras.backend.clear_session()


def test_an_untrained_mobilenet_v2_at_224_px_warns_and_keeps_its_relevance_when_relative():
    """MobileNetV2 as ``models.load`` gives it (weights=None, BatchNormalization statistics
    untouched) on random 224 px images: its logits are ~1e-11, below every stabiliser, so
    the maps of ``epsilon_plus``, ``epsilon``, ``alpha1_beta0`` and ``zero`` vanish and a
    warning says so; with ``relative_epsilon=True`` they are finite, not constant, hold
    the logit's scale, and no warning is raised (about 1 minute: opt in with
    TST_ALL_MODELS=1)."""
    import os
    import warnings
    if os.environ.get("TST_ALL_MODELS") != "1":
        pytest.skip("builds MobileNetV2 at 224 px and traces eight LRP passes (about 1 "
                    "minute); run with TST_ALL_MODELS=1")
    keras.utils.set_random_seed(0)
    spec = tst.models.load("mobilenet_v2", weights=None)
    x = tf.random.stateless_uniform((2, 224, 224, 3), (1, 2))
    for composite in ("epsilon_plus", "epsilon", "alpha1_beta0", "zero"):
        with pytest.warns(UserWarning, match=r"vanished for images 0, 1 \(of 2\)"):
            tst.LRP(spec, composite=composite, batch_size=2)(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            maps = tst.LRP(spec, composite=composite, batch_size=2,
                           relative_epsilon=True)(x).numpy()
        assert np.isfinite(maps).all(), composite
        assert (maps.reshape(2, -1).std(axis=1) > 0).all(), composite


def test_the_compiled_rules_read_the_weights_live_as_training_changes_them():
    """One trace, and the weights (and merged BatchNorm statistics) are read at each
    call: doubling the last layer's kernel doubles LRP-0's relevance."""
    model = bias_free_cnn(seed=4)
    x = np.random.default_rng(13).uniform(0, 1, (2, 8, 8, 2)).astype(np.float32)
    explainer = tst.LRP(model, composite="zero")
    before = explainer(x, 1).numpy()
    head = model.layers[-1]
    head.kernel.assign(2.0 * head.kernel)
    np.testing.assert_allclose(explainer(x, 1).numpy(), 2.0 * before, rtol=1e-5, atol=1e-7)
    assert explainer.trace_count == 1


def scaled_cnn(scale, seed=0):
    """``bias_free_cnn`` with its first kernel times ``scale``: a bias-free ReLU network,
    so every activation and logit is ``scale`` times the original's."""
    model = bias_free_cnn(seed)
    first = model.layers[0]
    first.kernel.assign(scale * first.kernel)
    return model


def test_relevance_that_vanishes_below_the_stabiliser_is_reported_naming_the_images():
    """Logits of ~1e-12 sit far below ε = 1e-6: the maps are (nearly) zero and a
    warning names every image; the same model at its normal scale warns of nothing."""
    import warnings
    x = np.random.default_rng(20).uniform(0, 1, (3, 8, 8, 2)).astype(np.float32)
    tiny = scaled_cnn(1e-12)
    for composite in ("epsilon_plus", "epsilon", "alpha1_beta0"):
        with pytest.warns(UserWarning, match=r"vanished for images 0, 1, 2 \(of 3\)"
                                             r".*relative_epsilon=True") as caught:
            maps = tst.LRP(tiny, composite=composite)(x, targets=1).numpy()
        assert np.abs(maps).sum(axis=(1, 2, 3)).max() < 1e-3 * np.abs(
            tiny(x).numpy()[:, 1]).min(), composite
        assert len([w for w in caught if "vanished" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tst.LRP(scaled_cnn(1.0), composite="epsilon_plus")(x, targets=1)


def test_relative_epsilon_scales_with_the_activations_and_conserves_under_z_plus():
    """With stabilisers relative to each layer's outputs, a model whose activations are
    all c times larger gives c times the relevance (c = 1e-12: nothing vanishes), and
    z⁺ on a bias-free ReLU network still conserves: Σ R = f_t(x)."""
    import warnings
    x = np.random.default_rng(21).uniform(0, 1, (3, 8, 8, 2)).astype(np.float32)
    scale = 1e-12
    tiny, normal = scaled_cnn(scale), scaled_cnn(1.0)
    for composite in ("epsilon_plus", "epsilon", "alpha1_beta0", "zero"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            small = tst.LRP(tiny, composite=composite, relative_epsilon=True)(x, 1).numpy()
        big = tst.LRP(normal, composite=composite, relative_epsilon=True)(x, 1).numpy()
        np.testing.assert_allclose(small / scale, big, rtol=1e-4,
                                   atol=1e-6 * np.abs(big).max(), err_msg=composite)
        assert (big.reshape(3, -1).std(axis=1) > 0).all(), composite
    conserved = tst.LRP(tiny, composite="alpha1_beta0", relative_epsilon=True)(x, 1).numpy()
    np.testing.assert_allclose(conserved.sum(axis=(1, 2, 3)), tiny(x).numpy()[:, 1],
                               rtol=1e-4)


def test_relevance_far_from_the_logit_under_conserving_rules_is_reported():
    """The check itself on known sums: a map that kept its logit is quiet, one that
    lost most of it under rules that all conserve is named; ε rules give biases a
    share, so a loss there is not reported, but vanishing is."""
    import warnings
    from tf_smoothtaylor.lrp import conservation, preset
    logits = np.array([2.0, -1.0, 4.0, 0.0])
    maps = np.zeros((4, 2, 2))
    maps[:, 0, 0] = [2.0, -1.1, 0.5, 0.3]              # kept, kept, lost, no logit
    plus = preset("alpha1_beta0", epsilon=1e-6, gamma=0.25)
    with pytest.warns(UserWarning, match=r"far from the target logit for images 2 \(of 4\)"
                                         r".*= 0\.125"):
        conservation.warn_if_lost(maps, logits, plus)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conservation.warn_if_lost(maps, logits, preset("epsilon", epsilon=1e-6, gamma=0.25))
    maps[1] = 1e-9
    with pytest.warns(UserWarning, match=r"vanished for images 1 \(of 4\)"):
        conservation.warn_if_lost(maps, logits, preset("epsilon", epsilon=1e-6, gamma=0.25))


def test_relative_epsilon_is_checked_and_reaches_the_command_line():
    with pytest.raises(TypeError, match="relative_epsilon"):
        tst.LRP(bias_free_cnn(), relative_epsilon="yes")
    assert "relative_epsilon" in tst.LRP.options
    assert tst.LRP.options["relative_epsilon"].flag == "lrp_relative_epsilon"
