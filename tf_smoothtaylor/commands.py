"""What the command-line modes do, in library calls (see ``cli.py`` for flags)."""

import glob as globlib
import os
import re
import zipfile
from typing import Callable, Dict

import keras
import tensorflow as tf

from tf_smoothtaylor import data, demo, distribute, models, runs
from tf_smoothtaylor.adaptive import AdaptiveNoising
from tf_smoothtaylor.methods import BY_NAME
from tf_smoothtaylor.metrics import settings as metrics_settings

DEMO_METRIC_DEFAULTS = {"window": 8, "num_regions": 16, "num_copies": 20, "min_size": 10}


def load_spec(flags) -> models.ModelSpec:
    """The model of ``--model`` as a ModelSpec."""
    if flags.model == "demo":
        return demo.load()
    if not os.path.exists(flags.model):
        try:
            name = models.registry_name(flags.model)
        except ValueError:
            name = None
        if name is not None:
            weights = None if flags.weights in ("none", "None", "") else flags.weights
            if weights not in (None, "imagenet") and not os.path.isfile(weights):
                raise ValueError(f"--weights file not found: {weights}")
            try:
                return models.load(name, weights=weights, input_size=flags.size)
            except ConnectionError:
                raise ValueError(
                    f"could not download the ImageNet weights of {name}; without network "
                    "access copy the file into ~/.keras/models/, or pass --weights PATH "
                    "(a weights file) or --weights none (random weights)") from None
        if flags.model.endswith((".keras", ".h5")) or os.sep in flags.model:
            raise ValueError(f"--model file not found: {flags.model}")
    path = flags.model
    if os.path.isdir(path):
        layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
        signature = layer.call_endpoint_fn.structured_input_signature
        spec = tf.nest.flatten(signature)[0]
        inputs = keras.Input(tuple(spec.shape[1:]))
        outputs = layer(inputs)
        if isinstance(outputs, dict):
            outputs = list(outputs.values())[0]
        model = keras.Model(inputs, outputs)
    elif os.path.isfile(path) and path.endswith((".keras", ".h5")):
        if path.endswith(".keras") and not zipfile.is_zipfile(path):
            raise ValueError(f"--model {path} is not a Keras file (a .keras file is a zip "
                             "archive written by model.save)")
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=not flags.unsafe_load)
        except ValueError as error:
            if "safe_mode" in str(error) or "unsafe" in str(error).lower():
                raise ValueError(f"{path} contains Python code (e.g. a Lambda layer); pass "
                                 "--unsafe_load only if you trust it.") from None
            raise
    else:
        raise ValueError(f"--model must be 'demo', a registry name ({', '.join(models.FAMILIES)})"
                         f", a .keras file or a SavedModel directory; got {path!r}")
    if flags.preprocess == "identity":
        return models.wrap(model)
    preprocess, deprocess = models.pixel_transforms(flags.preprocess)
    return models.wrap(model, preprocess=preprocess, deprocess=deprocess)


