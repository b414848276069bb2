"""Keeping TensorFlow's and Beam's start-up and INFO lines off the terminal.

Their C++ start-up lines (oneDNN, CUDA probing) are written before any log level
applies, and Beam's worker processes write their own start-up lines: the command
line keeps both off the terminal unless ``--verbosity`` is given.
"""

import contextlib
import os
import sys
import tempfile


def import_tensorflow() -> None:
    """Imports TensorFlow with stderr silenced: its C++ start-up lines (oneDNN,
    CUDA probing) are written before any log level applies."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def stderr_to_log(quiet: bool, what: str):
    """With ``quiet``, sends this process's stderr (file descriptor 2, inherited by
    the processes it starts, e.g. Beam's workers) to a temporary log file while the
    block runs. The log is removed when the block succeeds; when it raises, one line
    names the log."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    handle, path = tempfile.mkstemp(prefix="tf-smoothtaylor-", suffix=".log")
    saved = os.dup(2)
    os.dup2(handle, 2)
    try:
        yield
    except BaseException:
        sys.stderr.flush()
        os.dup2(saved, 2)
        print(f"tf-smoothtaylor: {what}'s log: {path}", file=sys.stderr)
        raise
    else:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.remove(path)
    finally:
        os.close(saved)
        os.close(handle)
