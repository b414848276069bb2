"""Features and time series as inputs: integrated gradients and occlusion against
closed forms on linear models, completeness on an MLP and a 1-D CNN, and the
image-only parts refusing other shapes by name."""

import keras
import numpy as np
import pytest

import tf_smoothtaylor as tst

# Closed forms here use baselines the data does not reach on purpose (the warning has
# its own test below).
pytestmark = pytest.mark.filterwarnings("ignore:.*outside the range of the inputs")

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
    for name, call in (("Blur IG", lambda: tst.BlurIntegratedGradients(model)),
                       ("Grad-CAM", lambda: tst.GradCAM(model))):
        with pytest.raises(ValueError, match=name):
            call()
    for name, call in (("AUPC", lambda: tst.metrics.aupc(model, FEATURES, maps)),
                       ("AUTVC", lambda: tst.metrics.autvc(maps))):
        with pytest.raises(ValueError, match=f"{name} is defined on image"):
            call()
    with pytest.raises(ValueError, match="'blur'"):
        tst.metrics.deletion(model, FEATURES, maps, replacement="blur")
    with pytest.raises(ValueError, match=r"\(batch, features\) = \(4, 20\)"):
        tst.metrics.deletion(model, FEATURES, maps[:, :5])
    with pytest.raises(ValueError, match="series"):
        tst.heatmap(np.zeros((2, 3, 4, 5, 6)))


def test_deletion_and_insertion_over_features_and_steps_follow_the_linear_closed_form():
    """f = w·x with zero replacement: deleting the k most relevant features (or time
    steps) leaves f(x) minus their contributions; inserting them gives their sum."""
    model, weights = _linear((20,))
    parts = FEATURES * weights[:, 2]
    order = np.argsort(-parts, axis=1, kind="stable")
    ranked = np.take_along_axis(parts, order, axis=1)
    removed = np.concatenate([np.zeros((4, 1)), np.cumsum(ranked, axis=1)], axis=1)
    deleted = tst.metrics.deletion(model, FEATURES, parts, targets=2, steps=20)
    np.testing.assert_allclose(deleted.curves, parts.sum(1, keepdims=True) - removed,
                               atol=1e-4)
    inserted = tst.metrics.insertion(model, FEATURES, parts, targets=2, steps=20)
    np.testing.assert_allclose(inserted.curves, removed, atol=1e-4)
    series_model, series_weights = _linear((32, 2))
    steps = (SERIES * series_weights[:, 1].reshape(32, 2)).sum(-1)
    maps = tst.heatmap(SERIES * series_weights[:, 1].reshape(32, 2))
    np.testing.assert_allclose(maps, steps, atol=1e-5)
    ranked = -np.sort(-steps, axis=1)
    curve = tst.metrics.Deletion(series_model, steps=32)(SERIES, maps, 1).curves
    np.testing.assert_allclose(curve, steps.sum(1, keepdims=True) - np.concatenate(
        [np.zeros((3, 1)), np.cumsum(ranked, axis=1)], axis=1), atol=1e-4)
    mean_row = FEATURES.mean(0)         # a reference set's mean as what deleted becomes
    last = tst.metrics.deletion(model, FEATURES, parts, targets=2, steps=4,
                                replacement=mean_row).curves[:, -1]
    np.testing.assert_allclose(last, np.full(4, mean_row @ weights[:, 2]), atol=1e-4)


def test_sensitivity_n_is_one_for_exact_contributions_of_features_and_steps():
    model, weights = _linear((20,))
    exact = tst.metrics.sensitivity_n(model, FEATURES, FEATURES * weights[:, 0], ns=(1, 5, 19),
                                      num_subsets=20, targets=0)
    np.testing.assert_allclose(exact, 1.0, atol=1e-4)
    shuffled = np.random.default_rng(1).permutation(FEATURES * weights[:, 0], axis=1)
    assert np.asarray(tst.metrics.sensitivity_n(
        model, FEATURES, shuffled, ns=(5,), num_subsets=20, targets=0)).mean() < 0.9
    series_model, series_weights = _linear((32, 2))
    maps = tst.heatmap(SERIES * series_weights[:, 0].reshape(32, 2))
    np.testing.assert_allclose(tst.metrics.sensitivity_n(
        series_model, SERIES, maps, ns=(3, 10), num_subsets=20, targets=0), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match=r"features of shape \(20,\)"):
        tst.metrics.sensitivity_n(model, FEATURES, FEATURES, ns=(21,))


