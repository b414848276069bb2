"""What the command-line modes do, in library calls (see ``cli.py`` for flags).

Every function takes the run's :class:`~tf_smoothtaylor.config.RunConfig`
(``config``), built once from the flags by the command layer.
"""

import dataclasses
import os
import sys
import zipfile
from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor import convergence, data, demo, distribute, inputs, models, runs
from tf_smoothtaylor.data import paths as _paths
from tf_smoothtaylor.viz import plot
from tf_smoothtaylor.config import RunConfig
from tf_smoothtaylor.adaptive import AdaptiveNoising
from tf_smoothtaylor.methods import BY_NAME, options
from tf_smoothtaylor.methods.base import MONTE_CARLO_NAMES
from tf_smoothtaylor.metrics import settings as metrics_settings

DEMO_METRIC_DEFAULTS = {"window": 8, "num_regions": 16, "num_copies": 20, "min_size": 10}


def load_spec(config) -> models.ModelSpec:
    """The model of ``--model`` as a ModelSpec."""
    if config.model == "demo":
        return demo.load()
    if not _paths.exists(config.model):
        try:
            name = models.registry_name(config.model)
        except ValueError:
            name = None
        if name is not None:
            weights = None if config.weights in ("none", "None", "") else config.weights
            if weights not in (None, "imagenet") and not _paths.isfile(weights):
                raise ValueError(f"--weights file not found: {weights}")
            try:
                if weights in (None, "imagenet"):
                    return models.load(name, weights=weights, input_size=config.size)
                with _paths.local_copy(weights) as local:
                    return models.load(name, weights=local, input_size=config.size)
            except ConnectionError:
                raise ValueError(
                    f"could not download the ImageNet weights of {name}; without network "
                    "access copy the file into ~/.keras/models/, or pass --weights PATH "
                    "(a weights file) or --weights none (random weights)") from None
        if config.model.endswith((".keras", ".h5")) or os.sep in config.model:
            raise ValueError(f"--model file not found: {config.model}")
    path = config.model
    if _paths.isdir(path):
        layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
        signature = layer.call_endpoint_fn.structured_input_signature
        spec = tf.nest.flatten(signature)[0]
        model_input = keras.Input(tuple(spec.shape[1:]))
        outputs = layer(model_input)
        if isinstance(outputs, dict):
            outputs = list(outputs.values())[0]
        model = keras.Model(model_input, outputs)
    elif _paths.isfile(path) and path.endswith((".keras", ".h5")):
        try:
            with _paths.local_copy(path) as local:
                if path.endswith(".keras") and not zipfile.is_zipfile(local):
                    raise ValueError(f"--model {path} is not a Keras file (a .keras file is a "
                                     "zip archive written by model.save)")
                model = keras.models.load_model(local, compile=False,
                                                safe_mode=not config.unsafe_load)
        except ValueError as error:
            if "safe_mode" in str(error) or "unsafe" in str(error).lower():
                raise ValueError(f"{path} contains Python code (e.g. a Lambda layer); pass "
                                 "--unsafe_load only if you trust it.") from None
            raise
    else:
        raise ValueError(f"--model must be 'demo', a registry name ({', '.join(models.FAMILIES)})"
                         f", a .keras file or a SavedModel directory; got {path!r}")
    if len(model.inputs) != 1:
        names = [tensor.name for tensor in model.inputs]
        raise ValueError(f"--model {path} has {len(names)} inputs {names}; the command line "
                         "explains single-input models. For several inputs use the Python "
                         "API: tst.models.select_input (README, Models with several inputs)")
    if config.preprocess == "identity":
        return models.wrap(model)
    preprocess, deprocess = models.pixel_transforms(config.preprocess)
    return models.wrap(model, preprocess=preprocess, deprocess=deprocess)


