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

With ``--processes N`` the script instead measures what only the first explainer of a
process pays (tracing the model and building its gradient, the top-1 forward pass,
the random-number generator): N fresh processes per method, each timing its first
explainer (``--images``, ``--points``, top-1 classes) against a new bare gradient
traced before it and another after it (the mean of the two is the reference), with the
methods' processes interleaved. A fourth row, ``floor``, runs the least that any
design sharing the model across explainers and walking chunks in a loop does on its
first call: the model's compiled forward pass for the top-1 classes, then a
``tf.while_loop`` over as many chunks of 16 as the engine's, whose body takes a chunk's
input gradient through that compiled forward pass — no random numbers, no sums per
image, no checks.

Usage:
  python benchmarks/first_call.py [--model mobilenet_v2] [--points 16] [--images 2]
                                  [--rounds 1] [--processes 0]
"""

import argparse
import json
import os
import subprocess
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


def floor_design(model, size: int, images: int, points: int):
    """The ``floor`` row's first call: ``(x) -> input gradients``, see the docstring:
    chunks of 16 rows (each image repeated ``16 // images`` times), as many as the
    engine's chunks for ``images × points`` points."""
    repeat, chunks = max(1, 16 // images), -(-images * points // 16)
    forward = tf.function(lambda z: model(z, training=False), autograph=False,
                          input_signature=[tf.TensorSpec([None, size, size, 3])])

    @tf.function(autograph=False)
    def looped(x, classes):
        rows = tf.repeat(x, repeat, axis=0)
        targets = tf.repeat(classes, repeat)

        def body(i, total):
            with tf.GradientTape() as tape:
                tape.watch(rows)
                value = tf.gather(forward(rows), targets, batch_dims=1)
            return i + 1, total + tape.gradient(value, rows)

        return tf.while_loop(lambda i, total: i < chunks, body,
                             (0, tf.zeros_like(rows)))[1]

    def call(x):
        x = tf.constant(x, tf.float32)
        classes = tf.constant(np.argmax(forward(x).numpy(), axis=-1), tf.int32)
        return looped(x, classes)

    return call


def warmed_up(args):
    """``(model, x, bare_overhead)`` after a warm-up gradient call: ``x`` pixels in
    [0, 1] (for AUPC), ``bare_overhead()`` the first − steady seconds of a new bare
    gradient function on a chunk of 16."""
    model = _common.build_model(args.model, args.size)
    x = (_common.images(args.images, args.size) + 1) / 2
    chunk = tf.constant(_common.images(16, args.size))
    zeros = tf.zeros([16], tf.int32)
    _common.bare_gradient_loop(model)(chunk, zeros).numpy()  # warm-up

    def bare_overhead():
        fresh = _common.bare_gradient_loop(model)
        first, steady = first_and_steady(lambda: fresh(chunk, zeros), args.repeats)
        return first - steady

    return model, x, bare_overhead


def first_of_process(args, makers) -> dict:
    """This process's first explainer of ``args.first_of_process``: its overhead and
    that of a new bare gradient before and after it."""
    model, x, bare_overhead = warmed_up(args)
    before = bare_overhead()
    if args.first_of_process == "floor":
        call = floor_design(model, args.size, args.images, args.points)
    else:
        call = makers[args.first_of_process](model)
    first, steady = first_and_steady(lambda: call(x), args.repeats)
    return dict(overhead=first - steady, bare=[before, bare_overhead()])


def per_process(args, names):
    """``--processes N``: each method's first explainer in N fresh processes."""
    rows = {name: [] for name in names + ["floor"]}
    for index in range(args.processes):
        for name in (list(rows) if index % 2 == 0 else list(rows)[::-1]):
            command = [sys.executable, os.path.abspath(__file__), "--model", args.model,
                       "--size", str(args.size), "--points", str(args.points),
                       "--images", str(args.images), "--repeats", str(args.repeats),
                       "--first_of_process", name]
            done = subprocess.run(command, check=True, capture_output=True, text=True,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            result = json.loads(done.stdout.strip().splitlines()[-1])
            reference = float(np.mean(result["bare"]))
            rows[name].append(result["overhead"] / reference)
            print(f"process {index + 1} {name:20s} overhead {result['overhead']:5.2f} s ÷ "
                  f"bare's {reference:5.2f} s (before {result['bare'][0]:4.2f}, after "
                  f"{result['bare'][1]:4.2f}) = {rows[name][-1]:4.2f}", flush=True)
    for name, ratios in rows.items():
        print(f"{name:20s} first explainer of a process, overhead ÷ bare's: median "
              f"{float(np.median(ratios)):4.2f} ({min(ratios):4.2f}–{max(ratios):4.2f}, "
              f"{len(ratios)} processes)")


def main():
    parser = _common.parser(__doc__)
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--first_of_process", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    points = dict(batch_size=16)
    by_model = {
        "SmoothTaylor": lambda m: tst.SmoothTaylor(m, num_roots=args.points, **points),
        "IntegratedGradients": lambda m: tst.IntegratedGradients(m, steps=args.points,
                                                                 **points),
        "SmoothGrad": lambda m: tst.SmoothGrad(m, num_samples=args.points, **points),
        "LRP": lambda m: tst.LRP(m, **points),
    }
    if args.first_of_process:
        print(json.dumps(first_of_process(args, by_model)))
        return
    if args.processes:
        per_process(args, ["SmoothTaylor", "IntegratedGradients", "SmoothGrad"])
        return
    model, x, bare_overhead = warmed_up(args)
    makers = {name: (lambda make=make: make(model)) for name, make in by_model.items()}
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
