"""Monte Carlo standard errors (return_error=True) against closed forms and the
spread of independent runs."""

import numpy as np
import pytest

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
], ids=["smooth_taylor", "smoothgrad"])
def test_reported_errors_match_the_spread_of_independent_runs(cnn, images, make):
    """Per element and for the heatmap, within 20 % of the spread over 40 runs with
    independent draws (other keys)."""
    explainer = make(cnn)
    runs = np.stack([explainer(images, 1, keys=np.arange(4) + 1000 * run).numpy()
                     for run in range(40)])
    estimate = explainer(images, 1, keys=np.arange(4) + 7, return_error=True)
    spread = runs.std(axis=0, ddof=1)
    ratio = np.median(estimate.standard_error.numpy() / spread, axis=(1, 2, 3))
    np.testing.assert_allclose(ratio, 1.0, atol=0.2)
    heat = estimate.attributions.numpy().sum(-1)
    reported = estimate.relative_error.numpy() * np.linalg.norm(heat.reshape(4, -1), axis=1)
    measured = np.sqrt((runs.sum(-1).std(axis=0, ddof=1) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(reported, measured, rtol=0.2)


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
