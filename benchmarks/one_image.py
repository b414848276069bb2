"""Where the time of one image's noise methods goes, against the suite's bare loop.

``suite.py`` compares SmoothTaylor and SmoothGrad on one image × P points with a bare
``tf.function`` gradient loop over ⌊P / B⌋ full chunks of B, scaled by P / (⌊P/B⌋ B).
That reference neither draws noise nor pays for the last, partial chunk (P = 50,
B = 16: chunks 16, 16, 16 and 2, where a chunk of 2 costs more than 2/16 of one
of 16). This script times, interleaved, in one run:

* ``scaled``: the suite's reference (full chunks, scaled);
* ``chunks``: a bare loop over the engine's own chunks (16, 16, 16, 2);
* ``chunks + noise``: the same loop, each chunk's points drawn as the engine draws
  them (``engine.streams.normal``: Philox and Box–Muller, keyed rows) and added;
* SmoothTaylor and SmoothGrad (``num_roots`` / ``num_samples`` = P);

and prints each as throughput ÷ ours (time of the reference ÷ time of ours; 1 =
our speed), so that the gap to the suite's reference splits into the partial chunk,
the noise and the rest (what the engine adds).

Usage:
  python benchmarks/one_image.py [--model mobilenet_v2] [--points 50] [--batch 16]
                                 [--repeats 7]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402
from tf_smoothtaylor.engine import streams  # noqa: E402


def chunk_loops(model, x, points, batch):
    """``(scaled, chunks, chunks_with_noise)`` callables for one image ``x``."""
    bare = _common.bare_gradient_loop(model)
    full = tf.repeat(x, batch, axis=0)
    targets = tf.zeros([batch], tf.int32)
    sizes = [batch] * (points // batch) + ([points % batch] if points % batch else [])
    keys = streams.image_keys(x, 0)

    @tf.function(autograph=False)
    def noisy(rows, start, size):
        index = start + tf.range(size)
        noise = streams.normal(keys.gather(tf.zeros([size], tf.int32)), streams.ROOTS, index,
                               rows.shape[1:], scale=tf.fill([size], 0.5))
        return bare(rows + noise, tf.zeros([size], tf.int32))

    def scaled():
        return [bare(full, targets).numpy() for _ in range(max(1, points // batch))]

    def chunks():
        return [bare(full[:size], targets[:size]).numpy() for size in sizes]

    def chunks_with_noise():
        return [noisy(full[:size], sum(sizes[:i]), size).numpy()
                for i, size in enumerate(sizes)]

    return scaled, chunks, chunks_with_noise, points / (max(1, points // batch) * batch)


def main():
    args = _common.chunk_parser(__doc__, points=50, repeats=7).parse_args()
    model = _common.build_model(args.model, args.size)
    x = tf.constant(_common.images(1, args.size))
    target = np.zeros(1, np.int32)
    scaled, chunks, noisy, scale = chunk_loops(model, x, args.points, args.batch)
    ours = {"SmoothTaylor": tst.SmoothTaylor(model, num_roots=args.points,
                                             batch_size=args.batch),
            "SmoothGrad": tst.SmoothGrad(model, num_samples=args.points,
                                         batch_size=args.batch)}
    references = {"scaled (suite.py's reference)": (scaled, scale), "chunks": (chunks, 1.0),
                  "chunks + noise": (noisy, 1.0)}
    calls = {**references,
             **{name: (lambda e=e: e(x, target).numpy(), 1.0) for name, e in ours.items()}}
    for fn, _ in calls.values():               # trace and warm up every side
        fn()
        fn()
    times = {name: np.zeros(args.repeats) for name in calls}
    for repeat in range(args.repeats):        # interleaved
        for name, (fn, factor) in calls.items():
            times[name][repeat] = _common.timed(fn) * factor
    print(f"{args.model} {args.size}px, 1 image x {args.points} points, batch {args.batch}, "
          f"{args.repeats} interleaved repetitions; time(reference) / time(ours), "
          "summed times (median of the per-repetition ratios):")
    print("| reference | SmoothTaylor | SmoothGrad |")
    print("|---|---|---|")
    for name in references:
        cells = [f"{times[name].sum() / times[method].sum():.3f} "
                 f"({np.median(times[name] / times[method]):.3f})" for method in ours]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, values in times.items():
        print(f"  {name}: median {np.median(values) * 1000:.0f} ms per call")


if __name__ == "__main__":
    main()
