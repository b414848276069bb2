"""The wider metric suite on cases computable by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from conftest import small_cnn
from tf_smoothtaylor import metrics
from tf_smoothtaylor.engine import streams as _random
from tf_smoothtaylor.metrics.deletion import shown_counts


@pytest.fixture(scope="module")
def linear_case(linear):
    model, weights = linear
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype(np.float32)
    contributions = x * weights[:, 0].reshape(4, 4, 2)                 # x ⊙ w for class 0
    bias = float(model.layers[-1].bias.numpy()[0])
    return model, weights, x, contributions, bias


def test_deletion_and_insertion_curves_of_linear_model(linear_case):
    model, _, x, contributions, bias = linear_case
    pixel_contrib = contributions.sum(-1).reshape(2, 16)                # per pixel
    maps = np.random.default_rng(1).uniform(size=(2, 4, 4)).astype(np.float32)
    order = np.argsort(-maps.reshape(2, 16), axis=1, kind="stable")
    deleted = metrics.deletion(model, x, maps, targets=0, steps=16, replacement="zero")
    inserted = metrics.insertion(model, x, maps, targets=0, steps=16, replacement="zero")
    for i in range(2):
        ranked = pixel_contrib[i, order[i]]
        total = bias + pixel_contrib[i].sum()
        expected_deletion = total - np.concatenate([[0], np.cumsum(ranked)])
        expected_insertion = bias + np.concatenate([[0], np.cumsum(ranked)])
        np.testing.assert_allclose(deleted.curves[i], expected_deletion, atol=1e-4)
        np.testing.assert_allclose(inserted.curves[i], expected_insertion, atol=1e-4)
        trapezoid = (expected_deletion[1:] + expected_deletion[:-1]).sum() / 2 / 16
        assert deleted.auc.numpy()[i] == pytest.approx(trapezoid, abs=1e-4)


def test_exact_contributions_delete_best(linear_case):
    model, _, x, contributions, _ = linear_case
    exact = tst.heatmap(contributions)
    random = np.random.default_rng(2).uniform(size=(2, 4, 4)).astype(np.float32)
    best = metrics.deletion(model, x, exact, targets=0, steps=16).auc.numpy()
    other = metrics.deletion(model, x, random, targets=0, steps=16).auc.numpy()
    assert np.all(best <= other + 1e-6)


def test_reusable_curves_compile_once_and_equal_the_functions(linear_case):
    model, _, x, contributions, _ = linear_case
    maps = tst.heatmap(contributions)
    deletion = metrics.Deletion(model, steps=16)
    insertion = metrics.Insertion(model, steps=16, replacement="mean")
    both, second = deletion(x, maps, targets=0), deletion(x[1:], maps[1:], targets=0)
    inserted = insertion(x, maps, targets=0)
    assert deletion.trace_count == 1 and insertion.trace_count == 1
    np.testing.assert_allclose(
        both.curves, metrics.deletion(model, x, maps, targets=0, steps=16).curves, atol=1e-6)
    np.testing.assert_allclose(second.curves[0], both.curves[1], atol=1e-6)
    np.testing.assert_allclose(inserted.curves, metrics.insertion(
        model, x, maps, targets=0, steps=16, replacement="mean").curves, atol=1e-6)
    # A second image size gets its own compiled function; the step counts follow it:
    # the curve runs from f(x) to f(0) (every pixel deleted).
    flexible = small_cnn(shape=(None, None, 3))
    score = metrics.Deletion(flexible, steps=3)
    for side in (12, 10):
        image = np.random.default_rng(side).uniform(size=(1, side, side, 3)).astype(np.float32)
        ranks = np.arange(side * side, dtype=np.float32)[::-1].reshape(1, side, side)
        curve = score(image, ranks, targets=2).curves.numpy()[0]
        ends = flexible(np.concatenate([image, 0 * image])).numpy()[:, 2]
        np.testing.assert_allclose(curve[[0, -1]], ends, atol=1e-5)
    assert score.trace_count == 2
    np.testing.assert_array_equal(shown_counts(3, 100), [0, 34, 67, 100])   # ⌈s·100/3⌉


@pytest.mark.parametrize("replacement", ["mean", "blur", 0.7])
def test_replacements_of_a_constant_image_leave_the_curve_flat(cnn, replacement):
    image = np.full((1, 12, 12, 3), 0.7, np.float32)
    maps = np.random.default_rng(3).uniform(size=(1, 12, 12)).astype(np.float32)
    curve = metrics.deletion(cnn, image, maps, steps=8, replacement=replacement).curves.numpy()
    np.testing.assert_allclose(curve, curve[:, :1] * np.ones_like(curve), atol=1e-4)


def test_sensitivity_n_of_gradient_x_input_on_linear_model_is_one(linear_case):
    model, _, x, _, _ = linear_case
    maps = tst.heatmap(tst.GradientXInput(model)(x, targets=0))
    result = metrics.sensitivity_n(model, x, maps, ns=(1, 4, 8), num_subsets=20, targets=0)
    np.testing.assert_allclose(result.numpy(), 1.0, atol=1e-4)
    noisy = maps + np.random.default_rng(4).normal(size=maps.shape).astype(np.float32) * 3
    assert np.all(metrics.sensitivity_n(model, x, noisy, ns=(4,), num_subsets=20,
                                        targets=0).numpy() < 0.99)


def test_infidelity_of_exact_gradient_of_linear_model_is_zero(linear_case):
    model, weights, x, _, _ = linear_case
    gradient = tst.Gradient(model)(x, targets=0)
    assert np.abs(metrics.infidelity(model, x, gradient, targets=0).numpy()).max() < 1e-6
    # Twice the gradient: (Iᵀw)² in expectation σ²‖w‖²; normalisation recovers 0.
    doubled = 2 * gradient
    sigma, samples = 0.1, 2000
    value = metrics.infidelity(model, x, doubled, targets=0, noise_scale=sigma,
                               num_samples=samples, batch_size=500).numpy()
    expected = sigma ** 2 * (weights[:, 0] ** 2).sum()
    np.testing.assert_allclose(value, expected, rtol=0.15)
    assert np.abs(metrics.infidelity(model, x, doubled, targets=0, normalize=True)).max() < 1e-6


def test_reusable_sensitivity_n_and_infidelity_trace_once_and_ignore_the_batch(linear_case):
    model, _, x, _, _ = linear_case
    attributions = tst.GradientXInput(model)(x, targets=0)
    maps = tst.heatmap(attributions)
    sensitivity = metrics.SensitivityN(model, ns=(1, 4, 8), num_subsets=20)
    infidelity = metrics.Infidelity(model, noise_scale=0.1, num_samples=30, normalize=True)
    both = sensitivity(x, maps, targets=0)
    np.testing.assert_allclose(both, 1.0, atol=1e-4)         # exact additive map
    np.testing.assert_allclose(sensitivity(x[1:], maps[1:], targets=0)[0], both[1], atol=1e-6)
    np.testing.assert_allclose(both, metrics.sensitivity_n(
        model, x, maps, ns=(1, 4, 8), num_subsets=20, targets=0), atol=1e-6)
    pair = infidelity(x, 3 * attributions, targets=0)
    np.testing.assert_allclose(infidelity(x[::-1], 3 * attributions[::-1], targets=0)[::-1],
                               pair, rtol=1e-5)
    np.testing.assert_allclose(pair, metrics.infidelity(
        model, x, 3 * attributions, targets=0, num_samples=30, normalize=True), rtol=1e-5)
    assert sensitivity.trace_count == 1 and infidelity.trace_count == 1
    with pytest.raises(ValueError, match="ns"):
        metrics.SensitivityN(model, ns=(17,))(x, maps)


def test_max_sensitivity(linear_case):
    model, weights, x, _, _ = linear_case
    assert metrics.max_sensitivity(tst.Gradient(model), x, targets=0).numpy().max() < 1e-6
    radius = 0.05
    value = metrics.max_sensitivity(tst.GradientXInput(model), x, radius=radius,
                                    num_samples=20, targets=0).numpy()
    bound = radius * np.linalg.norm(weights[:, 0])                       # ‖(y − x) ⊙ w‖ ≤ r‖w‖
    assert np.all(value <= bound + 1e-6) and np.all(value > 0.4 * bound)


def test_max_sensitivity_equals_one_sample_at_a_time(cnn, images):
    explainer = tst.SmoothGrad(cnn, num_samples=5, batch_size=4)
    radius, samples = 0.05, 3
    targets = [1, 2, 3, 4]
    got = metrics.max_sensitivity(explainer, images, radius=radius, num_samples=samples,
                                  targets=targets, seed=7).numpy()
    x = tf.constant(images)
    reference = explainer(x, targets)
    keys = _random.image_keys(x, 7)
    worst = np.zeros(len(images))
    for sample in range(samples):
        offset = _random.uniform(keys, _random.SENSITIVITY, tf.fill([len(images)], sample),
                                 images.shape[1:])
        moved = explainer(x + radius * (2.0 * offset - 1.0), targets)
        change = np.linalg.norm((moved - reference).numpy().reshape(len(images), -1), axis=1)
        worst = np.maximum(worst, change)
    np.testing.assert_allclose(got, worst, rtol=1e-5)


def test_relevance_mass_hand_computed():
    maps = np.array([[[3.0, -1.0], [1.0, 0.0]]], np.float32)
    mask = np.array([[[1, 1], [0, 0]]])
    assert metrics.relevance_mass(maps, mask).numpy()[0] == pytest.approx(3 / 4)
    assert metrics.relevance_mass(maps, mask, relevance="absolute").numpy()[0] == pytest.approx(4 / 5)
    assert metrics.relevance_mass(np.zeros_like(maps), mask).numpy()[0] == 0.0
    with pytest.raises(ValueError, match="masks"):
        metrics.relevance_mass(maps, mask[:, :1])


def test_spearman_hand_computed():
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert float(metrics.spearman(a, a ** 3)[0]) == pytest.approx(1.0)
    assert float(metrics.spearman(a, -a)[0]) == pytest.approx(-1.0)


def test_randomization_check(images):
    # Constant weights are unchanged by permutation: the maps are identical.
    constant = keras.Sequential([keras.Input((12, 12, 3)),
                                 keras.layers.Conv2D(2, 3, kernel_initializer="ones",
                                                     activation="relu"),
                                 keras.layers.Flatten(),
                                 keras.layers.Dense(3, kernel_initializer="ones")])
    factory = lambda m: tst.Gradient(m)  # noqa: E731
    same = metrics.randomization_check(factory, constant, images, targets=0, absolute=False)
    np.testing.assert_allclose(same.numpy(), 1.0, atol=1e-6)
    model = small_cnn(seed=9)
    result = metrics.randomization_check(factory, model, images, targets=0)
    assert np.all(result.numpy() < 0.9)
    again = metrics.randomization_check(factory, model, images, targets=0)
    np.testing.assert_array_equal(result, again)
    # An explainer instance works as well as a factory (its settings are rebuilt on the
    # randomised copy); so does leaving the model to the explainer.
    smooth = tst.SmoothTaylor(model, num_roots=4, noise_scale=0.3, seed=2)
    by_factory = metrics.randomization_check(
        lambda m: tst.SmoothTaylor(m, num_roots=4, noise_scale=0.3, seed=2), model, images,
        targets=0)
    np.testing.assert_allclose(metrics.randomization_check(smooth, model, images, targets=0),
                               by_factory, atol=1e-6)
    np.testing.assert_allclose(metrics.randomization_check(smooth, images=images, targets=0),
                               by_factory, atol=1e-6)
    with pytest.raises(TypeError, match="factory"):
        metrics.randomization_check(model, model, images)
    with pytest.raises(ValueError, match="model"):
        metrics.randomization_check(factory, images=images)
    with pytest.raises(ValueError, match="layers"):
        metrics.randomization_check(factory, model, images, layers=["nope"])


@pytest.mark.parametrize("call,error,match", [
    (lambda m, x: metrics.deletion(m, x, np.zeros((2, 4, 3))), ValueError, "heatmaps"),
    (lambda m, x: metrics.deletion(m, x, np.zeros((2, 4, 4)), replacement="noise"),
     ValueError, "'zero', 'mean', 'blur', or a number or an array"),
    (lambda m, x: metrics.deletion(m, x, np.zeros((2, 4, 4)), steps=0), ValueError, "steps"),
    (lambda m, x: metrics.Insertion(m, replacement="noise"), ValueError, "replacement"),
    (lambda m, x: metrics.Deletion(m, blur_sigma=0), ValueError, "blur_sigma"),
    (lambda m, x: metrics.Deletion(m, replacement=np.zeros(3))(x, np.zeros((2, 4, 4))),
     ValueError, "replacement"),
    (lambda m, x: metrics.sensitivity_n(m, x, np.zeros((2, 4, 4)), ns=(17,)), ValueError, "ns"),
    (lambda m, x: metrics.infidelity(m, x, x[:1]), ValueError, "attributions"),
    (lambda m, x: metrics.infidelity(m, x, x, noise_scale=0), ValueError, "noise_scale"),
    (lambda m, x: metrics.max_sensitivity(m, x), TypeError, "explainer"),
    (lambda m, x: metrics.deletion(m, x, np.zeros((2, 4, 4)), targets=lambda out: out[:, 0]),
     TypeError, "callable"),
    (lambda m, x: metrics.infidelity(m, x, x, targets=lambda out: out[:, 0]),
     TypeError, "callable"),
])
def test_bad_input(linear_case, call, error, match):
    model, _, x, _, _ = linear_case
    with pytest.raises(error, match=match):
        call(model, x)


def _reference_spearman(a, b):
    """Pearson's r of average ranks, ties sharing the mean of their positions."""
    def ranks(x):
        order = np.argsort(x, kind="stable")
        ranked = np.empty(len(x))
        ranked[order] = np.arange(len(x))
        return np.array([ranked[x == value].mean() for value in x])
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_spearman_gives_ties_their_average_rank():
    a = np.zeros(40)
    a[3] = 1.0
    b = np.zeros(40)
    b[17] = 1.0
    rng = np.random.default_rng(0)
    sparse = rng.normal(size=(2, 40)) * (rng.uniform(size=(2, 40)) < 0.3)
    got = metrics.spearman(np.stack([a, sparse[0]]), np.stack([b, sparse[1]])).numpy()
    assert got[0] == pytest.approx(_reference_spearman(a, b), abs=1e-6)
    assert got[1] == pytest.approx(_reference_spearman(sparse[0], sparse[1]), abs=1e-6)
    with pytest.warns(UserWarning, match="constant"):
        undefined = metrics.spearman(np.zeros((1, 9)), np.zeros((1, 9))).numpy()
    assert np.isnan(undefined[0])


