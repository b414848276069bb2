"""Occlusion and RISE: forward passes on the shared engine, against closed forms."""

import keras
import numpy as np
import pytest

import tf_smoothtaylor as tst


@pytest.fixture(scope="module")
def linear_8x8():
    """f_c = W[:, c]·x + b_c on (8, 8, 2) inputs."""
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(128, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.layers[-1].set_weights([weights, rng.normal(size=3).astype(np.float32)])
    return model, weights[:, 1].reshape(8, 8, 2), rng.normal(size=(3, 8, 8, 2)).astype(
        np.float32)


def _window_means(contribution, window, stride, shape=(8, 8)):
    """Mean over the windows covering each element of the windows' sums."""
    total = np.zeros_like(contribution)
    coverage = np.zeros(shape)
    for top in range(0, shape[0] - window[0] + 1, stride[0]):
        for left in range(0, shape[1] - window[1] + 1, stride[1]):
            part = np.s_[:, top:top + window[0], left:left + window[1], :]
            total[part] += contribution[part].sum(axis=(1, 2, 3))[:, None, None, None]
            coverage[top:top + window[0], left:left + window[1]] += 1
    return np.where(coverage[None, :, :, None] > 0,
                    total / np.maximum(coverage, 1)[None, :, :, None], 0.0)


def test_occlusion_of_a_linear_model_is_the_window_sums_of_w_times_x_minus_b(linear_8x8):
    model, w, x = linear_8x8
    got = tst.Occlusion(model, window=4, baseline=0.5, batch_size=5)(x, 1)
    np.testing.assert_allclose(got, _window_means(w * (x - 0.5), (4, 4), (4, 4)), atol=1e-5)
    # Overlapping windows, a border no window covers, each image's channel means.
    got = tst.Occlusion(model, window=(4, 2), stride=(2, 3), baseline="mean", batch_size=7)(x, 1)
    fill = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got, _window_means(w * (x - fill), (4, 2), (2, 3)), atol=1e-5)


def test_occlusion_ignores_batch_size_and_order(linear_8x8):
    model, _, x = linear_8x8
    reference = tst.Occlusion(model, window=3, stride=2, batch_size=64)(x, 0)
    shuffled = tst.Occlusion(model, window=3, stride=2, batch_size=4)(x[::-1], 0)[::-1]
    np.testing.assert_allclose(shuffled, reference, atol=1e-5)


def test_rise_expectation_on_constant_and_one_pixel_models():
    """Each mask pixel has mean p, so a constant output b gives S = b everywhere; with
    f = w·x_j (one pixel), pixels two cells or more from j get E[M_i M_j] / p = p:
    S_i = p w x_j (within a few Monte Carlo standard errors)."""
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    weights = np.zeros((16, 16, 3, 2), np.float32)
    model.layers[-1].set_weights([weights.reshape(768, 2), np.array([1.5, 0], np.float32)])
    rise = tst.RISE(model, num_masks=3000, grid_size=4, batch_size=256)
    estimate = rise(x, 0, return_error=True)
    heat, bound = tst.heatmap(estimate.attributions), tst.heatmap(estimate.standard_error)
    assert np.all(np.abs(heat - 1.5) < 5 * bound)
    weights[3, 3, 0, 0] = 2.0
    model.layers[-1].set_weights([weights.reshape(768, 2), np.zeros(2, np.float32)])
    estimate = rise(x, 0, return_error=True)
    far = tst.heatmap(estimate.attributions).numpy()[:, 12:, 12:].mean(axis=(1, 2))
    error = tst.heatmap(estimate.standard_error).numpy()[:, 12:, 12:].mean(axis=(1, 2))
    assert np.all(np.abs(far - 0.5 * 2.0 * x[:, 3, 3, 0]) < 5 * error)


def test_rise_draws_are_keyed_and_batch_independent(cnn, images):
    rise = tst.RISE(cnn, num_masks=40, grid_size=3, batch_size=16)
    reference = rise(images, 2)
    np.testing.assert_allclose(
        tst.RISE(cnn, num_masks=40, grid_size=3, batch_size=7)(images[::-1], 2)[::-1],
        reference, rtol=1e-5, atol=1e-7)
    auto = tst.RISE(cnn, num_masks="auto", target_error=0.3, max_points=512, grid_size=3)(
        images, 2, return_error=True)
    assert np.all((auto.relative_error.numpy() <= 0.3) | (auto.num_points == 512))


def test_bad_settings(cnn):
    for settings, error in ((dict(window=0), ValueError), (dict(window=(3, 3, 3)), ValueError),
                            (dict(window=20), ValueError), (dict(baseline="blur"), ValueError),
                            (dict(baseline=[0.0]), TypeError)):
        with pytest.raises(error):
            tst.Occlusion(cnn, **settings)
    for settings, error in ((dict(keep_probability=0.0), ValueError),
                            (dict(keep_probability=1.5), ValueError),
                            (dict(grid_size=0), ValueError), (dict(baseline="x"), TypeError)):
        with pytest.raises(error):
            tst.RISE(cnn, **settings)
    variable = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3),
                                 keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="fixed"):
        tst.RISE(variable)
    with pytest.raises(ValueError, match="independent draws"):
        tst.Occlusion(cnn, window=4)(np.zeros((1, 12, 12, 3), np.float32), 0, return_error=True)
