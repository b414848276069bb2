"""Explain, evaluate and adapt over many images as an Apache Beam pipeline.

Attribution over a dataset is independent per image, so past one machine the
command line runs as a Beam pipeline (``tf-smoothtaylor MODE ... --runner=NAME``;
the ``[beam]`` extra): locally on the DirectRunner or Prism, at scale on a Dask
cluster (``[dask]``), Dataflow (``[dataflow]``), Flink or Spark. The pipeline
writes exactly the files of an in-process run (``runs``), through Beam's file
systems so ``gs://``-style output paths work:

1. the driver lists the images (``inputs.list_entries``: ``--images`` patterns,
   ``--image_folder``, ``--manual_dir`` for tfds ``imagenet2012`` validation, or
   the demo) with the ids an in-process run gives them, and writes ``run.json``
   with that list;
2. a reader decodes each image (skipping images whose ``results/<id>.json``
   exists: runs resume; reporting unreadable images instead of failing);
3. each element is a step of up to ``--images_per_step`` images; each worker loads
   the model and builds the explainers once (``DoFn.setup``) and writes every
   image's maps, PNGs and record;
4. one group (a ``GroupByKey``) gathers all records (new and resumed) in the
   pipeline, and a worker writes ``index.csv``, ``metrics.csv``, ``summary.md``
   (mean ± standard error) and ``grid.png``; the driver then lists the finished
   ids (one listing, no record read).

Random draws are keyed by image id, so the maps equal those of an in-process
run and of the Python API with the same keys, whatever the workers and batches.
"""

import json
import logging
import pickle
import re
from typing import List, Optional, Tuple

import numpy as np

from tf_smoothtaylor.cli import inputs
from tf_smoothtaylor.cli.beam_files import (OBJECT_STORES, BeamFiles,  # noqa: F401
                                            FileSystems, beam)
from tf_smoothtaylor.cli.config import RunConfig
from tf_smoothtaylor.cli.inputs import Entry
from tf_smoothtaylor.cli.runners import pipeline_options

# Every element between transforms is (kind, value), one output per DoFn: Beam's
# DaskRunner hands every element of a multi-output ParDo to each of its outputs.
IMAGE = "image"           # [(id, source, label, pixels), ...]: one step's images
FINISHED = "finished"     # a finished image's record
READ_FAILED = "failed"    # {id, source, error}: the image's own fault


def _local(config: RunConfig) -> bool:
    """Whether the inputs are on this machine's file system (else Beam's: gs://...)."""
    return not any("://" in pattern for pattern in config.images)


def list_entries(config: RunConfig) -> List[Entry]:
    """Every image of the run, with the ids an in-process run gives them
    (``inputs.list_entries``; patterns expanded on Beam's file systems)."""
    return inputs.list_entries(config, glob=BeamFiles.glob, local=_local(config))


class ReadImages(beam.DoFn):
    """A group of up to ``images_per_step`` entries → ``(IMAGE, [(id, source, label,
    pixels), ...])`` for the images to explain; a finished image yields
    ``(FINISHED, record)`` instead, an unreadable one ``(READ_FAILED, failure)``."""

    def __init__(self, config: RunConfig, size: Optional[Tuple[int, int]],
                 resize: Optional[int], metric_names: Tuple[str, ...] = (),
                 length: Optional[int] = None):
        self.config, self.size, self.resize = config, size, resize
        self.metric_names = tuple(metric_names)
        self.length = length                 # token ids per text (--inputs .txt)

    def setup(self):
        from tf_smoothtaylor.cli import quiet as _quiet
        _quiet.import_tensorflow()
        from tf_smoothtaylor.cli import runs
        self.out = runs.OutputDir(self.config.output_dir, files=BeamFiles())

    def process(self, group: List[Entry]):
        todo = []
        for entry in group:
            if self.out.done(entry.id):
                record = self.out.result(entry.id)
                if all(name in method for method in record["methods"].values()
                       for name in self.metric_names):
                    yield FINISHED, record
                    continue                 # else: explained earlier, scores still missing
            todo.append(entry)
        images = []
        for kind, value in self._read(todo):
            if kind == IMAGE:
                images.append(value)
            else:
                yield kind, value
        if images:
            yield IMAGE, images

    def _read(self, todo: List[Entry]):
        if self.config.inputs:
            yield from self._rows(todo)
            return
        if todo and todo[0].position >= 0:
            yield from self._from_tfds(todo)
            return
        for entry in todo:
            try:
                encoded = BeamFiles.read(entry.source)
            except IOError as error:
                if FileSystems.exists(entry.source):
                    raise                    # the store's fault, not the image's: retry
                yield READ_FAILED, _failure(entry, error)
                continue
            yield from self._decoded(entry, encoded)

    def _rows(self, todo: List[Entry]):
        """Rows (and texts as token ids) of ``--inputs`` files, as stored."""
        from tf_smoothtaylor.cli.inputs import ROW
        from tf_smoothtaylor.data import arrays
        for entry in todo:
            path, row = entry.source.rsplit(ROW, 1)
            text = path.lower().endswith(".txt")
            rows = arrays.read(path, self.config.vocabulary if text else None,
                               self.length if text else None)
            yield IMAGE, (entry.id, entry.source, entry.label, rows.values[int(row)])

    def _decoded(self, entry: Entry, encoded: bytes):
        import tensorflow as tf
        from tf_smoothtaylor import data
        try:
            pixels = data.decode_and_crop(tf.constant(encoded), size=self.size,
                                          resize=self.resize).numpy()
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            yield READ_FAILED, _failure(entry, error)
            return
        yield IMAGE, (entry.id, entry.source, entry.label, pixels)

    def _from_tfds(self, todo: List[Entry]):
        import tensorflow_datasets as tfds
        wanted = {entry.position: entry for entry in todo}
        first, last = min(wanted), max(wanted)
        builder = tfds.builder("imagenet2012", data_dir=self.config.data_dir)
        records = builder.as_dataset(split=f"validation[{first}:{last + 1}]",
                                     shuffle_files=False,
                                     decoders={"image": tfds.decode.SkipDecoding()})
        for offset, example in enumerate(records):
            entry = wanted.get(first + offset)
            if entry is not None:
                yield from self._decoded(entry, example["image"].numpy())


