"""Examples stored as arrays: ``.npy``, ``.npz`` and ``.csv`` files, one example per
row, on any file system TensorFlow reads.

* ``.npy``: an array (N, ...) — N tabular rows (N, F), series (N, T, C), images.
* ``.npz``: its array ``x`` (or its only array), with labels in ``y`` or ``labels``
  when present (one integer per row).
* ``.csv``: a header row of column names, then one numeric row per example; a
  column named ``label`` is the label, not a feature.
* ``.txt``: one text a line, turned into token ids by a vocabulary file (one token
  a line, its line number its id): lower-cased, split into words and punctuation,
  a word not in the vocabulary becomes ``[UNK]`` (or ``<unk>``), and each text is
  padded with ``[PAD]`` (or ``<pad>``, else id 0) or cut to ``length`` tokens.

Labels are −1 where the file has none.
"""

import csv
import functools
import io
import re
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

EXTENSIONS = (".npy", ".npz", ".csv", ".txt")
PADDING, UNKNOWN = ("[PAD]", "<pad>"), ("[UNK]", "<unk>")
LABEL_COLUMN = "label"


class Rows(NamedTuple):
    """A file's examples (N, ...) float32, labels (N,) int64 and, for CSV, the
    feature columns' names."""
    values: np.ndarray
    labels: np.ndarray
    columns: Optional[Tuple[str, ...]]


@functools.lru_cache(maxsize=4)
def vocabulary(path: str) -> Tuple[str, ...]:
    """The tokens of a vocabulary file, one a line (a token's id is its line number)."""
    tokens = tuple(line.rstrip("\r\n") for line in _read(path).decode("utf-8").split("\n"))
    tokens = tokens[:-1] if tokens and tokens[-1] == "" else tokens
    if not tokens:
        raise ValueError(f"--vocabulary {path}: the file is empty")
    return tokens


def tokenize(text: str, tokens: Tuple[str, ...], length: int, *, where: str = "") -> List[int]:
    """The ids of ``text`` (see the module docstring), ``length`` of them."""
    index = {token: i for i, token in enumerate(tokens)}
    unknown = next((index[t] for t in UNKNOWN if t in index), None)
    pad = next((index[t] for t in PADDING if t in index), 0)
    ids = []
    for word in re.findall(r"\w+|[^\w\s]", text.lower()):
        if word in index:
            ids.append(index[word])
        elif unknown is not None:
            ids.append(unknown)
        else:
            raise ValueError(f"{where}: {word!r} is not in the vocabulary, which has no "
                             f"{UNKNOWN[0]} token")
    return (ids + [pad] * length)[:length]


def _read(path: str) -> bytes:
    try:
        with tf.io.gfile.GFile(path, "rb") as stream:
            return stream.read()
    except tf.errors.NotFoundError:
        raise ValueError(f"input not found: {path}") from None


def _labels(labels, count: int, path: str) -> np.ndarray:
    if labels is None:
        return np.full(count, -1, np.int64)
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.number) or not np.all(
            np.equal(np.mod(labels, 1), 0)):
        raise ValueError(f"{path}: expected one integer label per row ({count}); got labels "
                         f"of shape {labels.shape} and dtype {labels.dtype}")
    return labels.astype(np.int64)


def _numeric(values, path: str) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{path}: expected numeric examples; got dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"{path}: expected one example per row, an array (rows, ...); got "
                         f"shape {array.shape}")
    array = array.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}: rows {bad[:5].tolist()} hold NaN or Inf")
    return array


def _csv(text: str, path: str) -> Rows:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path}: expected a header row of column names; the file is empty")
    header = [name.strip() for name in header]
    label = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else None
    rows = []
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {number}: {len(row)} values for {len(header)} "
                             "columns")
        try:
            rows.append([float(value) for value in row])
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected numbers; got {row}") from None
    if not rows:
        raise ValueError(f"{path}: no rows after the header")
    table = np.asarray(rows, np.float64)
    keep = [j for j in range(len(header)) if j != label]
    return Rows(_numeric(table[:, keep], path),
                _labels(None if label is None else table[:, label], len(table), path),
                tuple(header[j] for j in keep))


def texts(path: str) -> List[str]:
    """The non-empty lines of a ``.txt`` file."""
    return [line for line in _read(path).decode("utf-8-sig").splitlines() if line.strip()]


@functools.lru_cache(maxsize=8)
def read(path: str, vocabulary_path: Optional[str] = None,
         length: Optional[int] = None) -> Rows:
    """The examples of ``path`` (see the module docstring); read once per process.
    ``.txt`` files need ``vocabulary_path`` and ``length``.

    Raises:
      ValueError: in one line naming the file: not found, another extension, not
        numeric, NaN/Inf (naming the rows), labels that are not one integer per row.
    """
    extension = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if extension not in EXTENSIONS:
        raise ValueError(f"--inputs {path}: expected a {', '.join(EXTENSIONS)} file")
    if extension == ".txt":
        if vocabulary_path is None or length is None:
            raise ValueError(f"--inputs {path}: a text file needs --vocabulary (one token "
                             "a line) and a model on token ids of fixed length")
        tokens = vocabulary(vocabulary_path)
        lines = texts(path)
        if not lines:
            raise ValueError(f"{path}: no text")
        ids = [tokenize(line, tokens, length, where=f"{path}, text {number + 1}")
               for number, line in enumerate(lines)]
        return Rows(np.asarray(ids, np.float32), _labels(None, len(ids), path), None)
    content = _read(path)
    if extension == ".csv":
        return _csv(content.decode("utf-8-sig"), path)
    try:
        loaded = np.load(io.BytesIO(content), allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{path}: not a readable {extension} file ({error})") from None
    if extension == ".npy":
        return Rows(_numeric(loaded, path), _labels(None, len(loaded), path), None)
    names = list(loaded.files)
    key = "x" if "x" in names else (names[0] if len(names) == 1 else None)
    if key is None:
        raise ValueError(f"{path}: expected an array named 'x' (or a single array); "
                         f"found {names}")
    values = _numeric(loaded[key], path)
    label_key = next((k for k in ("y", "labels") if k in names and k != key), None)
    return Rows(values, _labels(None if label_key is None else loaded[label_key],
                                len(values), path), None)
