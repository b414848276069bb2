"""Paths on any file system TensorFlow reads — local files, ``gs://``, ``hdfs://``,
``s3://`` (with tensorflow-io), ``ram://`` — through ``tf.io.gfile``, so that the
model, its weights, ``--references`` and image patterns resolve wherever they are
(a Beam worker reads them from the same store as the driver). Local paths keep
Python's own semantics (``glob`` skips hidden files; ``realpath`` resolves links).
"""

import contextlib
import glob as globlib
import os
import shutil
import tempfile
from typing import Iterator, List

import tensorflow as tf


def is_remote(path: str) -> bool:
    """Whether ``path`` names a file system other than this machine's (``scheme://``)."""
    return "://" in str(path)


def exists(path: str) -> bool:
    return tf.io.gfile.exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return tf.io.gfile.isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    return exists(path) and not isdir(path)


def glob(pattern: str) -> List[str]:
    """The paths matching ``pattern``, sorted."""
    return sorted(tf.io.gfile.glob(pattern) if is_remote(pattern) else globlib.glob(pattern))


def absolute(path: str) -> str:
    """One spelling per file: the real path of a local file, a remote path as given."""
    return path if is_remote(path) else os.path.realpath(path)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path holding the file ``path`` (the path itself when it is local; a
    temporary copy of a remote file, removed afterwards): for readers such as HDF5
    and zip that need a local file."""
    if not is_remote(path):
        yield path
        return
    directory = tempfile.mkdtemp(prefix="tf-smoothtaylor-")
    try:
        local = os.path.join(directory, path.rstrip("/").rsplit("/", 1)[-1])
        tf.io.gfile.copy(path, local, overwrite=True)
        yield local
    finally:
        shutil.rmtree(directory, ignore_errors=True)
