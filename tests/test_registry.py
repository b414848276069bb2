"""The method and metric registries: names, tables and messages derived from one
entry each; the README's method and metric tables equal to the registries; few
files name a method."""

import ast
import os
import re
import sys

import pytest

from tf_smoothtaylor.methods import BY_NAME, ENTRIES, registry
from tf_smoothtaylor.metrics import registry as metrics_registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tf_smoothtaylor")


def _table(heading: str):
    """The rows (lists of cells) of the first table after ``heading`` in README.md."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not set(cells[0]) <= {"-"}:
                rows.append(cells)
        elif rows:
            break
    return rows[1:]


def test_the_readme_method_table_lists_exactly_the_registered_methods():
    named = {name for row in _table("## Methods") for name in re.findall(r"`(\w+)`", row[0])}
    assert named == {cls.__name__ for cls in BY_NAME.values()}


def test_the_readme_metric_table_gives_each_registered_metric_its_direction():
    better = {}
    for row in _table("| function | what it measures | better |"):
        names = re.findall(r"`?(\w+)(?:\(|`)", row[0])
        directions = [d.strip() for d in row[-1].split("/")]
        for name, direction in zip(names, directions * len(names) if len(directions) == 1
                                   else directions):
            better[name] = direction
    for name, entry in metrics_registry.ENTRIES.items():
        assert better.get(name) == ("lower" if entry.lower_is_better else "higher"), name


def test_the_command_line_and_the_tables_take_the_registries():
    from tf_smoothtaylor.cli import main as cli
    from tf_smoothtaylor.cli import tables
    assert cli.METHODS == tuple(BY_NAME)
    assert cli.METRICS == tuple(metrics_registry.ENTRIES)
    assert tables.LOWER_IS_BETTER == {name: entry.lower_is_better
                                      for name, entry in metrics_registry.ENTRIES.items()}
    words = registry.monte_carlo(flags=True)
    assert cli.FLAGS["include_error"].help.endswith(f"({words}).")
    listed = {part.split(" ")[0] for part in words.split(", ")}
    classes = {part.split(" ")[0] for part in registry.monte_carlo().split(", ")}
    for name, entry in ENTRIES.items():
        assert (name in listed) == bool(entry.monte_carlo), name
        assert (entry.cls.__name__ in classes) == bool(entry.monte_carlo), name


def test_the_package_names_come_from_the_registry():
    import tf_smoothtaylor as tst
    from tf_smoothtaylor.integrations import serving
    classes = {cls.__name__ for cls in BY_NAME.values()}
    assert classes <= set(tst.__all__) and classes <= set(dir(tst))
    assert all(getattr(tst, name) is getattr(tst.methods, name) for name in classes)
    assert registry.default_name() == "smooth_taylor"
    assert "registry's default method" in serving.export.__doc__
    with pytest.raises(AttributeError):
        tst.NoSuchMethod


def test_registering_refuses_a_taken_or_malformed_name():
    with pytest.raises(ValueError, match="taken by SmoothTaylor"):
        registry.register("smooth_taylor")(type("Other", (), {}))
    with pytest.raises(ValueError, match="lower-case identifier"):
        registry.register("Smooth Taylor")
    with pytest.raises(ValueError, match="default method is already 'smooth_taylor'"):
        registry.register("toy_default", default=True)(type("Toy", (), {}))
    with pytest.raises(ValueError, match="`needs`"):
        registry.register("toy_needs", needs="pixels")
    with pytest.raises(ValueError, match="taken by"):
        metrics_registry.register("aupc", lower_is_better=True)(lambda spec: None)
    with pytest.raises(TypeError, match="lower_is_better"):
        metrics_registry.register("toy_direction", lower_is_better="yes")
    with pytest.raises(ValueError, match="among .*Received: 'nope'"):
        metrics_registry.functions(None, ("aupc", "nope"), {})
    assert "toy_needs" not in BY_NAME and "toy_direction" not in metrics_registry.ENTRIES


def _code_names(path: str) -> set:
    """Identifiers and string constants of a module's code (not its docstrings)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.rsplit(".", 1)[-1])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            found.add(node.value)
    return found


def test_each_method_is_named_in_at_most_three_package_files_besides_its_own():
    """A method's class name or registry name (as code, not prose) appears in at most
    three other package files (the methods package, and e.g. the command line's
    default pair, adaptive noising); the rest is derived from its registry entry. Plain words a
    registry name shares ("gradient") count only as class names."""
    names = {}
    for folder, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                names[os.path.relpath(path, ROOT)] = _code_names(path)
    words = {"gradient", "lrp"}
    for name, entry in ENTRIES.items():
        own = os.path.relpath(sys.modules[entry.cls.__module__].__file__, ROOT)
        marks = {entry.cls.__name__} | ({name} if name not in words else set())
        where = sorted(path for path, found in names.items() if path != own and found & marks)
        assert len(where) <= 3, (name, where)


def test_the_run_flags_are_made_from_the_run_config_fields():
    """Each run setting is declared once (``config.setting``): the flag's default,
    parser and help are the field's, and every flag of the command is a field or a
    method flag; parsing no flag gives the dataclass's defaults."""
    import dataclasses

    from absl.testing import flagsaver

    from tf_smoothtaylor.cli import main as cli
    from tf_smoothtaylor.cli.config import RunConfig
    fields = {field.name: field for field in dataclasses.fields(RunConfig)
              if "kind" in field.metadata}
    ours = {flag.name for flag in cli.FLAGS.get_flags_for_module(cli.__name__)}
    assert ours == set(fields) | set(cli.METHOD_FLAGS)
    for name, field in fields.items():
        default = None if field.default is dataclasses.MISSING else field.default
        assert cli.FLAGS[name].default == (list(default) if isinstance(default, tuple)
                                           else default), name
    with flagsaver.flagsaver():
        cli.FLAGS(["tf-smoothtaylor", "--output_dir=out"])
        parsed = RunConfig.from_flags(cli.FLAGS, method_flags=tuple(cli.METHOD_FLAGS))
    assert parsed == RunConfig(output_dir="out")
