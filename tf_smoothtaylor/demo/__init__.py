"""The bundled demo: a small shapes classifier and sample images with masks.

Everything here works offline: the weights and a dozen sample images (with
ground-truth object masks) ship with the package. The model is rebuilt by
``examples/train_demo_model.py``. ``demo.tasks``: tabular, series and text tasks with
known evidence and their small trained models.

Example:
  >>> spec = demo.load()                      # ModelSpec, logits, preprocess = 2p − 1
  >>> pixels, labels, masks, names = demo.samples()
"""

import json
import os
from typing import List, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.demo.shapes import CLASS_NAMES, generate
from tf_smoothtaylor.models import ModelSpec, pixel_transforms

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
WEIGHTS = os.path.join(ASSETS, "demo_model.weights.h5")
SAMPLES = os.path.join(ASSETS, "samples.json")
SIZE = 64

__all__ = ["ASSETS", "CLASS_NAMES", "SIZE", "WEIGHTS", "build_model", "generate", "load",
           "sample_paths", "samples"]


def build_model(size: int = SIZE, classes: int = len(CLASS_NAMES)) -> keras.Model:
    """The demo CNN: model inputs in [−1, 1] → logits."""
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for filters, pool in ((16, False), (16, True), (32, False), (32, True), (64, True),
                          (64, False)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if pool:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="demo_shapes")


def load(weights: str = WEIGHTS) -> ModelSpec:
    """The trained demo model as a :class:`~tf_smoothtaylor.models.ModelSpec`."""
    if not os.path.isfile(weights):
        raise ValueError(f"Expected demo weights at {weights}; run "
                         "examples/train_demo_model.py to create them.")
    model = build_model()
    model.load_weights(weights)
    preprocess, deprocess = pixel_transforms("tf")
    return ModelSpec(model, preprocess, deprocess, (SIZE, SIZE), "tf", "demo",
                     list(CLASS_NAMES))


def sample_paths() -> List[str]:
    """Paths of the bundled sample images (PNG), in order."""
    with open(SAMPLES, encoding="utf-8") as handle:
        return [os.path.join(ASSETS, item["image"]) for item in json.load(handle)]


def mask_for(image_path: str):
    """The ground-truth mask (H, W) bool of a bundled sample, or None."""
    with open(SAMPLES, encoding="utf-8") as handle:
        for item in json.load(handle):
            if os.path.basename(image_path) == item["image"]:
                png = tf.io.decode_png(tf.io.read_file(os.path.join(ASSETS, item["mask"])))
                return png.numpy()[..., 0] > 127
    return None


def samples() -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """(pixels (N, 64, 64, 3) in [0, 1], labels (N,), masks (N, 64, 64), names)."""
    with open(SAMPLES, encoding="utf-8") as handle:
        items = json.load(handle)
    pixels = np.stack([tf.io.decode_png(tf.io.read_file(os.path.join(ASSETS, item["image"])),
                                        channels=3).numpy() / 255.0 for item in items])
    masks = np.stack([mask_for(item["image"]) for item in items])
    labels = np.array([item["label"] for item in items])
    return pixels.astype(np.float32), labels, masks, [item["image"] for item in items]
