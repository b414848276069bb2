"""Explain a Keras Applications model with SmoothTaylor and Integrated Gradients.

Runs offline: the model is built with ``weights=None`` (pass ``--weights
imagenet`` to download the real weights) and the images are synthetic unless
files are given.

Usage:
  python examples/quickstart.py [--weights imagenet] [image.jpg ...]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402

SIZE = 96


def load_images(paths):
    if not paths:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
        disc = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.08)[..., None]
        return np.clip(0.3 + 0.6 * disc * [1.0, 0.4, 0.1]
                       + 0.05 * rng.normal(size=(2, SIZE, SIZE, 3)), 0, 1).astype(np.float32)
    pixels = [tf.image.resize(tf.io.decode_image(tf.io.read_file(p), channels=3,
                                                 expand_animations=False), (SIZE, SIZE)) / 255.0
              for p in paths]
    return tf.stack(pixels).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--num_roots", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("images", nargs="*")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=args.weights, input_shape=(SIZE, SIZE, 3))
    preprocess = keras.applications.mobilenet_v2.preprocess_input   # [0, 255] -> [-1, 1]
    to_inputs = lambda pixels: preprocess(pixels * 255.0)            # noqa: E731
    x = to_inputs(load_images(args.images))

    smooth_taylor = tst.SmoothTaylor(model, num_roots=args.num_roots, noise_scale=0.5,
                                     batch_size=16)
    ig = tst.IntegratedGradients(model, steps=args.steps, baseline="zero",
                                 preprocess=to_inputs, batch_size=16)
    attributions = {}
    for name, explainer in [("SmoothTaylor", smooth_taylor), ("IntegratedGradients", ig)]:
        attributions[name] = explainer(x)                # top-1 class logits
        maps = tst.heatmap(attributions[name]).numpy()   # (B, H, W)
        print(f"{name:20s} heatmaps {maps.shape}, mean |h| = {np.abs(maps).mean():.3e}")
    gap = tst.completeness_gap(model, x, attributions["IntegratedGradients"],
                               ig.baselines(tf.constant(x)))
    print("IG completeness gap per image:", np.round(gap.numpy(), 4))
    if args.weights is None:
        print("(Random weights: an untrained MobileNetV2's logits barely depend on its input, "
              "so the maps are tiny (about 1e-15) and so is the completeness gap. "
              "Run with --weights imagenet, online, for real maps.)")


if __name__ == "__main__":
    main()
