"""The settings of one command-line run, built once from the flags.

:class:`RunConfig` is a frozen, picklable dataclass: the command layer builds it
from the parsed absl flags (:meth:`RunConfig.from_flags`) and everything below —
the in-process loop (``commands``) and the Apache Beam workers (``beam``) —
takes it, never the flags object itself.

The run's own settings are fields; the methods' settings are the given method
flags (``methods.options``), kept as ``method_flags`` and read as attributes
(``config.num_roots``), None where a flag was not given — each method then keeps
its Python default.
"""

import dataclasses
import os
from typing import Any, Iterable, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a ``tf-smoothtaylor`` run (see ``tf-smoothtaylor --help``).

    Field names are the flag names. ``runner`` is a Beam runner name (None: run in
    this process); ``beam_args`` are the remaining Beam pipeline options;
    ``verbosity`` is absl's ``--verbosity`` when given, else −1 (TensorFlow's and
    Beam's own log lines kept off the terminal); ``method_flags`` holds the method
    flags that were given, ``(name, value)`` pairs.
    """

    output_dir: str
    model: str = "demo"
    weights: str = "imagenet"
    preprocess: str = "identity"
    unsafe_load: bool = False
    custom_objects: Tuple[str, ...] = ()
    images: Tuple[str, ...] = ()
    image_folder: Optional[str] = None
    manual_dir: Optional[str] = None
    data_dir: Optional[str] = None
    limit: Optional[int] = None
    size: Optional[int] = None
    method: Tuple[str, ...] = ("smooth_taylor", "integrated_gradients")
    images_per_step: int = 8
    overwrite: bool = False
    force: bool = False
    metric: Optional[Tuple[str, ...]] = None
    window: Optional[int] = None
    num_regions: Optional[int] = None
    num_copies: Optional[int] = None
    min_size: Optional[int] = None
    objective: str = "aupc"
    max_iterations: int = 20
    top_k: int = 5
    max_batch: int = 16
    include_attributions: bool = False
    include_error: bool = False
    strategy: str = "default"
    convergence: bool = False
    grid_images: int = 16
    figure_format: str = "png"
    runner: Optional[str] = None
    beam_args: Tuple[str, ...] = ()
    verbosity: int = -1
    method_flags: Tuple[Tuple[str, Any], ...] = ()

    def __getattr__(self, name: str) -> Any:
        """A method flag: its value, or None when it was not given."""
        if name.startswith("__") or name == "method_flags":
            raise AttributeError(name)
        return dict(self.method_flags).get(name)

    @property
    def given(self) -> dict:
        """The method flags that were given, name -> value."""
        return dict(self.method_flags)

    @classmethod
    def from_flags(cls, flags, *, beam_args=(), method_flags=()) -> "RunConfig":
        """The config of parsed absl ``flags`` (lists become tuples); ``method_flags``
        names the flags made from the methods' declarations."""
        def value(name):
            found = getattr(flags, name)
            return tuple(found) if isinstance(found, list) else found

        values = {field.name: value(field.name) for field in dataclasses.fields(cls)
                  if field.name not in ("beam_args", "verbosity", "method_flags")}
        given = tuple((name, value(name)) for name in method_flags
                      if value(name) not in (None, ()))
        verbosity = flags.verbosity if flags["verbosity"].present else -1
        return cls(beam_args=tuple(beam_args), verbosity=verbosity, method_flags=given,
                   **values)

    def replace(self, **changes) -> "RunConfig":
        """A copy with some fields (or method flags) changed."""
        names = {field.name for field in dataclasses.fields(self)}
        flags = dict(self.method_flags)
        for name in [n for n in changes if n not in names]:
            value = changes.pop(name)
            if value in (None, ()):
                flags.pop(name, None)
            else:
                flags[name] = tuple(value) if isinstance(value, list) else value
        return dataclasses.replace(self, method_flags=tuple(sorted(flags.items())), **changes)

    def with_absolute_paths(self, file_flags: Iterable[str] = ()) -> "RunConfig":
        """A copy whose local paths are absolute (object-store URLs, registry names and
        ``imagenet``/``none`` unchanged), so that Beam workers started in other folders
        find the same files: ``--output_dir``, ``--images`` patterns, the input
        folders, ``--model`` and ``--weights`` files, ``--custom_objects`` files and
        the method flags ``file_flags`` (e.g. ``references``)."""
        def absolute(path):
            return path if not path or "://" in path else os.path.abspath(path)

        def existing(path):
            return absolute(path) if path and os.path.exists(path) else path

        changes = {
            "output_dir": absolute(self.output_dir),
            "images": tuple(absolute(pattern) for pattern in self.images),
            "image_folder": absolute(self.image_folder),
            "manual_dir": absolute(self.manual_dir),
            "data_dir": absolute(self.data_dir),
            "model": existing(self.model),
            "weights": existing(self.weights),
            "custom_objects": tuple(absolute(name) if name.endswith(".py") else name
                                    for name in self.custom_objects),
        }
        for flag in file_flags:
            value = self.given.get(flag)
            if value:
                changes[flag] = tuple(absolute(path) for path in value)
        return self.replace(**changes)

