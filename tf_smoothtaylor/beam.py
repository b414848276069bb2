"""Explain, evaluate and adapt over many images as an Apache Beam pipeline.

Attribution over a dataset is independent per image, so past one machine the
command line runs as a Beam pipeline (``tf-smoothtaylor MODE ... --runner=NAME``;
the ``[beam]`` extra): locally on the DirectRunner or Prism, at scale on
Dataflow, Flink or Spark. The pipeline writes exactly the files of an
in-process run (``runs``), through Beam's file systems so ``gs://``-style output
paths work:

1. the driver lists the images (``inputs.list_entries``: ``--images`` patterns,
   ``--image_folder``, ``--manual_dir`` for tfds ``imagenet2012`` validation, or
   the demo) with the ids an in-process run gives them, and writes ``run.json``
   with that list;
2. a reader decodes each image (skipping images whose ``results/<id>.json``
   exists: runs resume; reporting unreadable images instead of failing);
3. ``BatchElements`` groups up to ``--images_per_step`` images; each worker loads
   the model and builds the explainers once (``DoFn.setup``) and writes every
   image's maps, PNGs and record;
4. a combiner gathers all records (new and resumed) and writes ``index.csv``,
   ``metrics.csv``, ``summary.md`` (mean ± standard error) and ``grid.png``.

Random draws are keyed by image id, so the maps equal those of an in-process
run and of the Python API with the same keys, whatever the workers and batches.
"""

import json
import logging
import os
import re
import uuid
from typing import List, Optional, Tuple

logging.getLogger("apache_beam").setLevel(logging.WARNING)   # import-time INFO chatter
_ROOT_LEVEL = logging.getLogger().level
logging.getLogger().setLevel(logging.ERROR)   # optional cloud clients' warnings at import
try:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError as error:          # pragma: no cover - exercised without the extra
    raise ImportError("tf_smoothtaylor.beam needs Apache Beam: pip install "
                      "'tf-smoothtaylor[beam]'") from error
finally:
    logging.getLogger().setLevel(_ROOT_LEVEL)

import numpy as np

from tf_smoothtaylor import inputs
from tf_smoothtaylor.config import RunConfig
from tf_smoothtaylor.inputs import Entry

READ_FAILED = "failed"
FINISHED = "finished"


class BeamFiles:
    """Beam's file systems (local paths, ``gs://``, ``s3://``, ...) with the
    interface of ``runs.LocalFiles``; writes go to a temporary name, then a rename."""

    join = staticmethod(FileSystems.join)

    @staticmethod
    def makedirs(path: str) -> None:
        if not FileSystems.exists(path):
            try:
                FileSystems.mkdirs(path)
            except IOError:
                if not FileSystems.exists(path):    # another worker made it meanwhile
                    raise

    @classmethod
    def check_writable(cls, path: str) -> None:
        probe = FileSystems.join(path, f".probe-{uuid.uuid4().hex}")
        cls.write(probe, b"")
        FileSystems.delete([probe])

    @staticmethod
    def write(path: str, data: bytes) -> None:
        directory, name = os.path.split(path) if "://" not in path else path.rsplit("/", 1)
        temporary = FileSystems.join(directory, f".tmp-{uuid.uuid4().hex}-{name}")
        with FileSystems.create(temporary) as handle:
            handle.write(data)
        FileSystems.rename([temporary], [path])

    @staticmethod
    def read(path: str) -> bytes:
        with FileSystems.open(path) as handle:
            return handle.read()

    exists = staticmethod(FileSystems.exists)

    @staticmethod
    def glob(pattern: str) -> List[str]:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)

    @staticmethod
    def remove(path: str) -> None:
        FileSystems.delete([path])


def _local(config: RunConfig) -> bool:
    """Whether the inputs are on this machine's file system (else Beam's: gs://...)."""
    return not any("://" in pattern for pattern in config.images)


def list_entries(config: RunConfig) -> List[Entry]:
    """Every image of the run, with the ids an in-process run gives them
    (``inputs.list_entries``; patterns expanded on Beam's file systems)."""
    return inputs.list_entries(config, glob=BeamFiles.glob, local=_local(config))


