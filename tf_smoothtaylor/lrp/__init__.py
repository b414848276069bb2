"""Layer-wise relevance propagation on Keras 3: rules, composites and the rewritten
forward pass whose gradient is relevance (the explainers: ``methods.lrp``)."""

from tf_smoothtaylor.lrp.composites import PRESETS, Composite, preset
from tf_smoothtaylor.lrp.graph import RelevanceFunction
from tf_smoothtaylor.lrp.rules import (AlphaBeta, Box, Epsilon, Flat, Gamma, Rule, WSquare,
                                       Zero, ZPlus, made_relative)

__all__ = ["AlphaBeta", "Box", "Composite", "Epsilon", "Flat", "Gamma", "PRESETS",
           "RelevanceFunction", "Rule", "WSquare", "ZPlus", "Zero",
           "made_relative", "preset"]
