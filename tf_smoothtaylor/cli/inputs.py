"""The images of a command-line run, resolved once, each with its id.

A run's inputs are one ordered list of entries, the same for the in-process loop
and for the Beam pipeline (so both give every image the same id, and the same
random draws, which are keyed by id):

* ``--images``: each pattern's files sorted by path (a glob keeps image files:
  .jpg, .jpeg, .png, .gif, .bmp), the patterns in the order given, a file reached
  twice kept once; without ``--images`` and an input folder, the bundled demo's
  samples;
* ``--image_folder``: a tfds ImageFolder's examples in tfds's fixed order;
* ``--manual_dir``: ImageNet 2012 validation images by file name (the first
  ``--limit``), as in the paper;
* ``--inputs``: the rows of ``.npy``/``.npz``/``.csv`` files and the texts of ``.txt``
  files (token ids of ``--vocabulary``; ``data.arrays``), the files in the order
  given, row r of a file named ``FILE#r``;

then the first ``--limit`` of them. Entry i gets the id ``runs.image_id(i, name)``.
A file that exists but cannot be decoded is not an error here: the run reports it
(``summary.md``, one line on stderr) and finishes the others.

The list is recorded in ``run.json`` (``data.rundir.OutputDir``): a rerun continues the
run when its list is the same or extends it (``--limit`` raised, files added that
sort after the others); any other change of the inputs is refused in one line.
"""

