import numpy as np
import pytest

from tf_smoothtaylor.engine.quadrature import RULES, quadrature

PINNED = {
    "riemann_left": ([0, 0.25, 0.5, 0.75], [0.25] * 4),
    "riemann_right": ([0.25, 0.5, 0.75, 1.0], [0.25] * 4),
    "riemann_middle": ([0.125, 0.375, 0.625, 0.875], [0.25] * 4),
    "trapezoid": ([0, 1 / 3, 2 / 3, 1], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    "gauss_legendre": ([0.0694318442029737, 0.3300094782075719, 0.6699905217924281,
                        0.9305681557970263],
                       [0.1739274225687269, 0.3260725774312731, 0.3260725774312731,
                        0.1739274225687269]),
}


@pytest.mark.parametrize("rule", RULES)
def test_pinned_alphas_and_weights(rule):
    alphas, weights = quadrature(rule, 4)
    np.testing.assert_allclose(alphas, PINNED[rule][0], atol=1e-12)
    np.testing.assert_allclose(weights, PINNED[rule][1], atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("steps", [2, 3, 50, 301])
def test_weights_sum_to_one_and_alphas_in_unit_interval(rule, steps):
    alphas, weights = quadrature(rule, steps)
    assert len(alphas) == len(weights) == steps
    assert abs(weights.sum() - 1.0) < 1e-12
    assert alphas.min() >= 0 and alphas.max() <= 1


def test_exactness_orders():
    # Trapezoid and midpoint are exact for linear integrands; Gauss–Legendre with
    # M nodes for polynomials of degree 2M − 1.
    for rule in ("trapezoid", "riemann_middle"):
        alphas, weights = quadrature(rule, 7)
        assert abs(np.sum(weights * (3 * alphas + 2)) - 3.5) < 1e-12
    alphas, weights = quadrature("gauss_legendre", 4)
    assert abs(np.sum(weights * alphas ** 7) - 1 / 8) < 1e-12


def test_bad_arguments():
    with pytest.raises(ValueError, match="rule"):
        quadrature("simpson", 4)
    with pytest.raises(ValueError, match="steps"):
        quadrature("trapezoid", 1)
    with pytest.raises(ValueError, match="steps"):
        quadrature("riemann_right", 0)
    with pytest.raises(TypeError, match="steps"):
        quadrature("riemann_right", 2.5)


def test_public_quadrature_stays_the_function_after_explainers_are_used(linear):
    import tf_smoothtaylor as tst
    model, _ = linear
    tst.IntegratedGradients(model, steps=3)(np.ones((1, 4, 4, 2), np.float32), targets=0)
    alphas, weights = tst.quadrature("riemann_right", 4)
    np.testing.assert_allclose(alphas, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(np.sum(weights), 1.0)