def reference_inputs(patterns, config, spec) -> np.ndarray:
    """Model inputs of the --references files (expected_gradients' baselines)."""
    size, resize = inputs.input_size(config, spec)
    batches = data.from_files(inputs.image_files(patterns), size=size, resize=resize,
                              batch_size=64)
    return np.concatenate([np.asarray(spec.preprocess(pixels), np.float32)
                           for pixels, _, _ in batches])


def method_options(config, name: str, spec=None) -> dict:
    """Keyword settings of method ``name``: the method flags that were given (every
    other setting keeps the method's Python default; ``methods.options``), with
    --references files read into model inputs."""
    cls = BY_NAME[name]
    given = {flag: getattr(config, flag, None)
             for flag in options.flags_of(cls)}
    for setting, (option, default) in options.declared(cls).items():
        flag = option.flag or setting
        if default is options.REQUIRED and option.flag is not None and not given.get(flag):
            raise ValueError(f"{name} needs --{flag}: {option.help}")
    return options.keyword_arguments(
        cls, given, convert=lambda setting, value: reference_inputs(value, config, spec))


def method_settings(config, names) -> dict:
    """What run.json records of the methods: ``"<method>.<setting>"`` -> the given
    value or the Python default, for every setting with a flag (files as given)."""
    recorded = {}
    for name in names:
        cls = BY_NAME[name]
        for setting, (option, default) in options.declared(cls).items():
            if option.flag is None:
                continue
            value = getattr(config, option.flag or setting, None)
            if value in (None, ()):
                value = None if default is options.REQUIRED else default
            if option.files and value:
                value = [_paths.absolute(v) if _paths.exists(v) else v for v in value]
            recorded[f"{name}.{setting}"] = list(value) if isinstance(value, tuple) else value
    return recorded


def strategy_of(config):
    """The tf.distribute strategy named by --strategy (None: the default one)."""
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return None


def build_explainers(config, spec, method_names) -> Dict[str, Callable]:
    """method name -> ``(inputs, targets, keys) -> (attributions, extra values)``.

    With a distribution strategy each step's images are split across replicas
    (top-1 classes, which is what the command line explains).
    """
    strategy = strategy_of(config)
    explainers = {}
    for name in method_names:
        explainer = BY_NAME[name](spec, **method_options(config, name, spec))
        if strategy is None and explainer.independent_points:
            explain = lambda x, t, k, e=explainer: _with_precision(  # noqa: E731
                e(x, t, keys=k, return_error=True))
        elif strategy is None:
            explain = lambda x, t, k, e=explainer: (e(x, t, keys=k), {})  # noqa: E731
        else:
            explain = lambda x, t, k, e=explainer: (distribute.explain_dataset(  # noqa: E731
                e, tf.data.Dataset.from_tensors((x, k)), strategy=strategy,
                keyed=True)["attributions"], {})
        # Lets a run split long steps and report progress within them (not when the
        # number of points is chosen per image: then a step is one call).
        scheme = explainer.scheme
        explain.points_per_image = (None if scheme.target_error is not None
                                    else scheme.num_points)
        explain.batch_size = explainer.batch_size
        explainers[name] = explain
    return explainers


def _with_precision(estimate):
    """Attributions, and per image the Monte Carlo precision a record keeps."""
    count = int(estimate.attributions.shape[0])
    return estimate.attributions, {"relative_error": estimate.relative_error.numpy(),
                                   "num_points": np.full(count, estimate.num_points)}


def metric_options(config, spec) -> dict:
    """AUPC/AUTVC settings: the flags, else the demo's, else the paper's fitted to the
    model's input size (the paper's own at 224 px and above)."""
    if config.model == "demo":
        defaults = DEMO_METRIC_DEFAULTS
    else:
        fitted = metrics_settings.fitted_settings(*spec.input_size)
        defaults = {**fitted["aupc"], **fitted["autvc"]}
    value = lambda name: getattr(config, name) or defaults[name]  # noqa: E731
    return {"aupc": dict(window=value("window"), num_regions=value("num_regions"),
                         num_copies=value("num_copies"), seed=_seed(config),
                         batch_size=_batch_size(config)),
            "autvc": dict(min_size=value("min_size"))}


