"""How this package compiles, and TensorFlow's "excessive retracing" warning.

``graph_function`` is ``tf.function`` without AutoGraph: the package's traced code
writes its loops and branches as ``tf.while_loop``/``tf.cond``, so AutoGraph's
source conversion (which re-parses every Python function a trace reaches) would
only add to the first call's latency — it was most of the tracing time. Models
are unaffected: AutoGraph never converts code called through Keras.

TensorFlow counts traces per Python code object, not per compiled function: every
explainer and metric of this package compiles its own function once (by design),
and all of them share the code of one inner function, so the fifth explainer
built on a model triggers "5 out of the last 5 calls ... triggered tf.function
retracing" although nothing retraced. This filter drops that warning when it
names one of this package's compiled functions; every other one is kept.
"""

import logging
from typing import Callable, Optional

_OWN_FUNCTIONS = ("build.<locals>.attribute", "LogitModel.__call__",
                  "LogitModel.shared.<locals>.<lambda>",
                  "AUPC._build.<locals>.curve", "VariantScorer._build.<locals>.run",
                  "_step.<locals>.step", "GradCAM._function.<locals>.<lambda>")


def graph_function(func: Optional[Callable] = None, **options):
    """``tf.function(func, autograph=False, **options)`` (also as a decorator)."""
    import tensorflow as tf
    return tf.function(func, autograph=False, **options)


class _OwnRetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message
                    and any(name in message for name in _OWN_FUNCTIONS))


def install() -> None:
    """Adds the filter to TensorFlow's logger once (no TensorFlow import needed)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _OwnRetracingFilter) for f in logger.filters):
        logger.addFilter(_OwnRetracingFilter())
