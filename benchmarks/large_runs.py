"""Large runs on Beam: per-image wall time and the driver's peak memory, small run vs large.

A synthetic run of tiny images (8×8 PNGs, an 8×8 CNN, Integrated Gradients with 2
steps) makes the per-image cost of the pipeline itself visible: listing, reading,
writing maps and records, gathering the records for the tables. Each run is the
command line (``tf-smoothtaylor explain --runner=...``) in its own process, timed
with its peak resident memory (``/usr/bin/time``); the Dask runs go to a local
dask.distributed cluster (a scheduler and ``--workers`` worker processes).

    python benchmarks/large_runs.py --counts 2000 20000

prints, per runner, seconds per image and the driver's peak memory for each count,
and the ratio of the largest count's to the smallest's (1.0: flat).
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)


def make_inputs(workdir: str, count: int) -> tuple:
    """An 8×8 CNN (.keras) and ``count`` random 8×8 PNGs."""
    import keras
    import tensorflow as tf
    os.makedirs(workdir, exist_ok=True)
    model_path = os.path.join(workdir, "tiny.keras")
    if not os.path.exists(model_path):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(hidden))
        keras.Model(inputs, outputs).save(model_path)
    images = os.path.join(workdir, "images")
    os.makedirs(images, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(len(os.listdir(images)), count):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        tf.io.write_file(os.path.join(images, f"img_{i:06d}.png"),
                         tf.io.encode_png(pixels))
    return model_path, images


def start_cluster(workers: int, logs: str):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
         str(port), "--no-dashboard"], env=ENV, stdout=open(os.path.join(logs, "s.log"), "wb"),
        stderr=subprocess.STDOUT)]
    for i in range(workers):
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
             "--no-dashboard"], env=ENV, stdout=open(os.path.join(logs, f"w{i}.log"), "wb"),
            stderr=subprocess.STDOUT))
    import distributed
    with distributed.Client(address, timeout=120) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, processes


def run(model, images, count, runner, extra, output) -> tuple:
    """(seconds, peak MiB) of one ``explain`` run."""
    command = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "tf_smoothtaylor",
               "explain", "--model", model, "--images", os.path.join(images, "*.png"),
               "--limit", str(count), "--method", "integrated_gradients", "--steps", "2",
               "--images_per_step", "256", "--output_dir", output, f"--runner={runner}",
               *extra]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--runners", nargs="+", default=["DirectRunner", "DaskRunner"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="large-runs-")
    model, images = make_inputs(workdir, max(args.counts))
    print(f"{max(args.counts)} images of 8×8 in {images}; IG, 2 steps; "
          f"{os.cpu_count()} CPU cores")
    for runner in args.runners:
        extra, processes = [], []
        if runner == "DaskRunner":
            address, processes = start_cluster(args.workers, workdir)
            extra = [f"--dask_client_address={address}"]
        rows = []
        try:
            for count in args.counts:
                output = os.path.join(workdir, f"out_{runner}_{count}_{time.time_ns()}")
                seconds, peak = run(model, images, count, runner, extra, output)
                rows.append((count, seconds / count * 1000, peak))
                print(f"{runner:13s} {count:6d} images  {seconds:8.1f} s  "
                      f"{seconds / count * 1000:6.2f} ms/image  driver peak {peak:7.0f} MiB",
                      flush=True)
        finally:
            for process in processes:
                process.kill()
        (small, small_ms, small_mb), (large, large_ms, large_mb) = rows[0], rows[-1]
        print(f"{runner:13s} {large} ÷ {small}: time per image {large_ms / small_ms:.2f}×, "
              f"driver peak memory {large_mb / small_mb:.2f}×", flush=True)


if __name__ == "__main__":
    main()
