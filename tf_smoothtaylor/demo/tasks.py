"""Three small tasks whose evidence is known, for inputs that are not images: a
tabular task, a time-series task and a text task on token ids. Each example comes
with a mask of where the evidence is, as the shapes demo's images come with object
masks; the trained models ship with the package (a few kilobytes each, rebuilt by
``examples/train_task_models.py``).

* **tabular**: 12 standard-normal features; the class is ``[2·x₃ − 1.5·x₇ + x₁₀ > 0]``
  — only features 3, 7 and 10 matter (the mask).
* **series**: 2 channels of 64 steps of Gaussian noise; a pulse of 8 steps (±2.5)
  at a random place in channel 0; the class is its sign — the mask is the pulse's
  window.
* **text**: 16 tokens drawn from a 40-word filler vocabulary, with exactly one
  keyword among ``good great fine`` (class 1) or ``bad awful poor`` (class 0) at a
  random place — the mask is the keyword's position. Token ids index ``VOCABULARY``.

``relevance_mass(scores, masks)`` is the share of the absolute relevance on the mask
(chance: the mask's share of the positions).
"""

import os
from typing import NamedTuple, Tuple

import keras
import numpy as np

TASKS = ("tabular", "series", "text")
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
RELEVANT_FEATURES = (3, 7, 10)
POSITIVE, NEGATIVE = ("good", "great", "fine"), ("bad", "awful", "poor")
FILLER = ("the", "a", "movie", "plot", "was", "is", "and", "it", "of", "to", "this", "that",
          "with", "for", "on", "actor", "story", "scene", "film", "end", "at", "by", "one",
          "two", "very", "quite", "so", "just", "then", "there", "they", "we", "you", "all",
          "some", "more", "time", "music", "cast", "set")
VOCABULARY = ("[PAD]",) + POSITIVE + NEGATIVE + FILLER
LENGTH, STEPS, PULSE = 16, 64, 8


class Task(NamedTuple):
    """inputs (N, ...), labels (N,) int64, masks (N, positions) bool."""
    inputs: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def generate(task: str, count: int, seed: int = 0) -> Task:
    """``count`` examples of ``task`` (see the module docstring), reproducible from
    ``seed``."""
    if task not in TASKS:
        raise ValueError(f"Expected `task` among {TASKS}. Received: task={task!r}")
    rng = np.random.default_rng(seed)
    if task == "tabular":
        x = rng.normal(size=(count, 12)).astype(np.float32)
        labels = (2 * x[:, 3] - 1.5 * x[:, 7] + x[:, 10] > 0).astype(np.int64)
        masks = np.zeros((count, 12), bool)
        masks[:, list(RELEVANT_FEATURES)] = True
        return Task(x, labels, masks)
    if task == "series":
        x = rng.normal(size=(count, STEPS, 2)).astype(np.float32)
        labels = rng.integers(0, 2, count)
        starts = rng.integers(0, STEPS - PULSE + 1, count)
        masks = np.zeros((count, STEPS), bool)
        for i, start in enumerate(starts):
            x[i, start:start + PULSE, 0] += 2.5 if labels[i] else -2.5
            masks[i, start:start + PULSE] = True
        return Task(x, labels.astype(np.int64), masks)
    first_filler = 1 + len(POSITIVE) + len(NEGATIVE)
    ids = rng.integers(first_filler, len(VOCABULARY), size=(count, LENGTH))
    labels = rng.integers(0, 2, count)
    places = rng.integers(0, LENGTH, count)
    keywords = 1 + rng.integers(0, 3, count) + np.where(labels == 1, 0, len(POSITIVE))
    ids[np.arange(count), places] = keywords
    masks = np.zeros((count, LENGTH), bool)
    masks[np.arange(count), places] = True
    return Task(ids.astype(np.int32), labels.astype(np.int64), masks)


def build_model(task: str) -> keras.Model:
    """The task's small classifier (logits, two classes)."""
    if task == "tabular":
        inputs = keras.Input((12,), name="features")
        x = keras.layers.Dense(16, activation="tanh")(inputs)
    elif task == "series":
        inputs = keras.Input((STEPS, 2), name="series")
        x = keras.layers.Conv1D(8, PULSE, padding="same", activation="relu")(inputs)
        x = keras.layers.GlobalMaxPooling1D()(x)
    elif task == "text":
        inputs = keras.Input((LENGTH,), dtype="int32", name="token_ids")
        x = keras.layers.Embedding(len(VOCABULARY), 8, name="embedding")(inputs)
        x = keras.layers.Dense(8, activation="tanh")(x)
        x = keras.layers.GlobalAveragePooling1D()(x)
    else:
        raise ValueError(f"Expected `task` among {TASKS}. Received: task={task!r}")
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x), name=f"{task}_task")


def weights_path(task: str) -> str:
    return os.path.join(ASSETS, f"{task}_model.weights.h5")


def load(task: str) -> keras.Model:
    """The trained model of ``task`` (shipped weights)."""
    model = build_model(task)
    path = weights_path(task)
    if not os.path.isfile(path):
        raise ValueError(f"Expected the {task} task's weights at {path}; run "
                         "examples/train_task_models.py to create them.")
    model.load_weights(path)
    return model


def train(task: str, *, count: int = 4000, epochs: int = 30, seed: int = 0) -> Tuple[
        keras.Model, float]:
    """Trains the task's model from ``seed`` (seconds on a CPU); returns it and its
    accuracy on 1000 fresh examples."""
    keras.utils.set_random_seed(seed)
    data = generate(task, count, seed)
    model = build_model(task)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.inputs, data.labels, epochs=epochs, batch_size=128, verbose=0)
    fresh = generate(task, 1000, seed + 1)
    accuracy = float(np.mean(np.argmax(model.predict(fresh.inputs, verbose=0), -1)
                             == fresh.labels))
    return model, accuracy


def relevance_mass(scores, masks) -> np.ndarray:
    """Per example, the share of Σ|s| on the mask: ``Σ_{i ∈ mask} |s_i| / Σ_i |s_i|``
    (NaN for an all-zero map)."""
    scores = np.abs(np.asarray(scores, np.float64))
    masks = np.asarray(masks, bool)
    if scores.shape != masks.shape:
        raise ValueError(f"Expected `scores` of the masks' shape {masks.shape}. "
                         f"Received: {scores.shape}")
    total = scores.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (scores * masks).sum(axis=1) / total, np.nan)
