"""The engine at scale: isolated per-image sums, centred second moments,
variable-size models and caller-given random keys."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor.engine import streams as _random


def _normalising_model(shape=(4, 4, 2)):
    """f_c(x) = Σ_e W_ec x_e · √(mean(x) − ¼): NaN wherever mean(x) < ¼, as for an
    all-zero image and points near it (or on its IG path)."""
    weights = np.random.default_rng(3).normal(size=(int(np.prod(shape)), 3))
    inputs = keras.Input(shape)
    flat = keras.layers.Flatten()(inputs)

    def logits(v):
        scale = keras.ops.sqrt(keras.ops.mean(v, axis=-1, keepdims=True) - 0.25)
        return scale * keras.ops.sum(v[:, None, :] * keras.ops.cast(weights.T, v.dtype),
                                     axis=-1)

    return keras.Model(inputs, keras.layers.Lambda(logits)(flat))


POISON_METHODS = {
    "smooth_taylor": lambda m, **kw: tst.SmoothTaylor(m, num_roots=5, noise_scale=0.01,
                                                      **kw),
    "integrated_gradients": lambda m, **kw: tst.IntegratedGradients(
        m, steps=4, baseline=np.full((4, 4, 2), 0.5, np.float32), **kw),
    "vargrad": lambda m, **kw: tst.SmoothGrad(m, num_samples=5, noise_scale=0.01,
                                              noise_level=None, statistic="variance", **kw),
    "gradient": lambda m, **kw: tst.Gradient(m, **kw),
}


# XLA and float16 each change how a chunk is computed; each is tested on its own.
@pytest.mark.parametrize("jit_compile, policy", [(False, "float32"), (False, "mixed_float16"),
                                                 (True, "float32")])
@pytest.mark.parametrize("method", sorted(POISON_METHODS))
def test_a_non_finite_gradient_stays_in_its_own_row(method, jit_compile, policy):
    keras.mixed_precision.set_global_policy(policy)
    model = _normalising_model()
    keras.mixed_precision.set_global_policy("float32")
    healthy = np.random.default_rng(0).uniform(0.5, 1.5, (4, 4, 4, 2)).astype(np.float32)
    poisoned = healthy.copy()
    poisoned[2] = 0.0
    # XLA compiles each chunk size anew: a chunk of one and a partial chunk of seven there.
    for batch_size in (1, 7) if jit_compile else (1, 2, 7, 64):
        explainer = POISON_METHODS[method](model, batch_size=batch_size,
                                           jit_compile=jit_compile)
        clean = explainer(healthy, targets=1).numpy()
        assert np.isfinite(clean).all()
        with pytest.warns(UserWarning, match=r"images \[2\] .* not finite"):
            got = explainer(poisoned, targets=1).numpy()
        # Same chunks, same model batches: the other rows are bit for bit those of
        # the clean batch.
        np.testing.assert_array_equal(np.delete(got, 2, axis=0), np.delete(clean, 2, axis=0))
        assert not np.isfinite(got[2]).all()
        # Explained without the poisoned image, their points fall into other chunks
        # (and the model sees other batch sizes): only round-off may differ.
        alone = explainer(np.delete(healthy, 2, axis=0), targets=1).numpy()
        tolerance = 1e-5 if policy == "float32" else 1e-3           # float16 round-off
        np.testing.assert_allclose(np.delete(got, 2, axis=0), alone, rtol=tolerance,
                                   atol=tolerance / 10)


@pytest.mark.parametrize("ratio", [1e2, 1e3, 1e4])
def test_vargrad_is_exact_when_values_dwarf_their_spread(ratio):
    """VarGrad of Gradient × Input on a linear model against a float64 reference
    from the same noise: |x|/σ up to 1e4 (caffe-mode pixels reach ±150)."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(8, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((2, 2, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(1, use_bias=False)])
    model.layers[-1].set_weights([weights])
    sigma, samples = 0.1, 37
    x = (ratio * sigma * rng.choice([-1.0, 1.0], (2, 2, 2, 2)) * rng.uniform(
        0.5, 1.0, (2, 2, 2, 2))).astype(np.float32)
    explainer = tst.SmoothGrad(model, num_samples=samples, noise_scale=sigma,
                               noise_level=None, statistic="variance",
                               base="gradient_x_input", batch_size=8)
    got = explainer(x, targets=0).numpy()
    keys = _random.image_keys(x, 0)
    w = weights.reshape(2, 2, 2).astype(np.float64)
    for i in range(2):
        rows = keys.gather(tf.zeros([samples], tf.int32) + i)
        noise = _random.normal(rows, _random.SMOOTHING, tf.range(samples), [2, 2, 2],
                               scale=tf.fill([samples], sigma)).numpy()
        noisy = (x[i] + noise).astype(np.float64)        # the points, as the engine makes them
        reference = (noisy * w).var(axis=0)
        assert np.max(np.abs(got[i] - reference) / reference) < 1e-3
    square = tst.SmoothGrad(model, num_samples=samples, noise_scale=sigma, noise_level=None,
                            statistic="square", base="gradient_x_input")(x, targets=0)
    mean = tst.SmoothGrad(model, num_samples=samples, noise_scale=sigma, noise_level=None,
                          base="gradient_x_input")(x, targets=0)
    np.testing.assert_allclose(square, got + mean.numpy() ** 2, rtol=1e-5)