def _seed(config) -> int:
    """--seed, or every method's default 0."""
    return 0 if config.seed is None else config.seed


def _batch_size(config) -> int:
    """--batch_size, or 64 (the gradient methods' default) for metrics and adapt."""
    return 64 if config.batch_size is None else config.batch_size


def _settings(mode, config, metric_names, metric_settings) -> dict:
    keys = ["model", "weights", "preprocess", "images", "image_folder", "manual_dir", "limit",
            "size", "method", "objective", "max_iterations", "strategy"]
    settings = {key: getattr(config, key) for key in keys}
    methods = ["smooth_taylor"] if mode == "adapt" else list(dict.fromkeys(config.method))
    settings.update(method_settings(config, methods))
    # One file (or folder) reached by two spellings is one input: compare absolute paths.
    settings["images"] = [_paths.absolute(path) for path in config.images]
    for key in ("image_folder", "manual_dir"):
        if settings[key]:
            settings[key] = _paths.absolute(settings[key])
    if _paths.exists(config.model):
        settings["model"] = _paths.absolute(config.model)
    settings.update(mode=mode, metrics=list(metric_names), metric_options=metric_settings)
    return settings


def export(config, spec) -> None:
    """The export mode: a SavedModel of the first --method."""
    from tf_smoothtaylor import serving
    method = config.method[0]
    serving.export(spec, config.output_dir, method=method, crop=config.model != "demo",
                   top_k=config.top_k, max_batch=config.max_batch,
                   include_attributions=config.include_attributions,
                   include_error=config.include_error,
                   **method_options(config, method, spec))
    print(f"SavedModel ({method}) -> {config.output_dir}")


@dataclasses.dataclass
class Job:
    """What a mode needs per batch of images: built once per process (the
    command line) or once per Beam worker."""

    spec: models.ModelSpec
    explainers: Dict[str, Callable]
    metric_names: List[str]
    metrics: Dict[str, Callable]
    masks: Optional[Callable]
    settings: dict


def default_metrics(config: RunConfig, entries: List[inputs.Entry]) -> Tuple[str, ...]:
    """evaluate's metrics when --metric is not given: AUPC and AUTVC, and relevance
    mass when every image has a ground-truth mask (the bundled demo's samples)."""
    masked = config.model == "demo" and not (config.image_folder or config.manual_dir) and all(
        demo.mask_for(entry.source) is not None for entry in entries)
    return ("aupc", "autvc") + (("relevance_mass",) if masked and entries else ())


def prepare(mode: str, config: RunConfig, spec: Optional[models.ModelSpec] = None) -> Job:
    """The model, explainers and metric functions of ``mode`` (not ``export``); the
    driver sets ``config.metric`` (``default_metrics``) before workers call it."""
    spec = spec or load_spec(config)
    masks = demo.mask_for if config.model == "demo" and not (
        config.image_folder or config.manual_dir) else None
    metric_settings = metric_options(config, spec)
    if mode == "explain":
        metric_names = []
    else:
        metric_names = list(dict.fromkeys(config.metric or default_metrics(
            config, inputs.list_entries(config))))
    if mode == "adapt":
        if config.num_roots == "auto":
            raise ValueError("adapt needs a fixed --num_roots (each σ tried is scored on "
                             "the same roots); got --num_roots auto")
        roots = {} if config.num_roots is None else {"num_roots": config.num_roots}
        search = AdaptiveNoising(spec, objective=config.objective, **roots,
                                 max_iterations=config.max_iterations, seed=_seed(config),
                                 batch_size=_batch_size(config),
                                 objective_options=metric_settings[config.objective])
        objective = config.objective

        def adapt(x, targets, keys):
            # The objective's column (hence summary.md) gets the score of the chosen σ
            # on fresh roots; the search's best, biased low, stays as <objective>_best.
            result = search(x, targets, keys=keys)
            return result.attributions, {"noise_scale": result.noise_scale.numpy(),
                                         f"{objective}_best": result.objective.numpy(),
                                         objective: result.rescored.numpy()}

        explainers = {f"adaptive_{objective}": adapt}
    else:
        explainers = build_explainers(config, spec, list(dict.fromkeys(config.method)))
    return Job(spec=spec, explainers=explainers, metric_names=metric_names,
               metrics=runs.metric_functions(spec, metric_names, metric_settings),
               masks=masks, settings=_settings(mode, config, metric_names, metric_settings))