def _checked_files(patterns):
    files = []
    for pattern in patterns:
        matched = sorted(globlib.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matched:
            raise ValueError(f"no image matches {pattern!r}")
        files.extend(matched)
    for path in files:
        if os.path.isdir(path):
            raise ValueError(f"--images {path} is a directory; use '{os.path.join(path, '*.jpg')}' "
                             "(quoted) or --image_folder")
        if not os.path.isfile(path):
            raise ValueError(f"image not found: {path}")
        try:
            tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", error.message.splitlines()[0]).strip()
            raise ValueError(f"cannot read image {path}: {reason}") from None
    return files


def input_batches(flags, spec):
    """(batches, total or None, masks function or None) for the chosen input."""
    size = spec.input_size[0]
    resize = None if flags.model == "demo" else int(round(size * 256 / 224))
    common = dict(size=size, resize=resize, batch_size=flags.images_per_step)
    if flags.image_folder:
        return data.image_folder(flags.image_folder, **common), None, None
    if flags.manual_dir:
        dataset = data.imagenet_validation(flags.manual_dir, data_dir=flags.data_dir,
                                           limit=flags.limit, **common)
        return dataset, flags.limit, None
    if flags.images:
        files = _checked_files(flags.images)
    elif flags.model == "demo":
        files = demo.sample_paths()
    else:
        raise ValueError("missing input: give --images, --image_folder or --manual_dir")
    masks = demo.mask_for if flags.model == "demo" else None
    return data.from_files(files, **common), len(files), masks


def method_options(flags, name: str) -> dict:
    """Keyword settings of method ``name`` from the flags."""
    common = dict(batch_size=flags.batch_size, seed=flags.seed, jit_compile=flags.jit_compile)
    if name == "smooth_taylor":
        noise = (dict(noise_scale=None, noise_level=flags.noise_level) if flags.noise_level
                 else dict(noise_scale=flags.noise_scale or 0.5))
        return dict(num_roots=flags.num_roots, **noise, **common)
    if name == "integrated_gradients":
        return dict(steps=flags.steps, rule=flags.rule, baseline=flags.baseline,
                    num_baselines=flags.num_baselines, **common)
    if name == "smoothgrad":
        noise = (dict(noise_scale=flags.noise_scale, noise_level=None) if flags.noise_scale
                 else dict(noise_level=flags.noise_level or 0.15))
        return dict(num_samples=flags.num_samples, **noise, **common)
    return common


def strategy_of(flags):
    """The tf.distribute strategy named by --strategy (None: the default one)."""
    if flags.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if flags.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def build_explainers(flags, spec, method_names) -> Dict[str, Callable]:
    """method name -> ``(inputs, targets, keys) -> (attributions, extra values)``.

    With a distribution strategy each step's images are split across replicas
    (top-1 classes, which is what the command line explains).
    """
    strategy = strategy_of(flags)
    explainers = {}
    for name in method_names:
        explainer = BY_NAME[name](spec, **method_options(flags, name))
        if strategy is None:
            explain = lambda x, t, k, e=explainer: (e(x, t, keys=k), {})  # noqa: E731
        else:
            explain = lambda x, t, k, e=explainer: (distribute.explain_dataset(  # noqa: E731
                e, tf.data.Dataset.from_tensors((x, k)), strategy=strategy,
                keyed=True)["attributions"], {})
        # Lets a run split long steps and report progress within them.
        explain.points_per_image, explain.batch_size = explainer.num_points, explainer.batch_size
        explainers[name] = explain
    return explainers


def metric_options(flags, spec) -> dict:
    """AUPC/AUTVC settings: the flags, else the demo's, else the paper's fitted to the
    model's input size (the paper's own at 224 px and above)."""
    if flags.model == "demo":
        defaults = DEMO_METRIC_DEFAULTS
    else:
        fitted = metrics_settings.fitted_settings(*spec.input_size)
        defaults = {**fitted["aupc"], **fitted["autvc"]}
    value = lambda name: getattr(flags, name) or defaults[name]  # noqa: E731
    return {"aupc": dict(window=value("window"), num_regions=value("num_regions"),
                         num_copies=value("num_copies"), seed=flags.seed,
                         batch_size=flags.batch_size),
            "autvc": dict(min_size=value("min_size"))}


def _settings(mode, flags, metric_names, options) -> dict:
    keys = ["model", "weights", "preprocess", "images", "image_folder", "manual_dir", "limit",
            "size", "method", "num_roots", "noise_scale", "noise_level", "steps", "rule",
            "baseline", "num_baselines", "num_samples", "seed", "objective", "max_iterations",
            "strategy"]
    settings = {key: getattr(flags, key) for key in keys}
    # One file (or folder) reached by two spellings is one input: compare absolute paths.
    settings["images"] = [os.path.realpath(path) for path in flags.images]
    for key in ("image_folder", "manual_dir"):
        if settings[key]:
            settings[key] = os.path.realpath(settings[key])
    if os.path.exists(flags.model):
        settings["model"] = os.path.realpath(flags.model)
    settings.update(mode=mode, metrics=list(metric_names), metric_options=options)
    return settings


def export(flags, spec) -> None:
    """The export mode: a SavedModel of the first --method."""
    from tf_smoothtaylor import serving
    method = flags.method[0]
    serving.export(spec, flags.output_dir, method=method, crop=flags.model != "demo",
                   top_k=flags.top_k, max_batch=flags.max_batch,
                   include_attributions=flags.include_attributions,
                   **method_options(flags, method))
    print(f"SavedModel ({method}) -> {flags.output_dir}")


def run(mode: str, flags) -> None:
    """Runs one mode with parsed flags; prints where the results are."""
    spec = load_spec(flags)
    if mode == "export":
        export(flags, spec)
        return
    batches, total, masks = input_batches(flags, spec)
    options = metric_options(flags, spec)
    if mode == "explain":
        metric_names = []
    elif flags.metric:
        metric_names = list(dict.fromkeys(flags.metric))
    else:
        metric_names = ["aupc", "autvc"] + (["relevance_mass"] if masks else [])
    if mode == "adapt":
        search = AdaptiveNoising(spec, objective=flags.objective, num_roots=flags.num_roots,
                                 max_iterations=flags.max_iterations, seed=flags.seed,
                                 batch_size=flags.batch_size,
                                 objective_options=options[flags.objective])

        def adapt(inputs, targets, keys):
            # The objective's column (hence summary.md) gets the score of the chosen σ
            # on fresh roots; the search's best, biased low, stays as <objective>_best.
            result = search(inputs, targets, keys=keys)
            return result.attributions, {"noise_scale": result.noise_scale.numpy(),
                                         f"{flags.objective}_best": result.objective.numpy(),
                                         flags.objective: result.rescored.numpy()}

        explainers = {f"adaptive_{flags.objective}": adapt}
    else:
        explainers = build_explainers(flags, spec, list(dict.fromkeys(flags.method)))
    out = runs.OutputDir(flags.output_dir, _settings(mode, flags, metric_names, options),
                         overwrite=flags.overwrite)
    functions = runs.metric_functions(spec, metric_names, options)
    records = runs.process(spec, batches, explainers, out, metrics=functions, masks=masks,
                           total=total, limit=flags.limit)
    summary = runs.write_tables(out, records, metric_names)
    grid = runs.write_grid(out, records)
    print(f"{len(records)} images -> {flags.output_dir} (grid: {grid})")
    if summary:
        print(summary)
