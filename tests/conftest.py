"""Fixtures: seeded tiny Keras models and analytic models with known answers."""

import io
import os
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


class Quadratic(keras.layers.Layer):
    """f(x) = ½ xᵀ A x on the flattened input; one output 'class'."""

    def __init__(self, matrix, **kwargs):
        super().__init__(**kwargs)
        self.matrix = np.asarray(matrix, np.float32)

    def call(self, x):
        flat = keras.ops.reshape(x, (keras.ops.shape(x)[0], -1))
        value = 0.5 * keras.ops.sum(flat * keras.ops.matmul(flat, self.matrix), axis=-1)
        return keras.ops.expand_dims(value, -1)


# The tests that run other processes for tens of seconds (a Dask cluster, a notebook
# kernel, Beam workers, the examples, killed and resumed runs): collected first, so that
# in a parallel run they start early and no long test is left running alone at the end.
LONG = ("test_dask.py::", "test_notebook.py::", "test_beam.py::test_beam_run_with_two_workers",
        "test_examples.py::test_reproduce_paper", "test_examples.py::test_train_",
        "test_cli_runs.py::test_killed_evaluate", "test_cli.py::test_every_method_runs",
        "test_distribute.py::test_imports_start_no_runtime",
        "test_cli_runs.py::test_a_second_run_into", "test_serving.py::test_a_target_list_of_the")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not any(name in item.nodeid for name in LONG))


def small_cnn(activation=None, seed=0, shape=(12, 12, 3), classes=5):
    """A ReLU CNN with biases; logits output unless `activation` is given."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(6, 3, activation="relu"),
        keras.layers.Conv2D(6, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(16, activation="relu", bias_initializer="random_normal"),
        keras.layers.Dense(classes, activation=activation, bias_initializer="random_normal"),
    ])


@pytest.fixture(scope="session")
def cnn():
    return small_cnn()


@pytest.fixture(scope="session")
def images():
    return np.random.default_rng(1).uniform(-1, 1, (4, 12, 12, 3)).astype(np.float32)


@pytest.fixture(scope="session")
def linear():
    """f_c(x) = W[:, c]·x + b_c on (4, 4, 2) inputs, 3 classes."""
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(32, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.layers[-1].set_weights([weights, bias])
    return model, weights


@pytest.fixture(scope="session")
def quadratic():
    """f(x) = ½ xᵀAx on (2, 2, 2) inputs with a symmetric A."""
    rng = np.random.default_rng(3)
    half = rng.normal(size=(8, 8))
    matrix = ((half + half.T) / 2).astype(np.float32)
    model = keras.Sequential([keras.Input((2, 2, 2)), Quadratic(matrix)])
    return model, matrix.astype(np.float64)


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


def write_imagenet_val_tar(directory, numbers, seed=0):
    """A tiny ILSVRC2012_img_val.tar with validation images named as ImageNet's."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    with tarfile.open(os.path.join(directory, "ILSVRC2012_img_val.tar"), "w") as tar:
        for i in numbers:
            encoded = tf.io.encode_jpeg(rng.integers(0, 256, (40, 50, 3), np.uint8)).numpy()
            info = tarfile.TarInfo(f"ILSVRC2012_val_{i:08d}.JPEG")
            info.size = len(encoded)
            tar.addfile(info, io.BytesIO(encoded))