def run(mode: str, config: RunConfig) -> None:
    """Runs one mode in this process; prints where the results are (the command line
    sends a run with ``--runner`` to ``beam.run`` instead)."""
    spec = load_spec(config)
    if mode == "export":
        export(config, spec)
        return
    entries = inputs.list_entries(config)
    config, job, out = start(mode, config, entries, spec=spec)
    records = runs.process(spec, inputs.input_batches(config, spec, entries), job.explainers, out,
                           metrics=job.metrics, masks=job.masks, total=len(entries),
                           ids={entry.source: entry.id for entry in entries})
    failures = inputs.unreadable(entries, [record["id"] for record in records], config, spec)
    report(out, records, job.metric_names, failures, config, own_class_names(spec))
    if config.convergence and mode == "evaluate" and records:
        print(f"convergence: {write_convergence(out, spec, config, records, entries)}")
    report_failures(failures, len(entries), out)


def own_class_names(spec) -> Optional[List[str]]:
    """The class names a model was given with (the demo's; a ModelSpec's own), not
    ImageNet's guessed for any model."""
    names = getattr(spec, "_class_names", None)
    return list(names) if names else None


def start(mode: str, config: RunConfig, entries: List[inputs.Entry], *,
          spec: Optional[models.ModelSpec] = None, files=None,
          local: bool = True) -> Tuple[RunConfig, "Job", runs.OutputDir]:
    """What a run does before its images, in process or on Beam's driver: the
    metrics resolved into the config (so Beam's workers get the same), the job, the
    masks checked, and the output directory opened with the run's inputs."""
    config = config.replace(metric=config.metric or default_metrics(config, entries))
    job = prepare(mode, config, spec)
    check_masks(job, entries)
    out = runs.OutputDir(config.output_dir, job.settings, overwrite=config.overwrite,
                         files=files, inputs=inputs.recorded(entries, local=local))
    return config, job, out


def check_masks(job: "Job", entries: List[inputs.Entry]) -> None:
    """Refuses relevance mass unless every image has a ground-truth mask."""
    if "relevance_mass" not in job.metric_names:
        return
    missing = [entry.source for entry in entries
               if job.masks is None or job.masks(entry.source) is None]
    if missing:
        raise ValueError(f"--metric relevance_mass needs a ground-truth mask for every image "
                         f"(the bundled demo's samples have them); {len(missing)} of "
                         f"{len(entries)} images have none, e.g. {missing[0]}")


def report_failures(failures: List[dict], total: int, out: runs.OutputDir) -> None:
    """One line on stderr when images could not be read; an error (exit code 2) when
    none could."""
    if not failures:
        return
    first = failures[0]
    line = (f"{len(failures)} of {total} images could not be read (listed in "
            f"{out.files.join(out.path, 'summary.md')}), e.g. {first['source']}: "
            f"{first['error']}")
    if len(failures) == total:
        raise ValueError(line)
    print(f"tf-smoothtaylor: {line}; the others finished", file=sys.stderr)


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
        if explainer.scheme.target_error is not None:
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
                         f"({MONTE_CARLO_NAMES})")
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
    grid, shown = runs.write_grid(out, records, config.grid_images or None,
                                  config.figure_format, class_names)
    print(f"{len(records)} images -> {out.path} (grid: {grid}, {shown} of {len(records)} "
          "images; --grid_images to change)")
    if summary:
        print(summary)
