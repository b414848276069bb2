"""The engine: one compiled hot path shared by every method on it (``core``).

Modules, from the ground up: ``checks`` (argument checks), ``tracing`` (how the
package compiles), ``quadrature``, ``streams`` (counter-based random numbers keyed
by image and point), ``scheme`` (what a method describes: points, multipliers,
weights), ``moments`` (sums, standard errors, relative errors), ``report``
(warnings about maps), ``inputs`` (input checks), ``structure`` (a model's inputs:
the one explained, those held fixed), ``softmax`` (logits beneath a final
softmax), ``logits`` (a model's logits and its targets), ``at_layer`` (a model
seen from one of its layers), ``loop`` (the compiled chunk loop), ``auto`` (draws
chosen per image), ``core`` (``Calls``, ``Engine``). The engine imports no other
part of the package.

Names are resolved on first use, so importing one engine module does not import
the rest.
"""

from tf_smoothtaylor.engine.lazy import lazy_attributes

_CORE = ("Calls", "Engine", "MAX_CALLABLE_TARGETS", "graph_classes", "per_point")
__all__ = sorted(_CORE + ("Scheme",))
__getattr__, __dir__ = lazy_attributes(
    __name__, {**{name: f"{__name__}.core" for name in _CORE}, "Scheme": f"{__name__}.scheme"})
