"""One run at a time per run directory, on a local disk.

A run's start takes ``.run.lock`` in its directory — a file created exclusively
(``O_CREAT | O_EXCL``) that holds the host, the process id and the start time — and
removes it when the process ends. Only the holder removes the temporary files a
killed run left, so a second start can no longer delete the files of a run that
is writing. A second start while the holder lives is refused with a message that
names it; a lock whose process is gone (same host) is stale and taken over. The
same process may open its run directory again (the lock is its own).
"""

import atexit
import json
import os
import socket
import time
from typing import Optional

NAME = ".run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # another user's process: it exists
        return True
    return True


def _holder(path: str) -> Optional[dict]:
    """The lock's content; {} when it cannot be read (being written, or damaged)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _stale(holder: dict) -> bool:
    """Whether a lock's process is known to be gone (same host, no such process)."""
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and not _alive(holder["pid"]))


def acquire(directory: str) -> str:
    """Takes the lock of the run directory ``directory`` for this process (see the
    module docstring); returns the lock file's path.

    Raises:
      ValueError: Another live process holds it (the message names it).
    """
    path = os.path.join(directory, NAME)
    mine = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(5):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None:                       # released meanwhile: try again
                continue
            if holder.get("host") == mine["host"] and holder.get("pid") == mine["pid"]:
                return path                          # this process's own run
            if _stale(holder):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                continue
            if not holder:                           # being written: give it a moment
                time.sleep(0.05)
                continue
            raise ValueError(
                f"the run directory {directory} is in use by another run (process "
                f"{holder.get('pid')} on {holder.get('host')}, started "
                f"{holder.get('started')}): wait for it to finish, or use another "
                f"--output_dir; if that run is gone, remove {path}") from None
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(mine, stream)
        atexit.register(release, path)
        return path
    raise ValueError(f"could not take the lock {path} of the run directory {directory}")


def release(path: str) -> None:
    """Removes the lock ``path`` if this process holds it."""
    holder = _holder(path)
    if holder and holder.get("host") == socket.gethostname() \
            and holder.get("pid") == os.getpid():
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