def test_randomisation_check_over_features():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(3)])
    explainer = tst.IntegratedGradients(model, steps=8)
    kept = tst.metrics.randomization_check(explainer, images=FEATURES, layers=[])
    np.testing.assert_allclose(kept, 1.0, atol=1e-6)      # nothing randomised: same maps
    changed = tst.metrics.randomization_check(explainer, images=FEATURES, seed=3)
    assert np.asarray(changed).mean() < 0.8


def _keyword_model(vocabulary=30, length=12, keyword=7):
    """Token ids → embedding → mean → logit; class 0's logit is large exactly when
    token ``keyword`` occurs (its embedding alone carries the signal)."""
    embedding = np.zeros((vocabulary, 4), np.float32)
    embedding[:, 1:] = np.random.default_rng(2).normal(scale=0.01, size=(vocabulary, 3))
    embedding[keyword, 0] = 1.0
    model = keras.Sequential([keras.Input((length,), dtype="int32"),
                              keras.layers.Embedding(vocabulary, 4, name="embed"),
                              keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(2)])
    model.get_layer("embed").set_weights([embedding])
    dense = np.zeros((4, 2), np.float32)
    dense[0, 0], dense[0, 1] = 24.0, -24.0
    model.layers[-1].set_weights([dense, np.zeros(2, np.float32)])
    return model


def test_one_decisive_token_is_ranked_first_and_deleting_it_drops_the_logit():
    tokens = np.random.default_rng(4).integers(1, 30, size=(5, 12))
    tokens[tokens == 7] = 8
    places = np.array([0, 3, 6, 9, 11])
    tokens[np.arange(5), places] = 7
    model = _keyword_model()
    attributions = tst.IntegratedGradients(model, steps=16, layer="embed")(tokens, 0)
    scores = tst.position_scores(attributions).numpy()
    assert (scores.argmax(1) == places).all()
    occluded = tst.Occlusion(model, window=1, baseline=0)(tokens, 0).numpy()   # → pad id
    assert (occluded.argmax(1) == places).all()
    np.testing.assert_allclose(occluded.max(1), 2.0, atol=1e-3)      # 24 · 1/12, exactly
    curve = tst.metrics.deletion(model, tokens, scores, targets=0, steps=12,
                                 replacement=0).curves.numpy()   # deleted → the pad id 0
    np.testing.assert_allclose(curve[:, 0] - curve[:, 1], 2.0, atol=1e-3)  # 24 · 1/12
    np.testing.assert_allclose(curve[:, 1:], curve[:, 1:2] + 0 * curve[:, 1:], atol=0.05)


def test_rise_finds_the_decisive_feature_and_time_window():
    weights = np.full((20, 2), 0.01, np.float32)
    weights[7] = [4.0, -4.0]
    model, _ = _linear((20,), classes=2)
    model.layers[-1].set_weights([weights])
    x = np.abs(FEATURES) + 0.5
    maps = tst.RISE(model, num_masks=400, grid_size=10, baseline=0.0)(x, 0).numpy()
    assert maps.shape == x.shape and (maps.argmax(axis=1) == 7).all()
    series_model, _ = _linear((32, 2), classes=2)
    window = np.zeros((32, 2, 2), np.float32)
    window[12:16, :, 0] = 2.0
    series_model.layers[-1].set_weights([window.reshape(64, 2)])
    y = np.abs(SERIES) + 0.5
    steps = tst.heatmap(tst.RISE(series_model, num_masks=400, grid_size=8, baseline=0.0)(
        y, 0)).numpy()
    assert np.isin(np.argsort(-steps, axis=1)[:, :2], np.arange(11, 17)).all()


