"""explain_dataset under MirroredStrategy equals the single-device result."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_strategy_matches_explain(cnn, images):
    explainer = tst.SmoothTaylor(cnn, num_roots=5)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(4))).batch(3)
    result = distribute.explain_dataset(explainer, dataset)
    np.testing.assert_allclose(result["attributions"], explainer(images), atol=1e-6)
    np.testing.assert_array_equal(result["targets"], np.argmax(cnn(images), -1))
    scored = distribute.evaluate_dataset(
        explainer, dataset, {"autvc": lambda x, h, t: tst.metrics.autvc(h, min_size=4)})
    np.testing.assert_allclose(scored["autvc"], tst.metrics.autvc(
        tst.heatmap(explainer(images)), min_size=4), atol=1e-6)


def test_imports_start_no_runtime_and_mirrored_strategy_equals_one_device(tmp_path):
    """One fresh process (TensorFlow starts once): importing every module of the package
    must not start the TensorFlow runtime (devices and collective ops can still be
    configured after it, or a MultiWorkerMirroredStrategy created afterwards fails:
    "Collective ops must be configured at program startup"); then explain_dataset on
    two logical CPUs equals the single-device result."""
    script = textwrap.dedent("""
        import importlib, pkgutil, sys
        import tf_smoothtaylor
        names = [m.name for m in pkgutil.walk_packages(tf_smoothtaylor.__path__,
                 "tf_smoothtaylor.") if not m.name.endswith("__main__")]
        for name in names:
            importlib.import_module(name)
        import numpy as np
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        tf.distribute.MultiWorkerMirroredStrategy()
        print("imported", len(names))
        sys.path.insert(0, sys.argv[1])
        from conftest import small_cnn
        import tf_smoothtaylor as tst
        from tf_smoothtaylor import distribute
        model = small_cnn()
        images = np.random.default_rng(1).uniform(-1, 1, (7, 12, 12, 3)).astype(np.float32)
        # Batches of 4 then 3, and 3, 3 then 1 (one replica gets no image).
        for make, batch in ((lambda: tst.SmoothTaylor(model, num_roots=6), 4),
                            (lambda: tst.IntegratedGradients(model, steps=6), 3)):
            dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch)
            single = distribute.explain_dataset(make(), dataset)
            strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
            assert strategy.num_replicas_in_sync == 2
            mirrored = distribute.explain_dataset(make(), dataset, strategy=strategy)
            np.testing.assert_allclose(mirrored["attributions"], single["attributions"],
                                       atol=1e-5)
            np.testing.assert_array_equal(mirrored["targets"], single["targets"])
            assert mirrored["attributions"].shape == (7, 12, 12, 3)
        print("equal")
    """)
    path = tmp_path / "mirrored.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    result = subprocess.run([sys.executable, str(path), os.path.join(ROOT, "tests")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split("\n")
    assert int(lines[0].split()[-1]) > 30 and "equal" in lines


def test_bad_input(cnn, images):
    explainer = tst.Gradient(cnn)
    with pytest.raises(TypeError, match="dataset"):
        distribute.explain_dataset(explainer, images)
    with pytest.raises(TypeError, match="explainer"):
        distribute.explain_dataset(cnn, tf.data.Dataset.from_tensor_slices(images).batch(2))


def test_one_trace_per_explainer_and_strategy_whatever_the_batch_sizes(cnn, images):
    explainer = tst.SmoothTaylor(cnn, num_roots=3)
    many = np.concatenate([images, images[::-1] * 0.5])               # 8 images
    for batch in (3, 5):                                               # sizes 3, 3, 2, 5, 3
        result = distribute.explain_dataset(
            explainer, tf.data.Dataset.from_tensor_slices(many).batch(batch))
        np.testing.assert_allclose(result["attributions"], explainer(many), atol=1e-6)
    steps = [step for _, step in explainer._dataset_steps.values()]
    assert len(steps) == 1 and steps[0].experimental_get_tracing_count() == 1


def test_streaming_yields_each_batch_in_order_and_keyed_draws_follow_the_keys(cnn, images):
    explainer = tst.SmoothTaylor(cnn, num_roots=4)
    keys = np.array([11, 12, 13, 14], np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((images, keys)).batch(3)
    parts = list(distribute.iter_explain_dataset(explainer, dataset, keyed=True))
    assert [len(part["attributions"]) for part in parts] == [3, 1]
    np.testing.assert_allclose(np.concatenate([p["attributions"] for p in parts]),
                               explainer(images, keys=keys), atol=1e-6)


def test_streaming_memory_does_not_grow_with_the_number_of_images(cnn):
    """Peak Python-side memory (numpy arrays included) of streaming 2 000 images
    exceeds streaming 200's by less than 400 kB: the 1 800 more images' inputs alone
    are 3.1 MB and their heatmaps 1 MB, so keeping either would show; what remains is
    allocator and cache noise (tens of kB, more on a loaded machine)."""
    import tracemalloc
    explainer = tst.Gradient(cnn)
    metric = {"total": lambda x, h, t: tf.reduce_sum(h, axis=[1, 2])}

    def images(count):
        return (tf.data.Dataset.range(count)
                .map(lambda i: tf.random.stateless_uniform([12, 12, 3], [i, 0]))
                .batch(50))

    def peak(count):
        tracemalloc.start()
        tracemalloc.reset_peak()
        seen = 0
        for part in distribute.iter_evaluate_dataset(explainer, images(count), metric):
            seen += len(part["total"])
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seen == count
        return result

    peak(50)                                                        # traces, warms caches
    small, large = peak(200), peak(2000)
    assert large - small < 400_000, (small, large)


def test_strategies_across_workers_are_refused_with_the_way_out(cnn, images, monkeypatch):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    monkeypatch.setattr(strategy.extended, "_in_multi_worker_mode", lambda: True)
    with pytest.raises(ValueError, match="--runner"):
        distribute.explain_dataset(tst.Gradient(cnn),
                                   tf.data.Dataset.from_tensor_slices(images).batch(2),
                                   strategy=strategy)
