"""Each method's settings, declared once, and everything derived from them.

A method's keyword settings are stated in two places that cannot drift apart:
its constructor's signature gives the name, the default and the type, and its
class's ``options`` (an :class:`Option` per setting) give the one-line help, the
bounds and how the setting reaches the command line. From those two the package
derives:

* the command-line flags (:func:`flag_table`): one flag per setting, named after
  the keyword or as the declaration says; a flag is shared by several methods only
  where each declaration says ``shared=True`` (``--steps`` for IG and Blur IG,
  ``--num_samples`` for SmoothGrad and Expected Gradients, ...); every method flag
  defaults to "not given", which means each method's own Python default, so the
  command line and Python never disagree;
* the mapping from given flags to keyword arguments (:func:`keyword_arguments`);
* the README's settings table (:func:`settings_table`, kept equal by a test).

Adding a method is one module: its class with ``options``, registered with
``methods.registry.register``.
"""

import dataclasses
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class Option:
    """How one keyword setting of a method is described and reaches the command line.

    Attributes:
      help: One line: what the setting is.
      flag: The command-line flag's name: "" for the keyword's own name, None to
        keep the setting off the command line (callables, arrays, explainers).
      shared: Whether other methods' settings may share this flag (each of them
        must say so too).
      count: A number of draws that accepts "auto" (with ``target_error`` and
        ``max_points``).
      choices: The strings the flag accepts; with ``number`` also a number.
      number: The flag also accepts a number (e.g. a baseline value).
      kind: The value's type when the default does not show it (a None default):
        int, float, str or bool.
      minimum: The smallest value accepted (inclusive: ``value >= minimum``).
      above: A value every accepted one exceeds (exclusive: ``value > above``).
      maximum: The largest value accepted (inclusive: ``value <= maximum``).
      files: A list of files on the command line (repeat the flag), which the
        command layer turns into the setting's value.
      exclusive: A setting of the same method that cannot be given with this one.
    """

    help: str
    flag: Optional[str] = ""
    shared: bool = False
    count: bool = False
    choices: Tuple[str, ...] = ()
    number: bool = False
    kind: Optional[type] = None
    minimum: Optional[float] = None
    above: Optional[float] = None
    maximum: Optional[float] = None
    files: bool = False
    exclusive: Optional[str] = None

    def __post_init__(self):
        if self.minimum is not None and self.above is not None:
            raise TypeError("Give an Option at most one lower bound: `minimum` (inclusive) "
                            "or `above` (exclusive)")

    def bounds(self) -> str:
        """The accepted range in words, e.g. ``"> 0"``, ``">= 1"``, ``"in (0, 1]"``;
        "" without bounds."""
        low = (f"[{self.minimum:g}" if self.minimum is not None else
               f"({self.above:g}" if self.above is not None else None)
        if self.maximum is None:
            return "" if low is None else (">= " if low[0] == "[" else "> ") + low[1:]
        return f"<= {self.maximum:g}" if low is None else f"in {low}, {self.maximum:g}]"

    def described(self) -> str:
        """The help with the bounds, e.g. ``"σ of the noise (> 0)"``."""
        bounds = self.bounds()
        return f"{self.help} ({bounds})" if bounds else self.help

    def accepts(self, value: float) -> bool:
        """Whether a number is within the bounds."""
        return ((self.minimum is None or value >= self.minimum)
                and (self.above is None or value > self.above)
                and (self.maximum is None or value <= self.maximum))

    def kind_of(self, default: Any) -> str:
        """The flag's parser: "count", "enum", "enum_or_number", "files", "bool",
        "int", "float" or "str"."""
        if self.count:
            return "count"
        if self.files:
            return "files"
        if self.choices:
            return "enum_or_number" if self.number else "enum"
        kind = self.kind or (type(default) if default is not None else str)
        return {bool: "bool", int: "int", float: "float"}.get(kind, "str")


REQUIRED = inspect.Parameter.empty

# The settings of "auto" counts, the same for every method that has one.
AUTO = {
    "target_error": Option("With an 'auto' count: the heatmap's relative Monte Carlo error "
                           "to reach (0.05 when not given)", shared=True, kind=float,
                           above=0),
    "max_points": Option("With an 'auto' count: the most draws per image (2000 when not "
                         "given)", shared=True, kind=int, minimum=1),
}


