"""The engine's own work per chunk: what one image pays beyond the model's gradients.

Explains one image with P points (chunks of ``--batch``) twice per method: on the
benchmark model, and on a model whose gradient costs almost nothing (global
average pooling and a dense layer on the same input size), which leaves the
engine's own work per chunk — generating the points (noise, paths), accumulating
the sums, the loop. Prints, per method, that work per chunk, its share of a chunk
on the real model, and the real model's chunk time against a bare
``tf.function`` gradient of a batch of the same size. The three are called
alternately ``--repeats`` times; medians.

Usage:
  python benchmarks/chunk_cost.py [--model mobilenet_v2] [--points 48] [--repeats 5]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def trivial_model(size: int) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(pooled))


def main():
    args = _common.chunk_parser(__doc__, points=48, repeats=5).parse_args()
    model, trivial = _common.build_model(args.model, args.size), trivial_model(args.size)
    image = _common.images(1, args.size)
    chunk = tf.constant(_common.images(args.batch, args.size))
    zeros = tf.zeros([args.batch], tf.int32)
    bare = _common.bare_gradient_loop(model)
    chunks = -(-args.points // args.batch)
    settings = dict(batch_size=args.batch)
    makers = {
        "SmoothTaylor": lambda m: tst.SmoothTaylor(m, num_roots=args.points, **settings),
        "SmoothGrad": lambda m: tst.SmoothGrad(m, num_samples=args.points, **settings),
        "IntegratedGradients": lambda m: tst.IntegratedGradients(m, steps=args.points,
                                                                 **settings),
    }
    print(f"model={args.model} size={args.size} one image × {args.points} points = "
          f"{chunks} chunks of ≤ {args.batch}, repeats={args.repeats}")
    for name, make in makers.items():
        on_trivial, on_model = make(trivial), make(model)
        calls = {"bare": lambda: bare(chunk, zeros), "trivial": lambda: on_trivial(image, 0),
                 "model": lambda: on_model(image, 0)}
        times = {key: [] for key in calls}
        for call in calls.values():                      # traced and warm
            call().numpy()
        for _ in range(args.repeats):
            for key, call in calls.items():
                times[key].append(_common.timed(call))
        bare_chunk = float(np.median(times["bare"]))
        own = float(np.median(times["trivial"])) / chunks
        per_chunk = float(np.median(times["model"])) / chunks
        print(f"{name:20s} engine's own work {1000 * own:6.1f} ms/chunk = "
              f"{own / per_chunk:5.3f} of a chunk on the model ({1000 * per_chunk:6.1f} ms); "
              f"bare gradient {1000 * bare_chunk:6.1f} ms: model chunk ÷ bare "
              f"{per_chunk / bare_chunk:5.3f}")


if __name__ == "__main__":
    main()
