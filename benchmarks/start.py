"""Start-up: seconds from process start to the first map, on the command line and served.

Two fresh processes, each timed from its launch by this script:

* ``tf-smoothtaylor explain`` on the demo (one image, SmoothTaylor with R = 32): until the
  image's record is written (imports, the model, tracing, the map, its files);
* a SavedModel exported from the same explainer (``tf-smoothtaylor export``), loaded with
  ``tf.saved_model.load`` the way TF Serving loads it and asked for one map: until the
  response is back (imports, loading the graph, the first request).

Each is repeated ``--repeats`` times (median printed); the process that only imports
TensorFlow and exits is timed too, as the floor every start pays.

    python benchmarks/start.py [--repeats 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
SERVE = """
import sys, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
image = tf.io.read_file(sys.argv[2])
result = loaded.signatures["serving_default"](image_bytes=tf.reshape(image, [1]))
print(sorted(result))
"""


def seconds(command, *, until=None) -> float:
    """Wall seconds of ``command`` (or until the path ``until`` exists)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    if until is None:
        _, error = process.communicate()
        if process.returncode:
            raise RuntimeError(error.decode()[-2000:])
        return time.perf_counter() - start
    while not os.path.exists(until):
        if process.poll() is not None and not os.path.exists(until):
            raise RuntimeError(process.stderr.read().decode()[-2000:])
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    process.wait()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="start-")
    cli = [sys.executable, "-m", "tf_smoothtaylor"]
    export_dir = os.path.join(work, "export")
    subprocess.run(cli + ["export", "--output_dir", export_dir, "--num_roots", "32"], env=ENV,
                   check=True, capture_output=True)
    sys.path.insert(0, ROOT)
    from tf_smoothtaylor import demo
    image = demo.sample_paths()[0]
    rows = {"import tensorflow (floor)": [], "tf-smoothtaylor explain, first map": [],
            "SavedModel load + first request": []}
    for repeat in range(args.repeats):
        rows["import tensorflow (floor)"].append(
            seconds([sys.executable, "-c", "import tensorflow"]))
        output = os.path.join(work, f"explain_{repeat}")
        rows["tf-smoothtaylor explain, first map"].append(seconds(
            cli + ["explain", "--output_dir", output, "--limit", "1", "--method",
                   "smooth_taylor", "--num_roots", "32"],
            until=os.path.join(output, "results", "00000_sample_00_triangle.json")))
        rows["SavedModel load + first request"].append(
            seconds([sys.executable, "-c", SERVE, export_dir, image]))
    for name, values in rows.items():
        print(f"{name:36s} {np.median(values):6.2f} s  (runs: "
              + ", ".join(f"{v:.2f}" for v in values) + ")")


if __name__ == "__main__":
    main()