import dataclasses
import os
import re
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from tf_smoothtaylor.cli.config import RunConfig
from tf_smoothtaylor.data.formats import IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Entry:
    """One image to process: its id, where it is read from, and its label.

    ``source`` is a file path, or for tfds ``imagenet2012`` the example's file name
    (``position``: its position in the validation split)."""

    id: str
    source: str
    label: int = -1
    position: int = -1


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def image_files(patterns: Sequence[str], *, glob: Optional[Callable] = None,
                local: Optional[bool] = None) -> List[str]:
    """The files of ``--images`` patterns, in run order (see the module docstring).

    Raises ``ValueError`` in one line for a pattern that matches no image, a
    directory, or (``local``) a file that does not exist. ``glob``: how patterns
    expand (default: ``data.paths.glob``, any file system TensorFlow reads); ``local``:
    whether files are checked here (default: unless a pattern is remote).
    """
    from tf_smoothtaylor.data import paths as _paths
    glob = glob or _paths.glob
    if local is None:
        local = not any(_paths.is_remote(pattern) for pattern in patterns)
    files = []
    for pattern in patterns:
        if _is_pattern(pattern):
            matched = [f for f in glob(pattern)
                       if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
            if not matched:
                raise ValueError(f"no image matches {pattern!r} ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(matched)
            continue
        if local and _paths.isdir(pattern):
            raise ValueError(f"--images {pattern} is a directory; use "
                             f"'{os.path.join(pattern, '*.jpg')}' (quoted) or --image_folder")
        if local and not _paths.isfile(pattern):
            raise ValueError(f"image not found: {pattern}")
        files.append(pattern)
    seen, unique = set(), []
    for path in files:
        key = _paths.absolute(path) if local else path
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _folder_entries(root: str) -> List[Entry]:
    """An ImageFolder's only split, in tfds's fixed order."""
    from tf_smoothtaylor.cli import runs
    from tf_smoothtaylor.data import datasets
    builder = datasets.folder_builder(root)
    splits = sorted(builder.info.splits.keys())
    if len(splits) != 1:
        raise ValueError(f"--image_folder {root} holds several splits {splits}; give the "
                         "folder of one split's parent with only that split")
    labels = builder.info.features["label"]
    # The examples tfds reads, in the order it reads them (no image is opened here).
    examples = builder._split_examples[splits[0]]  # pylint: disable=protected-access
    return [Entry(runs.image_id(i, example.image_path), example.image_path,
                  labels.str2int(example.label))
            for i, example in enumerate(examples)]


def _imagenet_entries(config: RunConfig) -> List[Entry]:
    """The validation images of the run, with their split positions."""
    import tensorflow_datasets as tfds
    from tf_smoothtaylor import data
    from tf_smoothtaylor.cli import runs
    builder = data.prepare_imagenet(config.manual_dir, data_dir=config.data_dir)
    records = builder.as_dataset(split="validation", shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})
    listed = [(position, example["file_name"].numpy().decode(), int(example["label"]))
              for position, example in enumerate(records)]
    if config.limit is not None:
        listed = sorted((item for item in listed
                         if data.file_number(item[1]) <= config.limit), key=lambda item: item[1])
    return [Entry(runs.image_id(index, name), name, label, position)
            for index, (position, name, label) in enumerate(listed)]


def list_entries(config: RunConfig, *, glob: Optional[Callable] = None,
                 local: Optional[bool] = None) -> List[Entry]:
    """Every image of the run, in order, with its id (see the module docstring).

    ``glob`` and ``local``: how patterns are expanded and whether files are
    checked on this machine (Beam passes its own file systems' glob)."""
    if config.manual_dir:
        entries = _imagenet_entries(config)
    elif config.inputs:
        entries = _array_entries(config.inputs)
    elif config.image_folder:
        entries = _folder_entries(config.image_folder)
    else:
        entries = _file_entries(config, glob, local)
    return entries[:config.limit] if config.limit is not None else entries


ROW = "#"          # FILE#r: row r of an --inputs file


def _array_entries(paths: Sequence[str]) -> List[Entry]:
    """Every row (or text) of the ``--inputs`` files, in order; rows of one shape."""
    from tf_smoothtaylor.cli import runs
    from tf_smoothtaylor.data import arrays
    entries, shapes = [], {}
    for path in dict.fromkeys(paths):
        if path.lower().endswith(".txt"):
            labels = [-1] * len(arrays.texts(path))       # token ids: made per batch
        else:
            rows = arrays.read(path)
            shapes[path], labels = rows.values.shape[1:], rows.labels
        first, stem = len(entries), os.path.splitext(path)[0]
        entries.extend([Entry(runs.image_id(first + r, f"{stem}_row{r}"), f"{path}{ROW}{r}",
                              int(label)) for r, label in enumerate(labels)])
    if len(set(shapes.values())) > 1:
        raise ValueError(f"--inputs files hold examples of different shapes: {shapes}")
    return entries


def array_batches(entries: List[Entry], batch_size: int, *, vocabulary: Optional[str] = None,
                  length: Optional[int] = None):
    """Batches of (values, labels, names) of ``--inputs`` entries (rows as stored; texts
    as token ids of ``vocabulary``, ``length`` of them)."""
    from tf_smoothtaylor.data import arrays
    for start in range(0, len(entries), batch_size):
        chosen = entries[start:start + batch_size]
        values = []
        for entry in chosen:
            path, row = entry.source.rsplit(ROW, 1)
            text = path.lower().endswith(".txt")
            values.append(arrays.read(path, vocabulary if text else None,
                                      length if text else None).values[int(row)])
        yield (np.stack(values), np.array([entry.label for entry in chosen], np.int64),
               np.array([entry.source for entry in chosen]))


def _file_entries(config: RunConfig, glob, local) -> List[Entry]:
    """The files of ``--images``, or the bundled demo's samples for the demo model."""
    from tf_smoothtaylor import demo
    from tf_smoothtaylor.cli import runs
    if config.images:
        files = image_files(config.images, glob=glob, local=local)
    elif config.model == "demo":
        files = demo.sample_paths()
    else:
        raise ValueError("missing input: give --images, --inputs, --image_folder or "
                         "--manual_dir")
    return [Entry(runs.image_id(i, path), path) for i, path in enumerate(files)]


def recorded(entries: Sequence[Entry], *, local: bool = True) -> List[str]:
    """The inputs as ``run.json`` records them: absolute paths of local files (two
    spellings of one file are one input), else the sources as given."""
    from tf_smoothtaylor.data import paths as _paths

    def one(source):
        if local and _paths.exists(source):
            return _paths.absolute(source)
        file, _, row = source.rpartition(ROW)
        if local and file and _paths.exists(file):            # FILE#r of --inputs
            return _paths.absolute(file) + ROW + row
        return source

    return [one(e.source) if e.position < 0 else e.source for e in entries]


def input_size(config, spec) -> Tuple[Tuple[int, int], Optional[int]]:
    """((height, width) of the crop, resize of the shorter side or None): the paper's
    256 → 224 ratio of the shorter side, except for the demo's images, which are made
    at the model's size."""
    height, width = spec.input_size
    return (height, width), None if config.model == "demo" else int(
        round(min(height, width) * 256 / 224))


def input_batches(config, spec, entries: List[Entry]):
    """Batches of (pixels, labels, names) of ``entries``, unreadable images left out
    (``unreadable`` says which and why)."""
    from tf_smoothtaylor import data
    if config.inputs:
        shape = tuple(spec.model.inputs[0].shape[1:])
        return array_batches(entries, config.images_per_step, vocabulary=config.vocabulary,
                             length=shape[0] if len(shape) == 1 else None)
    size, resize = input_size(config, spec)
    common = dict(size=size, resize=resize, batch_size=config.images_per_step,
                  skip_unreadable=True)
    if config.image_folder:
        return data.image_folder(config.image_folder, **common)
    if config.manual_dir:
        return data.imagenet_validation(config.manual_dir, data_dir=config.data_dir,
                                        limit=config.limit, **common)
    return data.from_files([entry.source for entry in entries], **common)


def unreadable(entries: List[Entry], done, config, spec) -> List[dict]:
    """The entries whose id is not in ``done`` (the finished ids): ``{id, source,
    error}``, the error read again from the file where there is one."""
    import tensorflow as tf
    from tf_smoothtaylor import data
    done = set(done)
    size, resize = input_size(config, spec) if not config.inputs else (None, None)
    failures = []
    for entry in entries:
        if entry.id in done:
            continue
        reason = "could not be decoded"
        if config.inputs:
            reason = "not processed (see summary.md)"
        elif entry.position < 0:
            try:
                data.decode_and_crop(tf.io.read_file(entry.source), size=size, resize=resize)
                reason = "not processed (see summary.md)"
            except (tf.errors.OpError, ValueError) as error:
                message = getattr(error, "message", None) or str(error)
                reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", message.splitlines()[0]).strip()
        failures.append({"id": entry.id, "source": entry.source, "error": reason})
    return failures
