"""The open table of LRP: which handler rewrites each Keras layer class.

A *handler* takes one layer's place in the rewritten forward pass: called with a
:class:`Call` (the layer, its input values, and what the pass knows about them), it
returns the layer's outputs computed so that their gradient is relevance — usually
``with_backward(forward, backward, *inputs)``. The table is searched first match
by ``isinstance``, layers registered by users first (newest first), then the
built-in kinds (``lrp.layers``' module docstring), so a user can add a layer kind
or override a built-in one for a subclass without editing this package:

    >>> tst.lrp.register(MyScale, tst.lrp.passing)          # relevance unchanged
    >>> tst.lrp.register(MyPool, tst.lrp.proportional)      # like average pooling
    >>> tst.lrp.register(MyLayer, my_handler)               # def my_handler(call): ...

The ready handlers: ``passing`` (elementwise maps: ``R_in = R_out``),
``proportional`` (weight-free sums: split in proportion to each input's
contribution), ``routing`` (the plain gradient: where a value came from),
``gating`` (Multiply by gates that take no relevance).
"""

import dataclasses
from typing import Callable, List, Optional, Tuple, Type

import keras


@dataclasses.dataclass
class Call:
    """One layer's call in the rewritten pass, as a handler sees it.

    Attributes:
      layer: The Keras layer.
      node: Its node in the functional graph (``node.input_tensors``, ``node.outputs``).
      inputs: The values of its inputs (a list).
      args, kwargs: Its call's arguments with those values filled in.
      last: Whether the layer produces a model output.
      first: Whether its (first) input lies on the model's input side (no linear
        layer before it), with ``bounds`` the input's bounds there or None.
      nonnegative: Whether its first input is known to be ≥ 0.
      function: The ``RelevanceFunction`` (its composite, ``strip``, helpers).
    """

    layer: keras.layers.Layer
    node: object
    inputs: list
    args: tuple
    kwargs: dict
    last: bool
    first: bool
    bounds: Optional[tuple]
    nonnegative: bool
    function: object


@dataclasses.dataclass(frozen=True)
class Entry:
    """A row of the table: layer classes, an optional further test, the kind's name
    and its handler (None for a kind the pass handles itself)."""

    classes: Tuple[Type, ...]
    kind: str
    handler: Optional[Callable[[Call], object]]
    accepts: Optional[Callable[[keras.layers.Layer], bool]] = None
    user: bool = False

    def matches(self, layer) -> bool:
        return isinstance(layer, self.classes) and (self.accepts is None
                                                    or self.accepts(layer))


_USER: List[Entry] = []
_BUILT_IN: List[Entry] = []
_VERSION = [0]                  # changes with every registration: passes built before differ


def version() -> int:
    """How many times users' registrations changed (part of a rewritten pass's key)."""
    return _VERSION[0]


def built_in(entries: List[Entry]) -> None:
    """Sets the built-in rows (``lrp.graph`` does, once)."""
    _BUILT_IN[:] = entries


def register(layer_class: Type, handler: Callable[[Call], object], *,
             kind: Optional[str] = None) -> None:
    """Rewrites every layer of ``layer_class`` (and its subclasses) with ``handler``
    (see the module docstring), before any earlier registration or built-in kind.

    Raises:
      TypeError: ``layer_class`` is not a Keras layer class, or ``handler`` is not
        callable.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError("Expected `layer_class` to be a Keras layer class. "
                        f"Received: {layer_class!r}")
    if not callable(handler):
        raise TypeError(f"Expected `handler` to be callable(call). Received: {handler!r}")
    unregister(layer_class)
    _VERSION[0] += 1
    _USER.insert(0, Entry((layer_class,), kind or getattr(handler, "kind", "custom"),
                          handler, user=True))


def unregister(layer_class: Type) -> None:
    """Removes ``layer_class``'s registration (nothing if it has none)."""
    kept = [entry for entry in _USER if entry.classes != (layer_class,)]
    if len(kept) != len(_USER):
        _VERSION[0] += 1
    _USER[:] = kept


def find(layer) -> Optional[Entry]:
    """The first row matching ``layer``, or None when LRP has no handler for it."""
    for entry in _USER + _BUILT_IN:
        if entry.matches(layer):
            return entry
    return None


def registered() -> List[Type]:
    """The layer classes users registered, newest first."""
    return [entry.classes[0] for entry in _USER]
