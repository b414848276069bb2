"""The output directory of a run: its files, written so that a run resumes.

A run writes into one output directory:

* ``run.json`` — the settings and the resolved inputs (``inputs``); a rerun with
  other settings is refused, and so is a rerun whose inputs changed other than by
  growing at the end (``--limit`` raised, files added that sort last: those
  continue the run), so files of different settings or images never mix;
* per image and method: ``maps/<id>__<method>.npy`` (float32 attributions),
  ``..._heatmap.png`` and ``..._overlay.png``;
* ``results/<id>.json`` — the image's record, written last and atomically: its
  presence means the image is finished. A rerun skips finished images and never
  rewrites their files, so an interrupted run resumes where it stopped; a record
  that does not read back, or that lists a file which is gone, is reported with a
  warning naming the file and its image is explained again;
* at the end: ``index.csv`` / ``metrics.csv`` (one row per image and method),
  ``summary.md`` (mean ± standard error per method) and ``grid.png``.

Every file is written to a temporary name and renamed into place.
"""

import glob
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from typing import Dict, List, Optional

import numpy as np

from tf_smoothtaylor.data import runlock


_UMASK = os.umask(0)
os.umask(_UMASK)

# Settings that do not change the maps: ``explain`` then ``evaluate`` (or the reverse)
# into one directory is one run, the second adding its scores to the finished maps.
_SCORING = ("mode", "metrics", "metric_options")
# How the inputs were asked for: what counts is the resolved list, ``inputs``.
_INPUT_SPELLING = ("images", "image_folder", "manual_dir", "limit", "inputs")


def _changed_settings(previous: dict, wanted: dict) -> str:
    """The settings of two runs that make them different runs ("" when none); the
    inputs are compared by :func:`_changed_inputs`."""
    def family(settings):
        return "adapt" if settings.get("mode") == "adapt" else "explain"

    ignored = set(_SCORING) | (set(_INPUT_SPELLING) if "inputs" in previous else {"inputs"})
    keys = sorted((set(previous) | set(wanted)) - ignored)
    changed = [f"{key} ({previous.get(key)!r} → {wanted.get(key)!r})" for key in keys
               if previous.get(key) != wanted.get(key)]
    if family(previous) != family(wanted):
        changed.append(f"mode ({previous.get('mode')!r} → {wanted.get('mode')!r})")
    if (previous.get("metrics") and wanted.get("metrics")
            and previous.get("metric_options") != wanted.get("metric_options")):
        changed.append(f"metric_options ({previous.get('metric_options')!r} → "
                       f"{wanted.get('metric_options')!r})")
    return ", ".join(changed)


def _changed_inputs(previous: Optional[list], wanted: Optional[list]) -> str:
    """How the inputs changed ("" when ``wanted`` is ``previous`` or extends it)."""
    if previous is None or wanted is None or wanted[:len(previous)] == previous:
        return ""
    added, removed = set(wanted) - set(previous), set(previous) - set(wanted)
    parts = [f"{len(added)} added"] if added else []
    parts += [f"{len(removed)} removed"] if removed else []
    if not parts:
        parts = ["the same images in another order"]
    example = sorted(added or removed)[:1]
    return ", ".join(parts) + (f", e.g. {os.path.basename(example[0])}" if example else "")


