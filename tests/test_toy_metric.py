"""A metric defined outside the package — one module with its builder and its
registry entry, loaded as a plugin — is a metric everywhere: in Python
(``metrics.registry.functions``), on the command line (``--custom_objects plugin.py
--metric toy_mass``, listed in ``--help``), in the run's records and tables with its
direction (↑: higher is better)."""

import csv
import json
import textwrap

import numpy as np
import pytest
from absl.testing import flagsaver

import cli_support
from cli_support import parsed_flags  # noqa: F401
from tf_smoothtaylor import demo
from tf_smoothtaylor.cli import main as cli
from tf_smoothtaylor.metrics import registry

PLUGIN = textwrap.dedent('''
    """Toy metric: the share of a map's absolute relevance in its top half of rows."""

    import tensorflow as tf

    from tf_smoothtaylor.metrics.registry import register


    @register("toy_mass", lower_is_better=False)
    def toy_mass(spec, *, rows: float = 0.5):
        def scores(images, maps, targets, masks):
            mass = tf.abs(tf.convert_to_tensor(maps, tf.float32))
            top = int(round(rows * mass.shape[1]))
            return (tf.reduce_sum(mass[:, :top], axis=[1, 2])
                    / tf.reduce_sum(mass, axis=[1, 2]))
        return scores
''')


def _top_half_share(heatmap: np.ndarray) -> float:
    mass = np.abs(heatmap)
    return float(mass[:mass.shape[0] // 2].sum() / mass.sum())


# The toy, registered from its own file as ``--custom_objects`` imports it.
plugin = cli_support.plugin_fixture("toy_metric_plugin", PLUGIN, lambda: registry.unregister("toy_mass"))


def test_the_toy_metric_in_python_with_its_known_values(plugin):
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, :2] = 1.0                      # all in the top half
    maps[1] = -1.0                         # half
    scores = registry.functions(None, ("toy_mass",), {})["toy_mass"](None, maps, None, None)
    np.testing.assert_allclose(scores, [1.0, 0.5])
    assert registry.ENTRIES["toy_mass"].lower_is_better is False


def test_the_toy_metric_on_the_command_line_and_in_the_run_tables(plugin, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli._parse_flags(["tf-smoothtaylor", f"--custom_objects={plugin}", "--help"])
    assert "toy_mass" in capsys.readouterr().out.split("Metrics (--metric):")[1].split("\n")[0]
    with flagsaver.flagsaver():
        rest = cli._parse_flags(["tf-smoothtaylor", "evaluate", "--custom_objects", plugin,
                                 "--method", "gradient", "--metric", "toy_mass",
                                 "--metric", "autvc", "--output_dir", str(tmp_path),
                                 "--images", demo.sample_paths()[0],
                                 "--images", demo.sample_paths()[1]])
        cli.main(rest)
    from tf_smoothtaylor.methods.maps import heatmap
    with open(tmp_path / "index.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        record = json.loads((tmp_path / "results" / f"{row['id']}.json").read_text())
        expected = _top_half_share(heatmap(np.load(tmp_path / row["npy"])[None])[0].numpy())
        assert record["methods"]["gradient"]["toy_mass"] == pytest.approx(expected, rel=1e-5)
    summary = (tmp_path / "summary.md").read_text()
    assert "toy_mass ↑" in summary and "autvc ↓" in summary
    with open(tmp_path / "metrics.csv") as handle:
        assert "toy_mass" in next(csv.reader(handle))
