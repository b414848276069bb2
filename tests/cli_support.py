"""What the command-line test modules share: the environment of a fresh process,
running the command in one, and absl's flags marked as parsed."""

import os
import subprocess
import sys

import pytest
from absl import flags

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    yield


def run_cli(*args, timeout=300):
    """Runs ``python -m tf_smoothtaylor`` with ``args`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "tf_smoothtaylor", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def plugin_fixture(name: str, source: str, unregister):
    """A module-scoped fixture: a ``--custom_objects`` module, ``source`` written to
    ``name.py`` in a temporary folder and imported as the command imports it, the
    command line brought up to the registries; afterwards ``unregister()`` and the
    command line brought back. The fixture's value is the module's path."""

    @pytest.fixture(scope="module")
    def plugin(tmp_path_factory):
        from tf_smoothtaylor.cli import main as cli
        from tf_smoothtaylor.cli.loading import import_custom_objects
        path = tmp_path_factory.mktemp("plugin") / f"{name}.py"
        path.write_text(source)
        import_custom_objects([str(path)])
        cli.sync_registry()
        yield str(path)
        unregister()
        cli.sync_registry()

    return plugin
