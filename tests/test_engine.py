"""Engine invariants: chunking, batch composition, order, seeds, traces, dtypes."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from conftest import max_abs_diff, small_cnn

METHODS = {
    "smooth_taylor": lambda m, **kw: tst.SmoothTaylor(m, num_roots=9, noise_scale=0.3, **kw),
    "ig_zero": lambda m, **kw: tst.IntegratedGradients(m, steps=9, **kw),
    "ig_uniform": lambda m, **kw: tst.IntegratedGradients(
        m, steps=5, baseline="uniform", num_baselines=3, preprocess=lambda p: 2 * p - 1, **kw),
    "smoothgrad": lambda m, **kw: tst.SmoothGrad(m, num_samples=9, **kw),
    "vargrad": lambda m, **kw: tst.SmoothGrad(m, num_samples=9, statistic="variance", **kw),
    "smoothgrad_ig": lambda m, **kw: tst.SmoothGrad(
        m, num_samples=3, base=tst.IntegratedGradients(m, steps=3), **kw),
    "gradient": lambda m, **kw: tst.Gradient(m, **kw),
    "gradient_x_input": lambda m, **kw: tst.GradientXInput(m, **kw),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_chunk_size_batch_composition_and_order_do_not_change_results(cnn, images, method):
    reference = METHODS[method](cnn, batch_size=64)(images).numpy()
    assert np.abs(reference).max() > 0
    for batch_size in (1, 7):
        explainer = METHODS[method](cnn, batch_size=batch_size)
        assert max_abs_diff(explainer(images), reference) <= 1e-5
    explainer = METHODS[method](cnn, batch_size=7)
    order = np.array([2, 0, 3, 1])
    assert max_abs_diff(explainer(images[order]), reference[order]) <= 1e-5
    for i in range(len(images)):
        assert max_abs_diff(explainer(images[i:i + 1]), reference[i:i + 1]) <= 1e-5


@pytest.mark.parametrize("method", ["smooth_taylor", "ig_uniform", "smoothgrad"])
def test_same_seed_same_result_other_seed_different(cnn, images, method):
    first = METHODS[method](cnn, seed=1)(images).numpy()
    again = METHODS[method](cnn, seed=1)(images).numpy()
    other = METHODS[method](cnn, seed=2)(images).numpy()
    assert max_abs_diff(first, again) == 0.0
    assert max_abs_diff(first, other) > 1e-3


def test_smooth_taylor_draws_are_independent_and_repeatable(cnn, images):
    explainer = METHODS["smooth_taylor"](cnn)
    assert max_abs_diff(explainer(images, draw=1), explainer(images, draw=1)) == 0.0
    assert max_abs_diff(explainer(images, draw=1), explainer(images)) > 1e-3


@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_trace_across_calls_with_new_data(cnn, images, method):
    explainer = METHODS[method](cnn, batch_size=5)
    rng = np.random.default_rng(7)
    for batch in (1, 3, 4, 2):
        explainer(rng.uniform(-1, 1, (batch, 12, 12, 3)).astype(np.float32))
        explainer(rng.uniform(-1, 1, (batch, 12, 12, 3)), targets=np.arange(batch) % 5)
    assert explainer.trace_count == 1


def test_top1_default_target_and_per_image_targets(cnn, images):
    explainer = tst.Gradient(cnn)
    top1 = np.argmax(cnn(images).numpy(), axis=-1)
    np.testing.assert_array_equal(explainer(images), explainer(images, targets=top1))
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        value = tf.reduce_sum(cnn(x)[:, 3])
    np.testing.assert_allclose(explainer(images, targets=3), tape.gradient(value, x), atol=1e-6)


def test_callable_target_for_other_heads(cnn, images):
    explainer = tst.Gradient(cnn)
    total = explainer(images, targets=lambda out: tf.reduce_sum(out, axis=-1)).numpy()
    summed = sum(explainer(images, targets=c).numpy() for c in range(5))
    np.testing.assert_allclose(total, summed, atol=1e-5)


def test_callable_targets_keep_a_bounded_number_of_compiled_functions(cnn, images):
    from tf_smoothtaylor.engine import MAX_CALLABLE_TARGETS
    explainer = tst.Gradient(cnn)
    by_index = explainer(images, targets=1).numpy()
    reused = lambda out: out[:, 1]  # noqa: E731
    for step in range(MAX_CALLABLE_TARGETS + 1):        # one more than are kept
        fresh = explainer(images, targets=lambda out, c=step % 5: out[:, c]).numpy()
        np.testing.assert_allclose(fresh, explainer(images, targets=step % 5), atol=1e-6)
        np.testing.assert_allclose(explainer(images, targets=reused), by_index, atol=1e-6)
    compiled = explainer._engine._compiled              # keyed (variant, target)
    assert (None, None) in compiled and (None, reused) in compiled
    assert len(compiled) == MAX_CALLABLE_TARGETS + 1
    traces = explainer.trace_count
    explainer(images, targets=reused)                       # kept: most recently used
    assert explainer.trace_count == traces


def test_multi_output_model_with_callable_target(images):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(pooled), keras.layers.Dense(3)(pooled)])
    explainer = tst.Gradient(model)
    got = explainer(images, targets=lambda outs: outs[1][:, 2])
    kernel = model.layers[-1].kernel.numpy()[:, 2] / (12 * 12)
    np.testing.assert_allclose(got, np.broadcast_to(kernel, images.shape), atol=1e-6)
    with pytest.raises(ValueError, match="targets"):
        explainer(images)


def test_softmax_is_stripped_and_logits_explained(images):
    logits_model = small_cnn(activation=None, seed=4)
    softmax_model = small_cnn(activation="softmax", seed=4)
    stacked = keras.Sequential([keras.Input((12, 12, 3))] + small_cnn(seed=4).layers
                               + [keras.layers.Softmax()])
    reference = tst.Gradient(logits_model)(images, targets=1).numpy()
    for model in (softmax_model, stacked):
        explainer = tst.Gradient(model)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = explainer(images, targets=1)
        np.testing.assert_allclose(got, reference, atol=1e-5)
    # The user's model is untouched: it still outputs probabilities.
    np.testing.assert_allclose(softmax_model(images).numpy().sum(-1), 1.0, atol=1e-5)


def test_unstrippable_softmax_warns(images):
    class Probabilities(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return tf.nn.softmax(self.dense(keras.ops.reshape(x, (-1, 12 * 12 * 3))))

    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, Probabilities()(inputs))
    with pytest.warns(UserWarning, match="probabilities"):
        tst.Gradient(model)(images, targets=0)


def test_empty_batch_returns_empty_result(cnn):
    for explainer in (tst.SmoothTaylor(cnn, num_roots=3), tst.IntegratedGradients(cnn)):
        result = explainer(np.zeros((0, 12, 12, 3), np.float32))
        assert result.shape == (0, 12, 12, 3) and result.dtype == tf.float32


def test_completeness_gap_shrinks_with_steps(cnn, images):
    gaps = {}
    for steps in (50, 300):
        ig = tst.IntegratedGradients(cnn, steps=steps)
        attributions = ig(images, targets=0)
        gaps[steps] = np.abs(tst.completeness_gap(cnn, images, attributions, 0.0, targets=0))
    assert gaps[300].mean() < gaps[50].mean()
    assert gaps[300].mean() < 1e-2
    # Exact for a model without non-linearities: the linear case is 0 already.


def test_completeness_gap_of_linear_model_is_zero(linear):
    model, _ = linear
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype(np.float32)
    attributions = tst.IntegratedGradients(model, steps=2, rule="trapezoid")(x, targets=1)
    assert np.abs(tst.completeness_gap(model, x, attributions, 0.0, targets=1)).max() < 1e-4


def _relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.mark.parametrize("policy,tolerance", [("mixed_float16", 3e-2), ("mixed_bfloat16", 1e-1)])
def test_mixed_precision_matches_float32(images, policy, tolerance):
    reference_model = small_cnn(seed=5)
    keras.mixed_precision.set_global_policy(policy)
    model = small_cnn(seed=5)
    keras.mixed_precision.set_global_policy("float32")
    model.set_weights(reference_model.get_weights())
    for make in (METHODS["ig_zero"], METHODS["smooth_taylor"]):
        reference = make(reference_model)(images, targets=0).numpy()
        got = make(model)(images, targets=0)
        assert got.dtype == tf.float32
        assert _relative(got, reference) < tolerance


def test_jit_compile_matches_float32(cnn, images):
    for make in (METHODS["ig_zero"], METHODS["smooth_taylor"], METHODS["smoothgrad"]):
        reference = make(cnn)(images).numpy()
        explainer = make(cnn, jit_compile=True)
        assert _relative(explainer(images), reference) < 1e-3
        assert explainer.trace_count == 1


@pytest.fixture(scope="module")
def application():
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    return model, x


def test_keras_application_gradient_is_the_logit_gradient(application):
    model, x = application
    gradient = tst.Gradient(model, batch_size=8)(x, targets=[1, 7]).numpy()
    # Explained on logits: the softmax of Keras Applications is removed.
    logits = keras.Model(model.inputs, model.layers[-2].output)
    with tf.GradientTape() as tape:
        z = tf.constant(x)
        tape.watch(z)
        y = tf.reduce_sum(tf.gather(
            tf.matmul(logits(z), model.layers[-1].kernel) + model.layers[-1].bias,
            [1, 7], axis=1, batch_dims=0) * tf.eye(2))
    np.testing.assert_allclose(gradient, tape.gradient(y, z), rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def small_application():
    """VGG16 at 32 px: a Keras Application (softmax head) whose 23 layers trace in a
    fraction of MobileNetV2's 155."""
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    return model, x


