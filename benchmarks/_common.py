"""Helpers shared by the benchmark scripts: models and a bare gradient loop."""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MODELS = {
    "mobilenet_v2": keras.applications.MobileNetV2,
    "resnet50": keras.applications.ResNet50,
}


def parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser (described by its docstring's first line) with the options
    every benchmark has: ``--model`` and ``--size``."""
    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    result.add_argument("--model", default="mobilenet_v2", choices=sorted(MODELS))
    result.add_argument("--size", type=int, default=224)
    return result


def chunk_parser(doc: str, *, points: int, repeats: int) -> argparse.ArgumentParser:
    """:func:`parser` with the options of a one-image chunk benchmark: ``--points``
    per image, ``--batch`` (the chunk size, 16) and ``--repeats``."""
    result = parser(doc)
    result.add_argument("--points", type=int, default=points)
    result.add_argument("--batch", type=int, default=16)
    result.add_argument("--repeats", type=int, default=repeats)
    return result


def build_model(name: str, size: int = 224) -> keras.Model:
    """A ``weights=None`` Keras Application with logits output, seeded."""
    keras.utils.set_random_seed(0)
    return MODELS[name](weights=None, input_shape=(size, size, 3),
                        classifier_activation=None)


def images(batch: int, size: int = 224, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype(
        np.float32)


def bare_gradient_loop(model: keras.Model):
    """The reference: a ``tf.function`` taking batched input gradients."""

    @tf.function
    def step(x, t):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.gather(model(x, training=False), t, batch_dims=1)
        return tape.gradient(y, x)

    return step


def timed(fn, *args) -> float:
    start = time.perf_counter()
    result = fn(*args)
    if hasattr(result, "numpy"):
        result.numpy()
    return time.perf_counter() - start
