"""The engine on a GPU: throughput against a bare loop, and host↔device syncs.

For MobileNetV2 and ResNet50 (``weights=None``, 224 px) at ``batch_size`` 64, in
float32 and under ``mixed_float16``, prints:

* gradient evaluations/s of SmoothTaylor, IG and SmoothGrad divided by those of
  a bare ``tf.function`` loop of batched input gradients (same model, batch and
  policy), the median over interleaved repetitions;
* the device→host copies made during one call of SmoothTaylor's compiled
  attribution function, read from a TensorFlow profiler trace (expected: 0; the
  result is copied when it is read, after the trace).

Run it on a machine with a GPU:

  python benchmarks/gpu.py [--models mobilenet_v2,resnet50] [--points 256] [--repeats 5]

Without a GPU it says so and exits with status 2 (use benchmarks/engine.py).
"""

import argparse
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402
from tf_smoothtaylor.engine import streams as _random  # noqa: E402

COPY_EVENTS = ("memcpydtoh", "memcpy dtoh", "devicetohost", "device to host", "memcpyd2h")


def explainers(model, points: int, batch: int):
    return {
        "SmoothTaylor": tst.SmoothTaylor(model, num_roots=points, batch_size=batch),
        "IntegratedGradients": tst.IntegratedGradients(model, steps=points, batch_size=batch),
        "SmoothGrad": tst.SmoothGrad(model, num_samples=points, batch_size=batch),
    }


def ratios(model, points: int, batch: int, repeats: int) -> dict:
    """Engine ÷ bare loop, median over interleaved repetitions."""
    x = _common.images(1, 224)
    bare_x = tf.constant(np.repeat(x, batch, axis=0))
    target = tf.zeros([batch], tf.int32)
    bare = _common.bare_gradient_loop(model)
    bare(bare_x, target).numpy()
    methods = explainers(model, points, batch)
    result = {}
    for name, explainer in methods.items():
        explainer(x, targets=0).numpy()
        measured = []
        for _ in range(repeats):
            bare_time = sum(_common.timed(bare, bare_x, target) for _ in range(points // batch))
            method_time = _common.timed(explainer, x, 0)
            measured.append(bare_time / method_time)
        result[name] = float(np.median(measured))
    return result


def device_to_host_copies(explainer, x) -> int:
    """Device→host memcpy events in a profiler trace of one call of the compiled
    attribution function (``explain`` itself then reads one finiteness flag per
    image back, to warn about non-finite maps)."""
    engine = explainer._engine
    images = tf.constant(x)
    classes = tf.zeros([len(x)], tf.int32)
    keys = _random.image_keys(images, explainer.seed).value
    extras = {name: tf.cast(value, explainer.extra_specs[name])
              for name, value in explainer.extras(images).items()}
    function = engine._function(None)
    function(images, classes, keys, extras, ()).numpy()   # compiled and warm
    logdir = tempfile.mkdtemp(prefix="tst_gpu_trace_")
    tf.profiler.experimental.start(logdir)
    result = function(images, classes, keys, extras, ())
    tf.profiler.experimental.stop()
    result.numpy()
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # ships with TensorFlow
    count = 0
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        for plane in space.planes:
            names = {key: meta.name.lower() for key, meta in plane.event_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    if any(word in names.get(event.metadata_id, "") for word in COPY_EVENTS):
                        count += 1
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet50")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        print("No GPU visible to TensorFlow: this benchmark needs one "
              "(benchmarks/engine.py measures the same ratios on a CPU).")
        sys.exit(2)
    print(f"GPU: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', '?')}, "
          f"TensorFlow {tf.__version__}, batch_size={args.batch}, {args.points} points/image")
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        for name in args.models.split(","):
            model = _common.build_model(name)
            for method, ratio in ratios(model, args.points, args.batch, args.repeats).items():
                print(f"{policy:14s} {name:13s} {method:20s} engine ÷ bare loop {ratio:.3f}")
            explainer = tst.SmoothTaylor(model, num_roots=args.points, batch_size=args.batch)
            copies = device_to_host_copies(explainer, _common.images(2, 224))
            print(f"{policy:14s} {name:13s} device→host copies during one call: {copies}")
    keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":
    main()
