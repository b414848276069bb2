"""The attribution methods, each registered once where it is defined.

A method's module decorates its class with :func:`register`, giving its name
(the ``--method`` choice and the key of ``BY_NAME``) and what it is: the package's
names and ``__all__``, the command line's ``--method`` choices and flags, the Monte
Carlo lists of messages, the run's tables and the contract tests are derived from
the entries. A method defined outside the package registers the same way; the
command line finds it through ``--plugin``.
"""

import dataclasses
from typing import Dict, Mapping

#: What a method evaluates: gradients of the model, or forward passes only.
NEEDS = ("gradients", "forwards")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered method.

    Attributes:
      name: The registry name (``--method``), lower case with underscores.
      cls: The explainer class (an ``Explainer``).
      needs: ``"gradients"`` or ``"forwards"`` (models without gradients).
      monte_carlo: When its draws are independent, so that it reports standard
        errors and takes ``"auto"`` counts: ``""`` never, ``"always"``, or the
        condition in words (e.g. ``"baseline='uniform'"``).
      monte_carlo_flags: The same condition in command-line words.
      exempt: Contract-test items the method cannot honour, item -> why.
      default: Whether it is the method used when none is named (one entry).
    """

    name: str
    cls: type
    needs: str = "gradients"
    monte_carlo: str = ""
    monte_carlo_flags: str = ""
    exempt: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default: bool = False


ENTRIES: Dict[str, Entry] = {}
#: name -> explainer class, in registration order (the package's import order).
BY_NAME: Dict[str, type] = {}


def register(name: str, *, needs: str = "gradients", monte_carlo: str = "",
             monte_carlo_flags: str = "", exempt: Mapping[str, str] = None,
             default: bool = False):
    """A class decorator that registers an explainer class as method ``name``.

    Raises:
      ValueError: ``name`` is taken by another class, is not a lower-case identifier,
        or ``needs`` is unknown.
    """
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"Expected `name` to be a lower-case identifier. Received: {name!r}")
    if needs not in NEEDS:
        raise ValueError(f"Expected `needs` in {NEEDS}. Received: {needs!r}")

    def decorate(cls: type) -> type:
        known = ENTRIES.get(name)
        if known is not None and known.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"the method name {name!r} is taken by {known.cls.__qualname__}")
        taken = [e.name for e in ENTRIES.values() if e.default and e.name != name]
        if default and taken:
            raise ValueError(f"the default method is already {taken[0]!r}")
        ENTRIES[name] = Entry(name, cls, needs, monte_carlo, monte_carlo_flags,
                              dict(exempt or {}), default)
        BY_NAME[name] = cls
        cls.registry_name = name
        return cls

    return decorate


def remove(entries: dict, name: str, kind: str) -> None:
    """Removes ``name`` from a registry's ``entries`` (a plugin's or a test's entry;
    ``kind`` names the registry in the error).

    Raises:
      ValueError: ``name`` is not registered.
    """
    if name not in entries:
        raise ValueError(f"Expected a registered {kind} name. Received: {name!r}")
    del entries[name]


def unregister(name: str) -> None:
    """Removes method ``name`` (a plugin's, or a test's) from the registry."""
    remove(ENTRIES, name, "method")
    del BY_NAME[name]


def monte_carlo(*, flags: bool = False) -> str:
    """The methods whose draws are independent, for messages: class names with their
    conditions, or (``flags``) ``--method`` names with the flags' conditions."""
    parts = []
    for entry in ENTRIES.values():
        if not entry.monte_carlo:
            continue
        name = entry.name if flags else entry.cls.__name__
        condition = entry.monte_carlo_flags if flags else entry.monte_carlo
        parts.append(name if condition in ("", "always") else f"{name} ({condition})")
    return ", ".join(parts)


def default_name() -> str:
    """The method used when none is named (its entry says ``default=True``)."""
    return next(entry.name for entry in ENTRIES.values() if entry.default)
