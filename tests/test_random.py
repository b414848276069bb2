"""The counter-based generator: known answers, purity, distribution, graph shape."""

import math

import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor.engine import streams as _random

MASK = 0xFFFFFFFF


def philox4x32_10(counter, key):
    """Philox-4x32-10 from its published definition (Salmon et al. 2011), in Python ints."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
        p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, \
            ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
    return [c0, c1, c2, c3]


# Random123's kat_vectors: counter, key -> output.
KNOWN_ANSWERS = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([MASK] * 4, [MASK] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_reference_philox_matches_published_vectors(counter, key, expected):
    assert philox4x32_10(counter, key) == expected


def reference_words(key: int, stream: int, draw: int, index: int, length: int):
    """The Philox words of row ``index`` as the module docstring defines them."""
    key &= (1 << 64) - 1
    lanes = -(-length // 4)
    high = (draw + (stream << 56)) & ((1 << 64) - 1)
    words = []
    for lane in range(lanes):
        low = index * lanes + lane
        words += philox4x32_10([low & MASK, low >> 32, high & MASK, high >> 32],
                               [key & MASK, key >> 32])
    return words


def reference_uniform(key: int, stream: int, draw: int, index: int, length: int):
    words = reference_words(key, stream, draw, index, length)
    return np.array([(w & 0x7FFFFF) / 2.0 ** 23 for w in words][:length], np.float32)


def reference_normal(key: int, stream: int, draw: int, index: int, size: int):
    """Box–Muller on 2h uniforms: √(−2 ln(1 − u₁)) · (cos 2πu₂, sin 2πu₂)."""
    half = -(-size // 2)
    u = reference_uniform(key, stream, draw, index, 2 * half).astype(np.float64)
    radius = np.sqrt(-2 * np.log1p(-u[:half]))
    angle = 2 * np.pi * u[half:]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:size]


def test_every_number_is_philox_of_key_stream_draw_index_and_element():
    values = tf.constant([12345, -7, 2 ** 62 + 3], tf.int64)
    # Rows: two runs of image 0 (a repeated index in between), one row of image 1,
    # two rows of image 2 out of order.
    owner = tf.constant([0, 0, 0, 0, 1, 2, 2])
    index = tf.constant([3, 4, 4, 9, 0, 5, 2])
    keys = _random.Keys(tf.gather(values, owner), owner)
    draw = tf.constant([2, 2, 2, 2, 0, 1, 1], tf.int64)
    got = _random.uniform(keys, _random.ROOTS, index, [10], draw=draw).numpy()
    normal = _random.normal(keys, _random.ROOTS, index, [3, 3], draw=draw).numpy()
    for row in range(7):
        settings = (int(keys.value[row]), _random.ROOTS, int(draw[row]), int(index[row]), 10)
        np.testing.assert_array_equal(got[row], reference_uniform(*settings))
        np.testing.assert_allclose(normal[row].ravel(), reference_normal(*settings[:4], 9),
                                   rtol=1e-5, atol=1e-5)


def test_rows_do_not_depend_on_which_rows_share_a_call():
    keys = _random.Keys(tf.constant([5, 5, 5, 5, 5, 9, 9], tf.int64),
                        tf.constant([0, 0, 0, 0, 0, 1, 1]))
    index = tf.constant([0, 1, 2, 3, 4, 0, 1])
    together = _random.normal(keys, _random.SMOOTHING, index, [3, 5]).numpy()
    for row in range(7):
        alone = _random.normal(keys.gather([row]), _random.SMOOTHING, index[row:row + 1],
                               [3, 5]).numpy()
        np.testing.assert_array_equal(alone[0], together[row])


def _ks_statistic(samples, cdf):
    samples = np.sort(samples)
    n = len(samples)
    model = cdf(samples)
    return max(np.max(np.arange(1, n + 1) / n - model), np.max(model - np.arange(n) / n))


def test_uniform_and_normal_pass_moment_and_kolmogorov_smirnov_checks():
    keys = _random.image_keys(tf.zeros([4, 3]) + tf.range(4.0)[:, None], seed=0)
    keys = keys.gather(tf.repeat(tf.range(4), 50))
    index = tf.tile(tf.range(50), [4])
    u = _random.uniform(keys, _random.BASELINES, index, [100]).numpy().ravel()
    z = _random.normal(keys, _random.ROOTS, index, [101]).numpy().ravel()
    n = u.size
    critical = 1.95 / math.sqrt(n)                        # KS at the 0.1 % level
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 0.005
    assert u.min() >= 0.0 and u.max() < 1.0
    assert _ks_statistic(u, lambda s: s) < critical
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs(z.var() - 1) < 0.03
    normal_cdf = np.vectorize(lambda s: 0.5 * (1 + math.erf(s / math.sqrt(2))))
    assert _ks_statistic(z, normal_cdf) < 1.95 / math.sqrt(z.size)


def test_image_keys_follow_content_not_batch_and_differ_at_one_ulp():
    x = np.random.default_rng(0).uniform(-1, 1, (3, 5, 5, 3)).astype(np.float32)
    keys = _random.image_keys(x, 0).value.numpy()
    assert len(set(keys.tolist())) == 3
    np.testing.assert_array_equal(_random.image_keys(x[::-1], 0).value.numpy(), keys[::-1])
    np.testing.assert_array_equal(_random.image_keys(x[1:2], 0).value.numpy(), keys[1:2])
    bumped = x.copy()
    bumped[0, 2, 2, 1] = np.nextafter(bumped[0, 2, 2, 1], np.float32(2))
    assert _random.image_keys(bumped, 0).value.numpy()[0] != keys[0]
    assert _random.image_keys(x, 1).value.numpy()[0] != keys[0]
    swapped = x.copy()
    swapped[0, 0, 0], swapped[0, 0, 1] = x[0, 0, 1], x[0, 0, 0]
    assert _random.image_keys(swapped, 0).value.numpy()[0] != keys[0]


def _graph_ops(explainer, images):
    """Op types of the compiled attribution function and every function it calls."""
    function = explainer._engine._function(None)
    concrete = function.get_concrete_function(*function.input_signature)
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node)
    for library_function in graph.library.function:
        nodes += list(library_function.node_def)
    return nodes


def _conv_only_model():
    import keras
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3),
                             keras.layers.Activation("relu"),
                             keras.layers.Conv2D(5, 1), keras.layers.GlobalAveragePooling2D()])


@pytest.mark.parametrize("make", [
    lambda m, b: tst.SmoothTaylor(m, num_roots=9, batch_size=b),
    lambda m, b: tst.SmoothGrad(m, num_samples=9, statistic="variance", batch_size=b),
    lambda m, b: tst.IntegratedGradients(m, steps=5, baseline="uniform", num_baselines=2,
                                         batch_size=b),
], ids=["smooth_taylor", "vargrad", "ig_uniform"])
def test_hot_path_has_no_matmul_fingerprint_py_func_or_per_batch_random_ops(make):
    model = _conv_only_model()
    counts = []
    for batch_size in (4, 64):
        ops = [node.op for node in _graph_ops(make(model, batch_size), None)]
        banned = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
                  "Fingerprint", "PyFunc", "EagerPyFunc", "PyFuncStateless"}
        assert not banned & set(ops), banned & set(ops)
        counts.append(sum(op.startswith("StatelessRandom") for op in ops))
    assert counts[0] == counts[1] >= 1


def test_every_op_on_the_device_has_a_gpu_kernel():
    from tensorflow.python.framework import kernels
    explainer = tst.SmoothTaylor(_conv_only_model(), num_roots=9, batch_size=4)
    structural = {"Const", "Identity", "NoOp", "Placeholder", "_Arg", "_Retval",
                  "PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile",
                  "If", "StatelessIf", "IdentityN"}
    missing = set()
    for node in _graph_ops(explainer, None):
        if node.op in structural or "CPU" in node.device.upper():
            continue
        registered = kernels.get_registered_kernels_for_op(node.op).kernel
        if not any(kernel.device_type in ("GPU", "DEFAULT") for kernel in registered):
            missing.add(node.op)
    assert not missing
