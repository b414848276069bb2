"""The engine: one compiled hot path shared by every method on it (``core``).

Modules, from the ground up: ``checks`` (argument checks), ``tracing`` (how the
package compiles), ``quadrature``, ``streams`` (counter-based random numbers keyed
by image and point), ``scheme`` (what a method describes: points, multipliers,
weights), ``moments`` (sums, standard errors, relative errors), ``report``
(warnings about maps), ``inputs`` (input checks), ``logits`` (a model's logits and
its targets), ``loop`` (the compiled chunk loop), ``auto`` (draws chosen per image),
``core`` (``Engine``). The engine imports no other part of the package.

Names are resolved on first use, so importing one engine module does not import
the rest.
"""

import importlib
from typing import Any

_NAMES = {
    "Engine": "core", "MAX_CALLABLE_TARGETS": "core", "graph_classes": "core",
    "per_point": "core", "Scheme": "scheme",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
