"""The model and the reference images a run's flags name (``--model``,
``--weights``, ``--preprocess``, ``--custom_objects``, ``--references``), with
errors in flags."""

import importlib
import importlib.util
import os
import re
import sys
import zipfile

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor import data, demo, models
from tf_smoothtaylor.cli import inputs, savedmodel
from tf_smoothtaylor.data import paths as _paths


def import_custom_objects(names) -> None:
    """Imports each ``--custom_objects`` entry, a dotted module name or a local ``.py``
    file, so that the classes it registers with
    ``keras.saving.register_keras_serializable`` can be loaded."""
    for name in names:
        try:
            if name.endswith(".py"):
                if not os.path.isfile(name):
                    raise ValueError(f"--custom_objects file not found: {name}")
                module_name = os.path.splitext(os.path.basename(name))[0]
                spec = importlib.util.spec_from_file_location(module_name,
                                                              os.path.abspath(name))
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except ValueError:
            raise
        except Exception as error:   # the user's module: any error it raises
            raise ValueError(f"--custom_objects {name} could not be imported "
                             f"({type(error).__name__}: {error})") from None


def _unknown_class(error: Exception, path: str) -> ValueError:
    """One line for a model file naming a class no imported module registers."""
    found = re.search(r"Could not locate (?:class|function) '([^']+)'", str(error))
    name = found.group(1) if found else "a custom class"
    return ValueError(f"--model {path} uses {name!r}, which no imported module registers; "
                      "pass --custom_objects MODULE (a module name or .py file that defines "
                      "it with @keras.saving.register_keras_serializable())")


def load_spec(config) -> models.ModelSpec:
    """The model of ``--model`` as a ModelSpec."""
    import_custom_objects(getattr(config, "custom_objects", ()) or ())
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
        except (TypeError, ValueError) as error:
            if "Could not locate" in str(error):
                raise _unknown_class(error, path) from None
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
