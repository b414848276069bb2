"""A method defined outside the package — one module with its class and its
registry entry, loaded as a plugin — is a method everywhere: in Python, in
``settings()`` round trips, under the contract every registered method meets, on
the command line (``--custom_objects plugin.py --method toy --toy_scale 3``, with
its flag in ``--help``) and in the run's tables."""

import csv
import textwrap

import numpy as np
import pytest
from absl.testing import flagsaver

from test_contract import (check_bounds, check_errors, check_in_tf_function,  # noqa: F401
                           check_invariances, check_nan_isolation, nan_model)
import cli_support
from cli_support import parsed_flags  # noqa: F401
from tf_smoothtaylor import demo
from tf_smoothtaylor.cli import main as cli
from tf_smoothtaylor.methods import BY_NAME, registry

PLUGIN = textwrap.dedent('''
    """Toy: the gradient scaled, ``A(x) = s ∇f(x)``."""

    from tf_smoothtaylor.engine import Scheme
    from tf_smoothtaylor.engine import checks
    from tf_smoothtaylor.methods import Explainer, register
    from tf_smoothtaylor.methods.options import Option


    class ToyScheme(Scheme):
        """One point per image, z = x, weight s."""

        def __init__(self, *, scale):
            super().__init__()
            self.point_weight = scale

        def points(self, x, params, keys, k):
            return x, None, None


    @register("toy")
    class ToyScaledGradient(Explainer):
        """s · ∇f(x)."""

        options = {"scale": Option("The toy's factor s", flag="toy_scale", above=0)}

        def __init__(self, model, *, scale: float = 2.0, batch_size: int = 64,
                     seed: int = 0, jit_compile: bool = False):
            super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
            self.scale = checks.positive_float("scale", scale)

        def make_scheme(self):
            return ToyScheme(scale=self.scale)
''')


# The toy, registered from its own file as ``--custom_objects`` imports it.
plugin = cli_support.plugin_fixture("toy_method_plugin", PLUGIN, lambda: registry.unregister("toy"))


def test_the_toy_is_a_method_in_python_with_its_closed_form(plugin, linear):
    model, weights = linear
    toy = BY_NAME["toy"]
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype(np.float32)
    maps = toy(model, scale=3.0)(x, np.array([0, 2, 1], np.int32)).numpy()
    for i, target in enumerate([0, 2, 1]):
        np.testing.assert_allclose(maps[i].ravel(), 3.0 * weights[:, target], rtol=1e-5)
    assert toy(model, scale=3.0).settings()["scale"] == 3.0
    with pytest.raises(ValueError, match="scale"):
        toy(model, scale=-1.0)
    assert "ToyScaledGradient" not in registry.monte_carlo()


def test_the_toy_meets_the_contract(plugin, cnn, nan_model, images):
    check_invariances(BY_NAME["toy"], dict(scale=0.5), cnn, images)
    check_errors(BY_NAME["toy"], dict(scale=0.5), cnn, images)
    check_nan_isolation(BY_NAME["toy"], dict(scale=0.5), nan_model, images)
    check_in_tf_function(BY_NAME["toy"], dict(scale=0.5), cnn, images)
    check_bounds(BY_NAME["toy"], dict(scale=0.5), cnn)


def test_the_toy_on_the_command_line_and_in_the_run_tables(plugin, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli._parse_flags(["tf-smoothtaylor", "--custom_objects", plugin, "--help"])
    text = capsys.readouterr().out
    assert "toy: --toy_scale" in text and "--toy_scale: The toy's factor s (> 0)" in text
    with flagsaver.flagsaver():
        rest = cli._parse_flags(["tf-smoothtaylor", "evaluate", f"--custom_objects={plugin}",
                                 "--method", "gradient", "--method", "toy",
                                 "--toy_scale", "3", "--metric", "autvc",
                                 "--output_dir", str(tmp_path),
                                 "--images", demo.sample_paths()[0],
                                 "--images", demo.sample_paths()[1]])
        cli.main(rest)
    with open(tmp_path / "index.csv") as handle:
        rows = {(r["id"], r["method"]): r for r in csv.DictReader(handle)}
    assert {method for _, method in rows} == {"gradient", "toy"}
    for (identifier, method), row in rows.items():
        if method == "toy":
            np.testing.assert_allclose(
                np.load(tmp_path / row["npy"]),
                3.0 * np.load(tmp_path / rows[(identifier, "gradient")]["npy"]), rtol=1e-5)
    assert "| toy |" in (tmp_path / "summary.md").read_text()
    with open(tmp_path / "metrics.csv") as handle:
        assert {r["method"] for r in csv.DictReader(handle)} == {"gradient", "toy"}
