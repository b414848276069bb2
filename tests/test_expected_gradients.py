"""Expected Gradients / GradientSHAP against closed forms."""

import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst


def test_one_reference_on_a_linear_model_gives_w_times_x_minus_b_exactly(linear):
    """∇f is constant, so every sample is exactly w ⊙ (x − b), whatever α."""
    model, weights = linear
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
    b = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
    got = tst.ExpectedGradients(model, references=b, num_samples=7, batch_size=5)(x, 2)
    expected = weights[:, 2].reshape(4, 4, 2) * (x - b)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_quadratic_closed_form_and_completeness_in_expectation(quadratic):
    """f = ½ xᵀAx: E_α[(x − b) ⊙ A(b + α(x − b))] = (x − b) ⊙ A(x + b) / 2, whose sum is
    f(x) − f(b); over a reference set, Σ EG → f(x) − mean_b f(b)."""
    model, matrix = quadratic
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 2, 2, 2)).astype(np.float32)
    references = rng.normal(size=(5, 2, 2, 2)).astype(np.float32)
    flat = x.reshape(3, -1).astype(np.float64)
    b = references[0].reshape(-1).astype(np.float64)
    one = tst.ExpectedGradients(model, references=references[:1], num_samples=3000,
                                batch_size=256)(x, 0, return_error=True)
    expected = ((flat - b) * ((flat + b) @ matrix) / 2).reshape(x.shape)
    assert np.all(np.abs(one.attributions - expected) < 5 * one.standard_error)
    dataset = tf.data.Dataset.from_tensor_slices(references).batch(2)    # a tf.data set
    many = tst.ExpectedGradients(model, references=dataset, num_samples=3000,
                                 batch_size=256)(x, 0, return_error=True)
    f = lambda v: 0.5 * np.einsum("bi,ij,bj->b", v, matrix, v)  # noqa: E731
    gap = many.attributions.numpy().reshape(3, -1).sum(1) - (
        f(flat) - f(references.reshape(5, -1).astype(np.float64)).mean())
    bound = many.standard_error.numpy().reshape(3, -1).sum(1)      # ≥ SE of the sum
    assert np.all(np.abs(gap) < 5 * bound), (gap, bound)


def test_input_noise_auto_samples_and_invariances(cnn, images):
    references = np.random.default_rng(4).uniform(-1, 1, (6, 12, 12, 3)).astype(np.float32)
    shap = tst.ExpectedGradients(cnn, references=references, num_samples=20, noise_scale=0.1,
                                 batch_size=16)
    whole = shap(images, 1)
    np.testing.assert_allclose(
        tst.ExpectedGradients(cnn, references=references, num_samples=20, noise_scale=0.1,
                              batch_size=3)(images[::-1], 1)[::-1], whole, rtol=1e-5, atol=1e-7)
    auto = tst.ExpectedGradients(cnn, references=references, num_samples="auto",
                                 target_error=0.5, max_points=256)(images, 1, return_error=True)
    assert np.all((auto.relative_error.numpy() <= 0.5) | (auto.num_points == 256))


def test_bad_references_are_clear_errors(cnn):
    with pytest.raises(ValueError, match="references.*shape"):
        tst.ExpectedGradients(cnn, references=np.zeros((2, 5, 5, 3)))
    with pytest.raises(ValueError, match="references.*shape"):
        tst.ExpectedGradients(cnn, references=np.zeros((0, 12, 12, 3)))
    with pytest.raises(ValueError, match="finite"):
        tst.ExpectedGradients(cnn, references=np.full((1, 12, 12, 3), np.nan))
    with pytest.raises(TypeError, match="references"):
        tst.ExpectedGradients(cnn, references=object())
    with pytest.raises(ValueError, match="noise_scale"):
        tst.ExpectedGradients(cnn, references=np.zeros((1, 12, 12, 3)), noise_scale=-1.0)


def test_a_large_reference_set_is_a_seeded_random_subset(linear):
    """Sorted by class, the first 1000 of 4000 references are one class: the kept
    set is a uniform random subset (each class about a quarter), the same for one
    seed, another for another, and the same from an array and from a dataset."""
    model, _ = linear
    classes = np.repeat(np.arange(4), 1000)
    references = np.broadcast_to(classes[:, None, None, None].astype(np.float32),
                                 (4000, 4, 4, 2))
    kept = tst.ExpectedGradients(model, references=references, seed=3)._references.numpy()
    assert kept.shape == (1000, 4, 4, 2)
    shares = np.bincount(kept[:, 0, 0, 0].astype(int), minlength=4) / 1000
    np.testing.assert_allclose(shares, 0.25, atol=0.05)
    again = tst.ExpectedGradients(model, references=references, seed=3)._references.numpy()
    other = tst.ExpectedGradients(model, references=references, seed=4)._references.numpy()
    np.testing.assert_array_equal(again, kept)
    assert not np.array_equal(other, kept)
    dataset = tf.data.Dataset.from_tensor_slices(references).batch(64)
    streamed = tst.ExpectedGradients(model, references=dataset, seed=3)._references.numpy()
    shares = np.bincount(streamed[:, 0, 0, 0].astype(int), minlength=4) / 1000
    np.testing.assert_allclose(shares, 0.25, atol=0.05)
    with pytest.raises(ValueError, match="infinite"):
        tst.ExpectedGradients(model, references=dataset.repeat())
