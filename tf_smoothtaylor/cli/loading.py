"""The model and the reference images a run's flags name (``--model``,
``--weights``, ``--preprocess``, ``--references``), with errors in flags."""

import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor import data, demo, models
from tf_smoothtaylor.cli import inputs, savedmodel
from tf_smoothtaylor.data import paths as _paths


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
        savedmodel.check(path, unsafe_load=config.unsafe_load)
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