def test_randomization_check_leaves_batchnorm_statistics_alone(images):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization(), keras.layers.ReLU(),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    batchnorm = model.layers[1]
    batchnorm.moving_variance.assign(np.full(4, 0.01, np.float32))   # far from N(mean, std)
    copy = metrics.randomized_model(model, mode="normal", seed=0)
    np.testing.assert_array_equal(copy.layers[1].moving_variance.numpy(), np.float32(0.01))
    assert not np.allclose(copy.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())
    scores = metrics.randomization_check(lambda m: tst.Gradient(m), model, images, targets=0,
                                         mode="normal")
    assert np.isfinite(scores.numpy()).all()


def test_max_sensitivity_takes_an_explainer_or_a_factory(cnn, images):
    explainer = tst.SmoothGrad(cnn, num_samples=3, noise_scale=0.1)
    expected = metrics.max_sensitivity(explainer, images, num_samples=2)
    by_factory = metrics.max_sensitivity(
        lambda m: tst.SmoothGrad(m, num_samples=3, noise_scale=0.1), images, model=cnn,
        num_samples=2)
    np.testing.assert_allclose(by_factory, expected, atol=1e-6)
    with pytest.raises(ValueError, match="model"):
        metrics.max_sensitivity(lambda m: tst.Gradient(m), images)


def test_every_metric_result_has_a_score(cnn):
    x = np.random.default_rng(0).uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
    h = tst.heatmap(tst.Gradient(cnn)(x))
    aupc = metrics.aupc(cnn, x, h, window=3, num_regions=2, num_copies=2)
    curve = metrics.deletion(cnn, x, h, steps=4)
    np.testing.assert_array_equal(aupc.score, aupc.aupc)
    np.testing.assert_array_equal(curve.score, curve.auc)
    np.testing.assert_array_equal(metrics.score_of(aupc), aupc.aupc)
    autvc = metrics.autvc(h, min_size=4)
    np.testing.assert_array_equal(metrics.score_of(autvc), autvc)