def _failure(entry: Entry, error: Exception) -> dict:
    message = (getattr(error, "message", None) or str(error) or type(error).__name__)
    message = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", message.splitlines()[0]).strip()
    return {"id": entry.id, "source": entry.source, "error": message}


_JOBS = {}


def _prepared(mode: str, config: RunConfig):
    """The run's job (model and explainers, traced), once per worker process: a
    runner that calls ``DoFn.setup`` per bundle (Beam's DaskRunner: per task) reuses
    it instead of loading the model and tracing again."""
    from tf_smoothtaylor.cli import job as _job
    key = pickle.dumps((mode, config))
    if key not in _JOBS:
        _JOBS.clear()                              # one run's job at a time
        _JOBS[key] = _job.prepare(mode, config)
    return _JOBS[key]


class ExplainImages(beam.DoFn):
    """A batch of decoded images → ``(FINISHED, record)`` each (files written by the
    worker), or ``(READ_FAILED, failure)`` for an image at fault; the model and
    explainers are built once per DoFn instance (``setup``)."""

    def __init__(self, mode: str, config: RunConfig):
        self.mode, self.config = mode, config

    def setup(self):
        import io
        from tf_smoothtaylor.cli import quiet as _quiet
        _quiet.import_tensorflow()
        from tf_smoothtaylor.cli import runs
        from tf_smoothtaylor.engine import tracing as _tracing
        _tracing.install()
        self.job = _prepared(self.mode, self.config)
        self.out = runs.OutputDir(self.config.output_dir, files=BeamFiles())
        self.progress = runs.Progress(None, stream=io.StringIO())

    def process(self, batch):
        from tf_smoothtaylor.cli import runs
        done = [self.out.done(item[0]) for item in batch]   # one look at each record
        finished = [item for item, was in zip(batch, done) if was]
        if finished:                  # maps of an earlier run (or a retried bundle): score
            ids, sources, _, pixels = zip(*finished)
            runs.score_finished(self.job.spec, np.stack(pixels), list(sources), list(ids),
                                self.out, self.job.metrics, self.job.masks)
            for identifier in ids:
                yield FINISHED, self.out.result(identifier)
        batch = [item for item, was in zip(batch, done) if not was]
        if not batch:
            return
        # Only an image's own fault (its shape, non-finite values) is recorded as a
        # failure; anything else (storage, memory, a lost worker) raises, so that the
        # runner retries the bundle or a rerun completes it.
        from tf_smoothtaylor.engine.inputs import ImageError
        try:
            records = self._explain(batch)
        except ImageError:
            records = []
            for item in batch:              # isolate the image at fault
                try:
                    records += self._explain([item])
                except ImageError as error:
                    entry = Entry(item[0], item[1], item[2])
                    yield READ_FAILED, _failure(entry, error)
        for record in records:      # keys in file order, as records read back from disk
            yield FINISHED, json.loads(json.dumps(record, sort_keys=True))

    def _explain(self, batch) -> List[dict]:
        from tf_smoothtaylor.cli import runs
        ids, sources, labels, pixels = zip(*batch)
        job = self.job
        return runs.process_batch(job.spec, np.stack(pixels), np.asarray(labels),
                                  list(sources), list(ids), job.explainers, self.out,
                                  job.metrics, job.masks, self.progress)


