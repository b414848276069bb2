"""Resumable runs over many images: explain, evaluate, adapt.

A run writes into one output directory:

* ``run.json`` — the settings and the resolved inputs (``inputs``); a rerun with
  other settings is refused, and so is a rerun whose inputs changed other than by
  growing at the end (``--limit`` raised, files added that sort last: those
  continue the run), so files of different settings or images never mix;
* per image and method: ``maps/<id>__<method>.npy`` (float32 attributions),
  ``..._heatmap.png`` and ``..._overlay.png``;
* ``results/<id>.json`` — the image's record, written last and atomically: its
  presence means the image is finished. A rerun skips finished images and never
  rewrites their files, so an interrupted run resumes where it stopped;
* at the end: ``index.csv`` / ``metrics.csv`` (one row per image and method),
  ``summary.md`` (mean ± standard error per method) and ``grid.png``.

Every file is written to a temporary name and renamed into place.
"""

import csv
import glob
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor import visualize
from tf_smoothtaylor.maps import heatmap
from tf_smoothtaylor.metrics.aupc import AUPC
from tf_smoothtaylor.metrics.autvc import autvc
from tf_smoothtaylor.metrics.deletion import Deletion, Insertion
from tf_smoothtaylor.metrics.localisation import relevance_mass

_UMASK = os.umask(0)
os.umask(_UMASK)

