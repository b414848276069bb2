"""One contract over every registered method (``methods.BY_NAME``): a method added to
the registry is covered here or this test fails. On a small CNN with small settings:
results independent of the chunk size, of batch order and of the other images of a
call; the seed reproduces them; ``settings()`` rebuilds the explainer; one image's
NaN stays in its own row; bad input and bad targets raise errors that name them. A
method that cannot honour an item says why in its registry entry (``exempt``), and
the test prints it."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import max_abs_diff, small_cnn
from tf_smoothtaylor.methods import BY_NAME, ENTRIES

REFERENCES = np.random.default_rng(5).uniform(-1, 1, (3, 12, 12, 3)).astype(np.float32)
#: Small settings per registered method (every registry entry needs one).
SMALL = {
    "smooth_taylor": dict(num_roots=6, noise_scale=0.3),
    "integrated_gradients": dict(steps=6),
    "smoothgrad": dict(num_samples=6),
    "gradient": {},
    "gradient_x_input": {},
    "grad_cam": {},
    "grad_cam_plus_plus": {},
    "rise": dict(num_masks=24, grid_size=3, baseline=0.0),
    "occlusion": dict(window=4, baseline=0.0),
    "blur_ig": dict(steps=6),
    "expected_gradients": dict(references=REFERENCES, num_samples=6),
    "lrp": dict(composite="epsilon"),
}


def test_every_registered_method_has_small_settings_here():
    assert sorted(SMALL) == sorted(BY_NAME)


def check_invariances(cls, settings, model, images):
    """Chunk size, batch order and the other images of a call do not change the
    maps; the seed repeats them; ``from_settings(model, settings())`` rebuilds the
    same explainer, and refuses a setting the method does not take."""
    make = lambda **kw: cls(model, **settings, **kw)  # noqa: E731
    targets = np.array([0, 3, 1, 4], np.int32)
    reference = make(batch_size=64)(images, targets).numpy()
    assert np.isfinite(reference).all() and np.abs(reference).max() > 0
    small = make(batch_size=5)
    assert max_abs_diff(small(images, targets), reference) <= 1e-5
    order = np.array([2, 0, 3, 1])
    assert max_abs_diff(small(images[order], targets[order]), reference[order]) <= 1e-5
    assert max_abs_diff(small(images[1:2], targets[1:2]), reference[1:2]) <= 1e-5
    assert max_abs_diff(make(batch_size=64)(images, targets), reference) == 0.0
    again = cls.from_settings(model, small.settings())
    assert _same_settings(again.settings(), small.settings())
    assert max_abs_diff(again(images, targets), reference) <= 1e-5
    with pytest.raises(TypeError, match="Received: \\['not_a_setting'\\]"):
        cls.from_settings(model, {**settings, "not_a_setting": 1})


def _same_settings(mine: dict, theirs: dict) -> bool:
    """Equal settings: arrays element-wise, explainers by method and settings."""
    from tf_smoothtaylor.methods import Explainer
    if mine.keys() != theirs.keys():
        return False
    for name, value in mine.items():
        other = theirs[name]
        if isinstance(value, Explainer):
            if type(value) is not type(other) or not _same_settings(value.settings(),
                                                                    other.settings()):
                return False
        elif isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            if not np.array_equal(np.asarray(value), np.asarray(other)):
                return False
        elif value != other:
            return False
    return True


def check_errors(cls, settings, model, images):
    """Out-of-range, miscounted or non-integer targets, a missing batch axis and
    images that are not real numbers are errors that name them."""
    explainer = cls(model, **settings)
    with pytest.raises(ValueError, match="(?i)target|class"):
        explainer(images, np.array([0, 1, 2, 5], np.int32))       # 5 classes: 0..4
    with pytest.raises(ValueError, match="(?i)target|class"):
        explainer(images, np.array([0, 1], np.int32))             # one per image
    with pytest.raises((ValueError, TypeError), match="(?i)image|input|shape|rank"):
        explainer(images[0], 0)                                   # no batch axis
    for wrong in (images.astype(str), images.astype(np.complex64)):
        with pytest.raises((ValueError, TypeError), match="(?i)`images`|`inputs`"):
            explainer(wrong, 0)                                   # not real numbers
    with pytest.raises(TypeError, match="`targets`"):
        explainer(images, np.array([0.5, 1.0, 2.0, 3.0]))         # not class indices


class NaNWhenBright(keras.layers.Layer):
    """The logits times NaN for images whose mean exceeds 2 (no gradient through the
    test itself, so other images' gradients stay finite)."""

    def call(self, x, logits):
        bright = tf.reduce_mean(x, axis=[1, 2, 3]) > 2.0
        return logits * tf.stop_gradient(tf.where(bright, float("nan"), 1.0))[:, None]


@pytest.fixture(scope="module")
def nan_model():
    inputs = keras.Input((12, 12, 3))
    return keras.Model(inputs, NaNWhenBright()(inputs, small_cnn()(inputs)))


def check_nan_isolation(cls, settings, model, images):
    """An image whose logits are NaN gets a non-finite row and a warning naming it;
    every other row equals the call without it."""
    images = np.array(images)
    images[2] += 5.0                                    # the bright one: NaN logits
    targets = np.array([0, 3, 1, 4], np.int32)
    others = np.array([0, 1, 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = np.asarray(cls(model, **settings)(images, targets))
    assert not np.isfinite(maps[2]).all()
    assert any("images [2]" in str(w.message) for w in caught), [str(w.message) for w in caught]
    alone = cls(model, **settings)(images[others], targets[others])
    assert np.isfinite(maps[others]).all()
    assert max_abs_diff(maps[others], alone) <= 1e-5


def check_in_tf_function(cls, settings, model, images):
    """Inside a user's ``tf.function`` the explainer gives the eager maps, for given
    and top-1 targets; a missing batch axis or a class out of range is an error
    naming it while tracing."""
    explainer = cls(model, **settings)
    targets = np.array([0, 3, 1, 4], np.int32)
    traced = tf.function(lambda x, t: explainer(x, t))
    assert max_abs_diff(traced(images, targets), explainer(images, targets)) <= 1e-5
    top1 = tf.function(lambda x: explainer(x))
    assert max_abs_diff(top1(images), explainer(images)) <= 1e-5
    with pytest.raises(ValueError, match="`images` of rank"):
        top1(images[0])
    with pytest.raises(ValueError, match="class indices in"):
        tf.function(lambda x: explainer(x, 5))(images)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_inside_a_tf_function_it_gives_the_eager_maps(name, cnn, images):
    check_in_tf_function(BY_NAME[name], SMALL[name], cnn, images)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_one_image_with_nan_logits_stays_in_its_own_row(name, nan_model, images):
    reason = ENTRIES[name].exempt.get("nan_isolation")
    if reason:
        print(f"{name}: not checked for NaN isolation: {reason}")
        return
    check_nan_isolation(BY_NAME[name], SMALL[name], nan_model, images)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_results_do_not_depend_on_chunks_order_or_company_and_the_seed_repeats(
        name, cnn, images):
    check_invariances(BY_NAME[name], SMALL[name], cnn, images)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_bad_input_and_targets_are_errors_that_name_them(name, cnn, images):
    check_errors(BY_NAME[name], SMALL[name], cnn, images)


def test_in_a_tf_function_what_only_the_run_knows_is_checked_when_it_runs(cnn, images):
    """Targets whose values are known only when the function runs: a wrong count, a
    negative class or one out of range fail then, each naming the problem; callables
    and 'auto' counts need eager calls; standard errors come back as eagerly."""
    from tf_smoothtaylor.methods import Gradient, SmoothTaylor
    explainer = Gradient(cnn)
    run = tf.function(lambda x, t: explainer(x, t), input_signature=[
        tf.TensorSpec([None, 12, 12, 3], tf.float32), tf.TensorSpec([None], tf.int32)])
    for targets, message in (([0, 1], "one class index per image"),
                             ([0, -1, 1, 2], "class indices >= 0"),
                             ([0, 9, 1, 2], "not a class index")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            run(images, tf.constant(targets, tf.int32))
    with pytest.raises(ValueError, match=r"one class index per image \(4\)"):
        tf.function(lambda x: explainer(x, tf.constant([0, 1])))(images)
    with pytest.raises(TypeError, match="callable"):
        tf.function(lambda x: explainer(x, lambda logits: logits[:, 0]))(images)
    with pytest.raises(ValueError, match="fixed number of draws"):
        tf.function(lambda x: SmoothTaylor(cnn, num_roots="auto")(x))(images)
    smooth = SmoothTaylor(cnn, num_roots=6, noise_scale=0.3)
    traced = tf.function(lambda x: smooth(x, 1, return_error=True))(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # 6 roots: some maps are all noise
        eager = smooth(images, 1, return_error=True)
    for mine, theirs in zip(traced[:3], eager[:3]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert traced.num_points == eager.num_points == 6


def _outside_and_edge(option, kind):
    """Values just outside each declared bound, and the inclusive bounds (accepted)."""
    step = 1 if kind == "int" else 0.5
    outside, edges = [], []
    if option.minimum is not None:
        outside.append(option.minimum - step)
        edges.append(option.minimum)
    if option.above is not None:
        outside.append(option.above)
    if option.maximum is not None:
        outside.append(option.maximum + step)
        edges.append(option.maximum)
    return outside, edges


def check_bounds(cls, settings, model):
    """Every declared bound holds in Python as on the command line: a value just
    outside is a ValueError naming the setting, an inclusive bound is accepted."""
    from tf_smoothtaylor.methods import options
    declared = options.declared(cls)
    count = next((name for name, (option, _) in declared.items() if option.count), None)
    for name, (option, default) in declared.items():
        if not option.bounds():
            continue
        base = {key: value for key, value in settings.items()
                if key not in (name, option.exclusive)
                and declared.get(key, (options.Option(""),))[0].exclusive != name}
        if name in options.AUTO:                     # they apply to "auto" counts only
            base[count] = "auto"
            if count == "num_baselines":             # IG's draws are random baselines
                base["baseline"] = "uniform"
        kind = option.kind_of(default)
        outside, edges = _outside_and_edge(option, kind)
        for value in outside:
            with pytest.raises(ValueError, match=name):
                cls(model, **base, **{name: value})
        for value in edges:
            cls(model, **base, **{name: value})


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_settings_outside_their_declared_bounds_are_errors_naming_them(name, cnn):
    check_bounds(BY_NAME[name], SMALL[name], cnn)


def test_from_settings_moves_an_explainer_setting_to_the_new_model(cnn, images):
    from tf_smoothtaylor.methods import IntegratedGradients, SmoothGrad
    noisy_ig = SmoothGrad(cnn, base=IntegratedGradients(cnn, steps=4), num_samples=3)
    other = small_cnn(seed=1)
    moved = SmoothGrad.from_settings(other, noisy_ig.settings())
    assert moved.base.model is other and moved.model is other
    assert _same_settings(moved.settings(), noisy_ig.settings())
    assert max_abs_diff(moved(images, 1), SmoothGrad(
        other, base=IntegratedGradients(other, steps=4), num_samples=3)(images, 1)) == 0.0
    with pytest.raises(TypeError, match="Expected `settings` to be a dict"):
        SmoothGrad.from_settings(other, [("num_samples", 3)])
