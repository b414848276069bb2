"""``python -m tf_smoothtaylor`` runs the command line."""

from tf_smoothtaylor.cli.main import run

run()