LOWER_IS_BETTER = {"aupc": True, "autvc": True, "deletion": True, "insertion": False,
                   "relevance_mass": False}


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
      inputs: The run's resolved inputs (``inputs.recorded``), kept in
        ``run.json`` as ``inputs``; None for runs that do not list them.
    """

    def __init__(self, path: str, settings: Optional[dict] = None, *, overwrite: bool = False,
                 files=None, inputs: Optional[List[str]] = None):
        self.path, self.files = path, files or LocalFiles()
        if settings is None:
            return
        try:
            for folder in ("maps", "results"):
                self.files.makedirs(self.files.join(path, folder))
            self.files.check_writable(path)
        except OSError as error:
            raise ValueError(f"Expected a writable `output_dir`. Received: {path!r} "
                             f"({error})") from None
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

    def _file(self, relative: str) -> str:
        return self.files.join(self.path, *relative.split("/"))

    def write(self, relative: str, data: bytes) -> None:
        """Writes one file of the run (``relative`` uses '/')."""
        self.files.write(self._file(relative), data)

    def read(self, relative: str) -> bytes:
        return self.files.read(self._file(relative))

    def _result_files(self) -> List[str]:
        return [name for name in self.files.glob(self._file("results/*.json"))
                if not os.path.basename(name).startswith(".")]

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
        return self.files.exists(self._file(self._result(identifier)))

    @staticmethod
    def _result(identifier: str) -> str:
        return f"results/{identifier}.json"

    def write_map(self, identifier: str, method: str, attributions: np.ndarray,
                  pixels: np.ndarray) -> Dict[str, str]:
        """The .npy and the two PNGs of one map; returns their relative paths."""
        base = os.path.join("maps", f"{identifier}__{method}")
        maps = heatmap(attributions[None]).numpy()
        files = {"npy": base + ".npy", "heatmap_png": base + "_heatmap.png",
                 "overlay_png": base + "_overlay.png"}
        self.write(files["npy"], _npy_bytes(attributions))
        self.write(files["heatmap_png"], tf.io.encode_png(visualize.colorize(maps)[0]).numpy())
        self.write(files["overlay_png"],
                   tf.io.encode_png(visualize.overlay(pixels[None], maps)[0]).numpy())
        return files

    def write_result(self, identifier: str, record: dict) -> None:
        self.write(self._result(identifier),
                   json.dumps(record, indent=1, sort_keys=True).encode())

    def result(self, identifier: str) -> dict:
        """The record of a finished image."""
        return json.loads(self.read(self._result(identifier)).decode("utf-8"))

    def results(self) -> List[dict]:
        return [json.loads(self.files.read(name).decode("utf-8"))
                for name in sorted(self._result_files(), key=os.path.basename)]


class Progress:
    """One line per update: images done (computed, scored from saved maps, resumed),
    images/s of the work done, ETA; and, on a terminal, lines within a step (points
    done, points/s, ETA of the step) every ``interval`` s."""

    def __init__(self, total: Optional[int], stream=None, *, interval: float = 3.0):
        self.total, self.stream = total, stream          # None: sys.stderr at write time
        self.start, self.done, self.skipped = time.perf_counter(), 0, 0
        self.scored = 0
        self.interval = interval
        self._step_start = self._last_partial = None

    def partial(self, method: str, points_done: int, points_total: int) -> None:
        """Reports progress inside a step (only to a terminal, at most every interval)."""
        stream = self.stream or sys.stderr
        now = time.perf_counter()
        if self._step_start is None:
            self._step_start = self._last_partial = now
        if not getattr(stream, "isatty", lambda: False)() or now - self._last_partial < \
                self.interval:
            return
        self._last_partial = now
        rate = points_done / max(now - self._step_start, 1e-9)
        eta = (points_total - points_done) / rate if rate else float("nan")
        print(f"  {method}: {points_done}/{points_total} points of this step, "
              f"{rate:.1f} points/s, step ETA {eta:.0f}s", file=stream, flush=True)

    def update(self, done: int, skipped: int = 0, *, scored: int = 0) -> None:
        """``done`` images computed, ``scored`` scored from their saved maps,
        ``skipped`` resumed as they were."""
        self._step_start = None
        self.done += done
        self.skipped += skipped
        self.scored += scored
        worked = self.done + self.scored
        rate = worked / max(time.perf_counter() - self.start, 1e-9)
        seen = self.done + self.scored + self.skipped
        remaining = None if self.total is None else self.total - seen
        eta = "?" if remaining is None or rate == 0 else f"{remaining / rate:.0f}s"
        total = "?" if self.total is None else self.total
        scored_text = f"{self.scored} scored from saved maps, " if self.scored else ""
        print(f"[{seen}/{total}] {self.done} computed, {scored_text}{self.skipped} "
              f"resumed, {rate:.2f} images/s, ETA {eta}", file=self.stream or sys.stderr,
              flush=True)


def metric_functions(spec, names: Sequence[str], options: dict) -> Dict[str, Callable]:
    """``name -> (images, maps, targets, masks) -> (B,) values``."""
    functions = {}
    for name in names:
        settings = dict(options.get(name, {}))
        if name == "aupc":
            metric = AUPC(spec, **settings)
            functions[name] = lambda x, m, t, k, metric=metric: metric(x, m, t).score
        elif name == "autvc":
            functions[name] = lambda x, m, t, k, s=settings: autvc(m, **s)
        elif name == "relevance_mass":
            functions[name] = lambda x, m, t, k: (relevance_mass(m, k) if k is not None
                                                  else tf.fill([len(m)], np.nan))
        elif name in ("deletion", "insertion"):
            curve = (Deletion if name == "deletion" else Insertion)(spec, **settings)
            functions[name] = lambda x, m, t, k, curve=curve: curve(x, m, t).score
        else:
            raise ValueError(f"Expected metric names among {sorted(LOWER_IS_BETTER)}. "
                             f"Received: {name!r}")
    return functions


def process(spec, batches: Iterable, explainers: Dict[str, Callable], out: OutputDir, *,
            metrics: Optional[Dict[str, Callable]] = None,
            masks: Optional[Callable[[str], Optional[np.ndarray]]] = None,
            total: Optional[int] = None, limit: Optional[int] = None,
            progress: Optional[Progress] = None,
            ids: Optional[Dict[str, str]] = None) -> List[dict]:
    """Explains (and scores) every image not finished yet; returns all records.

    Args:
      spec: ModelSpec of the model.
      batches: (pixels, labels, names) batches, pixels in [0, 1].
      explainers: method name -> ``(inputs, targets, keys) -> (attributions, extra
        dict)``; ``keys`` (int64, one per image) come from the image ids.
      out: The run's :class:`OutputDir`.
      metrics: metric name -> function (see :func:`metric_functions`).
      masks: name -> ground-truth mask or None (for relevance mass).
      total, limit: Number of images expected / to process at most.
      progress: Where progress goes (default: stderr).
      ids: name -> id of every image (``inputs.list_entries``), so that images a
        pipeline skipped (unreadable) leave the others' ids unchanged; None numbers
        the images in the order they come.
    """
    progress = progress or Progress(total if limit is None else min(limit, total or limit))
    index = 0
    for pixels, labels, names in batches:
        pixels = np.asarray(pixels, np.float32)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(names)]
        if limit is not None:
            keep = max(0, min(len(names), limit - index))
            pixels, labels, names = pixels[:keep], np.asarray(labels)[:keep], names[:keep]
        batch_ids = ([ids[name] for name in names] if ids is not None
                     else [image_id(index + i, name) for i, name in enumerate(names)])
        index += len(batch_ids)
        todo = [i for i, identifier in enumerate(batch_ids) if not out.done(identifier)]
        if todo:
            process_batch(spec, pixels[todo], np.asarray(labels)[todo], [names[i] for i in todo],
                           [batch_ids[i] for i in todo], explainers, out, metrics or {}, masks,
                           progress)
        finished = sorted(set(range(len(batch_ids))) - set(todo))
        scored = 0
        if finished and metrics:
            scored = score_finished(spec, pixels[finished], [names[i] for i in finished],
                                    [batch_ids[i] for i in finished], out, metrics, masks)
        progress.update(len(todo), len(batch_ids) - len(todo) - scored, scored=scored)
        if limit is not None and index >= limit:
            break
    return out.results()


def _explain_in_groups(method, explain, inputs, targets, keys, progress):
    """``explain`` over groups of about four chunks of points, reporting progress
    between them (results do not depend on how images are grouped). Explain
    functions with ``points_per_image`` and ``batch_size`` attributes are split;
    others run on the whole step."""
    count = int(inputs.shape[0])
    points = getattr(explain, "points_per_image", None)
    group = count if not points else max(1, (4 * explain.batch_size) // points)
    if group >= count:
        return explain(inputs, targets, keys)
    parts, extras = [], []
    for start in range(0, count, group):
        stop = min(count, start + group)
        attributions, extra = explain(inputs[start:stop], targets[start:stop], keys[start:stop])
        parts.append(np.asarray(attributions))
        extras.append(extra)
        progress.partial(method, stop * points, count * points)
    merged = {name: np.concatenate([np.asarray(extra[name]) for extra in extras])
              for name in extras[0]}
    return np.concatenate(parts), merged


def process_batch(spec, pixels, labels, names, ids, explainers, out, metrics, masks,
                  progress) -> List[dict]:
    """Explains and scores one batch of images, writes their files and records
    (each record last), and returns the records."""
    inputs = tf.convert_to_tensor(spec.preprocess(pixels))
    logits = spec.model(inputs, training=False).numpy()
    targets = np.argmax(logits, axis=-1).astype(np.int32)
    mask_batch = None
    if masks is not None:
        found = [masks(name) for name in names]
        if all(m is not None for m in found):
            mask_batch = np.stack(found)
    records = [{"id": identifier, "source": name, "label": int(label), "target": int(target),
                "target_logit": float(logits[i, target]), "methods": {}}
               for i, (identifier, name, label, target) in enumerate(zip(ids, names, labels,
                                                                         targets))]
    for i, record in enumerate(records):
        record["input_png"] = os.path.join("maps", f"{record['id']}__input.png")
        out.write(record["input_png"], tf.io.encode_png(np.round(np.clip(pixels[i], 0, 1) * 255)
                                      .astype(np.uint8)).numpy())
    keys = np.array([id_key(identifier) for identifier in ids], np.int64)
    for method, explain in explainers.items():
        attributions, extra = _explain_in_groups(method, explain, inputs, targets, keys, progress)
        attributions = np.asarray(attributions, np.float32)
        maps = heatmap(attributions)
        scores = {name: np.asarray(fn(inputs, maps, targets, mask_batch), np.float64)
                  for name, fn in metrics.items()}
        for i, record in enumerate(records):
            entry = {"files": out.write_map(record["id"], method, attributions[i], pixels[i])}
            entry.update({name: _number(values[i]) for name, values in scores.items()})
            entry.update({name: _number(np.asarray(values)[i]) for name, values in extra.items()})
            record["methods"][method] = entry
    for record in records:
        out.write_result(record["id"], record)
    return records


def score_finished(spec, pixels, names, ids, out: OutputDir, metrics: Dict[str, Callable],
                   masks) -> int:
    """Adds the requested scores a finished image's record lacks, from its saved maps
    (an ``explain`` run followed by ``evaluate``); records that have them are left
    untouched. Returns how many images were scored."""
    records = [out.result(identifier) for identifier in ids]
    missing = [i for i, record in enumerate(records)
               if any(name not in entry for entry in record["methods"].values()
                      for name in metrics)]
    if not missing:
        return 0
    inputs = tf.convert_to_tensor(spec.preprocess(pixels[missing]))
    chosen = [records[i] for i in missing]
    targets = np.array([record["target"] for record in chosen], np.int32)
    mask_batch = None
    if masks is not None:
        found = [masks(names[i]) for i in missing]
        if all(m is not None for m in found):
            mask_batch = np.stack(found)
    for method in chosen[0]["methods"]:
        attributions = np.stack([np.load(io.BytesIO(out.read(record["methods"][method]["files"]
                                                             ["npy"])))
                                 for record in chosen])
        maps = heatmap(attributions)
        for name, fn in metrics.items():
            values = np.asarray(fn(inputs, maps, targets, mask_batch), np.float64)
            for record, value in zip(chosen, values):
                record["methods"][method].setdefault(name, _number(value))
    for record in chosen:
        out.write_result(record["id"], record)
    return len(chosen)


def _number(value) -> Optional[Union[int, float]]:
    """A JSON number: ints stay ints (point counts), NaN becomes None."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) else value