class WriteTables(beam.DoFn):
    """index.csv, metrics.csv, summary.md and grid.png from the gathered records."""

    def __init__(self, config: RunConfig, metric_names: List[str],
                 class_names: Optional[List[str]] = None):
        self.config, self.metric_names, self.class_names = config, metric_names, class_names
        self.vocabulary = self.feature_names = None
        if config.inputs:                      # the figure's words and feature names
            from tf_smoothtaylor.data import arrays
            if config.vocabulary:
                self.vocabulary = arrays.vocabulary(config.vocabulary)
            tables = [path for path in config.inputs if path.lower().endswith(".csv")]
            self.feature_names = arrays.read(tables[0]).columns if tables else None

    def process(self, gathered):
        from tf_smoothtaylor.cli import runs
        _, tagged = gathered
        records, failures = [], []
        for kind, value in tagged:
            (records if kind == FINISHED else failures).append(value)
        records.sort(key=lambda record: record["id"])
        failures.sort(key=lambda failure: failure["id"])
        out = runs.OutputDir(self.config.output_dir, files=BeamFiles())
        runs.write_tables(out, records, self.metric_names, failures=failures)
        runs.write_grid(out, records, self.config.grid_images or None,
                        self.config.figure_format, self.class_names, self.vocabulary,
                        self.feature_names)
        yield len(records), len(failures)


def _groups(entries: List[Entry], size: int) -> List[List[Entry]]:
    """The steps: up to ``size`` entries each, in the run's order (tfds examples by
    position: one read of a split slice per group). Made here, not by
    ``BatchElements``, whose last batch of a bundle comes from ``finish_bundle``,
    which Beam's DaskRunner drops."""
    ordered = entries
    if entries and entries[0].position >= 0:
        ordered = sorted(entries, key=lambda entry: entry.position)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def build(pipeline, mode: str, config: RunConfig, entries: List[Entry], *,
          size: Optional[Tuple[int, int]], resize: Optional[int], metric_names: List[str],
          class_names: Optional[List[str]] = None, length: Optional[int] = None):
    """Adds the run's transforms to ``pipeline``; returns the (records, failures)
    counts' PCollection."""
    read = (pipeline
            | "List" >> beam.Create(_groups(entries, config.images_per_step))
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadImages(config, size, resize, tuple(metric_names),
                                              length)))
    explained = (read
                 | "Images" >> beam.Filter(lambda item: item[0] == IMAGE)
                 | "Pixels" >> beam.Map(lambda item: item[1])
                 | "Explain" >> beam.ParDo(ExplainImages(mode, config)))
    done = read | "Done" >> beam.Filter(lambda item: item[0] != IMAGE)   # resumed, unread
    return ((explained, done)
            | "Join" >> beam.Flatten()
            # One group, the run's: a GroupByKey, which every runner implements alike
            # (a CombineFn's accumulators reach extract_output in another shape on Dask).
            | "Key" >> beam.Map(lambda item: (None, item))
            | "Gather" >> beam.GroupByKey()
            | "Tables" >> beam.ParDo(WriteTables(config, metric_names, class_names)))


def run(mode: str, config: RunConfig) -> None:
    """Runs ``mode`` (explain, evaluate or adapt) on ``config.runner`` and prints
    the summary; raises ValueError naming the images that could not be processed."""
    from tf_smoothtaylor.cli import job as _job
    from tf_smoothtaylor.cli import quiet as _quiet
    from tf_smoothtaylor.methods import BY_NAME
    from tf_smoothtaylor.methods import options as method_options
    logging.getLogger("apache_beam").setLevel(logging.ERROR if config.verbosity < 0
                                              else logging.INFO)
    # Workers may start in other folders: every local path the run names, absolute.
    config = config.with_absolute_paths(
        option.flag or setting for cls in BY_NAME.values()
        for setting, (option, _) in method_options.declared(cls).items() if option.files)
    options = pipeline_options(config)
    try:
        pipeline = beam.Pipeline(options=options)
    except ValueError as error:
        raise ValueError(f"--runner {config.runner}: {str(error).splitlines()[0]}") from None
    entries = list_entries(config)
    if not entries:
        raise ValueError("no image to process")
    config, job, out = _job.start(mode, config, entries, files=BeamFiles(),
                                  local=_local(config))
    try:
        resumed = out.results_count()
        size, resize, length = None, None, None
        if config.inputs:                  # texts tokenised here first: errors in one line
            shape = tuple(job.spec.model.inputs[0].shape[1:])
            length = shape[0] if len(shape) == 1 else None
            for _ in inputs.array_batches(entries, len(entries), vocabulary=config.vocabulary,
                                          length=length):
                pass
        else:
            size, resize = inputs.input_size(config, job.spec)
        with _quiet.stderr_to_log(config.verbosity < 0, "Beam"):
            build(pipeline, mode, config, entries, size=size, resize=resize,
                  metric_names=job.metric_names, class_names=_job.own_class_names(job.spec),
                  length=length)
            result = pipeline.run()
            try:
                result.wait_until_finish()
            finally:
                client = getattr(result, "client", None)   # DaskRunner's, left open by Beam
                if client is not None:
                    client.close()
    finally:
        out.close()
    finished = out.finished_ids()
    print(f"{len(finished)} images -> {config.output_dir} ({len(finished) - resumed} "
          f"computed, {resumed} resumed; runner: {config.runner})")
    summary = out.read("summary.md").decode() if out.files.exists(
        out.files.join(out.path, "summary.md")) else ""
    if summary:
        print(summary)
    _job.report_failures(inputs.unreadable(entries, finished, config, job.spec),
                             len(entries), out)
