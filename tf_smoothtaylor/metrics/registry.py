"""The metrics a run scores, each registered once where it is defined.

A metric's module registers a builder with :func:`register`: given the model's
``ModelSpec`` and the metric's settings, it returns ``(images, maps, targets,
masks) -> (B,)`` values. The command line's ``--metric`` choices, the run's
functions and its tables' arrows (↓ lower is better, ↑ higher) are derived from
the entries.
"""

import dataclasses
from typing import Callable, Dict, Tuple

from tf_smoothtaylor.methods import registry as methods_registry


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered metric.

    Attributes:
      name: The registry name (``--metric``).
      build: ``(spec, **settings) -> (images, maps, targets, masks) -> (B,)``.
      lower_is_better: The direction of a better map.
      needs_mask: Whether it needs a ground-truth mask per image (NaN without).
    """

    name: str
    build: Callable
    lower_is_better: bool
    needs_mask: bool = False


ENTRIES: Dict[str, Entry] = {}


def register(name: str, *, lower_is_better: bool, needs_mask: bool = False):
    """A decorator that registers a builder as metric ``name`` (see the module
    docstring).

    Raises:
      ValueError: ``name`` is not a lower-case identifier, or is taken.
      TypeError: ``lower_is_better`` is not a bool.
    """
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"Expected `name` to be a lower-case identifier. Received: {name!r}")
    if not isinstance(lower_is_better, bool):
        raise TypeError(f"Expected `lower_is_better` to be a bool. Received: "
                        f"{lower_is_better!r}")

    def decorate(build: Callable) -> Callable:
        known = ENTRIES.get(name)
        if known is not None and known.build.__qualname__ != build.__qualname__:
            raise ValueError(f"the metric name {name!r} is taken by {known.build.__qualname__}")
        ENTRIES[name] = Entry(name, build, lower_is_better, needs_mask)
        return build

    return decorate


def unregister(name: str) -> None:
    """Removes metric ``name`` (a plugin's, or a test's) from the registry."""
    methods_registry.remove(ENTRIES, name, "metric")


def names() -> Tuple[str, ...]:
    """The registered metric names."""
    return tuple(ENTRIES)


def functions(spec, names_: Tuple[str, ...], options: dict) -> Dict[str, Callable]:
    """``name -> (images, maps, targets, masks) -> (B,) values`` for the metrics
    ``names_``, each built with its settings ``options.get(name, {})``.

    Raises:
      ValueError: A name is not registered.
    """
    unknown = [name for name in names_ if name not in ENTRIES]
    if unknown:
        raise ValueError(f"Expected metric names among {sorted(ENTRIES)}. "
                         f"Received: {unknown[0]!r}")
    return {name: ENTRIES[name].build(spec, **dict(options.get(name, {}))) for name in names_}