def test_rise_error_on_features_matches_the_spread_over_seeds():
    """The reported relative error of a features map (judged per feature, centred)
    against the spread of independent runs."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(2)])
    x = FEATURES[:2]
    rise = tst.RISE(model, num_masks=64, grid_size=10)
    runs = [rise(x, 0, keys=np.array([2 * run, 2 * run + 1]), return_error=True)
            for run in range(16)]                       # independent draws, one trace
    maps = np.stack([r.attributions.numpy() for r in runs])          # (seeds, B, F)
    centred = maps - maps.mean(axis=2, keepdims=True)
    spread = np.linalg.norm(centred.std(axis=0, ddof=1), axis=1)
    truth = spread / np.linalg.norm(centred.mean(axis=0), axis=1)
    reported = np.mean([r.relative_error.numpy() for r in runs], axis=0)
    assert np.all((reported / truth > 0.7) & (reported / truth < 1.4)), (reported, truth)


def test_a_baseline_outside_the_data_is_said_and_one_inside_is_not():
    import warnings
    model, _ = _linear((20,))
    for explainer in (tst.IntegratedGradients(model, steps=4, baseline=10.0),
                      tst.Occlusion(model, window=1, baseline=np.full(20, -8.0, np.float32))):
        with pytest.warns(UserWarning, match=r"outside the range of the inputs given for "
                                             r"20 of 20 features \(feature 0: baseline"):
            explainer(FEATURES, 0)
    with pytest.warns(UserWarning, match="'uniform' draws pixels"):
        tst.IntegratedGradients(model, steps=4, baseline="uniform")(FEATURES, 0)
    series_model, _ = _linear((32, 2))
    with pytest.warns(UserWarning, match=r"1 of 2 channels \(channel 1: baseline 9"):
        tst.RISE(series_model, num_masks=8, baseline=np.array([0.0, 9.0], np.float32))(
            SERIES, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tst.IntegratedGradients(model, steps=4, baseline=FEATURES.mean(0))(FEATURES, 0)
        tst.IntegratedGradients(model, steps=4, baseline=10.0)(FEATURES[:1], 0)  # one row
        tst.Occlusion(series_model, window=4, baseline=0.0)(SERIES, 0)


def test_grad_cam_over_time_steps_and_tokens_finds_the_decisive_window():
    """A Conv1D whose only filter responds to channel 0 feeds global average pooling
    and the logit: Grad-CAM is the CAM ReLU(w·A)/T, largest where the signal is."""
    inputs = keras.Input((32, 2))
    feature = keras.layers.Conv1D(1, 3, padding="same", activation="relu", name="conv")(inputs)
    logit = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(feature))
    model = keras.Model(inputs, logit)
    model.get_layer("conv").set_weights([np.array([[[1.0], [0.0]]] * 3, np.float32),
                                         np.zeros(1, np.float32)])
    model.layers[-1].set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2)])
    x = np.zeros((2, 32, 2), np.float32)
    x[0, 10:14, 0], x[1, 25:28, 0] = 1.0, 1.0
    x[:, :, 1] = 5.0                                           # ignored by the filter
    cam = tst.GradCAM(model)
    assert cam.settings()["layer"] == "conv"
    steps = cam.heatmaps(x, 0).numpy()
    assert steps.shape == (2, 32)
    activations = np.stack([np.convolve(x[i, :, 0], np.ones(3), "same") for i in range(2)])
    np.testing.assert_allclose(steps, activations / 32.0, atol=1e-6)   # CAM = ReLU(w·A)/T
    np.testing.assert_allclose(tst.heatmap(cam(x, 0)), steps, atol=1e-6)
    tokens = np.random.default_rng(4).integers(1, 30, size=(3, 12))
    tokens[tokens == 7] = 8
    tokens[np.arange(3), [2, 5, 9]] = 7
    embedded = keras.Input((12,), dtype="int32")
    vectors = _keyword_model().get_layer("embed")(embedded)
    per_token = keras.layers.Dense(1, activation="relu", name="per_token")(vectors)
    text = keras.Model(embedded, keras.layers.Dense(2)(keras.layers.Flatten()(per_token)))
    text.get_layer("per_token").set_weights([np.array([[1.0], [0], [0], [0]], np.float32),
                                             np.zeros(1, np.float32)])
    text.layers[-1].set_weights([np.tile([[1.0, -1.0]], (12, 1)).astype(np.float32),
                                 np.zeros(2, np.float32)])
    scores = tst.GradCAM(text, layer="per_token")(tokens, 0).numpy()
    assert scores.shape == (3, 12) and (scores.argmax(1) == [2, 5, 9]).all()