def declared(cls) -> Dict[str, Tuple[Option, Any]]:
    """``name -> (Option, default)`` of every keyword setting of ``cls``, in its
    constructor's order (``REQUIRED`` for a setting without a default)."""
    options = {}
    for klass in reversed(cls.__mro__):
        options.update(vars(klass).get("options", {}))
    parameters = inspect.signature(cls.__init__).parameters
    result = {}
    for name, parameter in parameters.items():
        if parameter.kind is not parameter.KEYWORD_ONLY:
            continue
        if name not in options:
            raise TypeError(f"{cls.__name__}: the setting {name!r} has no Option in "
                            "`options` (its help and command-line flag)")
        result[name] = (options[name], parameter.default)
    unknown = set(vars(cls).get("options", {})) - set(parameters)
    if unknown:
        raise TypeError(f"{cls.__name__}: `options` names settings the constructor does "
                        f"not take: {sorted(unknown)}")
    return result


@dataclasses.dataclass
class Flag:
    """One command-line flag: its parser kind and, per method that reads it, the
    setting and its Python default."""

    name: str
    kind: str
    option: Option
    readers: List[Tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    options: List[Option] = dataclasses.field(default_factory=list)

    def help(self) -> str:
        """The options' help (each reader's where they differ), then which methods
        read the flag and their defaults."""
        helps = list(dict.fromkeys(option.described() for option in self.options))
        text = helps[0] if len(helps) == 1 else "; ".join(
            f"{method}: {option.help}" for (method, _, _), option in zip(self.readers,
                                                                      self.options))
        defaults = ", ".join(f"{method} {_shown(default)}"
                             for method, _, default in self.readers)
        return f"{text} [default: {defaults}]"


def _shown(default: Any) -> str:
    if default is REQUIRED:
        return "(required)"
    if isinstance(default, str):
        return repr(default)
    return str(default)


def flag_table(methods: Dict[str, type]) -> Dict[str, Flag]:
    """``flag name -> Flag`` for every method setting on the command line.

    Raises ``TypeError`` (a mistake in a declaration) when two methods use one flag
    without both saying ``shared=True``, or with different parsers.
    """
    flags: Dict[str, Flag] = {}
    for method, cls in methods.items():
        for name, (option, default) in declared(cls).items():
            if option.flag is None:
                continue
            flag_name = option.flag or name
            kind = option.kind_of(default)
            known = flags.get(flag_name)
            if known is None:
                flags[flag_name] = known = Flag(flag_name, kind, option)
            else:
                if not (option.shared and known.option.shared):
                    raise TypeError(f"The flag --{flag_name} of {method} is also "
                                    f"{known.readers[0][0]}'s: share it (shared=True in "
                                    "both) or name another flag")
                if kind != known.kind or option.choices != known.option.choices:
                    raise TypeError(f"The shared flag --{flag_name} is parsed differently "
                                    f"for {method} ({kind}) and {known.readers[0][0]} "
                                    f"({known.kind})")
            known.readers.append((method, name, default))
            known.options.append(option)
    return flags


def keyword_arguments(cls, given: Dict[str, Any], *, convert=None) -> Dict[str, Any]:
    """The keyword arguments of ``cls`` from the given flags (flag name -> value,
    None or an empty list for "not given"): only the settings given, so every
    other one keeps its Python default. ``target_error``/``max_points`` are passed
    only when a count is "auto"; ``convert(name, value)`` turns a files flag's
    value into the setting's."""
    declarations = declared(cls)
    kwargs = {}
    for name, (option, _) in declarations.items():
        if option.flag is None:
            continue
        value = given.get(option.flag or name)
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if option.files and convert is not None:
            value = convert(name, value)
        kwargs[name] = value
    auto = any(kwargs.get(name) == "auto" for name, (option, _) in declarations.items()
               if option.count)
    if not auto:
        for name in ("target_error", "max_points"):
            kwargs.pop(name, None)
    return kwargs


def settings_table(methods: Dict[str, type]) -> str:
    """The README's table: per method, its settings with their defaults, and the
    command-line flag of each."""
    lines = ["| method | setting (flag) = default: meaning |", "|---|---|"]
    for method, cls in methods.items():
        cells = []
        for name, (option, default) in declared(cls).items():
            if name in ("batch_size", "seed", "jit_compile"):
                continue
            flag = "" if option.flag is None else f" (`--{option.flag or name}`)"
            cells.append(f"`{name}`{flag} = {_shown(default)}: {option.described()}")
        lines.append(f"| `{method}` | " + "<br>".join(cells or ["—"]) + " |")
    return "\n".join(lines) + "\n"


def flags_of(cls) -> List[str]:
    """The command-line flags (names without dashes) of ``cls``'s settings."""
    return [option.flag or name for name, (option, _) in declared(cls).items()
            if option.flag is not None]


def reads(methods: Dict[str, type]) -> Dict[str, Sequence[str]]:
    """``method -> the flags it reads`` (for ``--help``)."""
    return {method: [f"--{option.flag or name}"
                     for name, (option, _) in declared(cls).items()
                     if option.flag is not None]
            for method, cls in methods.items()}
