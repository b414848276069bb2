"""``tf.data`` pipelines of (pixels in [0, 1], label, id) batches.

Every pipeline decodes images in parallel (order kept), resizes the shorter
side to ``resize`` (bilinear, antialiased) and centre-crops ``size`` — an int
for a square, or (height, width) — the paper's 256 → 224, then batches and
prefetches. ``resize=None`` resizes straight to ``size``. Labels are ints (−1
when unknown); ids are strings. With ``skip_unreadable=True`` an image that
cannot be read or decoded is left out (the caller finds which by its id) instead
of stopping the pipeline.

* :func:`from_files` — a glob (or list) of JPEG/PNG/GIF/BMP files, sorted by path;
* :func:`image_folder` — a ``tfds.folder_dataset.ImageFolder`` (``root/split/label/*``),
  labels from the folder names, in tfds's fixed order;
* :func:`imagenet_validation` — tfds ``imagenet2012`` validation built from a
  manual directory holding ``ILSVRC2012_img_val.tar`` (labels from tfds's own
  metadata), the first ``limit`` images by file name, as in the paper.
"""

import glob as globlib
import os
import re
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from tf_smoothtaylor.data import paths as _paths
from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.data.formats import IMAGE_EXTENSIONS

_AUTOTUNE = tf.data.AUTOTUNE
Size = Union[int, Tuple[int, int]]


def decode_and_crop(encoded: tf.Tensor, *, size: Union[int, Tuple[int, int]] = 224,
                    resize: Optional[int] = 256) -> tf.Tensor:
    """Encoded image bytes → (height, width, 3) float32 pixels in [0, 1].

    ``size`` is an int (square) or (height, width). The shorter side is resized to
    ``resize`` (and further if needed to cover ``size``), then the centre is
    cropped; ``resize=None`` resizes straight to ``size``."""
    height, width = (size, size) if isinstance(size, int) else size
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    # A multiplication, not "/ 255": graph optimisation rewrites a division into
    # this anyway, and eager and graph decoding must agree bit for bit (random
    # draws are keyed by the image content).
    image = tf.cast(image, tf.float32) * (1.0 / 255.0)
    if resize is None:
        return tf.image.resize(image, [height, width], antialias=True)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize / tf.reduce_min(shape)
    if height != width:                       # cover both sides of a non-square crop
        scale = tf.maximum(scale, tf.reduce_max(tf.constant([height, width], tf.float32)
                                                / shape))
    new = tf.cast(tf.round(shape * scale), tf.int32)
    new = tf.maximum(new, [height, width])
    image = tf.image.resize(image, new, antialias=True)
    top, left = (new[0] - height) // 2, (new[1] - width) // 2
    return tf.clip_by_value(image[top:top + height, left:left + width], 0.0, 1.0)


def _finish(dataset: tf.data.Dataset, size: Tuple[int, int], resize: Optional[int],
            batch_size: int, skip_unreadable: bool = False) -> tf.data.Dataset:
    """(bytes, label, id) elements → decoded, batched, prefetched."""
    def decode(encoded, label, name):
        pixels = decode_and_crop(encoded, size=size, resize=resize)
        return tf.ensure_shape(pixels, [*size, 3]), tf.cast(label, tf.int64), name
    decoded = dataset.map(decode, num_parallel_calls=_AUTOTUNE, deterministic=True)
    if skip_unreadable:
        decoded = decoded.ignore_errors()
    return decoded.batch(batch_size).prefetch(_AUTOTUNE)


