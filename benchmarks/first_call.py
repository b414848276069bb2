"""First-call latency: what tracing the compiled function costs.

Prints, for SmoothTaylor, IG, SmoothGrad, LRP and AUPC on one model, the first
call of a new explainer (trace + run), the median of the following calls, the
first call divided by the steady one, and the *overhead* (first − steady)
divided by that of a new bare ``tf.function`` gradient of the same model and
batch traced right before it (target ≤ 1.3). TensorFlow is warmed up first by a
bare gradient call, so every first call pays only for its own tracing.

With ``--rounds N`` every method is measured N times, each time on a new explainer
(and a new bare gradient for its reference): round 1 is the first explainer of the
process (it also compiles what the process shares: the model's top-1 forward pass,
the random-number generator); the median ratio of rounds 2..N is what any later
explainer costs. One first call is a single sample of a noisy quantity: use
several rounds to compare versions.
Compare two versions by running the script with each on ``PYTHONPATH``.

Usage:
  python benchmarks/first_call.py [--model mobilenet_v2] [--points 16] [--images 2]
                                  [--rounds 1]
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def first_and_steady(call, repeats: int):
    """(seconds of the first call, median seconds of ``repeats`` later calls)."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        result = call()
        if hasattr(result, "numpy"):
            result.numpy()
        times.append(time.perf_counter() - start)
    return times[0], float(np.median(times[1:]))


def main():
    parser = _common.parser(__doc__)
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    model = _common.build_model(args.model, args.size)
    x = (_common.images(args.images, args.size) + 1) / 2     # pixels in [0, 1], for AUPC
    chunk = tf.constant(_common.images(16, args.size))
    zeros = tf.zeros([16], tf.int32)
    _common.bare_gradient_loop(model)(chunk, zeros).numpy()  # warm-up

    def bare_overhead():
        """First − steady of a new bare gradient function (a chunk of 16)."""
        fresh = _common.bare_gradient_loop(model)
        first, steady = first_and_steady(lambda: fresh(chunk, zeros), args.repeats)
        return first - steady

    points = dict(batch_size=16)
    makers = {
        "SmoothTaylor": lambda: tst.SmoothTaylor(model, num_roots=args.points, **points),
        "IntegratedGradients": lambda: tst.IntegratedGradients(model, steps=args.points,
                                                               **points),
        "SmoothGrad": lambda: tst.SmoothGrad(model, num_samples=args.points, **points),
        "LRP": lambda: tst.LRP(model, **points),
    }
    print(f"{tst.__file__}\nmodel={args.model} size={args.size} points/image={args.points} "
          f"images={args.images} repeats={args.repeats} rounds={args.rounds}")
    names = [name for name in makers if name != "LRP" or hasattr(tst, "LRP")]
    ratios = {name: [] for name in names}
    for round_ in range(1, args.rounds + 1):
        for name in names:
            bare = bare_overhead()
            explainer = makers[name]()
            first, steady = first_and_steady(lambda: explainer(x), args.repeats)
            ratios[name].append((first - steady) / bare)
            print(f"round {round_} {name:20s} first {first:6.2f} s  steady {steady:6.2f} s  "
                  f"first ÷ steady {first / steady:5.1f}  overhead {first - steady:5.2f} s "
                  f"÷ bare's {bare:5.2f} s = {(first - steady) / bare:4.2f}")
    if args.rounds > 1:
        for name in names:
            later = ratios[name][1:]
            print(f"{name:20s} overhead ÷ bare's: first explainer {ratios[name][0]:4.2f}, "
                  f"later ones median {float(np.median(later)):4.2f} "
                  f"({min(later):4.2f}–{max(later):4.2f})")
    maps = tst.heatmap(tst.Gradient(model)(x, targets=0))
    aupc = tst.metrics.AUPC(model, window=max(2, args.size // 14), num_regions=4,  # 16 at 224
                            num_copies=16, batch_size=16)
    first, steady = first_and_steady(lambda: aupc(x, maps, targets=0).aupc, args.repeats)
    print(f"{'AUPC':20s} first {first:6.2f} s  steady {steady:6.2f} s  "
          f"first ÷ steady {first / steady:5.1f}")


if __name__ == "__main__":
    main()
