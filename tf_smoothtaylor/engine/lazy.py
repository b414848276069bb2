"""Names of a package resolved on first use (PEP 562), so that importing the package
(or one of its modules) imports nothing else until a name is asked for."""

import importlib
import sys
from typing import Any, Callable, List, Mapping, Tuple


def lazy_attributes(package: str, names: Mapping[str, str]
                    ) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for ``names``: each public name
    -> the module that defines it (a dotted path). A name is imported once, then
    kept in the package's namespace.

    Example:
      >>> __getattr__, __dir__ = lazy_attributes(__name__, {"Engine": f"{__name__}.core"})
    """
    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