def _settings(size, resize, batch_size):
    """``((height, width), resize, batch_size)``, checked."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        size = tuple(_checks.positive_int("size", side) for side in size)
    else:
        size = (_checks.positive_int("size", size),) * 2
    if resize is not None and _checks.positive_int("resize", resize) < min(size):
        raise ValueError(f"Expected `resize` >= `size` ({min(size)}). Received: "
                         f"resize={resize}")
    return size, resize, _checks.positive_int("batch_size", batch_size)


def from_files(files: Union[str, Sequence[str]], *, size: Size = 224,
               resize: Optional[int] = 256, batch_size: int = 32,
               skip_unreadable: bool = False) -> tf.data.Dataset:
    """The image files matching a glob, sorted by path, or the files of a list in
    its order; label −1.

    Raises:
      ValueError: if no image file matches.
    """
    size, resize, batch_size = _settings(size, resize, batch_size)
    if isinstance(files, str):                   # a glob keeps image files
        matched = (_paths.glob(files) if _paths.is_remote(files)
                   else sorted(globlib.glob(files, recursive=True)))
        paths = [p for p in matched
                 if os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS]
    else:
        paths = list(files)
    if not paths:
        raise ValueError(f"Expected `files` to match image files ({', '.join(IMAGE_EXTENSIONS)}). "
                         f"Received: files={files!r} matching none")
    missing = [p for p in paths if not _paths.isfile(p)]
    if missing:
        raise ValueError(f"Expected readable image files. Received missing: {missing[:3]}")
    names = tf.constant(paths)
    dataset = tf.data.Dataset.from_tensor_slices(names).map(
        lambda path: (tf.io.read_file(path), tf.constant(-1, tf.int64), path),
        num_parallel_calls=_AUTOTUNE, deterministic=True)
    return _finish(dataset, size, resize, batch_size, skip_unreadable)


def image_folder(root: str, *, split: Optional[str] = None, size: Size = 224,
                 resize: Optional[int] = 256, batch_size: int = 32,
                 skip_unreadable: bool = False) -> tf.data.Dataset:
    """A tfds ImageFolder (``root/split/label/image``); ``split`` may be omitted
    when there is only one. Class names: ``image_folder_labels(root)``."""
    import tensorflow_datasets as tfds
    size, resize, batch_size = _settings(size, resize, batch_size)
    builder = folder_builder(root)
    splits = sorted(builder.info.splits.keys())
    if split is None and len(splits) == 1:
        split = splits[0]
    if split not in splits:
        raise ValueError(f"Expected `split` to be one of {splits}. Received: split={split!r}")
    dataset = builder.as_dataset(split=split, shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})
    return _finish(dataset.map(lambda ex: (ex["image"], ex["label"], ex["image/filename"])),
                   size, resize, batch_size, skip_unreadable)


def folder_builder(root: str):
    """The tfds builder of the ImageFolder at ``root`` (no image is read)."""
    import tensorflow_datasets as tfds
    if not os.path.isdir(root):
        raise ValueError(f"Expected `root` to be a directory. Received: root={root!r}")
    builder = tfds.folder_dataset.ImageFolder(root)
    if not builder.info.splits or not any(s.num_examples for s in builder.info.splits.values()):
        raise ValueError("Expected `root` to hold images as root/split/label/image.jpg. "
                         f"Received: root={root!r} with no images")
    return builder


def image_folder_labels(root: str):
    """Class names of an ImageFolder, in label order."""
    return list(folder_builder(root).info.features["label"].names)


def imagenet_validation(manual_dir: str, *, data_dir: Optional[str] = None,
                        limit: Optional[int] = None, size: Size = 224,
                        resize: Optional[int] = 256, batch_size: int = 32,
                        skip_unreadable: bool = False) -> tf.data.Dataset:
    """ImageNet 2012 validation via tfds, the first ``limit`` images by file name.

    The first call builds the tfds dataset from ``manual_dir``/ILSVRC2012_img_val.tar
    into ``data_dir`` (no download is attempted); later calls reuse it.

    Args:
      manual_dir: Directory holding ``ILSVRC2012_img_val.tar``.
      data_dir: Where tfds keeps prepared datasets (tfds's default if None).
      limit: The first ``limit`` images by file name, in that order; None streams
        all 50 000 in tfds's fixed order.
      size, resize, batch_size: see the module docstring.
    """
    import tensorflow_datasets as tfds
    size, resize, batch_size = _settings(size, resize, batch_size)
    builder = prepare_imagenet(manual_dir, data_dir=data_dir)
    tar = os.path.join(manual_dir, "ILSVRC2012_img_val.tar")
    records = builder.as_dataset(split="validation", shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})
    if limit is None:
        # All 50 000 images: streamed in tfds's fixed order (sorting would hold them all).
        return _finish(records.map(lambda ex: (ex["image"], ex["label"], ex["file_name"])),
                       size, resize, batch_size, skip_unreadable)
    limit = _checks.positive_int("limit", limit)
    records = records.filter(lambda ex: _file_number(ex["file_name"]) <= limit)
    # tfds stores examples shuffled: gather the kept ones and sort them by name.
    kept = sorted(((ex["file_name"].numpy(), ex["image"].numpy(), int(ex["label"]))
                   for ex in records), key=lambda item: item[0])
    if not kept:
        raise ValueError(f"Expected validation images in {tar}. Received: none")
    names, images, labels = zip(*kept)
    dataset = tf.data.Dataset.from_tensor_slices(
        (list(images), list(labels), [n.decode() for n in names]))
    return _finish(dataset, size, resize, batch_size, skip_unreadable)


def prepare_imagenet(manual_dir: str, *, data_dir: Optional[str] = None):
    """The tfds ``imagenet2012`` builder, prepared from ``manual_dir`` (no download)."""
    import tensorflow_datasets as tfds
    tar = os.path.join(manual_dir, "ILSVRC2012_img_val.tar")
    if not os.path.isfile(tar):
        raise ValueError(f"Expected `manual_dir` to hold ILSVRC2012_img_val.tar. "
                         f"Received: manual_dir={manual_dir!r}")
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, try_download_gcs=False))
    return builder


def file_number(name: str) -> int:
    """ILSVRC2012_val_00000042.JPEG → 42 (the Python twin of ``_file_number``)."""
    return int(re.sub(r"^.*_(\d+)\.[A-Za-z]+$", r"\1", name))


def _file_number(name: tf.Tensor) -> tf.Tensor:
    """ILSVRC2012_val_00000042.JPEG → 42."""
    digits = tf.strings.regex_replace(name, r"^.*_(\d+)\.[A-Za-z]+$", r"\1")
    return tf.strings.to_number(digits, tf.int64)


