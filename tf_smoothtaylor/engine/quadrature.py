"""Quadrature rules on [0, 1] for path integrals (Integrated Gradients).

Each rule returns ``(alphas, weights)`` for ``steps`` gradient evaluations so
that ``∫₀¹ g(α) dα ≈ Σ_m weights[m] · g(alphas[m])``. The weights of every rule
sum to exactly 1, so a constant integrand is integrated exactly.

| rule             | alphas                      | weights                         |
|------------------|-----------------------------|---------------------------------|
| riemann_left     | m/M, m = 0 … M−1            | 1/M                             |
| riemann_right    | m/M, m = 1 … M (the paper)  | 1/M                             |
| riemann_middle   | (m + ½)/M, m = 0 … M−1      | 1/M                             |
| trapezoid        | m/(M−1), m = 0 … M−1        | 1/(M−1), halved at both ends    |
| gauss_legendre   | Legendre nodes mapped to [0,1] | Legendre weights / 2         |
"""

from typing import Tuple

import numpy as np

from tf_smoothtaylor.engine import checks as _checks

RULES = ("riemann_left", "riemann_right", "riemann_middle", "trapezoid",
         "gauss_legendre")


def quadrature(rule: str, steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of a quadrature rule on [0, 1].

    Args:
      rule: One of ``RULES``.
      steps: Number of nodes M (>= 2 for ``trapezoid``).

    Returns:
      ``(alphas, weights)``, float64 arrays of length ``steps``; weights sum to 1.

    Raises:
      ValueError: unknown rule or too few steps.

    Example:
      >>> alphas, weights = quadrature("trapezoid", 3)
      >>> alphas.tolist(), weights.tolist()
      ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    _checks.one_of("rule", rule, RULES)
    steps = _checks.positive_int("steps", steps,
                                 minimum=2 if rule == "trapezoid" else 1)
    m = np.arange(steps, dtype=np.float64)
    uniform = np.full(steps, 1.0 / steps)
    if rule == "riemann_left":
        return m / steps, uniform
    if rule == "riemann_right":
        return (m + 1.0) / steps, uniform
    if rule == "riemann_middle":
        return (m + 0.5) / steps, uniform
    if rule == "trapezoid":
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] *= 0.5
        return m / (steps - 1), weights
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0
