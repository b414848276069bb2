"""Data in and out: ``tf.data`` pipelines of images (``datasets``), paths on any file
system TensorFlow reads (``paths``), the image formats read (``formats``) and the
run directory's files (``rundir``). Imports the engine, never the command line.

``tf_smoothtaylor.data.from_files`` and the other pipelines are ``datasets``'
functions, resolved on first use (importing the package loads no TensorFlow).
"""

import importlib
from typing import Any

_NAMES = ("decode_and_crop", "file_number", "from_files", "image_folder",
          "image_folder_labels", "imagenet_validation", "prepare_imagenet")

__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.datasets"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
