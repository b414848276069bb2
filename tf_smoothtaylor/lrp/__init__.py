"""Layer-wise relevance propagation on Keras 3: rules, composites, the open table of
layer handlers (``register``) and the rewritten forward pass whose gradient is
relevance (the explainers: ``methods.lrp``)."""

from tf_smoothtaylor.lrp.composites import PRESETS, Composite, preset
from tf_smoothtaylor.lrp.graph import (RelevanceFunction, gating, passing, proportional,
                                       routing)
from tf_smoothtaylor.lrp.table import Call, register, registered, unregister
from tf_smoothtaylor.lrp.rules import (AlphaBeta, Box, Epsilon, Flat, Gamma, Rule, WSquare,
                                       Zero, ZPlus, made_relative)

__all__ = ["AlphaBeta", "Box", "Call", "Composite", "Epsilon", "Flat", "Gamma", "PRESETS",
           "RelevanceFunction", "Rule", "WSquare", "ZPlus", "Zero", "gating",
           "made_relative", "passing", "preset", "proportional", "register", "registered",
           "routing", "unregister"]