# Every method shares the compiled gradient of the model; these three cover the ways a
# method feeds it (noisy points, random baselines, an explainer as base). Each method's
# maths is tested on analytic models.
@pytest.mark.parametrize("method", ["smooth_taylor", "ig_uniform", "smoothgrad_ig"])
def test_keras_application_runs_through_the_methods(small_application, method):
    model, x = small_application
    result = METHODS[method](model, batch_size=8)(x, targets=[1, 7]).numpy()
    assert result.shape == x.shape and np.isfinite(result).all()
    assert np.abs(result).max() > 0


class _CountingLayer(keras.layers.Layer):
    """Identity that counts the examples passing through it."""

    def build(self, shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                    dtype="float32", name="seen")

    def call(self, x):
        self.seen.assign_add(keras.ops.cast(keras.ops.shape(x)[0], "float32"))
        return x


class _PythonCallsLayer(keras.layers.Layer):
    """Identity that counts how often Python runs its ``call``: once per trace of a
    graph holding it, once per eager call."""

    def __init__(self):
        super().__init__()
        self.python_calls = 0

    def call(self, x):
        self.python_calls += 1
        return x


@pytest.mark.parametrize("targets", [None, 1])
def test_later_explainers_of_a_model_neither_trace_nor_run_it_eagerly(targets):
    layer = _PythonCallsLayer()
    model = keras.Sequential([keras.Input((12, 12, 3)), layer, keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype(np.float32)
    built = layer.python_calls                                # Keras's own build
    first = tst.SmoothTaylor(model, num_roots=4, batch_size=4)(x, targets=targets)
    assert layer.python_calls == built + 1       # one trace: the compiled forward pass
    for make in (lambda: tst.SmoothTaylor(model, num_roots=4, batch_size=4),
                 lambda: tst.IntegratedGradients(model, steps=4, batch_size=4),
                 lambda: tst.SmoothGrad(model, num_samples=4, batch_size=3)):
        make()(x, targets=targets)
    assert layer.python_calls == built + 1
    again = tst.SmoothTaylor(model, num_roots=4, batch_size=4)(x, targets=targets)
    np.testing.assert_array_equal(again.numpy(), first.numpy())


@pytest.mark.parametrize("images_count,points,batch_size", [(1, 50, 16), (3, 150, 64), (5, 7, 16)])
def test_exactly_one_gradient_per_point_packed_across_images(images_count, points, batch_size):
    counter = _CountingLayer()
    model = keras.Sequential([keras.Input((12, 12, 3)), counter, keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(images_count, 12, 12, 3)).astype(np.float32)
    explainer = tst.SmoothTaylor(model, num_roots=points, batch_size=batch_size)
    explainer(x, targets=0)                       # first call: one forward check too
    counter.seen.assign(0.0)
    explainer(x, targets=0)
    assert float(counter.seen.numpy()) == images_count * points


def _with_head(head, seed=4):
    """The small CNN's logits followed by ``head`` (a layer turning them into probabilities)."""
    trunk = small_cnn(seed=seed)
    inputs = keras.Input((12, 12, 3))
    return keras.Model(inputs, head(trunk(inputs))), trunk


@pytest.mark.parametrize("head", [
    lambda: keras.layers.Activation(tf.nn.softmax),
    lambda: keras.layers.Lambda(tf.nn.softmax),
    lambda: keras.layers.Activation("sigmoid"),
], ids=["activation_tf_nn_softmax", "lambda_tf_nn_softmax", "sigmoid"])
def test_probability_heads_of_every_form_are_stripped(images, head):
    model, trunk = _with_head(head())
    reference = tst.Gradient(trunk)(images, targets=1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tst.Gradient(model)(images, targets=1).numpy()
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_dense_with_tf_nn_softmax_and_nested_softmax_models_are_stripped(images):
    logits_model = small_cnn(activation=None, seed=4)
    reference = tst.Gradient(logits_model)(images, targets=1).numpy()
    dense_tf = small_cnn(activation=tf.nn.softmax, seed=4)
    inputs = keras.Input((12, 12, 3))
    nested = keras.Model(inputs, small_cnn(activation="softmax", seed=4)(inputs))
    for model in (dense_tf, nested):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = tst.Gradient(model)(images, targets=1).numpy()
        np.testing.assert_allclose(got, reference, atol=1e-5)


def test_many_explainers_and_models_raise_no_retracing_warning(cnn, images):
    import logging
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        # TensorFlow warns from the 5th trace of one code: 7 explainers' functions, and
        # the compiled forward pass of 5 models (each model's is traced once, and every
        # explainer's graph calls it).
        for model in [cnn, cnn, cnn] + [small_cnn(seed=seed) for seed in range(11, 15)]:
            tst.SmoothTaylor(model, num_roots=2)(images[:1], return_error=model is not cnn)
    finally:
        logger.removeHandler(handler)
    assert not [message for message in seen if "retracing" in message]


def test_tracing_converts_no_python_source(monkeypatch, cnn, images):
    """Every compiled function of the package is traced as written: AutoGraph's source
    conversion (most of a first call's time) never runs, for explainers (LRP's rule
    gradients too) or metrics."""
    from tensorflow.python.autograph.impl import api
    converted = []
    original = api.converted_call
    monkeypatch.setattr(api, "converted_call",
                        lambda f, *a, **k: converted.append(f) or original(f, *a, **k))
    pixels = (images + 1) / 2
    tst.SmoothTaylor(cnn, num_roots=3)(pixels, return_error=True)
    tst.IntegratedGradients(cnn, steps=3, baseline="uniform", num_baselines=2)(pixels)
    tst.LRP(cnn)(pixels)
    tst.metrics.AUPC(cnn, window=4, num_regions=2, num_copies=2)(
        pixels, tst.heatmap(tst.Gradient(cnn)(pixels)))
    assert converted == []
    # The top-1 forward pass is compiled once per model, whichever explainer or metric
    # asks first.
    forwards = cnn.__dict__["_tst_forwards"]
    assert forwards[0].experimental_get_tracing_count() == 1
    # (and LRP's rewritten pass, shared the same way)
    assert [f.experimental_get_tracing_count() for f in forwards.values()] == [1, 1]


def test_the_shared_forward_pass_lives_as_long_as_its_model(images):
    import gc
    import weakref
    model = small_cnn(seed=7)
    tst.Gradient(model)(images)
    assert list(model.__dict__["_tst_forwards"]) == [0]
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_with_model_rebuilds_the_same_method_and_settings(cnn, images):
    from conftest import small_cnn
    from tf_smoothtaylor.methods import BY_NAME
    other = small_cnn(seed=5)
    needs = {"expected_gradients": dict(references=images[:2]), "occlusion": dict(window=4)}
    for name, cls in BY_NAME.items():
        explainer = cls(cnn, batch_size=7, seed=3, **needs.get(name, {}))
        moved = explainer.with_model(other)
        assert type(moved) is cls and moved.model is other
        expected = explainer.settings()
        if name.startswith("grad_cam"):            # a default layer is found anew
            expected["layer"] = tst.methods.grad_cam.find_layer(other).name
        assert moved.settings() == expected
    smooth = tst.SmoothTaylor(cnn, num_roots=5, noise_scale=0.2, batch_size=7, seed=3)
    np.testing.assert_allclose(
        smooth.with_model(other)(images, 1),
        tst.SmoothTaylor(other, num_roots=5, noise_scale=0.2, batch_size=7, seed=3)(images, 1),
        atol=1e-6)
    smooth_ig = tst.SmoothGrad(cnn, num_samples=2, base=tst.IntegratedGradients(cnn, steps=3))
    assert smooth_ig.with_model(other).base.model is other
