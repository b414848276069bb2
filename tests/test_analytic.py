"""Methods against closed-form answers on linear and quadratic models."""

import numpy as np
import pytest

import tf_smoothtaylor as tst
from tf_smoothtaylor.engine.quadrature import RULES


@pytest.mark.parametrize("rule", RULES)
def test_ig_of_linear_model_is_difference_times_weights(linear, rule):
    model, weights = linear
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
    baseline = rng.normal(size=(4, 4, 2)).astype(np.float32)
    ig = tst.IntegratedGradients(model, steps=7, rule=rule, baseline=baseline)
    targets = np.array([0, 2, 1])
    got = ig(x, targets=targets).numpy()
    expected = (x - baseline) * weights[:, targets].T.reshape(3, 4, 4, 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_gradient_and_gradient_x_input_of_linear_model(linear):
    model, weights = linear
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 2)).astype(np.float32)
    w = weights[:, 1].reshape(4, 4, 2)
    np.testing.assert_allclose(tst.Gradient(model)(x, targets=1), np.broadcast_to(w, x.shape),
                               atol=1e-6)
    np.testing.assert_allclose(tst.GradientXInput(model)(x, targets=1), x * w, atol=1e-6)


@pytest.mark.parametrize("rule,factor", [
    ("trapezoid", lambda m: 1.0), ("riemann_middle", lambda m: 1.0),
    ("gauss_legendre", lambda m: 1.0), ("riemann_right", lambda m: (m + 1) / m),
    ("riemann_left", lambda m: (m - 1) / m)])
def test_ig_of_quadratic_model(quadratic, rule, factor):
    # f = ½ xᵀAx, zero baseline: IG = x ⊙ A x ∫α dα = ½ x ⊙ Ax (exact rules);
    # Riemann sums give Σ m/M² = (M ± 1)/(2M), i.e. (M ± 1)/M × the closed form.
    model, matrix = quadratic
    x = np.random.default_rng(2).normal(size=(3, 2, 2, 2)).astype(np.float32)
    flat = x.reshape(3, 8).astype(np.float64)
    closed = (0.5 * flat * (flat @ matrix)).reshape(x.shape)
    steps = 10
    got = tst.IntegratedGradients(model, steps=steps, rule=rule)(x, targets=0).numpy()
    np.testing.assert_allclose(got, factor(steps) * closed, rtol=1e-4, atol=1e-5)


def test_smooth_taylor_of_quadratic_model_approaches_minus_sigma2_diag(quadratic):
    # E[(x − z) ⊙ A z] with z = x + ε, ε ~ N(0, σ²I) is −σ² diag(A) per element.
    model, matrix = quadratic
    sigma, roots = 0.7, 6000
    x = np.random.default_rng(3).normal(size=(2, 2, 2, 2)).astype(np.float32)
    got = tst.SmoothTaylor(model, num_roots=roots, noise_scale=sigma,
                           batch_size=1000)(x, targets=0).numpy().reshape(2, 8)
    expected = -sigma ** 2 * np.diag(matrix)
    # Per element, -ε_i (A(x + ε))_i has variance σ²(Ax)_i² + σ⁴(Σ_j A_ij² + A_ii²).
    flat = x.reshape(2, 8).astype(np.float64)
    variance = sigma ** 2 * (flat @ matrix) ** 2 + sigma ** 4 * (
        (matrix ** 2).sum(1) + np.diag(matrix) ** 2)
    stderr = np.sqrt(variance / roots)
    assert np.all(np.abs(got - expected) < 5 * stderr), (got - expected) / stderr


def test_smoothgrad_statistics_of_quadratic_model(quadratic):
    # ∇f(x + ε) = A(x + ε): mean → Ax, variance → σ² Σ_j A_ij², square → sum of both.
    model, matrix = quadratic
    sigma, samples = 0.5, 6000
    x = np.random.default_rng(4).normal(size=(1, 2, 2, 2)).astype(np.float32)
    flat = x.reshape(1, 8).astype(np.float64)
    mean = flat @ matrix
    var = sigma ** 2 * (matrix ** 2).sum(1)[None]
    results = {}
    for statistic in ("mean", "square", "variance"):
        explainer = tst.SmoothGrad(model, num_samples=samples, noise_scale=sigma,
                                   noise_level=None, statistic=statistic, batch_size=1000)
        results[statistic] = explainer(x, targets=0).numpy().reshape(1, 8)
    stderr = np.sqrt(var / samples)
    assert np.all(np.abs(results["mean"] - mean) < 5 * stderr)
    np.testing.assert_allclose(results["variance"], var, rtol=0.1)
    np.testing.assert_allclose(results["square"], mean ** 2 + var, rtol=0.1, atol=0.05)
    np.testing.assert_allclose(results["square"] - results["mean"] ** 2,
                               results["variance"], rtol=1e-3, atol=1e-4)


def test_smoothgrad_over_ig_is_mean_of_ig_on_noisy_inputs(linear):
    # For a linear model IG(x+ε; b) = (x + ε − b) ⊙ w, so its mean over ε is near
    # (x − b) ⊙ w, and with vanishing noise it is exactly that.
    model, weights = linear
    x = np.random.default_rng(5).normal(size=(2, 4, 4, 2)).astype(np.float32)
    ig = tst.IntegratedGradients(model, steps=4)
    smooth = tst.SmoothGrad(model, base=ig, num_samples=3, noise_scale=1e-6, noise_level=None)
    np.testing.assert_allclose(smooth(x, targets=2), ig(x, targets=2), atol=1e-5)


def test_smooth_taylor_with_tiny_noise_is_close_to_zero_for_linear_model(linear):
    # For a linear f, (x − z) ⊙ ∇f(z) = −ε ⊙ w averages to 0: the map is pure noise
    # of size σ|w|/√R, so tiny σ gives a near-zero map.
    model, _ = linear
    x = np.random.default_rng(6).normal(size=(1, 4, 4, 2)).astype(np.float32)
    got = tst.SmoothTaylor(model, num_roots=10, noise_scale=1e-4)(x, targets=0)
    assert float(np.max(np.abs(got))) < 1e-3
