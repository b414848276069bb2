"""Cost per image as the number of images per call grows.

Prints, for the plain gradient (one point per image) and SmoothTaylor with 4
roots on a small CNN, the time per image at B = 64, 1024 and 4096 images per
call, and each B's time per image divided by that at B = 64 (target: within
1.2 for every B — the work per chunk must not grow with B).

Usage:
  python benchmarks/images_per_call.py [--sizes 64,1024,4096] [--repeats 3]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def small_model(size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((size, size, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,1024,4096")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    model = small_model(args.image_size)
    explainers = {
        "Gradient": tst.Gradient(model, batch_size=args.batch),
        "SmoothTaylor R=4": tst.SmoothTaylor(model, num_roots=4, batch_size=args.batch),
    }
    print(f"small CNN {args.image_size}×{args.image_size}, batch_size={args.batch}, "
          f"median of {args.repeats} calls")
    for name, explainer in explainers.items():
        per_image = {}
        for count in sizes:
            x = _common.images(count, args.image_size)
            explainer(x[:count], targets=0).numpy()                  # warm up
            times = [_common.timed(explainer, x, 0) for _ in range(args.repeats)]
            per_image[count] = float(np.median(times)) / count
        base = per_image[sizes[0]]
        for count in sizes:
            print(f"{name:18s} B={count:<5d} {per_image[count] * 1e6:8.1f} µs/image  "
                  f"÷ B={sizes[0]}: {per_image[count] / base:.3f}")


if __name__ == "__main__":
    main()
