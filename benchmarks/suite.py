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
* peak RSS of SmoothTaylor as R grows (MobileNetV2, fresh processes; see engine.py).

Each ratio is taken over interleaved repetitions of the two sides: the value is the
ratio of their summed times (throughput over every call, slow calls included); the
note adds the median and range of the per-repetition ratios and the ratio of the
fastest calls.

Usage:
  python benchmarks/suite.py [--models mobilenet_v2,resnet50] [--repeats 5]
  PYTHONPATH=/path/to/xplique python benchmarks/suite.py      # with the xplique columns
"""

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import engine as engine_benchmark  # noqa: E402  (benchmarks/engine.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402

ROWS = []


def report(measure, model, value, note=""):
    ROWS.append((measure, model, value, note))
    print(f"{measure:58s} {model:13s} {value:8.3f}  {note}", flush=True)


class Paired:
    """Interleaved repetitions of two calls: ratios of time(second) to time(first).

    ``total`` is the ratio of the summed times — a throughput ratio that counts every
    call, slow ones included; ``median``, ``low``/``high`` describe the per-repetition
    ratios and ``best`` compares the fastest call of each side.
    """

    def __init__(self, first, second, repeats, scale=1.0):
        a, b = np.zeros(repeats), np.zeros(repeats)
        for i in range(repeats):
            a[i] = _common.timed(*first)
            b[i] = _common.timed(*second)
        ratios = b / a * scale
        self.total = float(b.sum() / a.sum() * scale)
        self.median = float(np.median(ratios))
        self.low, self.high = float(ratios.min()), float(ratios.max())
        self.best = float(b.min() / a.min() * scale)

    def note(self):
        return (f"median {self.median:.3f} ({self.low:.3f}–{self.high:.3f}), "
                f"fastest calls {self.best:.3f}")


def report_paired(measure, model, paired, note=""):
    report(measure, model, paired.total, (paired.note() + " " + note).strip())


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
    for images, points in ((x8[:1], args.points), (x8, args.points_8 or args.points)):
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
            paired = Paired((explainer, images, targets),
                            (lambda: [bare(xb, tb).numpy() for _ in range(batches)],),
                            args.repeats, scale=total / (batches * batch))
            report_paired(f"{method} ÷ bare loop ({count} image(s) × {points} points)", name,
                          paired)
            if count == 1:
                report(f"{method} first call ÷ steady call", name, first / steady)
        peers = xplique_explainers(model, points, batch)
        if peers is None:
            continue
        one_hot = tf.one_hot(targets, model.output_shape[-1])
        for method, peer in peers.items():
            peer.explain(images, one_hot)
            paired = Paired((ours[method], images, targets), (peer.explain, images, one_hot),
                            args.repeats)
            report_paired(f"{method} ÷ xplique ({count} image(s) × {points} points)", name,
                          paired)


def precision_rows(name, args):
    x = _common.images(1, args.size)
    reference_model = _common.build_model(name, args.size)
    float32 = tst.SmoothTaylor(reference_model, num_roots=args.points, batch_size=args.batch)
    reference = float32(x, 0).numpy()
    xla = tst.SmoothTaylor(reference_model, num_roots=args.points, batch_size=args.batch,
                           jit_compile=True)
    xla_maps = xla(x, 0).numpy()
    report_paired("XLA throughput ÷ float32", name,
                  Paired((xla, x, 0), (float32, x, 0), args.repeats),
                  f"max rel. map diff {_relative(xla_maps, reference):.1e}")
    keras.mixed_precision.set_global_policy("mixed_float16")
    half_model = _common.build_model(name, args.size)
    keras.mixed_precision.set_global_policy("float32")
    half_model.set_weights(reference_model.get_weights())
    half = tst.SmoothTaylor(half_model, num_roots=args.points, batch_size=args.batch)
    half_maps = half(x, 0).numpy()
    report_paired("mixed_float16 throughput ÷ float32", name,
                  Paired((half, x, 0), (float32, x, 0), args.repeats),
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
    report_paired("AUPC forward/s ÷ bare forward loop", name,
                  Paired((lambda: metric(x, maps, targets=0).aupc.numpy(),),
                         (lambda: [forward(batch).numpy() for _ in range(batches)],),
                         args.repeats))


def memory_rows():
    peaks = engine_benchmark.memory_peaks()
    for low, high, what in engine_benchmark.MEMORY_PAIRS:
        report(f"SmoothTaylor peak RSS, R={high} ÷ R={low}", "mobilenet_v2",
               peaks[high] / peaks[low], f"{what}: {peaks[low]:.0f} MB vs {peaks[high]:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--points_8", type=int, default=0,
                        help="points per image with 8 images per call (default: --points)")
    parser.add_argument("--repeats", type=int, default=5)
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
        memory_rows()
    print("\n| measure | model | value | note |\n|---|---|---|---|")
    for measure, model, value, note in ROWS:
        print(f"| {measure} | {model} | {value:.3f} | {note} |")


if __name__ == "__main__":
    main()
