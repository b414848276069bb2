"""Bad input gets a clear ValueError/TypeError naming the argument."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst

GOOD = np.zeros((2, 12, 12, 3), np.float32)


@pytest.mark.parametrize("images,error,match", [
    (np.zeros((12, 12, 3), np.float32), ValueError, r"`images` of shape \(batch, 12, 12, 3\)"),
    (np.zeros((2, 10, 12, 3), np.float32), ValueError, "Received: images of shape"),
    (np.full((1, 12, 12, 3), np.nan, np.float32), ValueError, "NaN or Inf"),
    (np.full((1, 12, 12, 3), np.inf, np.float32), ValueError, "NaN or Inf"),
    ("cat.jpg", TypeError, "`images`"),
    (np.full((1, 12, 12, 3), "x"), TypeError, "`images`"),
])
def test_bad_images(cnn, images, error, match):
    for explainer in (tst.SmoothTaylor(cnn, num_roots=2), tst.IntegratedGradients(cnn, steps=2)):
        with pytest.raises(error, match=match):
            explainer(images)


@pytest.mark.parametrize("targets,error,match", [
    (5, ValueError, r"class indices in \[0, 4\]"),
    (-1, ValueError, r"class indices in \[0, 4\]"),
    ([0, 9], ValueError, "containing 9"),
    ([0, 1, 2], ValueError, "one class index per image"),
    (1.5, TypeError, "`targets`"),
    ("dog", TypeError, "`targets`"),
])
def test_bad_targets(cnn, targets, error, match):
    with pytest.raises(error, match=match):
        tst.Gradient(cnn)(GOOD, targets=targets)


@pytest.mark.parametrize("make,error,match", [
    (lambda m: tst.SmoothTaylor(m, num_roots=0), ValueError, "num_roots"),
    (lambda m: tst.SmoothTaylor(m, num_roots=2.5), TypeError, "num_roots"),
    (lambda m: tst.SmoothTaylor(m, num_roots=True), TypeError, "num_roots"),
    (lambda m: tst.IntegratedGradients(m, steps=-3), ValueError, "steps"),
    (lambda m: tst.IntegratedGradients(m, steps="50"), TypeError, "steps"),
    (lambda m: tst.SmoothGrad(m, num_samples=0), ValueError, "num_samples"),
    (lambda m: tst.Gradient(m, batch_size=0), ValueError, "batch_size"),
    (lambda m: tst.Gradient(m, batch_size=1.0), TypeError, "batch_size"),
    (lambda m: tst.SmoothTaylor(m, noise_scale=0.0), ValueError, "noise_scale"),
    (lambda m: tst.SmoothTaylor(m, noise_scale=-1.0), ValueError, "noise_scale"),
    (lambda m: tst.SmoothTaylor(m, noise_scale=float("nan")), ValueError, "noise_scale"),
    (lambda m: tst.SmoothTaylor(m, noise_scale=0.5, noise_level=0.1), ValueError,
     "at most one of `noise_scale`"),
    (lambda m: tst.SmoothGrad(m, noise_scale=0.5, noise_level=0.2), ValueError,
     "at most one of `noise_scale`"),
    (lambda m: tst.SmoothGrad(m, noise_level=float("inf")), ValueError, "noise_level"),
    (lambda m: tst.IntegratedGradients(m, rule="simpson"), ValueError,
     "'riemann_left', 'riemann_right', 'riemann_middle', 'trapezoid', 'gauss_legendre'"),
    (lambda m: tst.IntegratedGradients(m, baseline="black"), ValueError, "'zero', 'uniform'"),
    (lambda m: tst.IntegratedGradients(m, baseline=np.zeros((5, 5, 3))), ValueError,
     "`baseline` to be broadcastable"),
    (lambda m: tst.IntegratedGradients(m, baseline=object()), TypeError, "`baseline`"),
    (lambda m: tst.IntegratedGradients(m, num_baselines=3), ValueError, "num_baselines"),
    (lambda m: tst.IntegratedGradients(m, preprocess="tf"), TypeError, "preprocess"),
    (lambda m: tst.SmoothGrad(m, statistic="median"), ValueError, "'mean', 'square', 'variance'"),
    (lambda m: tst.SmoothGrad(m, base="lrp"), ValueError, "'gradient', 'gradient_x_input'"),
    (lambda m: tst.SmoothGrad(m, statistic="square", base=tst.IntegratedGradients(m)),
     ValueError, "statistic"),
    (lambda m: tst.Gradient(m, seed=-1), ValueError, "seed"),
    (lambda m: tst.Gradient(m, jit_compile="yes"), TypeError, "jit_compile"),
])
def test_bad_settings(cnn, make, error, match):
    with pytest.raises(error, match=match):
        make(cnn)


def test_settings_are_keyword_only(cnn):
    with pytest.raises(TypeError):
        tst.SmoothTaylor(cnn, 150)


def test_callable_baseline_of_wrong_shape(cnn):
    ig = tst.IntegratedGradients(cnn, steps=2, baseline=lambda x: x[:, :6])
    with pytest.raises(ValueError, match="baseline"):
        ig(GOOD)


def test_bad_per_call_noise_scale(cnn):
    with pytest.raises(ValueError, match="noise_scale"):
        tst.SmoothTaylor(cnn, num_roots=2)(GOOD, noise_scale=[0.5, -1.0])


@pytest.mark.parametrize("model", [object(), "resnet50", lambda x: x])
def test_non_keras_model(model):
    with pytest.raises(TypeError, match="Expected `model` to be a Keras model"):
        tst.SmoothTaylor(model)


def test_multi_output_model_needs_callable_target():
    inputs = keras.Input((12, 12, 3))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(flat), keras.layers.Dense(3)(flat)])
    with pytest.raises(ValueError, match="callable"):
        tst.Gradient(model)(GOOD)


def test_model_output_not_batch_by_classes():
    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        tst.Gradient(model)(GOOD)


def test_model_not_differentiable_wrt_input():
    class ArgMax(keras.layers.Layer):
        def call(self, x):
            flat = keras.ops.reshape(x, (keras.ops.shape(x)[0], -1))
            index = keras.ops.cast(keras.ops.argmax(flat, axis=-1), "float32")
            return keras.ops.stack([index, -index], axis=-1)

    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, ArgMax()(inputs))
    with pytest.raises(ValueError, match="differentiable"):
        tst.Gradient(model)(GOOD, targets=0)


def test_heatmap_and_completeness_gap_check_shapes(cnn):
    assert tst.heatmap(tf.ones([2, 4, 4, 3])).numpy().tolist() == np.full((2, 4, 4), 3.0).tolist()
    with pytest.raises(ValueError, match="attributions"):
        tst.heatmap(tf.ones([4]))
    with pytest.raises(ValueError, match="attributions"):
        tst.completeness_gap(cnn, GOOD, GOOD[:1], 0.0)
    with pytest.raises(ValueError, match="baselines"):
        tst.completeness_gap(cnn, GOOD, GOOD, np.zeros((5, 3)))


def test_either_noise_setting_alone_works_and_the_defaults_stay(cnn):
    images = np.random.default_rng(0).uniform(-1, 1, (2, 12, 12, 3)).astype(np.float32)
    relative = tst.SmoothTaylor(cnn, noise_level=0.1, num_roots=3)
    assert (relative.noise_scale, relative.noise_level) == (None, 0.1)
    assert (tst.SmoothTaylor(cnn).noise_scale, tst.SmoothTaylor(cnn).noise_level) == (0.5, None)
    absolute = tst.SmoothGrad(cnn, noise_scale=0.3, num_samples=3)
    assert (absolute.noise_scale, absolute.noise_level) == (0.3, None)
    assert (tst.SmoothGrad(cnn).noise_scale, tst.SmoothGrad(cnn).noise_level) == (None, 0.15)
    spread = images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3))
    by_level = relative(images, targets=0).numpy()
    by_scale = tst.SmoothTaylor(cnn, num_roots=3, noise_scale=float(0.1 * spread[0]))(
        images[:1], targets=0).numpy()
    np.testing.assert_allclose(by_level[0], by_scale[0], rtol=1e-4, atol=1e-7)


def test_callable_target_returning_class_indices_is_named(cnn):
    images = np.zeros((2, 12, 12, 3), np.float32)
    with pytest.raises(ValueError, match="value to explain.*dtype int64"):
        tst.Gradient(cnn)(images, targets=lambda out: tf.argmin(out, -1))
