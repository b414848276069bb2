"""One run at a time per run directory: an operating-system lock on a local disk,
a lease object with a heartbeat on an object store.

Local disks: a run's start takes an exclusive operating-system lock on
``.run.lock`` (``filelock``: ``flock`` on POSIX, ``LockFileEx`` on Windows) and
writes who holds it (host, process id, start time) to ``.run.holder``. The
operating system ends the lock when its process ends, however it ends, so a lock
is never stale and no takeover can race; ``.run.lock`` itself stays (an unheld
file). A second start while the holder runs is refused with a message naming it.
The same process may open its run directory again (the lock is its own).

Object stores (``gs://``, ``s3://``, …) have no locks: a run holds ``.run.lease``,
an object naming the host, the process, a random token and a heartbeat time the
holder rewrites every ``heartbeat`` seconds. A start takes a lease that is absent,
its own, older than ``stale_after`` seconds (its holder is gone) or, with
``force``, any lease; it writes its own, waits ``settle`` seconds and reads it
back: when two starts race, the store keeps the last write, both read the same
token, and only its writer goes on (the other is refused). A holder whose lease
was taken over sees another token at its next heartbeat, stops rewriting it, and
its next write to the run directory raises. Staleness compares the lease's time
with this machine's clock (hosts' clocks should agree to well under
``stale_after``).

Only a holder removes the temporary files a killed run left, so a second start can
no longer delete the files of a run that is writing.
"""

import atexit
import json
import os
import socket
import threading
import time
import uuid
from typing import Dict, Optional

import filelock

NAME = ".run.lock"
HOLDER = ".run.holder"
LEASE = ".run.lease"

_HELD: Dict[str, "Lock"] = {}          # this process's locks, by run directory

# A lease's timings, seconds (see Lease).
HEARTBEAT, STALE_AFTER, SETTLE = 30.0, 300.0, 2.0


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _named(holder: Optional[dict]) -> str:
    if not holder:
        return "a run that has not said who it is yet"
    return (f"process {holder.get('pid')} on {holder.get('host')}, started "
            f"{holder.get('started')}")


class Lock:
    """An operating-system lock on a local run directory (see the module docstring).

    Args:
      directory: The run directory (local).
      files: The run directory's files (``rundir.LocalFiles``), to write the holder.

    Raises:
      ValueError: Another process holds it (the message names it).
    """

    def __init__(self, directory: str, files):
        self.directory, self.files = directory, files
        self._lock = filelock.FileLock(os.path.join(directory, NAME), timeout=0)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            holder = None
            for _ in range(20):                 # the holder writes who it is just after
                try:
                    holder = json.loads(files.read(os.path.join(directory, HOLDER)))
                    break
                except (OSError, ValueError):
                    time.sleep(0.05)
            raise ValueError(
                f"the run directory {directory} is in use by another run ({_named(holder)}): "
                "wait for it to finish, or use another --output_dir (on a local disk the "
                "lock ends with its process)") from None
        files.write(os.path.join(directory, HOLDER), json.dumps(_me()).encode())

    def check(self) -> None:
        """Raises when the run directory is no longer this run's (never, here)."""

    def release(self) -> None:
        try:
            self.files.remove(os.path.join(self.directory, HOLDER))
        except OSError:
            pass
        self._lock.release(force=True)


class Lease:
    """A lease object on an object-store run directory (see the module docstring).

    Args:
      directory: The run directory.
      files: Its file system (``read``, ``write``, ``exists``, ``remove``, ``join``).
      force: Take the lease even when its holder's heartbeat is recent.
      heartbeat: Seconds between the holder's rewrites of the lease (default
        ``HEARTBEAT``).
      stale_after: Seconds after a lease's last heartbeat when it may be taken over
        (default ``STALE_AFTER``).
      settle: Seconds between writing the lease and reading it back (default
        ``SETTLE``).

    Raises:
      ValueError: Another run holds it (the message names it), or took it meanwhile.
    """

    def __init__(self, directory: str, files, *, force: bool = False,
                 heartbeat: Optional[float] = None, stale_after: Optional[float] = None,
                 settle: Optional[float] = None):
        heartbeat = HEARTBEAT if heartbeat is None else heartbeat
        stale_after = STALE_AFTER if stale_after is None else stale_after
        settle = SETTLE if settle is None else settle
        if not 0 < heartbeat < stale_after:
            raise ValueError(f"Expected 0 < `heartbeat` < `stale_after`. Received: "
                             f"{heartbeat} and {stale_after}")
        self.directory, self.files, self.heartbeat = directory, files, heartbeat
        self.path = files.join(directory, LEASE)
        self.lost: Optional[dict] = None
        held = self._read()
        if held and not force and time.time() - held.get("heartbeat", 0) < stale_after:
            raise ValueError(
                f"the run directory {directory} is in use by another run ({_named(held)}; "
                f"last heartbeat {time.time() - held['heartbeat']:.0f} s ago): wait for it "
                f"to finish, or use another --output_dir; if that run is gone, its lease "
                f"{self.path} is taken over {stale_after:.0f} s after its last heartbeat, "
                "or at once with --force")
        self.mine = {**_me(), "token": uuid.uuid4().hex}
        self._write()
        time.sleep(settle)
        held = self._read()
        if not held or held.get("token") != self.mine["token"]:
            raise ValueError(f"the run directory {directory} was taken by another run "
                             f"starting at the same time ({_named(held)})")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name="tf_smoothtaylor-lease")
        self._thread.start()

    def _read(self) -> Optional[dict]:
        try:
            if not self.files.exists(self.path):
                return None
            return json.loads(self.files.read(self.path))
        except (OSError, ValueError):
            return {}                            # damaged: as good as gone

    def _write(self) -> None:
        self.files.write(self.path, json.dumps({**self.mine, "heartbeat": time.time()})
                         .encode())

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            held = self._read()
            if held and held.get("token") != self.mine["token"]:
                self.lost = held
                return
            try:
                self._write()
            except OSError:                      # a transient store error: next beat
                pass

    def check(self) -> None:
        """Raises when another run took the run directory over (``--force``)."""
        if self.lost is not None:
            raise ValueError(f"the run directory {self.directory} was taken over by "
                             f"another run ({_named(self.lost)}); this run stops")

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.lost is None and (self._read() or {}).get("token") == self.mine["token"]:
            try:
                self.files.remove(self.path)
            except OSError:
                pass


def acquire(directory: str, files, *, force: bool = False, **lease):
    """Takes the run directory ``directory`` for this process: a :class:`Lock` on a
    local disk (``"://"`` not in the path), else a :class:`Lease` (``lease``: its
    timings). Opening it again in the same process returns the same hold."""
    if directory in _HELD:
        return _HELD[directory]
    hold = Lease(directory, files, force=force, **lease) if "://" in directory \
        else Lock(directory, files)
    if not _HELD:
        atexit.register(_release_all)
    _HELD[directory] = hold
    return hold


def release(hold) -> None:
    """Ends this process's hold ``hold`` on its run directory."""
    if _HELD.get(hold.directory) is hold:
        del _HELD[hold.directory]
        hold.release()


def _release_all() -> None:
    for hold in list(_HELD.values()):
        release(hold)
