"""Blur IG: the blur against scipy, and completeness along the blur path."""

import keras
import numpy as np
import pytest
from scipy import ndimage

import tf_smoothtaylor as tst
from tf_smoothtaylor.methods.blur_ig import gaussian_blur


def test_the_blur_is_scipys_gaussian_filter_with_reflect_boundary():
    """scipy's defaults (truncate=4, mode="reflect"), from the identity through the
    path's first small steps (σ = 0.25, 0.5, where a continuous Gaussian's transfer
    would be off by 0.17 and 0.12) to kernels longer than the image."""
    x = np.random.default_rng(0).normal(size=(2, 32, 24, 3)).astype(np.float32)
    for sigma in (0.0, 0.25, 0.5, 1.0, 2.7, 8.0, 30.0):
        expected = np.stack([np.stack([ndimage.gaussian_filter(
            image[..., c].astype(np.float64), sigma, mode="reflect") for c in range(3)], -1)
            for image in x])
        np.testing.assert_allclose(gaussian_blur(x, sigma), expected, atol=1e-4)
    mixed = gaussian_blur(x, np.array([0.25, 3.0], np.float32))
    np.testing.assert_allclose(mixed[1], gaussian_blur(x[1:], 3.0)[0], atol=1e-6)


def test_blur_ig_of_a_linear_model_is_w_times_x_minus_the_blurred_image(linear):
    """The increments telescope: Σ_k (L_k − L_{k+1}) = x − L(x, σ_max), element-wise."""
    model, weights = linear
    x = np.random.default_rng(1).normal(size=(3, 4, 4, 2)).astype(np.float32)
    blur_ig = tst.BlurIntegratedGradients(model, steps=7, max_sigma=2.0, batch_size=5)
    expected = weights[:, 2].reshape(4, 4, 2) * (x - blur_ig.path_end(x).numpy())
    np.testing.assert_allclose(blur_ig(x, 2), expected, rtol=1e-4, atol=1e-5)


def test_completeness_against_the_most_blurred_image():
    """Σ BlurIG → f(x) − f(L(x, σ_max)) at the first order of a Riemann sum: the gap
    halves when the steps double, and is within 3 % of the change at 200 steps."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    x = np.random.default_rng(1).normal(size=(4, 12, 12, 1)).astype(np.float32)
    logit = lambda v: model(v).numpy()[:, 1]  # noqa: E731
    gaps = []
    for steps, batch_size in ((100, 64), (200, 33)):
        blur_ig = tst.BlurIntegratedGradients(model, steps=steps, max_sigma=4.0,
                                              batch_size=batch_size)
        change = logit(x) - logit(blur_ig.path_end(x).numpy())
        gaps.append(blur_ig(x, 1).numpy().reshape(4, -1).sum(1) - change)
    np.testing.assert_allclose(gaps[1] / gaps[0], 0.5, atol=0.1)
    assert np.all(np.abs(gaps[1]) <= 0.03 * np.abs(change)), (gaps, change)


def test_bad_settings(cnn):
    with pytest.raises(ValueError, match="steps"):
        tst.BlurIntegratedGradients(cnn, steps=0)
    with pytest.raises(ValueError, match="max_sigma"):
        tst.BlurIntegratedGradients(cnn, max_sigma=-1.0)
    variable = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3),
                                 keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="fixed"):
        tst.BlurIntegratedGradients(variable)
