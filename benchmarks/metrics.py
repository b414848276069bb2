"""Metric throughput, measured in one run with interleaved repetitions.

Prints:
* AUPC forward passes/s divided by a bare ``tf.function`` forward loop on the
  same model and batch (target >= 0.90);
* AUTVC time divided by the time of the SmoothTaylor map it scores (R = 150)
  (target <= 0.05);
* adaptive noising: time of 8 one-image calls divided by one call with 8 images.

Usage:
  python benchmarks/metrics.py [--model mobilenet_v2] [--batch 16]
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def aupc_ratio(args, model):
    pixels = (_common.images(1, args.size) + 1) / 2
    x = tf.constant(pixels * 2 - 1)
    batch = tf.constant(_common.images(args.batch, args.size))
    forward = tf.function(lambda z: model(z, training=False))
    metric = tst.metrics.AUPC(model, preprocess=lambda p: 2 * p - 1,
                              deprocess=lambda z: (z + 1) / 2, num_regions=args.regions,
                              num_copies=args.copies, batch_size=args.batch)
    maps = np.random.default_rng(0).uniform(size=(1, args.size, args.size)).astype(np.float32)
    forward(batch).numpy()
    metric(x, maps, targets=0)
    passes = args.regions * args.copies
    batches = max(1, passes // args.batch)
    ratios = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(batches):
            forward(batch).numpy()
        bare = batches * args.batch / (time.perf_counter() - start)
        start = time.perf_counter()
        metric(x, maps, targets=0).aupc.numpy()
        ours = passes / (time.perf_counter() - start)
        ratios.append(ours / bare)
    print(f"AUPC ({args.regions} regions x {args.copies} copies, batch {args.batch}): "
          f"{ours:.1f} forward/s vs bare {bare:.1f}; ratio {np.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


def autvc_ratio(args, model):
    x = _common.images(1, args.size)
    explainer = tst.SmoothTaylor(model, num_roots=150, batch_size=args.batch)
    explainer(x, targets=0)
    tst.metrics.autvc(np.zeros((1, args.size, args.size), np.float32))
    ratios = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        maps = tst.heatmap(explainer(x, targets=0)).numpy()
        explain_time = time.perf_counter() - start
        start = time.perf_counter()
        tst.metrics.autvc(maps).numpy()
        ratios.append((time.perf_counter() - start) / explain_time)
    print(f"AUTVC time / SmoothTaylor (R=150) time: {np.median(ratios):.4f} "
          f"(min {min(ratios):.4f}, max {max(ratios):.4f})")


def adaptive_ratio(args):
    model = _common.build_model(args.model, args.adaptive_size)
    x = _common.images(8, args.adaptive_size, seed=1)
    search = tst.AdaptiveNoising(model, objective="autvc", num_roots=args.adaptive_roots,
                                 max_iterations=3, batch_size=args.batch)
    search(x[:1])                                            # trace once, reuse below
    start = time.perf_counter()
    together = search(x)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    alone = [search(x[i:i + 1]) for i in range(8)]
    separate = time.perf_counter() - start
    same = np.allclose([a.noise_scale.numpy()[0] for a in alone], together.noise_scale.numpy())
    print(f"adaptive noising, 8 images ({args.adaptive_size}px, R={args.adaptive_roots}, "
          f"3 iterations, AUTVC): one call {batched:.1f} s, 8 calls {separate:.1f} s; "
          f"speed-up {separate / batched:.2f}x; same sigmas: {same}")


def main():
    parser = _common.parser(__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--copies", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--adaptive_size", type=int, default=96)
    parser.add_argument("--adaptive_roots", type=int, default=8)
    args = parser.parse_args()
    model = _common.build_model(args.model, args.size)
    print(f"model={args.model} size={args.size} batch={args.batch} repeats={args.repeats}")
    aupc_ratio(args, model)
    autvc_ratio(args, model)
    adaptive_ratio(args)


if __name__ == "__main__":
    main()
