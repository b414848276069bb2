"""Resumable runs over many images: explain, evaluate, adapt.

``process`` explains (and scores) every image of a run that is not finished yet,
writing each image's files and record through the run's ``data.rundir.OutputDir``
(the record last, so a finished image is one whose record exists), and reports
progress; ``tables`` writes the run's tables at the end. The names of both are
also available from this module.
"""

import io
import math
import os
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.data.rundir import LocalFiles, OutputDir, atomic_write, id_key, image_id
from tf_smoothtaylor.methods.maps import heatmap
from tf_smoothtaylor.metrics import registry as metrics_registry
from tf_smoothtaylor.cli.tables import (LOWER_IS_BETTER, failure_lines, markdown, precision_lines,
                                    summarize, write_grid, write_tables)
from tf_smoothtaylor.viz import pictures as visualize

__all__ = ["LOWER_IS_BETTER", "LocalFiles", "OutputDir", "Progress", "atomic_write",
           "failure_lines", "id_key", "image_id", "markdown", "metric_functions",
           "precision_lines", "process", "process_batch", "score_finished", "summarize",
           "write_grid", "write_tables"]


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
    """``name -> (images, maps, targets, masks) -> (B,)``: the registered metrics
    (``metrics.registry``) built with their settings ``options[name]``."""
    return metrics_registry.functions(spec, tuple(names), options)


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
    images = spec.input_size is not None
    for i, record in enumerate(records):
        if not images:                 # a series or a tabular row: its values
            record["input_npy"] = out.write_input(record["id"], pixels[i])
            continue
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
            pictures = visualize.map_pngs(attributions[i], pixels[i]) if images else None
            entry = {"files": out.write_map(record["id"], method, attributions[i], pictures)}
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
