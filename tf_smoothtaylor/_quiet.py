"""Importing TensorFlow without its start-up lines on stderr."""

import os


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
