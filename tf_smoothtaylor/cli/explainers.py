"""The explainers and metric settings a run's flags ask for: each method's keyword
arguments from its flags (``methods.options``), the callables a run calls per batch
of images, and AUPC/AUTVC settings."""

from typing import Callable, Dict

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.cli.loading import reference_inputs
from tf_smoothtaylor.data import paths as _paths
from tf_smoothtaylor.integrations import distribute
from tf_smoothtaylor.methods import BY_NAME, options
from tf_smoothtaylor.metrics import settings as metrics_settings

DEMO_METRIC_DEFAULTS = {"window": 8, "num_regions": 16, "num_copies": 20, "min_size": 10}


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
        explain.points_per_image = explainer.points_per_image
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
        # Series and tabular rows have no pixel size (AUPC and AUTVC refuse them).
        fitted = metrics_settings.fitted_settings(*(spec.input_size or (224, 224)))
        defaults = {**fitted["aupc"], **fitted["autvc"]}
    value = lambda name: getattr(config, name) or defaults[name]  # noqa: E731
    return {"aupc": dict(window=value("window"), num_regions=value("num_regions"),
                         num_copies=value("num_copies"), seed=seed_of(config),
                         batch_size=batch_size_of(config)),
            "autvc": dict(min_size=value("min_size"))}


def seed_of(config) -> int:
    """--seed, or every method's default 0."""
    return 0 if config.seed is None else config.seed


def batch_size_of(config) -> int:
    """--batch_size, or 64 (the gradient methods' default) for metrics and adapt."""
    return 64 if config.batch_size is None else config.batch_size