class ReadImages(beam.DoFn):
    """Entry (or a group of tfds entries) → ``(id, source, label, pixels)``; a
    finished image yields its record to ``FINISHED`` instead, an unreadable one a
    failure to ``READ_FAILED``."""

    def __init__(self, config: RunConfig, size: Tuple[int, int], resize: Optional[int],
                 metric_names: Tuple[str, ...] = ()):
        self.config, self.size, self.resize = config, size, resize
        self.metric_names = tuple(metric_names)

    def setup(self):
        from tf_smoothtaylor import _quiet
        _quiet.import_tensorflow()
        from tf_smoothtaylor import runs
        self.out = runs.OutputDir(self.config.output_dir, files=BeamFiles())

    def process(self, group: List[Entry]):
        todo = []
        for entry in group:
            if self.out.done(entry.id):
                record = self.out.result(entry.id)
                if all(name in method for method in record["methods"].values()
                       for name in self.metric_names):
                    yield beam.pvalue.TaggedOutput(FINISHED, record)
                    continue                 # else: explained earlier, scores still missing
            todo.append(entry)
        if not todo:
            return
        if todo[0].position >= 0:
            yield from self._from_tfds(todo)
            return
        for entry in todo:
            try:
                encoded = BeamFiles.read(entry.source)
            except IOError as error:
                yield beam.pvalue.TaggedOutput(READ_FAILED, _failure(entry, error))
                continue
            yield from self._decoded(entry, encoded)

    def _decoded(self, entry: Entry, encoded: bytes):
        import tensorflow as tf
        from tf_smoothtaylor import data
        try:
            pixels = data.decode_and_crop(tf.constant(encoded), size=self.size,
                                          resize=self.resize).numpy()
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            yield beam.pvalue.TaggedOutput(READ_FAILED, _failure(entry, error))
            return
        yield entry.id, entry.source, entry.label, pixels

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


class ExplainImages(beam.DoFn):
    """A batch of decoded images → their records (files written by the worker);
    the model and explainers are built once per worker."""

    def __init__(self, mode: str, config: RunConfig):
        self.mode, self.config = mode, config

    def setup(self):
        import io
        from tf_smoothtaylor import _quiet
        _quiet.import_tensorflow()
        from tf_smoothtaylor import _tracing, commands, runs
        _tracing.install()
        self.job = commands.prepare(self.mode, self.config)
        self.out = runs.OutputDir(self.config.output_dir, files=BeamFiles())
        self.progress = runs.Progress(None, stream=io.StringIO())

    def process(self, batch):
        from tf_smoothtaylor import runs
        finished = [item for item in batch if self.out.done(item[0])]
        if finished:                  # maps of an earlier run (or a retried bundle): score
            ids, sources, _, pixels = zip(*finished)
            runs.score_finished(self.job.spec, np.stack(pixels), list(sources), list(ids),
                                self.out, self.job.metrics, self.job.masks)
            for identifier in ids:
                yield self.out.result(identifier)
        batch = [item for item in batch if not self.out.done(item[0])]
        if not batch:
            return
        try:
            records = self._explain(batch)
        except Exception:  # pylint: disable=broad-except
            records = []
            for item in batch:              # isolate the image that fails
                try:
                    records += self._explain([item])
                except Exception as error:  # pylint: disable=broad-except
                    entry = Entry(item[0], item[1], item[2])
                    yield beam.pvalue.TaggedOutput(READ_FAILED, _failure(entry, error))
        for record in records:      # keys in file order, as records read back from disk
            yield json.loads(json.dumps(record, sort_keys=True))

    def _explain(self, batch) -> List[dict]:
        from tf_smoothtaylor import runs
        ids, sources, labels, pixels = zip(*batch)
        job = self.job
        return runs.process_batch(job.spec, np.stack(pixels), np.asarray(labels),
                                  list(sources), list(ids), job.explainers, self.out,
                                  job.metrics, job.masks, self.progress)


class GatherRecords(beam.CombineFn):
    """All records and failures of the run, sorted by image id."""

    def create_accumulator(self):
        return [], []

    def add_input(self, accumulator, element):
        kind, value = element
        accumulator[0 if kind == FINISHED else 1].append(value)
        return accumulator

    def merge_accumulators(self, accumulators):
        records, failures = [], []
        for more_records, more_failures in accumulators:
            records.extend(more_records)
            failures.extend(more_failures)
        return records, failures

    def extract_output(self, accumulator):
        records, failures = accumulator
        return (sorted(records, key=lambda r: r["id"]),
                sorted(failures, key=lambda f: f["id"]))