def summarize(records: List[dict], metric_names: Sequence[str]) -> List[dict]:
    """Mean ± standard error per method and metric over the records."""
    methods = list(dict.fromkeys(m for r in records for m in r["methods"]))  # first-seen order
    rows = []
    for method in methods:
        row = {"method": method}
        for name in metric_names:
            values = np.array([r["methods"][method][name] for r in records
                               if method in r["methods"]
                               and r["methods"][method].get(name) is not None], np.float64)
            mean = float(values.mean()) if len(values) else math.nan
            error = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
            row[name] = (mean, error, len(values))
        rows.append(row)
    return rows


def markdown(rows: List[dict], metric_names: Sequence[str]) -> str:
    """The summary as a Markdown table (mean ± standard error)."""
    arrows = {name: "↓" if LOWER_IS_BETTER.get(name, True) else "↑" for name in metric_names}
    header = "| method | " + " | ".join(f"{name} {arrows[name]}" for name in metric_names) + " |"
    lines = [header, "|---" * (len(metric_names) + 1) + "|"]
    for row in rows:
        cells = [f"{row[name][0]:.4f} ± {row[name][1]:.4f}" if not math.isnan(row[name][1])
                 else f"{row[name][0]:.4f}" for name in metric_names]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    count = max((row[name][2] for row in rows for name in metric_names), default=0)
    return "\n".join(lines) + f"\n\nmean ± standard error over {count} images.\n"


