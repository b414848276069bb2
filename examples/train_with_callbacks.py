"""Train a Keras model while logging attribution metrics and heatmaps.

Trains a small CNN on the generated shapes and, after every epoch, explains a
fixed held-out batch with SmoothTaylor: AUTVC, AUPC and the relevance mass are
written to ``History``, ``log.csv`` and TensorBoard, with heatmap images.

Usage:
  python examples/train_with_callbacks.py --output_dir /tmp/run [--epochs 5] [--quick]
  tensorboard --logdir /tmp/run/logs
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402
from tf_smoothtaylor import demo  # noqa: E402
from tf_smoothtaylor.integrations.callbacks import (  # noqa: E402
    AttributionImages, AttributionMetrics)

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "/tmp/tf_smoothtaylor_training", "Logs go here.")
flags.DEFINE_integer("epochs", 5, "Training epochs.", lower_bound=1)
flags.DEFINE_bool("quick", False, "A tiny run for smoke tests.")


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    train, held_out = (200, 8) if FLAGS.quick else (4000, 16)
    epochs = 2 if FLAGS.quick else FLAGS.epochs
    data = demo.generate(train, seed=0)
    validation = demo.generate(held_out, seed=1)
    to_inputs = lambda p: 2.0 * p - 1.0  # noqa: E731
    model = demo.build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x_val = to_inputs(validation.pixels)
    explainer = tst.SmoothTaylor(model, num_roots=8 if FLAGS.quick else 32, noise_scale=0.5)
    log_dir = os.path.join(FLAGS.output_dir, "logs")
    callbacks = [
        AttributionMetrics(explainer, x_val, targets=validation.labels,
                           metrics=("autvc", "aupc"),
                           metric_options={"autvc": {"min_size": 10},
                                           "aupc": {"window": 8, "num_regions": 8,
                                                    "num_copies": 8,
                                                    "preprocess": to_inputs,
                                                    "deprocess": lambda x: (x + 1) / 2}}),
        AttributionImages(explainer, x_val, log_dir=log_dir, targets=validation.labels,
                          deprocess=lambda x: (x + 1) / 2, max_images=4),
        keras.callbacks.CSVLogger(os.path.join(FLAGS.output_dir, "log.csv")),
        keras.callbacks.TensorBoard(log_dir=log_dir),
    ]
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    history = model.fit(to_inputs(data.pixels), data.labels, epochs=epochs, batch_size=64,
                        validation_data=(x_val, validation.labels), callbacks=callbacks,
                        verbose=2)
    for epoch in range(epochs):
        print(f"epoch {epoch + 1}: attr_autvc={history.history['attr_autvc'][epoch]:.4f} "
              f"attr_aupc={history.history['attr_aupc'][epoch]:.4f}")
    print("relevance mass inside the objects:", np.round(tst.metrics.relevance_mass(
        tst.heatmap(explainer(x_val, validation.labels)), validation.masks).numpy().mean(), 3))


if __name__ == "__main__":
    app.run(main)
