"""The run directory's lock (local disks) and lease (object stores) under real
concurrency: never two holders, a killed holder never blocks for longer than its
lease's staleness, ``force`` takes over and the ousted run stops at its next write."""

import fnmatch
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tf_smoothtaylor.data import runlock
from tf_smoothtaylor.data.rundir import LocalFiles, OutputDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
FAST = dict(heartbeat=0.1, stale_after=1.0, settle=0.05)


class Store:
    """An object store in memory: whole objects, the last write wins, no rename."""

    def __init__(self):
        self.objects, self.guard = {}, threading.Lock()

    @staticmethod
    def join(*parts):
        return "/".join(part.rstrip("/") for part in parts)

    def makedirs(self, path):
        pass

    def check_writable(self, path):
        pass

    def write(self, path, data):
        with self.guard:
            self.objects[path] = bytes(data)

    def read(self, path):
        with self.guard:
            if path not in self.objects:
                raise FileNotFoundError(path)
            return self.objects[path]

    def exists(self, path):
        return path in self.objects

    def glob(self, pattern):
        return sorted(name for name in list(self.objects) if fnmatch.fnmatch(name, pattern))

    def remove(self, path):
        with self.guard:
            self.objects.pop(path)


def test_a_lease_is_refused_while_its_heartbeat_is_recent_and_force_takes_it_over():
    store, where = Store(), "mem://bucket/run"
    first = runlock.Lease(where, store, **FAST)
    with pytest.raises(ValueError, match=rf"in use by another run \(process {os.getpid()} "
                                         r"on .*--force"):
        runlock.Lease(where, store, **FAST)
    beat = runlock.json.loads(store.read(first.path))["heartbeat"]
    time.sleep(0.35)                                    # the holder rewrites its lease
    assert runlock.json.loads(store.read(first.path))["heartbeat"] > beat
    second = runlock.Lease(where, store, force=True, **FAST)
    time.sleep(0.35)                                    # the first sees it at its next beat
    with pytest.raises(ValueError, match="taken over by another run"):
        first.check()
    first.release()                                     # leaves the second's lease alone
    assert runlock.json.loads(store.read(second.path))["token"] == second.mine["token"]
    second.check()
    second.release()
    assert not store.exists(second.path)
    with pytest.raises(ValueError, match="heartbeat"):
        runlock.Lease(where, store, heartbeat=2, stale_after=1)


def test_a_stale_or_damaged_lease_is_taken_without_force():
    store, where = Store(), "mem://bucket/run"
    path = store.join(where, runlock.LEASE)
    store.write(path, runlock.json.dumps({"host": "gone", "pid": 1, "started": "earlier",
                                          "token": "x", "heartbeat": time.time() - 5}).encode())
    runlock.Lease(where, store, **FAST).release()
    store.write(path, b'{"host": "ha')                 # a damaged object
    runlock.Lease(where, store, **FAST).release()


def test_starts_racing_for_one_lease_end_with_exactly_one_holder():
    """Many pairs of starts at the same moment (the store keeps the last write):
    never both hold, never neither."""
    for trial in range(20):
        store, results = Store(), []
        barrier = threading.Barrier(2)

        def start():
            barrier.wait()
            try:
                results.append(runlock.Lease("mem://b/run", store, heartbeat=0.5,
                                             stale_after=5, settle=0.05))
            except ValueError as error:
                results.append(error)

        threads = [threading.Thread(target=start) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        holders = [r for r in results if isinstance(r, runlock.Lease)]
        assert len(holders) == 1, (trial, results)
        holders[0].release()


def test_an_object_store_run_directory_is_leased_and_stops_when_taken_over(monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT", 0.1)
    monkeypatch.setattr(runlock, "SETTLE", 0.05)
    store, where = Store(), "mem://bucket/out"
    out = OutputDir(where, {"held": True}, files=store)
    lease = store.join(where, runlock.LEASE)
    assert store.exists(lease)
    assert runlock.acquire(where, store) is out._lock      # the same process: its own
    out.write("maps/a.npy", b"1")
    taker = runlock.Lease(where, store, force=True, **FAST)
    time.sleep(0.35)                                         # the run's next heartbeat
    with pytest.raises(ValueError, match="taken over by another run"):
        out.write("maps/b.npy", b"2")
    out.close()
    assert store.exists(lease)                               # the taker's
    taker.release()
    assert not store.exists(lease)


def test_many_processes_never_hold_one_local_run_directory_together(tmp_path):
    """Three processes each take and release one run directory's lock 30 times,
    holding it while they create and remove a marker exclusively; a fourth is
    SIGKILLed while it holds. No marker ever exists twice, every process got in."""
    directory = tmp_path / "run"
    directory.mkdir()
    script = textwrap.dedent(f"""
        import os, sys, time
        from tf_smoothtaylor.data import runlock
        from tf_smoothtaylor.data.rundir import LocalFiles
        got = 0
        deadline = time.time() + 60
        while got < 30 and time.time() < deadline:
            try:
                hold = runlock.acquire({str(directory)!r}, LocalFiles())
            except ValueError:
                continue
            marker = os.open(os.path.join({str(directory)!r}, "marker"),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY)   # fails if two hold
            time.sleep(0.002)
            os.close(marker)
            os.remove(os.path.join({str(directory)!r}, "marker"))
            runlock.release(hold)
            got += 1
        print(got)
    """)
    victim = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from tf_smoothtaylor.data import runlock
        from tf_smoothtaylor.data.rundir import LocalFiles
        runlock.acquire({str(directory)!r}, LocalFiles())
        print("holding", flush=True)
        time.sleep(600)
    """)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert victim.stdout.readline().strip() == "holding"
    with pytest.raises(ValueError, match=f"process {victim.pid} on"):
        runlock.acquire(str(directory), LocalFiles())
    workers = [subprocess.Popen([sys.executable, "-c", script], env=ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(3)]
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
        assert stdout.strip() == "30"


def test_a_killed_lease_holder_blocks_until_its_heartbeat_is_stale(tmp_path):
    """A lease (here on a local folder through the same interface) held by a
    process that is SIGKILLed: refused while its last heartbeat is recent, taken
    once it is older than ``stale_after``."""
    where = str(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from tf_smoothtaylor.data import runlock
        from tf_smoothtaylor.data.rundir import LocalFiles
        runlock.Lease({where!r}, LocalFiles(), heartbeat=0.1, stale_after=1.5, settle=0.05)
        print("holding", flush=True)
        time.sleep(600)
    """)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    time.sleep(0.3)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    killed = time.time()
    with pytest.raises(ValueError, match=f"process {holder.pid} on"):
        runlock.Lease(where, LocalFiles(), heartbeat=0.1, stale_after=1.5, settle=0.05)
    time.sleep(max(0.0, 1.7 - (time.time() - killed)))
    runlock.Lease(where, LocalFiles(), heartbeat=0.1, stale_after=1.5, settle=0.05).release()
