"""The command line and its runs: the flags and modes (``main``, the
``tf-smoothtaylor`` command), a run's settings (``config``), inputs (``inputs``),
what each mode does (``commands``), processing and progress (``runs``), the tables
(``tables``), Apache Beam pipelines (``beam``) and quiet logs (``quiet``). The top
layer: it may import every other; nothing below imports it or Apache Beam.

Importing a module of this package defines no flag and loads no TensorFlow: the
flags live in ``main``, which only the command imports (Beam and Dask workers
import ``runs`` and ``inputs`` without them).
"""

from tf_smoothtaylor.engine.lazy import lazy_attributes

# tf_smoothtaylor.cli.run(), as before the command moved into ``main``.
__getattr__, __dir__ = lazy_attributes(__name__, {"run": f"{__name__}.main"})
