"""Trains the bundled demo model on generated shapes and writes its assets.

Writes ``demo_model.weights.h5``, a dozen sample images with their masks and
``samples.json`` into ``tf_smoothtaylor/demo/assets`` (or ``--output_dir``).
Seed-reproducible on CPU (op determinism is enabled).

Usage:
  python examples/train_demo_model.py [--epochs 12] [--train 8000] [--output_dir DIR]
  python examples/train_demo_model.py --quick --output_dir /tmp/demo   # a smoke run
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_smoothtaylor import demo  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("epochs", 12, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("train", 8000, "Training images.", lower_bound=8)
flags.DEFINE_integer("test", 1000, "Held-out images.", lower_bound=4)
flags.DEFINE_integer("seed", 0, "Seed of data, weights and training.", lower_bound=0)
flags.DEFINE_integer("samples", 12, "Sample images to write.", lower_bound=1)
flags.DEFINE_string("output_dir", demo.ASSETS, "Where to write the assets.")
flags.DEFINE_bool("quick", False, "A tiny run (2 epochs, 256 images) for smoke tests.")


def main(argv):
    del argv
    epochs, train, test = FLAGS.epochs, FLAGS.train, FLAGS.test
    if FLAGS.quick:
        epochs, train, test = 2, 256, 64
    keras.utils.set_random_seed(FLAGS.seed)
    tf.config.experimental.enable_op_determinism()
    train_set = demo.generate(train, seed=FLAGS.seed)
    test_set = demo.generate(test, seed=FLAGS.seed + 1)
    model = demo.build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    to_inputs = lambda p: 2.0 * p - 1.0  # noqa: E731 — the demo's "tf" preprocessing
    model.fit(to_inputs(train_set.pixels), train_set.labels, epochs=epochs, batch_size=64,
              shuffle=True, verbose=2)
    _, accuracy = model.evaluate(to_inputs(test_set.pixels), test_set.labels, verbose=0)
    print(f"held-out accuracy: {accuracy:.4f} on {test} images")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    model.save_weights(os.path.join(FLAGS.output_dir, "demo_model.weights.h5"))
    sample_set = demo.generate(FLAGS.samples, seed=FLAGS.seed + 2)
    items = []
    for i, (pixels, label, mask) in enumerate(zip(*sample_set)):
        name = demo.CLASS_NAMES[label]
        image_file, mask_file = f"sample_{i:02d}_{name}.png", f"sample_{i:02d}_{name}_mask.png"
        tf.io.write_file(os.path.join(FLAGS.output_dir, image_file),
                         tf.io.encode_png(np.round(pixels * 255).astype(np.uint8)))
        tf.io.write_file(os.path.join(FLAGS.output_dir, mask_file),
                         tf.io.encode_png(mask[..., None].astype(np.uint8) * 255))
        items.append({"image": image_file, "mask": mask_file, "label": int(label)})
    with open(os.path.join(FLAGS.output_dir, "samples.json"), "w", encoding="utf-8") as handle:
        json.dump(items, handle, indent=1)
    print(f"wrote {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
