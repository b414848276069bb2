"""The package's shape, read from its own source with ``ast`` (no hand-kept list of
imports): no import cycle of any length, layers that import only the layers below
them, the lower layers free of the command line and Apache Beam, no module over 400
lines."""

import ast
import os


ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "tf_smoothtaylor")
PACKAGE = "tf_smoothtaylor"

#: The layers from the ground up, each a sub-package of ``tf_smoothtaylor``: a module
#: may import its own layer and the layers before it, never one after it.
LAYERS = ("engine", "models", "lrp", "methods", "metrics", "data", "viz", "demo",
          "integrations", "cli")
#: The layers that may import Apache Beam or the command line's package.
TOP = ("cli",)
MAX_LINES = 400


def _modules():
    """``{dotted name: path}`` of every module of the package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for file in files:
            if not file.endswith(".py"):
                continue
            path = os.path.join(folder, file)
            parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_package(name, modules):
    return modules[name].endswith("__init__.py")


def _imports(name, path, modules):
    """The package's modules that ``name`` imports (anywhere in the file), and
    whether it imports Apache Beam."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    here = name if _is_package(name, modules) else name.rpartition(".")[0]
    targets, beam = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                beam |= alias.name.split(".")[0] == "apache_beam"
                if alias.name in modules:
                    targets.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[:len(here.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            beam |= source.split(".")[0] == "apache_beam"
            if source not in modules:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in modules else source)
    targets.discard(name)
    return targets, beam


def _graph():
    modules = _modules()
    edges, beam = {}, set()
    for name, path in modules.items():
        edges[name], uses_beam = _imports(name, path, modules)
        if uses_beam:
            beam.add(name)
    return modules, edges, beam


def _cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _layer(name):
    """The layer of a module (None for the package root and its entry points)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_walk_finds_the_imports_it_should():
    """The reader itself, on modules whose imports are known."""
    modules, edges, beam = _graph()
    assert f"{PACKAGE}.methods.base" in modules and f"{PACKAGE}.methods" in modules
    assert f"{PACKAGE}.methods.lrp" in edges[f"{PACKAGE}.methods"]
    assert any(name.endswith(".cli.beam_files") for name in beam)   # imports apache_beam
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_of_any_length():
    _, edges, _ = _graph()
    assert _cycles(edges) == []


def test_the_layers_import_only_the_layers_below_and_never_apache_beam():
    modules, edges, beam = _graph()
    upward = [(name, target) for name, targets in edges.items() for target in targets
              if _layer(name) and _layer(target)
              and LAYERS.index(_layer(target)) > LAYERS.index(_layer(name))]
    assert upward == [], "imports of a higher layer"
    low_beam = [name for name in beam if _layer(name) and _layer(name) not in TOP]
    assert low_beam == [], "Apache Beam imported below the command line"


def test_every_module_lives_in_a_layer():
    modules, _, beam = _graph()
    loose = [name for name in modules
             if _layer(name) is None and name not in (PACKAGE, f"{PACKAGE}.__main__")]
    assert loose == [], "modules outside every layer"
    assert [name for name in beam if _layer(name) not in TOP] == []


def test_no_module_over_400_lines():
    modules = _modules()
    long = {name: n for name, path in modules.items()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > MAX_LINES}
    assert long == {}


def test_the_engine_imports_no_other_part_of_the_package():
    """The foundation: every engine module imports only engine modules (no method,
    metric, model loading, command line or Beam)."""
    modules, edges, beam = _graph()
    engine = [name for name in modules if _layer(name) == "engine"]
    assert f"{PACKAGE}.engine.core" in engine and f"{PACKAGE}.engine.loop" in engine
    outside = [(name, target) for name in engine for target in edges[name]
               if _layer(target) != "engine"]
    assert outside == []
    assert not set(engine) & beam


def test_old_module_paths_are_the_moved_modules_with_a_deprecation_warning():
    """Code written for earlier versions keeps working: an old path imports the module
    at its new path (the same object: patching one patches the other, and the module
    keeps its own name and spec), with a DeprecationWarning naming the new path; the
    public names (``tst.plot``, ``tst.visualize``, ``tst.data``) need no warning."""
    import importlib
    import sys
    import warnings
    import tf_smoothtaylor as tst
    for old, new in sorted(tst._MOVED.items()):
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert module.__spec__.name == new and module.__name__ == new, old
        assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
            f"{old} moved to {new}; import it from there (the old path will be removed)"]
    from tf_smoothtaylor.rundir import OutputDir
    from tf_smoothtaylor.data.rundir import OutputDir as moved
    assert OutputDir is moved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tst.plot is importlib.import_module("tf_smoothtaylor.viz.plot")
        assert tst.visualize is importlib.import_module("tf_smoothtaylor.viz.pictures")
        assert tst.data.from_files is importlib.import_module(
            "tf_smoothtaylor.data.datasets").from_files
