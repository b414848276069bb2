"""Adaptive noising: the paper's line search, batched over images."""

import numpy as np
import pytest
import tensorflow as tf

from tf_smoothtaylor import adaptive_noising


def sigma_objective(target_sigma, matrix):
    """On f = ½ xᵀAx, E[ST] = −σ² diag(A): this objective is minimal at σ = target."""
    mean_diag = np.diag(matrix).mean()

    def objective(images, attributions, targets):
        flat = tf.reshape(attributions, [tf.shape(attributions)[0], -1])
        estimate = -tf.reduce_mean(flat, axis=1) / mean_diag      # ≈ σ²
        return tf.abs(estimate - target_sigma ** 2)

    return objective


def test_search_lands_within_one_final_step_of_the_known_optimum(quadratic):
    model, matrix = quadratic
    if np.diag(matrix).mean() == 0:
        pytest.fail("test needs a matrix with a non-zero mean diagonal")
    rng = np.random.default_rng(0)
    images = rng.choice([-0.3, 0.3], size=(3, 2, 2, 2)).astype(np.float32)  # mean|x| = 0.3
    for target in (0.75, 0.45):
        result = adaptive_noising(model, images, targets=0,
                                  objective=sigma_objective(target, matrix),
                                  num_roots=4000, batch_size=4000, max_iterations=20)
        error = np.abs(result.noise_scale.numpy() - target)
        assert np.all(error <= result.final_step.numpy() + 0.01), (error, result.final_step)


def counting_objective(sign):
    """Every evaluation scores `sign` × (number of evaluations so far)."""
    calls = [0]

    def objective(images, attributions, targets):
        calls[0] += 1
        return tf.fill([tf.shape(images)[0]], float(sign * calls[0]))

    return objective


def test_stops_by_the_stall_rule(cnn, images):
    # Every new point is worse: 3 stalls shrink the step, the 4th stops.
    result = adaptive_noising(cnn, images[:2], objective=counting_objective(+1),
                              num_roots=2, max_iterations=20)
    assert result.iterations.numpy().tolist() == [4, 4]
    np.testing.assert_allclose(result.final_step.numpy(), 0.1 * 0.9 ** 3, rtol=1e-6)
    assert result.history_noise_scale.shape == (5, 2)          # start + 4 iterations
    # The best stays the starting point, σ = mean|x|.
    np.testing.assert_allclose(result.noise_scale.numpy(),
                               np.abs(images[:2]).reshape(2, -1).mean(1), rtol=1e-6)


def test_stops_at_max_iterations(cnn, images):
    result = adaptive_noising(cnn, images[:2], objective=counting_objective(-1),
                              num_roots=2, max_iterations=5)
    assert result.iterations.numpy().tolist() == [5, 5]
    assert result.history_noise_scale.shape == (6, 2)
    # Always better, always the + probe: σ grows by exactly 0.1 per iteration.
    np.testing.assert_allclose(result.noise_scale.numpy(),
                               np.abs(images[:2]).reshape(2, -1).mean(1) + 0.5, rtol=1e-5)


def test_batched_search_equals_separate_calls(cnn, images):
    settings = dict(objective="autvc", objective_options={"min_size": 4}, num_roots=6,
                    max_iterations=4, batch_size=16, seed=3)
    together = adaptive_noising(cnn, images[:3], **settings)
    for i in range(3):
        alone = adaptive_noising(cnn, images[i:i + 1], **settings)
        assert alone.noise_scale.numpy()[0] == pytest.approx(together.noise_scale.numpy()[i],
                                                             abs=1e-6)
        assert alone.iterations.numpy()[0] == together.iterations.numpy()[i]
        np.testing.assert_allclose(alone.attributions[0], together.attributions[i], atol=1e-5)
        assert alone.rescored.numpy()[0] == pytest.approx(together.rescored.numpy()[i], abs=1e-5)


def test_rescored_uses_fresh_draws_and_best_is_the_minimum(cnn, images):
    result = adaptive_noising(cnn, images[:2], objective="autvc",
                              objective_options={"min_size": 4}, num_roots=4, max_iterations=3)
    history = result.history_objective.numpy()
    np.testing.assert_allclose(result.objective, np.nanmin(history, axis=0), rtol=1e-6)
    assert not np.allclose(result.rescored, result.objective)


def test_aupc_objective_runs_with_pixel_transforms(cnn, images):
    result = adaptive_noising(
        cnn, images[:1], objective="aupc", num_roots=3, max_iterations=1,
        objective_options=dict(preprocess=lambda p: 2 * p - 1, deprocess=lambda x: (x + 1) / 2,
                               window=3, num_regions=3, num_copies=2))
    assert np.isfinite(result.objective.numpy()).all() and result.iterations.numpy()[0] == 1


@pytest.mark.parametrize("kwargs,error,match", [
    ({"objective": "insertion"}, ValueError, "'aupc', 'autvc'"),
    ({"step": 0.0}, ValueError, "step"),
    ({"decay": 1.5}, ValueError, "decay"),
    ({"max_stalls": -1}, ValueError, "max_stalls"),
    ({"max_iterations": 2.5}, TypeError, "max_iterations"),
    ({"num_roots": 0}, ValueError, "num_roots"),
])
def test_bad_settings(cnn, images, kwargs, error, match):
    with pytest.raises(error, match=match):
        adaptive_noising(cnn, images[:1], **kwargs)


def test_reused_search_traces_once(cnn, images):
    from tf_smoothtaylor import AdaptiveNoising
    search = AdaptiveNoising(cnn, objective="autvc", objective_options={"min_size": 4},
                             num_roots=3, max_iterations=2)
    first = search(images[:2])
    search(images[2:])
    again = search(images[:2])
    assert search.explainer.trace_count == 1
    np.testing.assert_array_equal(first.noise_scale, again.noise_scale)
