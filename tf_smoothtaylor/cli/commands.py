"""What the command-line modes do in this process, in library calls (flags:
``cli.main``; what a run shares with Beam's driver and workers: ``cli.job``).

Every function takes the run's :class:`~tf_smoothtaylor.cli.config.RunConfig`
(``config``), built once from the flags by the command layer.
"""

from typing import List, Optional

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.cli import inputs, runs
from tf_smoothtaylor.cli.config import RunConfig
from tf_smoothtaylor.cli.explainers import method_options, metric_options
from tf_smoothtaylor.cli.job import (Job, check_inputs, own_class_names, prepare,
                                     report_failures, start)
from tf_smoothtaylor.cli.loading import load_spec, reference_inputs
from tf_smoothtaylor.integrations import convergence
from tf_smoothtaylor.methods import BY_NAME, registry
from tf_smoothtaylor.viz import plot

# The run's steps, also under the names they had here before ``job`` and ``loading``.
__all__ = ["Job", "export", "load_spec", "method_options", "metric_options", "prepare",
           "reference_inputs", "report", "report_failures", "run", "start",
           "write_convergence"]


def export(config, spec) -> None:
    """The export mode: a SavedModel of the first --method."""
    from tf_smoothtaylor.integrations import serving
    method = config.method[0]
    serving.export(spec, config.output_dir, method=method, crop=config.model != "demo",
                   top_k=config.top_k, max_batch=config.max_batch,
                   include_attributions=config.include_attributions,
                   include_error=config.include_error,
                   **method_options(config, method, spec))
    print(f"SavedModel ({method}) -> {config.output_dir}")


def run(mode: str, config: RunConfig) -> None:
    """Runs one mode in this process; prints where the results are (the command line
    sends a run with ``--runner`` to ``beam.run`` instead)."""
    spec = load_spec(config)
    if mode == "export":
        export(config, spec)
        return
    check_inputs(mode, config, spec)
    entries = inputs.list_entries(config)
    config, job, out = start(mode, config, entries, spec=spec)
    try:
        records = runs.process(spec, inputs.input_batches(config, spec, entries),
                               job.explainers, out, metrics=job.metrics, masks=job.masks,
                               total=len(entries),
                               ids={entry.source: entry.id for entry in entries})
        failures = inputs.unreadable(entries, [record["id"] for record in records], config,
                                     spec)
        report(out, records, job.metric_names, failures, config, own_class_names(spec))
        if config.convergence and mode == "evaluate" and records:
            print(f"convergence: {write_convergence(out, spec, config, records, entries)}")
    finally:
        out.close()
    report_failures(failures, len(entries), out)


CONVERGENCE_IMAGES = 3


def write_convergence(out: runs.OutputDir, spec, config: RunConfig, records: List[dict],
                      entries: Optional[List[inputs.Entry]] = None) -> str:
    """convergence.png: for the run's first images and each Monte Carlo method, the
    heatmap's relative error and AUTVC against the number of draws (doubling from 8
    to the run's own number, or to the most an image used with 'auto')."""
    by_id = {record["id"]: record for record in records}
    entries = entries if entries is not None else inputs.list_entries(config)
    ids = {entry.source: entry.id for entry in entries}
    pixels, chosen = [], []
    for batch_pixels, _, names in inputs.input_batches(config, spec, entries):
        for image, name in zip(np.asarray(batch_pixels), np.asarray(names)):
            identifier = ids[name.decode() if isinstance(name, bytes) else str(name)]
            if identifier in by_id:
                pixels.append(image)
                chosen.append(by_id[identifier])
        if len(chosen) >= CONVERGENCE_IMAGES:
            break
    chosen, pixels = chosen[:CONVERGENCE_IMAGES], np.stack(pixels[:CONVERGENCE_IMAGES])
    x = tf.convert_to_tensor(spec.preprocess(pixels), tf.float32)
    targets = np.array([record["target"] for record in chosen], np.int32)
    keys = np.array([runs.id_key(record["id"]) for record in chosen], np.int64)
    tables, target_errors = {}, []
    for name in dict.fromkeys(config.method):
        explainer = BY_NAME[name](spec, **method_options(config, name, spec))
        if not explainer.independent_points:
            continue
        if explainer.points_per_image is None:            # "auto": its target error
            target_errors.append(explainer.scheme.target_error)
        largest = getattr(explainer, explainer.draw_setting)
        if largest == "auto":
            largest = max(int(record["methods"][name]["num_points"]) for record in chosen)
        if largest < 2:
            continue
        tables[name] = convergence.curves(
            explainer, x, targets, counts=convergence.draw_counts(largest, min(8, largest)),
            keys=keys, autvc_options=metric_options(config, spec)["autvc"])
    if not tables:
        raise ValueError("--convergence needs a Monte Carlo method with at least 2 draws "
                         f"({registry.monte_carlo(flags=True)})")
    name = f"convergence.{config.figure_format}"
    figure = plot.convergence(tables, labels=[record["id"] for record in chosen],
                              target=min(target_errors) if target_errors else None)
    out.write(name, plot.to_bytes(figure, config.figure_format))
    return out.files.join(out.path, name)


def report(out: runs.OutputDir, records: List[dict], metric_names: List[str],
           failures: Optional[List[dict]], config: RunConfig,
           class_names: Optional[List[str]] = None) -> None:
    """Writes the run's tables and grid, and prints where they are."""
    summary = runs.write_tables(out, records, metric_names, failures=failures)
    from tf_smoothtaylor.data import arrays
    vocabulary = arrays.vocabulary(config.vocabulary) if config.vocabulary else None
    csv_files = [path for path in config.inputs if path.lower().endswith(".csv")]
    feature_names = arrays.read(csv_files[0]).columns if csv_files else None
    grid, shown = runs.write_grid(out, records, config.grid_images or None,
                                  config.figure_format, class_names, vocabulary, feature_names)
    print(f"{len(records)} images -> {out.path} (grid: {grid}, {shown} of {len(records)} "
          "images; --grid_images to change)")
    if summary:
        print(summary)
