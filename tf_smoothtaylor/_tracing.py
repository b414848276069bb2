"""Keeps TensorFlow's "excessive retracing" warning for code that retraces.

TensorFlow counts traces per Python code object, not per compiled function: every
explainer and metric of this package compiles its own function once (by design),
and all of them share the code of one inner function, so the fifth explainer
built on a model triggers "5 out of the last 5 calls ... triggered tf.function
retracing" although nothing retraced. This filter drops that warning when it
names one of this package's compiled functions; every other one is kept.
"""

import logging

_OWN_FUNCTIONS = ("Engine._build.<locals>.attribute", "LogitModel.__call__",
                  "AUPC._build.<locals>.curve", "VariantScorer._build.<locals>.run",
                  "_step.<locals>.step")


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