def _fully_convolutional(shape):
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input(shape), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Conv2D(3, 1), keras.layers.GlobalAveragePooling2D()])


VARIABLE_METHODS = {
    "smooth_taylor": lambda m: tst.SmoothTaylor(m, num_roots=6, noise_scale=0.3, batch_size=4),
    "smoothgrad": lambda m: tst.SmoothGrad(m, num_samples=6, batch_size=4),
    "ig_uniform": lambda m: tst.IntegratedGradients(m, steps=3, baseline="uniform",
                                                    num_baselines=2, batch_size=4),
    "ig_zero": lambda m: tst.IntegratedGradients(m, steps=5, batch_size=4),
}


@pytest.mark.parametrize("method", sorted(VARIABLE_METHODS))
def test_variable_size_models_explain_every_image_size(method):
    variable = _fully_convolutional((None, None, 3))
    explainer = VARIABLE_METHODS[method](variable)
    rng = np.random.default_rng(4)
    for shape in ((12, 12), (9, 14)):
        x = rng.uniform(-1, 1, (3, *shape, 3)).astype(np.float32)
        fixed = _fully_convolutional((*shape, 3))
        fixed.set_weights(variable.get_weights())
        reference = VARIABLE_METHODS[method](fixed)(x, targets=2).numpy()
        got = explainer(x, targets=2).numpy()
        assert np.abs(reference).max() > 0
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)
    assert explainer.trace_count == 1


def test_caller_keys_pin_the_draws(cnn, images):
    explainer = tst.SmoothTaylor(cnn, num_roots=8, noise_scale=0.3, batch_size=5)
    keys = np.array([11, 12, 13, 14])
    pinned = explainer(images, targets=0, keys=keys).numpy()
    # One ulp of difference in every pixel (another resize, say): content keys give
    # other roots; caller keys give the same roots, hence nearly the same map.
    nudged = np.nextafter(images, np.float32(2))
    by_content = explainer(images, targets=0).numpy()
    relative = np.linalg.norm(explainer(nudged, targets=0) - by_content) / np.linalg.norm(
        by_content)
    assert relative > 0.1
    np.testing.assert_allclose(explainer(nudged, targets=0, keys=keys), pinned, atol=1e-4)
    order = np.array([3, 1, 0, 2])
    np.testing.assert_allclose(explainer(images[order], targets=0, keys=keys[order]),
                               pinned[order], atol=1e-6)
    other = explainer(images, targets=0, keys=keys + 1).numpy()
    assert np.linalg.norm(other - pinned) / np.linalg.norm(pinned) > 0.1
    for bad, error in (([1, 2], ValueError), (np.array([1.5, 2, 3, 4]), TypeError)):
        with pytest.raises(error, match="`keys`"):
            explainer(images, keys=bad)


