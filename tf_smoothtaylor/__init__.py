"""tf_smoothtaylor: SmoothTaylor, Integrated Gradients and SmoothGrad for Keras.

Example:
  >>> import tf_smoothtaylor as tst
  >>> explainer = tst.SmoothTaylor(model, num_roots=150, noise_scale=0.5)
  >>> maps = tst.heatmap(explainer(images))

Names are imported on first use (PEP 562), so ``import tf_smoothtaylor`` and
the ``tf-smoothtaylor`` command start without loading TensorFlow until needed.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

__version__ = "0.1.0"

_NAMES = {
    "AdaptiveNoising": "tf_smoothtaylor.integrations.adaptive",
    "AdaptiveResult": "tf_smoothtaylor.integrations.adaptive",
    "adaptive_noising": "tf_smoothtaylor.integrations.adaptive",
    "completeness_gap": "tf_smoothtaylor.methods.maps",
    "heatmap": "tf_smoothtaylor.methods.maps",
    "position_scores": "tf_smoothtaylor.methods.maps",
    "quadrature": "tf_smoothtaylor.engine.quadrature",
}
_MODULES = {
    "beam": "tf_smoothtaylor.cli.beam",
    "callbacks": "tf_smoothtaylor.integrations.callbacks",
    "config": "tf_smoothtaylor.cli.config",
    "convergence": "tf_smoothtaylor.integrations.convergence",
    "data": "tf_smoothtaylor.data",
    "demo": "tf_smoothtaylor.demo",
    "distribute": "tf_smoothtaylor.integrations.distribute",
    "lrp": "tf_smoothtaylor.lrp",
    "methods": "tf_smoothtaylor.methods",
    "metrics": "tf_smoothtaylor.metrics",
    "models": "tf_smoothtaylor.models",
    "plot": "tf_smoothtaylor.viz.plot",
    "serving": "tf_smoothtaylor.integrations.serving",
    "visualize": "tf_smoothtaylor.viz.pictures",
}
#: Module paths of earlier versions and where the modules live now: importing an old
#: path gives the module itself (one object, so patching either name patches both),
#: with a DeprecationWarning.
_MOVED = {
    "tf_smoothtaylor.adaptive": "tf_smoothtaylor.integrations.adaptive",
    "tf_smoothtaylor.beam": "tf_smoothtaylor.cli.beam",
    "tf_smoothtaylor.callbacks": "tf_smoothtaylor.integrations.callbacks",
    "tf_smoothtaylor.commands": "tf_smoothtaylor.cli.commands",
    "tf_smoothtaylor.config": "tf_smoothtaylor.cli.config",
    "tf_smoothtaylor.convergence": "tf_smoothtaylor.integrations.convergence",
    "tf_smoothtaylor.distribute": "tf_smoothtaylor.integrations.distribute",
    "tf_smoothtaylor.inputs": "tf_smoothtaylor.cli.inputs",
    "tf_smoothtaylor.maps": "tf_smoothtaylor.methods.maps",
    "tf_smoothtaylor.plot": "tf_smoothtaylor.viz.plot",
    "tf_smoothtaylor.rundir": "tf_smoothtaylor.data.rundir",
    "tf_smoothtaylor.runs": "tf_smoothtaylor.cli.runs",
    "tf_smoothtaylor.serving": "tf_smoothtaylor.integrations.serving",
    "tf_smoothtaylor.tables": "tf_smoothtaylor.cli.tables",
    "tf_smoothtaylor.visualize": "tf_smoothtaylor.viz.pictures",
}

_STATIC = sorted(_NAMES) + list(_MODULES) + ["__version__"]


def _method_classes() -> dict:
    """The registered methods' classes by class name (``methods.registry``)."""
    methods = importlib.import_module("tf_smoothtaylor.methods")
    return {cls.__name__: cls for cls in methods.BY_NAME.values()}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name == "__all__":               # the methods are the registry's: on first use
        value = sorted(set(_STATIC) | set(_method_classes()) | {"Explainer"})
    elif name == "Explainer" or (name[:1].isupper() and name in _method_classes()):
        value = getattr(importlib.import_module("tf_smoothtaylor.methods"), name) \
            if name == "Explainer" else _method_classes()[name]
    else:
        raise AttributeError(f"module 'tf_smoothtaylor' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old path of a moved module (``_MOVED``) and loads it as the module
    at its new path."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {_MOVED[spec.name]}; import it from there "
                      "(the old path will be removed)", DeprecationWarning, stacklevel=3)
        module = importlib.import_module(_MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        # The import system set the old path's spec on the module: give it back its own.
        module.__spec__ = self._specs[module.__name__]


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
