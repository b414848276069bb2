"""Data in and out: ``tf.data`` pipelines of images (``datasets``), paths on any file
system TensorFlow reads (``paths``), the image formats read (``formats``) and the
run directory's files (``rundir``). Imports the engine, never the command line.

``tf_smoothtaylor.data.from_files`` and the other pipelines are ``datasets``'
functions, resolved on first use (importing the package loads no TensorFlow).
"""

from tf_smoothtaylor.engine.lazy import lazy_attributes

__all__ = ["decode_and_crop", "file_number", "from_files", "image_folder",
           "image_folder_labels", "imagenet_validation", "prepare_imagenet"]
__getattr__, __dir__ = lazy_attributes(__name__,
                                       {name: f"{__name__}.datasets" for name in __all__})
