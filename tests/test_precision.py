"""Monte Carlo standard errors (return_error=True) against closed forms and the
spread of independent runs."""

import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst


def test_the_standard_error_of_smooth_taylor_on_a_quadratic_is_its_closed_form(quadratic):
    """f = ½ xᵀAx: a root's contribution is v = −ε ⊙ A(x + ε), ε ~ N(0, σ²I), so
    Var(v_i) = σ² (Ax)_i² + σ⁴ (A_ii² + Σ_j A_ij²) and SE = √(Var / R)."""
    model, matrix = quadratic
    x = np.random.default_rng(5).normal(size=(2, 2, 2, 2)).astype(np.float32)
    sigma, roots = 0.7, 4000
    estimate = tst.SmoothTaylor(model, num_roots=roots, noise_scale=sigma, batch_size=256)(
        x, 0, return_error=True)
    flat = x.reshape(2, -1).astype(np.float64)
    variance = (sigma ** 2 * (flat @ matrix) ** 2
                + sigma ** 4 * (np.diag(matrix) ** 2 + (matrix ** 2).sum(1)))
    expected = np.sqrt(variance / roots).reshape(x.shape)
    np.testing.assert_allclose(estimate.standard_error, expected, rtol=0.10)
    assert estimate.num_points == roots
    # The mean itself is within a few standard errors of −σ² diag(A).
    mean = np.broadcast_to(-sigma ** 2 * np.diag(matrix).reshape(2, 2, 2), x.shape)
    assert np.all(np.abs(estimate.attributions - mean) < 5 * expected)