def write_tables(out: OutputDir, records: List[dict], metric_names: Sequence[str], *,
                 failures: Optional[List[dict]] = None) -> str:
    """index.csv, metrics.csv and summary.md; returns the Markdown summary.

    ``failures`` (id, source, error) are listed at the end of the summary."""
    columns = ["id", "source", "label", "target", "method", "npy", "heatmap_png", "overlay_png"]
    index_rows, metric_rows = [], []
    for record in records:
        for method, entry in record["methods"].items():
            base = {"id": record["id"], "source": record["source"], "label": record["label"],
                    "target": record["target"], "method": method}
            index_rows.append({**base, **entry["files"]})
            metric_rows.append({**base, **{k: v for k, v in entry.items() if k != "files"}})
    extra = sorted({k for row in metric_rows for k in row} - set(columns))
    tables = [("index.csv", index_rows, columns)]
    if extra:                                     # explain computes no metric: no metrics.csv
        tables.append(("metrics.csv", metric_rows, columns[:5] + extra))
    for name, rows, fields in tables:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        out.write(name, buffer.getvalue().encode())
    summary = markdown(summarize(records, metric_names), metric_names) if metric_names else ""
    if summary:
        summary += precision_lines(records)
    if failures:
        summary += failure_lines(failures)
    if summary:
        out.write("summary.md", summary.encode())
    return summary


def precision_lines(records: List[dict]) -> str:
    """The Monte Carlo precision of each stochastic method: draws per image and the
    heatmaps' relative standard error (mean and largest over the images)."""
    lines = []
    methods = list(dict.fromkeys(m for r in records for m in r["methods"]))
    for method in methods:
        entries = [r["methods"][method] for r in records if method in r["methods"]]
        errors = np.array([e["relative_error"] for e in entries
                           if e.get("relative_error") is not None], np.float64)
        if len(errors):
            points = np.array([int(e["num_points"]) for e in entries if "num_points" in e])
            spent = (str(points[0]) if len(set(points)) == 1 else
                     f"{points.mean():.0f} (mean; {points.min()}–{points.max()})")
            lines.append(f"| {method} | {spent} | {errors.mean():.3f} | {errors.max():.3f} |")
    if not lines:
        return ""
    return ("\nMonte Carlo precision (relative standard error of each heatmap, "
            "‖SE(h)‖₂ / ‖h‖₂):\n\n| method | draws per image | mean | largest |\n"
            "|---|---|---|---|\n" + "\n".join(lines) + "\n")


def failure_lines(failures: List[dict]) -> str:
    """The images a run could not process, one Markdown line each."""
    lines = [f"\n{len(failures)} image(s) could not be processed:\n"]
    lines += [f"- `{f['id']}` ({f['source']}): {f['error']}" for f in failures]
    return "\n".join(lines) + "\n"


def write_grid(out: OutputDir, records: List[dict], max_images: int = 6,
               min_tile: int = 160) -> str:
    """grid.png: the first images, each with one overlay per method, titled."""
    if not records:
        return ""
    methods = list(records[0]["methods"])

    def tile(relative):
        image = tf.io.decode_png(out.read(relative), channels=3).numpy()
        factor = max(1, -(-min_tile // image.shape[0]))           # nearest-neighbour upscale
        return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)

    rows = [[tile(record["input_png"])]
            + [tile(record["methods"][m]["files"]["overlay_png"]) for m in methods]
            for record in records[:max_images]]
    out.write("grid.png", tf.io.encode_png(visualize.grid(rows, titles=["image"] + methods))
              .numpy())
    return out.files.join(out.path, "grid.png")
