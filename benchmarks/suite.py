"""The benchmark suite: one table of ratios, all measured in this run.

For MobileNetV2 and ResNet50 (``weights=None``, 224×224, batch 16):

* engine ÷ bare ``tf.function`` gradient loop — SmoothTaylor, IG, SmoothGrad with
  one image and with 8 images per call (packing across images);
* engine ÷ xplique 2.x IntegratedGradients and SmoothGrad (same model, steps,
  samples and batch size), when xplique is importable (optional: point
  PYTHONPATH at an install of it; it is not a dependency);
* first call (trace + run) ÷ steady call;
* XLA (``jit_compile=True``) and ``mixed_float16`` throughput ÷ float32, with the
  largest relative map difference;
* AUPC forward passes/s ÷ a bare forward loop;
* peak RSS of SmoothTaylor with R = 1000 ÷ R = 10 (MobileNetV2, fresh processes).

Usage:
  python benchmarks/suite.py [--models mobilenet_v2,resnet50] [--repeats 3]
  PYTHONPATH=/path/to/xplique python benchmarks/suite.py      # with the xplique columns
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402

ROWS = []


def report(measure, model, value, note=""):
    ROWS.append((measure, model, value, note))
    print(f"{measure:58s} {model:13s} {value:8.3f}  {note}", flush=True)


def median_ratio(first, second, repeats):
    """Median over interleaved repetitions of time(second) / time(first)."""
    ratios = []
    for _ in range(repeats):
        a = _common.timed(*first)
        b = _common.timed(*second)
        ratios.append(b / a)
    return float(np.median(ratios))


def xplique_explainers(model, points, batch):
    try:
        from xplique.attributions import IntegratedGradients, SmoothGrad
    except ImportError:
        return None
    return {"IntegratedGradients": IntegratedGradients(model, batch_size=batch, steps=points),
            "SmoothGrad": SmoothGrad(model, batch_size=batch, nb_samples=points, noise=0.2)}


def engine_rows(name, model, args):
    x8 = _common.images(8, args.size)
    batch = args.batch
    bare = _common.bare_gradient_loop(model)
    xb, tb = tf.constant(_common.images(batch, args.size)), tf.constant(np.zeros(batch, np.int32))
    bare(xb, tb).numpy()
    for images, points in ((x8[:1], args.points), (x8, max(1, args.points // 4))):
        count = len(images)
        total = count * points
        batches = max(1, total // batch)
        ours = {"SmoothTaylor": tst.SmoothTaylor(model, num_roots=points, batch_size=batch),
                "IntegratedGradients": tst.IntegratedGradients(model, steps=points,
                                                               batch_size=batch),
                "SmoothGrad": tst.SmoothGrad(model, num_samples=points, batch_size=batch)}
        targets = np.zeros(count, np.int32)
        for method, explainer in ours.items():
            start = time.perf_counter()
            explainer(images, targets).numpy()
            first = time.perf_counter() - start
            steady = _common.timed(explainer, images, targets)
            ratio = median_ratio((explainer, images, targets),
                                 (lambda: [bare(xb, tb).numpy() for _ in range(batches)],),
                                 args.repeats) * total / (batches * batch)
            report(f"{method} ÷ bare loop ({count} image(s) × {points} points)", name, ratio)
            if count == 1:
                report(f"{method} first call ÷ steady call", name, first / steady)
        peers = xplique_explainers(model, points, batch)
        if peers is None:
            continue
        one_hot = tf.one_hot(targets, model.output_shape[-1])
        for method, peer in peers.items():
            peer.explain(images, one_hot)
            ratio = median_ratio((ours[method], images, targets),
                                 (peer.explain, images, one_hot), args.repeats)
            report(f"{method} ÷ xplique ({count} image(s) × {points} points)", name, ratio)


def precision_rows(name, args):
    x = _common.images(1, args.size)
    reference_model = _common.build_model(name, args.size)
    float32 = tst.SmoothTaylor(reference_model, num_roots=args.points, batch_size=args.batch)
    reference = float32(x, 0).numpy()
    xla = tst.SmoothTaylor(reference_model, num_roots=args.points, batch_size=args.batch,
                           jit_compile=True)
    xla_maps = xla(x, 0).numpy()
    report("XLA throughput ÷ float32", name, median_ratio((xla, x, 0), (float32, x, 0),
                                                           args.repeats),
           f"max rel. map diff {_relative(xla_maps, reference):.1e}")
    keras.mixed_precision.set_global_policy("mixed_float16")
    half_model = _common.build_model(name, args.size)
    keras.mixed_precision.set_global_policy("float32")
    half_model.set_weights(reference_model.get_weights())
    half = tst.SmoothTaylor(half_model, num_roots=args.points, batch_size=args.batch)
    half_maps = half(x, 0).numpy()
    report("mixed_float16 throughput ÷ float32", name,
           median_ratio((half, x, 0), (float32, x, 0), args.repeats),
           f"max rel. map diff {_relative(half_maps, reference):.1e}")


def _relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def aupc_row(name, model, args):
    pixels = (_common.images(1, args.size) + 1) / 2
    batch = tf.constant(_common.images(args.batch, args.size))
    forward = tf.function(lambda z: model(z, training=False))
    metric = tst.metrics.AUPC(model, preprocess=lambda p: 2 * p - 1,
                              deprocess=lambda z: (z + 1) / 2, num_regions=4, num_copies=48,
                              batch_size=args.batch)
    maps = np.random.default_rng(0).uniform(size=(1, args.size, args.size)).astype(np.float32)
    x = tf.constant(pixels * 2 - 1)
    forward(batch).numpy()
    metric(x, maps, targets=0)
    batches = 4 * 48 // args.batch
    ratio = median_ratio((lambda: metric(x, maps, targets=0).aupc.numpy(),),
                         (lambda: [forward(batch).numpy() for _ in range(batches)],),
                         args.repeats)
    report("AUPC forward/s ÷ bare forward loop", name, ratio)


def memory_row(args):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine.py")
    peaks = {}
    for roots in (10, 1000):
        output = subprocess.run([sys.executable, script, "--child_roots", str(roots)],
                                check=True, capture_output=True, text=True).stdout
        peaks[roots] = json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]
    report("SmoothTaylor peak RSS, R=1000 ÷ R=10", "mobilenet_v2", peaks[1000] / peaks[10],
           f"{peaks[10]:.0f} MB vs {peaks[1000]:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip_memory", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow "
          f"{tf.__version__}, Keras {keras.__version__}; batch {args.batch}, {args.size} px")
    for name in args.models.split(","):
        model = _common.build_model(name, args.size)
        engine_rows(name, model, args)
        aupc_row(name, model, args)
        precision_rows(name, args)
    if not args.skip_memory:
        memory_row(args)
    print("\n| measure | model | value | note |\n|---|---|---|---|")
    for measure, model, value, note in ROWS:
        print(f"| {measure} | {model} | {value:.3f} | {note} |")


if __name__ == "__main__":
    main()