@pytest.mark.parametrize("make", [
    lambda m: tst.SmoothTaylor(m, num_roots=24, noise_scale=0.5, batch_size=16),
    lambda m: tst.SmoothGrad(m, num_samples=24, noise_scale=0.3, batch_size=16),
    # 8-point paths in chunks of 20 gradients: a chunk holds 2 whole paths.
    lambda m: tst.IntegratedGradients(m, steps=8, baseline="uniform", num_baselines=24,
                                      batch_size=20),
], ids=["smooth_taylor", "smoothgrad", "ig_random_baselines"])
def test_reported_errors_match_the_spread_of_independent_runs(cnn, images, make):
    """Per element and for the heatmap, within 20 % of the spread over 20 runs with
    independent draws (other keys)."""
    explainer = make(cnn)
    runs = np.stack([explainer(images, 1, keys=np.arange(4) + 1000 * run).numpy()
                     for run in range(20)])
    estimate = explainer(images, 1, keys=np.arange(4) + 7, return_error=True)
    spread = runs.std(axis=0, ddof=1)
    ratio = np.median(estimate.standard_error.numpy() / spread, axis=(1, 2, 3))
    np.testing.assert_allclose(ratio, 1.0, atol=0.2)
    heat = estimate.attributions.numpy().sum(-1)
    # r = ‖SE‖ / √(‖ĥ‖² − ‖SE‖²), so ‖SE‖ = r ‖ĥ‖ / √(1 + r²).
    relative = estimate.relative_error.numpy()
    reported = relative * np.linalg.norm(heat.reshape(4, -1), axis=1) / np.sqrt(1 + relative ** 2)
    measured = np.sqrt((runs.sum(-1).std(axis=0, ddof=1) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(reported, measured, rtol=0.2)


def test_errors_of_integrated_gradients_count_paths_not_points(cnn, images):
    ig = tst.IntegratedGradients(cnn, steps=8, baseline="uniform", num_baselines=6,
                                 batch_size=12)
    estimate = ig(images, 2, return_error=True)
    assert estimate.num_points == 6                      # baselines, each one path
    np.testing.assert_allclose(estimate.attributions, ig(images, 2), rtol=1e-5, atol=1e-8)


def test_errors_leave_the_attributions_unchanged_and_ignore_the_chunking(cnn, images):
    plain = tst.SmoothTaylor(cnn, num_roots=10, batch_size=64)
    with_error = plain(images, 2, return_error=True)
    np.testing.assert_array_equal(with_error.attributions, plain(images, 2))
    other = tst.SmoothTaylor(cnn, num_roots=10, batch_size=3)(images[::-1], 2,
                                                               return_error=True)
    np.testing.assert_allclose(other.standard_error[::-1], with_error.standard_error,
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(other.relative_error[::-1], with_error.relative_error,
                               rtol=1e-4)


def test_return_error_needs_independent_draws():
    from conftest import small_cnn
    model = small_cnn()
    x = np.zeros((1, 12, 12, 3), np.float32)
    for explainer in (tst.Gradient(model), tst.IntegratedGradients(model),
                      tst.SmoothGrad(model, statistic="variance")):
        with pytest.raises(ValueError, match="independent draws"):
            explainer(x, 0, return_error=True)
    one = tst.SmoothTaylor(model, num_roots=1)(x + 0.5, 0, return_error=True)
    assert np.isnan(one.relative_error.numpy()).all()
    with pytest.raises(TypeError, match="return_error"):
        tst.SmoothTaylor(model, num_roots=2)(x, 0, return_error="yes")


# -- the number of points chosen per image ("auto") ---------------------------------

@pytest.mark.parametrize("method, count, settings", [
    (tst.SmoothTaylor, "num_roots", dict(noise_scale=0.4)),
    (tst.SmoothGrad, "num_samples", dict(noise_scale=0.4)),
    (tst.IntegratedGradients, "num_baselines", dict(baseline="uniform", steps=8)),
], ids=["smooth_taylor", "smoothgrad", "ig_random_baselines"])
def test_auto_with_an_unreachable_target_is_the_fixed_run_and_says_so(cnn, images, method,
                                                                       count, settings):
    """Draw k of an image is draw k of a fixed-size run and rounds merge like
    chunks: capped at R with a target never met, the maps are the fixed-R maps —
    bit for bit where each round of an image is one chunk (batch_size = 32 draws),
    to float32 round-off for IG, whose rounds span several chunks — and a warning
    names the images left above the target with their errors."""
    cases = [(images[:2], 64)]
    if method is tst.SmoothTaylor:
        cases.append((images[2:3], 40))                 # 40: a shorter last round
    for x, cap in cases:
        fixed = method(cnn, **{count: cap}, **settings, batch_size=32)(
            x, 1, return_error=True)
        with pytest.warns(UserWarning, match=r"reached max_points=%d .*images .*: 0 \(" % cap):
            auto = method(cnn, **{count: "auto"}, target_error=1e-9, max_points=cap,
                          **settings, batch_size=32)(x, 1, return_error=True)
        if method is tst.IntegratedGradients:
            np.testing.assert_allclose(auto.attributions, fixed.attributions, rtol=1e-5,
                                       atol=1e-9)
        else:
            np.testing.assert_array_equal(auto.attributions, fixed.attributions)
        np.testing.assert_array_equal(auto.num_points, cap)
        np.testing.assert_allclose(auto.standard_error, fixed.standard_error, rtol=1e-5,
                                   atol=1e-9)
        np.testing.assert_allclose(auto.relative_error, fixed.relative_error, rtol=1e-5)


def _roots_needed(matrix, x, sigma, target):
    """R at which SmoothTaylor's heatmap on f = ½ xᵀAx ((H, W, 2) inputs) reaches the
    relative error ``target``: with b = Ax, the roots' contributions have
    Cov(v_i, v_j) = σ² b_i² δ_ij + σ⁴ (δ_ij Σ_k A_ik² + A_ij A_ji), the heatmap sums
    each pixel's two channels, and its mean is −σ² diag(A) summed likewise."""
    b = matrix @ x.reshape(-1).astype(np.float64)
    cov = sigma ** 2 * np.diag(b ** 2) + sigma ** 4 * (np.diag((matrix ** 2).sum(1))
                                                      + matrix * matrix.T)
    pixels = np.kron(np.eye(len(b) // 2), np.ones((1, 2)))
    mean = pixels @ (-sigma ** 2 * np.diag(matrix))
    return np.trace(pixels @ cov @ pixels.T) / (target ** 2 * (mean ** 2).sum())


def test_auto_stops_near_the_closed_form_count():
    """On a 72-dimensional quadratic (36 heatmap pixels), each image's stop (median
    of 5 runs) is within 10 % of the analytic R (≈ 1200–1600 roots here): the
    rule plans from its error estimates, so it lands within their noise, rounded up
    to whole 32-root rounds."""
    import keras
    from conftest import Quadratic
    rng = np.random.default_rng(3)
    half = rng.normal(size=(72, 72)) / np.sqrt(72)
    matrix = ((half + half.T) / 2 + np.diag(rng.uniform(1, 2, 72))).astype(np.float32)
    model = keras.Sequential([keras.Input((6, 6, 2)), Quadratic(matrix)])
    x = np.random.default_rng(5).normal(size=(4, 6, 6, 2)).astype(np.float32)
    sigma, target = 0.5, 0.05
    expected = np.array([_roots_needed(matrix.astype(np.float64), xi, sigma, target)
                         for xi in x])
    explainer = tst.SmoothTaylor(model, num_roots="auto", target_error=target,
                                 noise_scale=sigma, batch_size=256, max_points=5000)
    spent = np.median([explainer(x, 0, keys=np.arange(4) + 100 * run,
                                 return_error=True).num_points for run in range(5)], axis=0)
    assert np.all(np.abs(spent - expected) <= 0.1 * expected), (spent, expected)


def test_auto_ignores_batch_size_order_and_company(cnn, images):
    auto = dict(num_roots="auto", target_error=0.6, max_points=600)
    together = tst.SmoothTaylor(cnn, batch_size=64, **auto)(images, 3, return_error=True)
    assert len(set(together.num_points.tolist())) > 1       # images stop on their own
    assert np.all(together.relative_error.numpy() <= 0.6)
    reordered = tst.SmoothTaylor(cnn, batch_size=7, **auto)(images[::-1], 3,
                                                            return_error=True)
    np.testing.assert_array_equal(reordered.num_points[::-1], together.num_points)
    np.testing.assert_allclose(reordered.attributions[::-1], together.attributions,
                               rtol=1e-5, atol=1e-7)
    alone = tst.SmoothTaylor(cnn, batch_size=7, **auto)(images[1:2], 3, return_error=True)
    assert alone.num_points[0] == together.num_points[1]
    np.testing.assert_allclose(alone.attributions[0], together.attributions[1],
                               rtol=1e-5, atol=1e-7)
    plain = tst.SmoothTaylor(cnn, batch_size=64, **auto)(images, 3)
    np.testing.assert_array_equal(plain, together.attributions)


def test_bad_auto_settings_are_clear_errors(cnn):
    cases = [
        (dict(num_roots="auto", target_error=0), ValueError, "target_error"),
        (dict(num_roots="auto", target_error=-0.1), ValueError, "target_error"),
        (dict(num_roots="auto", max_points=0), ValueError, "max_points"),
        (dict(num_roots="many"), ValueError, "num_roots.*'auto'"),
        (dict(num_roots=100, target_error=0.05), ValueError, "only with num_roots='auto'"),
        (dict(num_roots=100, max_points=500), ValueError, "only with num_roots='auto'"),
    ]
    for settings, error, message in cases:
        with pytest.raises(error, match=message):
            tst.SmoothTaylor(cnn, **settings)
    with pytest.raises(ValueError, match="statistic='mean' and a gradient base"):
        tst.SmoothGrad(cnn, num_samples="auto", statistic="variance")
    with pytest.raises(TypeError, match="steps"):
        tst.IntegratedGradients(cnn, steps="auto")              # deterministic
    auto = tst.SmoothTaylor(cnn, num_roots="auto")
    assert auto.settings()["target_error"] == 0.05 and auto.settings()["max_points"] == 2000
    with pytest.raises(ValueError, match="fixed number of points"):
        tst.serving.export(tst.demo.load(), "/tmp/never_written", num_roots="auto")
    with pytest.raises(ValueError, match="fixed number of points"):
        next(tst.distribute.iter_explain_dataset(
            auto, tf.data.Dataset.from_tensors(np.zeros((1, 12, 12, 3), np.float32))))


def test_convergence_curves_are_prefixes_of_one_run(cnn, images):
    """The curve at R is the R-draw map (the same draws as a plain run); the
    relative error falls with R."""
    explainer = tst.SmoothTaylor(cnn, num_roots=64, noise_scale=0.5)
    table = tst.convergence.curves(explainer, images[:2], 1, counts=[8, 32],
                                   autvc_options=dict(min_size=4))
    direct = tst.SmoothTaylor(cnn, num_roots=32, noise_scale=0.5)(images[:2], 1,
                                                                   return_error=True)
    np.testing.assert_allclose(table["relative_error"][1], direct.relative_error, rtol=1e-5)
    assert np.all(np.diff(table["relative_error"], axis=0) < 0)
    assert table["autvc"].shape == (2, 2) and np.isfinite(table["autvc"]).all()
    with pytest.raises(ValueError, match="independent draws"):
        tst.convergence.curves(tst.Gradient(cnn), images, 1, counts=[8, 16])
    with pytest.raises(ValueError, match="counts"):
        tst.convergence.curves(explainer, images, 1, counts=[16, 8])


def test_messages_name_every_monte_carlo_method(cnn):
    """Every method with a draw count (SmoothTaylor, SmoothGrad, IG, Expected
    Gradients, RISE) is named in the messages about standard errors, by class in
    Python and by --method name on the command line."""
    from tf_smoothtaylor.methods import BY_NAME
    from tf_smoothtaylor.methods.base import MONTE_CARLO, MONTE_CARLO_NAMES
    monte_carlo = {name: cls for name, cls in BY_NAME.items() if hasattr(cls, "draw_setting")}
    assert sorted(monte_carlo) == ["expected_gradients", "integrated_gradients", "rise",
                                   "smooth_taylor", "smoothgrad"]
    with pytest.raises(ValueError) as caught:
        tst.Gradient(cnn)(np.zeros((1, 12, 12, 3), np.float32), 0, return_error=True)
    for name, cls in monte_carlo.items():
        assert cls.__name__ in str(caught.value) and cls.__name__ in MONTE_CARLO
        assert name in MONTE_CARLO_NAMES
