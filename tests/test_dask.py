"""The Beam pipeline on a dask.distributed cluster: a scheduler and two worker
processes on localhost, speaking TCP as on many machines (Beam's DaskRunner)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

pytest.importorskip("apache_beam", reason="the [beam] extra (apache-beam) is not installed")
distributed = pytest.importorskip(
    "distributed", reason="the [dask] extra (dask[distributed]) is not installed")

from test_beam import _assert_same_run, _rows  # noqa: E402
from tf_smoothtaylor.cli import main as cli  # noqa: E402

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
SETTINGS = dict(num_roots=16, images_per_step=1, limit=6, method=["smooth_taylor"],
                metric=["autvc", "relevance_mass"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes, stopped by :meth:`stop`."""

    def __init__(self, logs, workers: int = 2, timeout: float = 120):
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.logs, self.processes = logs, {}
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port",
                                  self.address.rsplit(":", 1)[1], "--no-dashboard"])
        for i in range(workers):
            self._start(f"worker{i}", ["worker", self.address, "--nthreads", "1",
                                       "--no-dashboard", "--name", f"worker{i}"])
        with distributed.Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(workers, timeout=timeout)

    def _start(self, name, arguments):
        # Started in a folder of their own, as on other machines: a relative path the
        # driver passed on unchanged would not resolve there.
        folder = self.logs / "elsewhere"
        folder.mkdir(exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "dask", *arguments], env=ENV, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)

    def kill(self, name):
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _run(mode, output, runner_args=(), **settings):
    runner = {"runner": "DaskRunner"} if runner_args else {}
    with flagsaver.flagsaver(output_dir=str(output), **settings, **runner):
        cli.main(["tf-smoothtaylor", mode, *runner_args])


def test_dask_cluster_runs_explain_and_evaluate_like_this_process_and_survives_a_lost_worker(
        tmp_path, capfd, monkeypatch):
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    cluster = Cluster(tmp_path)
    dask = [f"--dask_client_address={cluster.address}"]
    # Bounded in time: should a run hang, the cluster is stopped and the run fails.
    watchdog = threading.Timer(240, cluster.stop)
    watchdog.start()
    try:
        # evaluate: maps, tables and summary equal the in-process run's.
        _run("evaluate", tmp_path / "reference", **SETTINGS)
        _run("evaluate", tmp_path / "dask", dask, **SETTINGS)
        _assert_same_run(tmp_path / "dask", tmp_path / "reference")
        for name in ("index.csv", "metrics.csv", "summary.md"):
            assert ((tmp_path / "dask" / name).read_bytes()
                    == (tmp_path / "reference" / name).read_bytes()), name
        # explain: the same maps and index.
        _run("explain", tmp_path / "explained", method=["gradient"], limit=3)
        _run("explain", tmp_path / "explained_dask", dask, method=["gradient"], limit=3)
        assert _rows(tmp_path / "explained" / "index.csv") == _rows(
            tmp_path / "explained_dask" / "index.csv")
        for path in (tmp_path / "explained" / "maps").glob("*.npy"):
            np.testing.assert_allclose(np.load(tmp_path / "explained_dask" / "maps" / path.name),
                                       np.load(path), rtol=1e-6, atol=1e-7)
        # Relative --images and --output_dir from the driver's folder: the workers (in
        # another folder) read and write the same files.
        import shutil
        from tf_smoothtaylor import demo
        (tmp_path / "imgs").mkdir()
        for source in demo.sample_paths()[:3]:
            shutil.copy(source, tmp_path / "imgs")
        monkeypatch.chdir(tmp_path)
        _run("explain", "relative_out", dask, method=["gradient"], images=["imgs/*.png"])
        monkeypatch.undo()
        assert len(list((tmp_path / "relative_out" / "results").glob("*.json"))) == 3
        assert not (tmp_path / "elsewhere" / "relative_out").exists()
        # A worker killed mid-run: its steps move to the other worker (or, should the
        # scheduler give up, a rerun finishes them); nothing is lost or redone.
        output, before = tmp_path / "killed", {}

        def kill_when_two_are_finished():
            deadline = time.time() + 120
            while time.time() < deadline:
                finished = list((output / "results").glob("[!.]*.json"))
                if len(finished) >= 2:
                    for path in output.rglob("*"):
                        if path.is_file() and any(path.name.startswith(f.stem)
                                                  for f in finished):
                            before[path] = (path.read_bytes(), path.stat().st_mtime_ns)
                    cluster.kill("worker0")
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_when_two_are_finished)
        killer.start()
        try:
            _run("evaluate", output, dask, **SETTINGS)
        except Exception:  # noqa: BLE001 — the scheduler gave up on the lost worker
            killer.join()
            _run("evaluate", output, dask, **SETTINGS)
        killer.join()
        assert before and cluster.processes["worker0"].poll() is not None
        for path, (content, mtime) in before.items():
            assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime, path
        assert not list(output.rglob(".tmp-*"))
        _assert_same_run(output, tmp_path / "reference")
    finally:
        watchdog.cancel()
        cluster.stop()
    capfd.readouterr()