def atomic_write(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary file and a rename."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~_UMASK)    # mkstemp makes 0600; use normal permissions
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def id_key(identifier: str) -> int:
    """The random key of an image id: its first 8 BLAKE2b bytes as an int64.

    Runs key each image's draws by its id, not by its pixels, so the same image
    preprocessed on another machine (another resize, XLA or not) gets the same
    roots and noise."""
    digest = hashlib.blake2b(identifier.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def image_id(index: int, name: str) -> str:
    """A file-safe id that sorts in input order at any count: ``00042_<stem>`` below
    100 000, then a letter for the number of digits before them — ``f100000_<stem>``
    (6 digits), ``g1000000_<stem>`` (7), ... — which sorts after every shorter one."""
    stem = os.path.splitext(os.path.basename(str(name)))[0] or "image"
    digits = str(int(index))
    number = digits.zfill(5) if len(digits) <= 5 else chr(ord("a") + len(digits) - 1) + digits
    return f"{number}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', stem)[:60]}"


class LocalFiles:
    """The local file system; writes go to a temporary name, then a rename."""

    join = staticmethod(os.path.join)

    @staticmethod
    def makedirs(path: str) -> None:
        os.makedirs(path, exist_ok=True)

    @staticmethod
    def check_writable(path: str) -> None:
        if not os.access(path, os.W_OK):
            raise OSError("not writable")

    write = staticmethod(atomic_write)

    @staticmethod
    def read(path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    exists = staticmethod(os.path.exists)

    @staticmethod
    def glob(pattern: str) -> List[str]:
        return sorted(glob.glob(pattern))

    remove = staticmethod(os.remove)


class OutputDir:
    """The files of one run (see the module docstring).

    Args:
      path: The run's directory.
      settings: The run's settings, checked against ``run.json`` (see the module
        docstring); None attaches to a run another process created (workers).
      overwrite: Start the run over when its settings or inputs differ.
      files: The file system (default :class:`LocalFiles`; the Beam pipeline
        passes one on Beam's file systems, so ``gs://``-style paths work).
      inputs: The run's resolved inputs (``cli.inputs.recorded``), kept in
        ``run.json`` as ``inputs``; None for runs that do not list them.
      force: Take an object store's run directory even when its lease is recent
        (``runlock``).
    """

    def __init__(self, path: str, settings: Optional[dict] = None, *, overwrite: bool = False,
                 files=None, inputs: Optional[List[str]] = None, force: bool = False):
        self.path, self.files = path, files or LocalFiles()
        self._reported = set()           # damaged images already warned about
        self._lock = None
        if settings is None:
            return
        try:
            for folder in ("maps", "results"):
                self.files.makedirs(self.files.join(path, folder))
            self.files.check_writable(path)
        except OSError as error:
            raise ValueError(f"Expected a writable `output_dir`. Received: {path!r} "
                             f"({error})") from None
        # One run at a time: only the holder removes the temporary files a killed run left.
        self._lock = runlock.acquire(path, self.files, force=force)
        for pattern in (".tmp-*", "maps/.tmp-*", "results/.tmp-*"):   # left by a killed run
            for name in self.files.glob(self._file(pattern)):
                self.files.remove(name)
        run_file = self.files.join(path, "run.json")
        if inputs is not None:
            settings = {**settings, "inputs": list(inputs)}
        text = json.dumps(settings, indent=1, sort_keys=True)
        if self.files.exists(run_file):
            previous = json.loads(self.files.read(run_file).decode("utf-8"))
            wanted = json.loads(text)
            changed = _changed_settings(previous, wanted)
            moved = _changed_inputs(previous.get("inputs"), wanted.get("inputs"))
            if changed or moved:
                finished = self.results_count()
                if finished and not overwrite:
                    if not changed:
                        raise ValueError(
                            f"the inputs of the run in {path} changed since it started "
                            f"({moved}; finished images there: {finished}): rerun with the "
                            "same inputs to resume, or use --overwrite to start over, or "
                            "another --output_dir")
                    raise ValueError(
                        f"Expected `output_dir` {path!r} to hold a run with the same settings "
                        f"(it resumes; finished images there: {finished}). Settings that "
                        f"differ: {changed}. Use another --output_dir, or --overwrite to "
                        "start that run over.")
                self._clear()
            else:                               # scores gathered so far stay listed
                wanted["metrics"] = list(dict.fromkeys(previous.get("metrics", [])
                                                       + wanted.get("metrics", [])))
                if not previous.get("metrics"):
                    previous["metric_options"] = wanted.get("metric_options")
                wanted["metric_options"] = previous.get("metric_options")
                text = json.dumps(wanted, indent=1, sort_keys=True)
        self.files.write(run_file, text.encode())

    def close(self) -> None:
        """Ends this process's hold on the run directory (``runlock``); a later run,
        in any process, may then start there."""
        if self._lock is not None:
            runlock.release(self._lock)
            self._lock = None

    def _file(self, relative: str) -> str:
        return self.files.join(self.path, *relative.split("/"))

    def write(self, relative: str, data: bytes) -> None:
        """Writes one file of the run (``relative`` uses '/')."""
        if self._lock is not None:
            self._lock.check()
        self.files.write(self._file(relative), data)

    def read(self, relative: str) -> bytes:
        return self.files.read(self._file(relative))

    def _result_files(self) -> List[str]:
        return [name for name in self.files.glob(self._file("results/*.json"))
                if not os.path.basename(name).startswith(".")]

    def finished_ids(self) -> List[str]:
        """The ids of the finished images (one listing of ``results/``, no read)."""
        return sorted(os.path.basename(name)[:-len(".json")] for name in self._result_files())

    def results_count(self) -> int:
        """How many images of this run are finished."""
        return len(self._result_files())

    def _clear(self) -> None:
        """Removes the files of a previous run (per-image files and tables)."""
        for pattern in ("results/*.json", "maps/*", "index.csv", "metrics.csv", "summary.md",
                        "grid.png"):
            for name in self.files.glob(self._file(pattern)):
                self.files.remove(name)

    def done(self, identifier: str) -> bool:
        """Whether the image is finished: its record is there, reads back, and every
        file it lists exists. A damaged record or a missing file is reported once with
        a warning naming it, and the image counts as not finished (a run explains it
        again, rewriting its files)."""
        if not self.files.exists(self._file(self._result(identifier))):
            return False
        problem = self.damage(identifier)
        if problem and identifier not in self._reported:
            self._reported.add(identifier)
            warnings.warn(f"{problem}; image {identifier} is explained again", stacklevel=2)
        return not problem

    def damage(self, identifier: str) -> str:
        """What is wrong with a finished image's files ("" when nothing): a record
        that does not read back, or a file it lists that is gone."""
        name = self._file(self._result(identifier))
        try:
            record = self.result(identifier)
            listed = [record.get("input_png")] + [
                path for entry in record["methods"].values()
                for path in entry["files"].values()]
        except (ValueError, UnicodeDecodeError, KeyError, AttributeError, TypeError) as error:
            return f"{name} is damaged ({type(error).__name__}: {error})"
        missing = [path for path in listed if path and not self.files.exists(self._file(path))]
        if missing:
            return f"{self._file(missing[0])}, listed in {name}, is missing"
        return ""

    @staticmethod
    def _result(identifier: str) -> str:
        return f"results/{identifier}.json"

    def write_map(self, identifier: str, method: str, attributions: np.ndarray,
                  pictures: Optional[Dict[str, bytes]]) -> Dict[str, str]:
        """The .npy of one map and its PNGs (``pictures``: ``heatmap_png`` and
        ``overlay_png`` bytes, ``viz.pictures.map_pngs``; None for inputs that are not
        images); returns their relative paths."""
        base = os.path.join("maps", f"{identifier}__{method}")
        files = {"npy": base + ".npy"}
        self.write(files["npy"], _npy_bytes(attributions))
        for name, suffix in (("heatmap_png", "_heatmap.png"), ("overlay_png", "_overlay.png")):
            if pictures is not None:
                files[name] = base + suffix
                self.write(files[name], pictures[name])
        return files

    def write_input(self, identifier: str, values: np.ndarray) -> str:
        """An input that is not an image as .npy; returns its relative path."""
        name = os.path.join("maps", f"{identifier}__input.npy")
        self.write(name, _npy_bytes(np.asarray(values, np.float32)))
        return name

    def write_result(self, identifier: str, record: dict) -> None:
        self.write(self._result(identifier),
                   json.dumps(record, indent=1, sort_keys=True).encode())

    def result(self, identifier: str) -> dict:
        """The record of a finished image."""
        return json.loads(self.read(self._result(identifier)).decode("utf-8"))

    def results(self) -> List[dict]:
        """Every finished image's record, in id order; a record that does not read
        back is left out with a warning naming it."""
        records = []
        for name in sorted(self._result_files(), key=os.path.basename):
            try:
                records.append(json.loads(self.files.read(name).decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as error:
                warnings.warn(f"{name} is damaged ({type(error).__name__}: {error}); "
                              "left out of the tables (rerun the run to explain the image "
                              "again)", stacklevel=2)
        return records
