"""The scheme interface: what a method supplies, and what the engine derives."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_smoothtaylor.engine import streams as _random
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.methods import BY_NAME
from tf_smoothtaylor.methods.base import Explainer


def _linear():
    """f_0(x) = w·x on (2, 2, 1) inputs."""
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    w = np.array([[1.0, 0.0], [-2.0, 0.0], [0.5, 0.0], [3.0, 0.0]], np.float32)
    model.layers[-1].set_weights([w, np.zeros(2, np.float32)])
    return model, w[:, 0].reshape(2, 2, 1)


class TwoPointScheme(Scheme):
    """A toy Monte Carlo method: draw j is two points at x with multiplier u_j
    (one uniform number per draw), weighted 1/4 and 3/4 within the draw; for
    f = w·x a draw's value is u_j ⊙ w."""

    uses_random = True
    independent_points = True

    def __init__(self, *, draws: int, own_weights: bool):
        super().__init__(num_points=2 * draws, draw_size=2)
        self.own_weights = own_weights
        if not own_weights:
            self.draw_weights = np.array([0.25, 0.75])

    def points(self, x, params, keys, k):
        u = _random.uniform(keys, _random.PERTURBATION, k // 2, [1])
        multiplier = tf.broadcast_to(tf.reshape(u, [-1, 1, 1, 1]), tf.shape(x))
        weights = tf.gather(tf.constant([0.25, 0.75]), k % 2) if self.own_weights else None
        return x, multiplier, weights


class TwoPointDraws(Explainer):
    """The toy method's explainer: it holds the settings (set after
    ``Explainer.__init__``, which is allowed: the scheme is made from them when the
    engine first needs it)."""

    def __init__(self, model, *, draws: int = 6, own_weights: bool = False,
                 batch_size: int = 3, seed: int = 0, jit_compile: bool = False):
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        self.draws, self.own_weights = draws, own_weights

    def make_scheme(self):
        return TwoPointScheme(draws=self.draws, own_weights=self.own_weights)


def test_the_engine_weighs_each_draw_from_the_draw_weights():
    """A draw of two points (weights 1/4 and 3/4, not divided by the number of draws
    by the method) is one estimate u_j ⊙ w; the map is their mean and the standard
    error their spread, √(s²/n), exactly, whatever the chunking across draws."""
    model, w = _linear()
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype(np.float32)
    keys = np.arange(3) + 11
    estimate = TwoPointDraws(model, draws=6)(x, 0, keys=keys, return_error=True)
    u = _random.uniform(_random.user_keys(keys, 0).gather(np.repeat(np.arange(3), 6)),
                        _random.PERTURBATION, np.tile(np.arange(6), 3), [1]).numpy()
    u = u.reshape(3, 6)
    np.testing.assert_allclose(estimate.attributions, u.mean(1)[:, None, None, None] * w,
                               rtol=1e-5)
    spread = u.std(axis=1, ddof=1) / np.sqrt(6)
    np.testing.assert_allclose(estimate.standard_error,
                               spread[:, None, None, None] * np.abs(w), rtol=1e-4)
    plain = TwoPointDraws(model, draws=6, batch_size=5)(x, 0, keys=keys)
    np.testing.assert_allclose(plain, estimate.attributions, rtol=1e-5)


def test_a_scheme_that_weighs_its_own_multi_point_draws_is_refused():
    """Weights returned by points() cannot tell the engine how a draw is weighed:
    refused with a message naming draw_weights, not silently wrong errors."""
    model, _ = _linear()
    x = np.zeros((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="draw_weights"):
        TwoPointDraws(model, own_weights=True)(x, 0, return_error=True)


def test_a_scheme_takes_only_the_attributes_the_engine_reads():
    """A misspelt scheme attribute is a TypeError naming it, not a silent default."""
    with pytest.raises(TypeError, match="num_point=3"):
        Scheme(num_point=3)


def test_every_explainer_holds_settings_and_delegates_to_a_scheme_of_its_own():
    """The user-facing explainer is not the engine's scheme: it makes one from its
    settings, and its point count is the scheme's."""
    model, _ = _linear()
    references = np.zeros((2, 2, 2, 1), np.float32)
    for name, cls in BY_NAME.items():
        if name.startswith("grad_cam"):
            continue                      # a dense toy has no feature map
        kwargs = {"references": references} if name == "expected_gradients" else {}
        if name == "occlusion":
            kwargs["window"] = 1
        explainer = cls(model, **kwargs)
        assert not isinstance(explainer, Scheme) and isinstance(explainer.scheme, Scheme)
        assert explainer.num_points == explainer.scheme.num_points >= 1