def test_no_warning_for_finite_maps(cnn, images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tst.IntegratedGradients(cnn, steps=3)(images)


@pytest.mark.parametrize("statistic", ["mean", "variance"])
def test_gpu_machines_sum_without_reading_segment_ids_back(monkeypatch, cnn, images, statistic):
    """A sorted segment sum sizes its output from its last id, which a GPU kernel must
    copy to the host; on a machine with a GPU the engine uses the unsorted sum, whose
    size is given. Simulated here by making TensorFlow report a GPU while tracing."""
    from test_random import _graph_ops

    def make():
        return tst.SmoothGrad(cnn, num_samples=7, statistic=statistic, batch_size=5)

    reference = make()(images, targets=1).numpy()
    listed = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["/device:GPU:0"] if kind == "GPU" else listed(kind))
    explainer = make()
    got = explainer(images, targets=1).numpy()
    ops = {node.op for node in _graph_ops(explainer, images)}
    assert "UnsortedSegmentSum" in ops and "SegmentSum" not in ops
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7)


class _LargestBatch(keras.layers.Layer):
    """Identity that records the largest batch it is run on."""

    def build(self, shape):
        self.largest = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                       dtype="int32", name="largest")

    def call(self, x):
        self.largest.assign(keras.ops.maximum(self.largest, keras.ops.shape(x)[0]))
        return x


def _recording_cnn():
    recorder = _LargestBatch()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)), recorder,
                              keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    return model, recorder


BOUNDED = {
    "smooth_taylor_auto": lambda m: tst.SmoothTaylor(m, num_roots="auto", max_points=70,
                                                     batch_size=16),
    "ig_200_steps_uniform": lambda m: tst.IntegratedGradients(
        m, steps=200, baseline="uniform", num_baselines=3, batch_size=16),
    "ig_200_steps_auto": lambda m: tst.IntegratedGradients(
        m, steps=200, baseline="uniform", num_baselines="auto", max_points=3, batch_size=16),
    "vargrad": lambda m: tst.SmoothGrad(m, num_samples=20, statistic="variance",
                                        batch_size=16),
    "smoothgrad_over_ig": lambda m: tst.SmoothGrad(
        m, num_samples=2, base=tst.IntegratedGradients(m, steps=30), batch_size=16),
    "gradient": lambda m: tst.Gradient(m, batch_size=16),
    "gradient_x_input": lambda m: tst.GradientXInput(m, batch_size=16),
    "grad_cam": lambda m: tst.GradCAM(m, batch_size=16),
    "occlusion": lambda m: tst.Occlusion(m, window=2, batch_size=16),
    "rise_auto": lambda m: tst.RISE(m, num_masks="auto", max_points=70, batch_size=16),
    "blur_ig": lambda m: tst.BlurIntegratedGradients(m, steps=40, batch_size=16),
    "expected_gradients": lambda m: tst.ExpectedGradients(
        m, references=np.zeros((3, 12, 12, 3), np.float32), num_samples=40, batch_size=16),
}


@pytest.mark.parametrize("method", sorted(BOUNDED))
def test_the_model_never_sees_more_than_batch_size_inputs(method):
    """Memory depends on batch_size only: with standard errors (whole IG paths of
    200 points were once one chunk), "auto" rounds, control variates and top-1
    targets, the model runs on at most batch_size = 16 inputs at a time."""
    model, recorder = _recording_cnn()
    explainer = BOUNDED[method](model)
    x = np.random.default_rng(0).uniform(-1, 1, (20, 12, 12, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # "auto" capped at max_points: warned
        if explainer.independent_points:
            explainer(x, return_error=True)
        else:
            explainer(x)
    assert 0 < int(recorder.largest.numpy()) <= 16
