"""Features and time series as inputs: integrated gradients and occlusion against
closed forms on linear models, completeness on an MLP and a 1-D CNN, and the
image-only parts refusing other shapes by name."""

import keras
import numpy as np
import pytest

import tf_smoothtaylor as tst

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(4, 20)).astype(np.float32)
SERIES = RNG.normal(size=(3, 32, 2)).astype(np.float32)


def _linear(shape, classes=3, seed=1):
    """f_c(x) = w_c · flatten(x) (no bias), and its weights (inputs × classes)."""
    weights = np.random.default_rng(seed).normal(
        size=(int(np.prod(shape)), classes)).astype(np.float32)
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                              keras.layers.Dense(classes, use_bias=False)])
    model.layers[-1].set_weights([weights])
    return model, weights


def test_integrated_gradients_of_a_linear_model_on_features_is_x_minus_b_times_w():
    model, weights = _linear((20,))
    baseline = np.linspace(-1, 1, 20).astype(np.float32)
    for given, b in (("zero", np.zeros(20, np.float32)), (baseline, baseline)):
        maps = tst.IntegratedGradients(model, steps=4, baseline=given)(FEATURES, 2).numpy()
        np.testing.assert_allclose(maps, (FEATURES - b) * weights[:, 2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "cnn1d"])
def test_integrated_gradients_are_complete_on_features_and_series(kind):
    keras.utils.set_random_seed(0)
    if kind == "mlp":
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="tanh"),
                                  keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Dense(3)])
        x = FEATURES
    else:
        model = keras.Sequential([keras.Input((32, 2)),
                                  keras.layers.Conv1D(8, 5, activation="tanh"),
                                  keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
        x = SERIES
    maps = tst.IntegratedGradients(model, steps=32, rule="gauss_legendre")(x, 1).numpy()
    gap = (maps.reshape(len(x), -1).sum(1) - (model(x).numpy()[:, 1]
                                              - model(np.zeros_like(x)).numpy()[:, 1]))
    assert np.abs(gap).max() <= 0.01 * np.abs(model(x).numpy()[:, 1]).max()


def test_occlusion_over_features_and_time_windows_against_closed_forms():
    model, weights = _linear((20,))
    contribution = FEATURES * weights[:, 2]
    exact = tst.Occlusion(model, window=1, baseline=0.0)(FEATURES, 2).numpy()
    np.testing.assert_allclose(exact, contribution, atol=1e-5)
    groups = tst.Occlusion(model, window=4, baseline=0.0)(FEATURES, 2).numpy()
    np.testing.assert_allclose(groups, np.repeat(contribution.reshape(4, 5, 4).sum(-1), 4,
                                                 axis=1), atol=1e-5)
    series_model, series_weights = _linear((32, 2))
    steps = (SERIES * series_weights[:, 1].reshape(32, 2)).sum(-1)   # each time step's part
    maps = tst.Occlusion(series_model, window=1, baseline=0.0)(SERIES, 1).numpy()
    np.testing.assert_allclose(maps, np.repeat(steps[..., None], 2, axis=-1), atol=1e-5)
    with pytest.raises(ValueError, match="'mean'"):
        tst.Occlusion(model, baseline="mean")
    with pytest.raises(ValueError, match="ints for series"):
        tst.Occlusion(series_model, window=(4, 1))


def test_one_decisive_feature_is_ranked_first():
    weights = np.full((20, 2), 0.01, np.float32)
    weights[7] = [5.0, -5.0]
    model, _ = _linear((20,), classes=2)
    model.layers[-1].set_weights([weights])
    x = np.abs(FEATURES) + 0.5
    for explainer in (tst.IntegratedGradients(model, steps=8), tst.Occlusion(model, window=1),
                      tst.SmoothTaylor(model, num_roots=16, noise_scale=0.1)):
        maps = np.abs(np.asarray(explainer(x, 0)))
        assert (maps.argmax(axis=1) == 7).all(), type(explainer).__name__


def test_the_image_only_parts_say_so_by_name():
    model, _ = _linear((20,))
    maps = tst.Gradient(model)(FEATURES, 0)
    for name, call in (("RISE", lambda: tst.RISE(model)),
                       ("Blur IG", lambda: tst.BlurIntegratedGradients(model)),
                       ("Grad-CAM", lambda: tst.GradCAM(model))):
        with pytest.raises(ValueError, match=name):
            call()
    for call in (lambda: tst.metrics.aupc(model, FEATURES, maps),
                 lambda: tst.metrics.autvc(maps), lambda: tst.heatmap(maps)):
        with pytest.raises(ValueError, match="height, width"):
            call()