class WriteTables(beam.DoFn):
    """index.csv, metrics.csv, summary.md and grid.png from the gathered records."""

    def __init__(self, output_dir: str, metric_names: List[str]):
        self.output_dir, self.metric_names = output_dir, metric_names

    def process(self, gathered):
        from tf_smoothtaylor import runs
        records, failures = gathered
        out = runs.OutputDir(self.output_dir, files=BeamFiles())
        runs.write_tables(out, records, self.metric_names, failures=failures)
        runs.write_grid(out, records)
        yield len(records), len(failures)


def _groups(entries: List[Entry], size: int) -> List[List[Entry]]:
    """Files one per element; tfds examples in groups of nearby positions (one
    read of a split slice per group)."""
    if not entries or entries[0].position < 0:
        return [[entry] for entry in entries]
    ordered = sorted(entries, key=lambda entry: entry.position)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def build(pipeline, mode: str, config: RunConfig, entries: List[Entry], *,
          size: Tuple[int, int], resize: Optional[int], metric_names: List[str]):
    """Adds the run's transforms to ``pipeline``; returns the (records, failures)
    counts' PCollection."""
    read = (pipeline
            | "List" >> beam.Create(_groups(entries, config.images_per_step))
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadImages(config, size, resize, tuple(metric_names)))
            .with_outputs(
                READ_FAILED, FINISHED, main="images"))
    explained = (read.images
                 | "Batch" >> beam.BatchElements(min_batch_size=1,
                                                 max_batch_size=config.images_per_step)
                 | "Explain" >> beam.ParDo(ExplainImages(mode, config)).with_outputs(
                     READ_FAILED, main="records"))
    tagged = [explained.records | "New" >> beam.Map(lambda r: (FINISHED, r)),
              read[FINISHED] | "Resumed" >> beam.Map(lambda r: (FINISHED, r)),
              read[READ_FAILED] | "Unreadable" >> beam.Map(lambda f: (READ_FAILED, f)),
              explained[READ_FAILED] | "Failed" >> beam.Map(lambda f: (READ_FAILED, f))]
    return (tagged
            | "Join" >> beam.Flatten()
            | "Gather" >> beam.CombineGlobally(GatherRecords())
            | "Tables" >> beam.ParDo(WriteTables(config.output_dir, metric_names)))


def pipeline_options(config: RunConfig) -> PipelineOptions:
    """Beam options from ``--runner`` and the pass-through arguments; options Beam
    does not know are an error (a misspelt flag must not vanish)."""
    arguments = list(config.beam_args)
    if not any(a.startswith("--default_sdk_harness_log_level") for a in arguments):
        arguments.append("--default_sdk_harness_log_level=WARNING")   # workers: no INFO chatter
    options = PipelineOptions(arguments, runner=config.runner)
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)          # we report unknown options ourselves
    try:
        known = options.get_all_options(retain_unknown_options=False)
    finally:
        beam_logger.setLevel(level)
    every = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(every) - set(known))
    if unknown:
        raise ValueError("unknown option(s) for tf-smoothtaylor or Beam: "
                         + ", ".join(f"--{name}" for name in unknown))
    return options


def run(mode: str, config: RunConfig) -> None:
    """Runs ``mode`` (explain, evaluate or adapt) on ``config.runner`` and prints
    the summary; raises ValueError naming the images that could not be processed."""
    from tf_smoothtaylor import _quiet, commands
    logging.getLogger("apache_beam").setLevel(logging.ERROR if config.verbosity < 0
                                              else logging.INFO)
    options = pipeline_options(config)
    try:
        pipeline = beam.Pipeline(options=options)
    except ValueError as error:
        raise ValueError(f"--runner {config.runner}: {str(error).splitlines()[0]}") from None
    entries = list_entries(config)
    if not entries:
        raise ValueError("no image to process")
    config, job, out = commands.start(mode, config, entries, files=BeamFiles(),
                                      local=_local(config))
    resumed = out.results_count()
    size, resize = inputs.input_size(config, job.spec)
    with _quiet.stderr_to_log(config.verbosity < 0, "Beam"):
        with pipeline:
            build(pipeline, mode, config, entries, size=size, resize=resize,
                  metric_names=job.metric_names)
    records = out.results()
    print(f"{len(records)} images -> {config.output_dir} ({len(records) - resumed} computed, "
          f"{resumed} resumed; runner: {config.runner})")
    summary = out.read("summary.md").decode() if out.files.exists(
        out.files.join(out.path, "summary.md")) else ""
    if summary:
        print(summary)
    commands.report_failures(inputs.unreadable(entries, records, config, job.spec),
                             len(entries), out)
