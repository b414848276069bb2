"""Engine throughput and memory against a bare ``tf.function`` gradient loop.

Prints, measured in one run with interleaved repetitions:
* for SmoothTaylor, IG and SmoothGrad: gradient evaluations/s of the engine
  divided by that of a bare loop of batched input gradients (same model, same
  batch); target >= 0.95;
* peak RSS of SmoothTaylor (fresh processes) as R grows: R = 16 -> 1008 (whole
  chunks of 16), R = 24 -> 1000 (both end with a partial chunk of 8) and
  R = 10 -> 1000; target <= 1.10 for growth with R.

Usage:
  python benchmarks/engine.py [--model mobilenet_v2] [--batch 16] [--points 64]
"""

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def throughput(args):
    model = _common.build_model(args.model, args.size)
    x = _common.images(args.batch, args.size)
    one = x[:1]
    target = np.zeros([args.batch], np.int32)
    bare = _common.bare_gradient_loop(model)
    batches = args.points // args.batch
    explainers = {
        "SmoothTaylor": tst.SmoothTaylor(model, num_roots=args.points, batch_size=args.batch),
        "IntegratedGradients": tst.IntegratedGradients(model, steps=args.points,
                                                       batch_size=args.batch),
        "SmoothGrad": tst.SmoothGrad(model, num_samples=args.points, batch_size=args.batch),
    }
    bare(tf.constant(x), tf.constant(target)).numpy()   # trace
    for explainer in explainers.values():
        explainer(one, targets=0).numpy()
    ratios = {name: [] for name in explainers}
    rates = {name: [] for name in ["bare", *explainers]}
    for _ in range(args.repeats):
        for name, explainer in explainers.items():
            # Each method is timed right after its own bare measurement, so a
            # drift in machine speed affects both sides of the ratio alike.
            bare_time = sum(_common.timed(bare, tf.constant(x), tf.constant(target))
                            for _ in range(batches))
            method_time = _common.timed(explainer, one, 0)
            rates["bare"].append(batches * args.batch / bare_time)
            rates[name].append(args.points / method_time)
            ratios[name].append(bare_time / method_time * args.points / (batches * args.batch))
    print(f"model={args.model} size={args.size} batch={args.batch} "
          f"points/image={args.points} repeats={args.repeats}")
    print(f"{'bare tf.function loop':24s} {np.median(rates['bare']):7.2f} grad/s")
    for name in explainers:
        print(f"{name:24s} {np.median(rates[name]):7.2f} grad/s  ratio {np.median(ratios[name]):.3f} "
              f"(min {np.min(ratios[name]):.3f}, max {np.max(ratios[name]):.3f})")


def peak_rss_child(args):
    model = _common.build_model(args.model, args.size)
    explainer = tst.SmoothTaylor(model, num_roots=args.roots, batch_size=args.batch)
    explainer(_common.images(1, args.size), targets=0).numpy()
    print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux keeps that
    across execve, so a child would report its parent's peak when larger."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MEMORY_PAIRS = ((16, 1008, "whole chunks"), (24, 1000, "last chunk of 8 in both"),
                (10, 1000, "one chunk of 10 vs chunks of 16 + 8"))


def child_peak_rss_mb(roots: int, model: str = "mobilenet_v2", size: int = 224,
                      batch: int = 16) -> float:
    """Peak RSS of a fresh process running SmoothTaylor with ``roots`` roots."""
    command = [sys.executable, os.path.abspath(__file__), "--child_roots", str(roots),
               "--model", model, "--size", str(size), "--batch", str(batch)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]


def memory_peaks(model: str = "mobilenet_v2", size: int = 224, batch: int = 16) -> dict:
    """R -> peak RSS (MB) for every R in MEMORY_PAIRS, one fresh process each."""
    roots = sorted({r for low, high, _ in MEMORY_PAIRS for r in (low, high)})
    return {r: child_peak_rss_mb(r, model, size, batch) for r in roots}


def memory(args):
    peaks = memory_peaks(args.model, args.size, args.batch)
    for roots, peak in peaks.items():
        print(f"SmoothTaylor R={roots:<5d} peak RSS {peak:8.1f} MB")
    for low, high, what in MEMORY_PAIRS:
        print(f"peak RSS ratio R={high} / R={low} ({what}): {peaks[high] / peaks[low]:.3f}")


def main():
    parser = _common.parser(__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip_memory", action="store_true")
    parser.add_argument("--child_roots", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_roots:
        args.roots = args.child_roots
        peak_rss_child(args)
        return
    throughput(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
