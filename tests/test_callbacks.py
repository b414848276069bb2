"""Callbacks during model.fit: History, CSVLogger and TensorBoard see the metrics."""

import csv
import glob
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor.integrations.callbacks import AttributionImages, AttributionMetrics


def tiny_classifier():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def events(directory):
    for path in sorted(glob.glob(os.path.join(directory, "**", "events.out.tfevents.*"),
                                 recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                yield path, event.step, value


@pytest.fixture(scope="module")
def training_data():
    rng = np.random.default_rng(0)
    return (rng.uniform(size=(24, 32, 32, 3)).astype(np.float32),
            rng.integers(0, 3, 24))


def test_fit_with_both_callbacks(tmp_path, training_data):
    x, y = training_data
    model = tiny_classifier()
    explainer = tst.SmoothTaylor(model, num_roots=4, noise_scale=0.1)
    metrics = AttributionMetrics(
        explainer, x[:4], metrics=("autvc", "aupc"),
        metric_options={"autvc": {"min_size": 8},
                        "aupc": {"window": 4, "num_regions": 3, "num_copies": 4}})
    log_dir = str(tmp_path / "logs")
    pictures = AttributionImages(explainer, x[:4], log_dir=log_dir, max_images=2)
    csv_path = str(tmp_path / "log.csv")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[
        metrics, pictures, keras.callbacks.CSVLogger(csv_path),
        keras.callbacks.TensorBoard(log_dir=log_dir)])

    for key in ("attr_autvc", "attr_aupc"):
        assert len(history.history[key]) == 2
        assert all(math.isfinite(v) for v in history.history[key])
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {"attr_autvc", "attr_aupc", "loss"} <= set(rows[0])
    assert explainer.trace_count == 1

    scalars = {(value.tag, step) for _, step, value in events(log_dir)}
    assert {("epoch_attr_autvc", 0), ("epoch_attr_autvc", 1), ("epoch_attr_aupc", 1)} <= scalars
    images = [(step, value) for path, step, value in events(log_dir)
              if value.tag == "attributions"]
    assert sorted(step for step, _ in images) == [0, 1]
    encoded = images[0][1].tensor.string_val                     # [width, height, png]
    assert len(encoded) == 3
    # One figure per epoch: 2 images (rows) × (image, map) at 2.6 in and 100 dpi each,
    # with colour bars and titles drawn (not a blank sheet).
    figure = tf.io.decode_png(encoded[2]).numpy()
    assert figure.shape == (520, 520, 3)
    assert len(np.unique(figure.reshape(-1, 3), axis=0)) > 100


def test_metrics_follow_training_and_skipped_epochs_log_nan(training_data):
    x, y = training_data
    model = tiny_classifier()
    explainer = tst.Gradient(model)
    callback = AttributionMetrics(explainer, x[:4], metrics=("autvc",), freq=2,
                                  metric_options={"autvc": {"min_size": 8}})
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    first, second = history.history["attr_autvc"]
    assert math.isnan(first) and math.isfinite(second)
    # The explainer reads the current weights: evaluating now equals the logged value.
    assert callback.evaluate()[0] == pytest.approx(second, rel=1e-5)


def test_deletion_and_insertion_equal_the_metrics_and_compile_once(training_data):
    x, y = training_data
    model = tiny_classifier()
    explainer = tst.Gradient(model)
    options = {"deletion": {"steps": 8}, "insertion": {"steps": 8, "replacement": "mean"}}
    callback = AttributionMetrics(explainer, x[:4], targets=1,
                                  metrics=("deletion", "insertion"), metric_options=options)
    maps = tst.heatmap(explainer(x[:4], 1))
    expected = [
        np.mean(tst.metrics.deletion(model, x[:4], maps, targets=1, steps=8).auc),
        np.mean(tst.metrics.insertion(model, x[:4], maps, targets=1, steps=8,
                                      replacement="mean").auc)]
    np.testing.assert_allclose(callback.evaluate(), expected, rtol=1e-5)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert [callback._scorers[name].trace_count for name in ("deletion", "insertion")] == [1, 1]


def test_bad_input(training_data):
    x, y = training_data
    model = tiny_classifier()
    explainer = tst.Gradient(model)
    with pytest.raises(ValueError, match="fit the explained model"):
        AttributionMetrics(explainer, np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="metrics"):
        AttributionMetrics(explainer, x[:2], metrics=("accuracy",))
    with pytest.raises(ValueError, match="metric_options"):
        AttributionMetrics(explainer, x[:2], metrics=("autvc",), metric_options={"aupc": {}})
    with pytest.raises(TypeError, match="explainer"):
        AttributionImages(model, x[:2], log_dir="/tmp/x")
    other = tiny_classifier()
    with pytest.raises(ValueError, match="model being trained"):
        other.fit(x, y, epochs=1, verbose=0, callbacks=[AttributionMetrics(explainer, x[:2])])


def test_metrics_of_an_explainer_on_a_spec_perturb_through_its_transforms():
    """AUPC perturbs pixels: with an explainer built on a ModelSpec, the callback's
    AUPC is the one of that spec, not of the bare model on model inputs."""
    model = tiny_classifier()
    spec = tst.models.wrap(model, preprocess=lambda p: 4.0 * p - 2.0,
                           deprocess=lambda x: (x + 2.0) / 4.0)
    pixels = np.random.default_rng(0).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    inputs = spec.preprocess(pixels)
    options = {"aupc": dict(window=4, num_regions=3, num_copies=2)}
    explainer = tst.Gradient(spec)
    callback = AttributionMetrics(explainer, inputs, metrics=("aupc",), targets=[0, 1, 2],
                                  metric_options=options)
    maps = tst.heatmap(explainer(inputs, [0, 1, 2]))
    expected = tst.metrics.AUPC(spec, **options["aupc"])(inputs, maps, [0, 1, 2]).score
    assert callback.evaluate() == pytest.approx([float(np.mean(expected))], rel=1e-6)
    with pytest.raises(ValueError, match="deprocess"):       # the bare model's AUPC cannot
        tst.metrics.AUPC(model, **options["aupc"])(inputs, maps, [0, 1, 2])


def test_the_metrics_callback_logs_the_relative_error_of_the_maps():
    model = tiny_classifier()
    x = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    explainer = tst.SmoothTaylor(model, num_roots=6, noise_scale=0.2)
    callback = AttributionMetrics(explainer, x, metrics=("relative_error",), targets=[0, 1, 2])
    expected = explainer(x, [0, 1, 2], return_error=True).relative_error
    assert callback.evaluate() == pytest.approx([float(np.mean(expected))], rel=1e-6)
    with pytest.raises(ValueError, match="Monte Carlo"):
        AttributionMetrics(tst.Gradient(model), x, metrics=("relative_error",))
