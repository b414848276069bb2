"""What a run does before and around its images, the same in this process and on
Beam's driver and workers: the :class:`Job` (model, explainers, metric functions)
built once per process or worker, the run started (metrics resolved, masks
checked, output directory opened), and unreadable images reported."""

import dataclasses
import sys
from typing import Callable, Dict, List, Optional, Tuple

from tf_smoothtaylor import demo, models
from tf_smoothtaylor.cli import inputs, runs
from tf_smoothtaylor.cli.config import RunConfig
from tf_smoothtaylor.cli.explainers import (batch_size_of, build_explainers, method_settings,
                                            metric_options, seed_of)
from tf_smoothtaylor.cli.loading import load_spec
from tf_smoothtaylor.data import paths as _paths
from tf_smoothtaylor.integrations.adaptive import AdaptiveNoising


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


IMAGE_ONLY = ("aupc", "autvc")


def default_metrics(config: RunConfig, entries: List[inputs.Entry],
                    spec: Optional[models.ModelSpec] = None) -> Tuple[str, ...]:
    """evaluate's metrics when --metric is not given: AUPC and AUTVC, and relevance
    mass when every image has a ground-truth mask (the bundled demo's samples);
    deletion and insertion for series and tabular rows."""
    if spec is not None and spec.input_size is None:
        return ("deletion", "insertion")
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
            config, inputs.list_entries(config), spec)))
    if mode == "adapt":
        if config.num_roots == "auto":
            raise ValueError("adapt needs a fixed --num_roots (each σ tried is scored on "
                             "the same roots); got --num_roots auto")
        roots = {} if config.num_roots is None else {"num_roots": config.num_roots}
        search = AdaptiveNoising(spec, objective=config.objective, **roots,
                                 max_iterations=config.max_iterations, seed=seed_of(config),
                                 batch_size=batch_size_of(config),
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
    spec = spec or load_spec(config)
    check_inputs(mode, config, spec)
    config = config.replace(metric=config.metric or default_metrics(config, entries, spec))
    job = prepare(mode, config, spec)
    check_masks(job, entries)
    out = runs.OutputDir(config.output_dir, job.settings, overwrite=config.overwrite,
                         force=config.force, files=files,
                         inputs=inputs.recorded(entries, local=local))
    return config, job, out


def check_inputs(mode: str, config: RunConfig, spec: models.ModelSpec) -> None:
    """Refuses a run whose inputs do not fit the model, and image-only metrics for
    series and tabular rows, in one line."""
    layer = getattr(config, "layer", None)
    methods = [name for name in dict.fromkeys(config.method) if not name.startswith("grad_cam")]
    if spec.input_size is not None:
        if layer and methods and mode != "export":
            raise ValueError(f"--layer with images applies to Grad-CAM; {', '.join(methods)} "
                             "attribute to the pixels (layer attribution of images: Python's "
                             "layer=)")
        return
    shape = tuple(spec.model.inputs[0].shape[1:])
    if spec.model.inputs[0].dtype not in ("float16", "float32", "float64", "bfloat16") \
            and not layer and methods:                 # Grad-CAM needs no embedding layer
        from tf_smoothtaylor.engine.at_layer import embedding_layers
        found = embedding_layers(spec.model)
        raise ValueError(f"--model {config.model} takes token ids, which have no gradient; "
                         "attribute to their embeddings with --layer "
                         + (found[0] + (f" (embedding layers: {', '.join(found)})"
                                        if len(found) > 1 else "") if found
                            else "<the layer that turns them into vectors>"))
    if not config.inputs:
        kind = "series" if len(shape) == 2 else "features"
        raise ValueError(f"--model {config.model} takes {kind} of shape {shape}, not images; "
                         "give them with --inputs FILE (.npy, .npz or .csv, one example a row)")
    asked = [name for name in config.metric or () if name in IMAGE_ONLY]
    if mode == "adapt" and config.objective in IMAGE_ONLY:
        asked.append(config.objective)
    if asked:
        raise ValueError(f"--metric {', '.join(sorted(set(asked)))}: defined on images; for "
                         f"the {shape} inputs of --model use deletion or insertion")


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


def _settings(mode, config, metric_names, metric_settings) -> dict:
    keys = ["model", "weights", "preprocess", "images", "image_folder", "manual_dir", "limit",
            "size", "method", "objective", "max_iterations", "strategy"]
    if config.inputs:
        keys += ["inputs", "vocabulary"]
    settings = {key: getattr(config, key) for key in keys}
    methods = [AdaptiveNoising.method] if mode == "adapt" else list(dict.fromkeys(config.method))
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
