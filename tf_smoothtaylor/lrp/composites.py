"""Composites: which rule each linear layer gets, by its type and position.

A composite names a rule for dense layers, one for convolutions (Conv1D/2D/3D,
DepthwiseConv, SeparableConv) and, optionally, one for the *first* linear layer
(the one that sees the model's input, through padding, rescaling and
normalisation only). The presets follow the literature's names (Montavon et al.
2019; Kohlbrenner et al., IJCNN 2020):

=========================  ==========  ==========  =========
preset                     dense       conv        first
=========================  ==========  ==========  =========
``zero``                   LRP-0       LRP-0       —
``epsilon``                ε           ε           —
``gamma``                  γ           γ           —
``alpha1_beta0``           α1β0        α1β0        —
``epsilon_gamma_box``      ε           γ           box
``epsilon_plus``           ε           z⁺          —
``epsilon_plus_flat``      ε           z⁺          flat
``epsilon_alpha2_beta1``   ε           α2β1        —
``deep_taylor``            z⁺          z⁺          box
=========================  ==========  ==========  =========

``deep_taylor`` is Deep Taylor decomposition for ReLU networks (Montavon et al.,
Pattern Recognition 2017): z⁺ in the hidden layers, z^B at the input.
"""

import dataclasses
from typing import Dict, Optional, Tuple

from tf_smoothtaylor.lrp.rules import (AlphaBeta, Box, Epsilon, Flat, Gamma, Rule, Zero, ZPlus,
                                       made_relative)

__all__ = ["Composite", "PRESETS", "preset"]


@dataclasses.dataclass(frozen=True)
class Composite:
    """Rules by layer type and position.

    Attributes:
      dense: The rule of Dense layers.
      conv: The rule of convolutions.
      first: The rule of the first linear layer(s), or None for their type's rule.

    Example:
      >>> Composite(dense=Epsilon(0.25), conv=Gamma(0.25), first=WSquare())
    """

    dense: Rule
    conv: Rule
    first: Optional[Rule] = None

    def rule_for(self, kind: str, first: bool) -> Rule:
        """The rule of a linear layer of ``kind`` ("dense" or "conv")."""
        if first and self.first is not None:
            return self.first
        return self.dense if kind == "dense" else self.conv

    @property
    def rules(self) -> Tuple[Rule, ...]:
        """Every rule the composite names."""
        return tuple(rule for rule in (self.first, self.dense, self.conv) if rule is not None)

    @property
    def needs_bounds(self) -> bool:
        """Whether a rule needs the input's bounds (the box rule)."""
        return any(rule.needs_bounds for rule in self.rules)

    @property
    def conserves(self) -> bool:
        """Whether every rule passes on all the relevance it receives (``Rule.conserves``)."""
        return all(rule.conserves for rule in self.rules)

    @property
    def relative(self) -> bool:
        """Whether every stabiliser scales with its layer's outputs (``made_relative``)."""
        return all(rule.relative for rule in self.rules)

    def made_relative(self) -> "Composite":
        """The same composite with every rule's stabiliser relative to its layer's
        outputs (``rules.made_relative``; weight-free sums too)."""
        first = None if self.first is None else made_relative(self.first)
        return Composite(made_relative(self.dense), made_relative(self.conv), first)


PRESETS = ("zero", "epsilon", "gamma", "alpha1_beta0", "epsilon_gamma_box", "epsilon_plus",
           "epsilon_plus_flat", "epsilon_alpha2_beta1", "deep_taylor")


def preset(name: str, *, epsilon: float, gamma: float, relative: bool = False) -> Composite:
    """The preset ``name`` (see the module docstring) with the given ε and γ, its
    stabilisers relative to each layer's outputs with ``relative``."""
    eps = Epsilon(epsilon)
    table: Dict[str, Composite] = {
        "zero": Composite(Zero(), Zero()),
        "epsilon": Composite(eps, eps),
        "gamma": Composite(Gamma(gamma), Gamma(gamma)),
        "alpha1_beta0": Composite(AlphaBeta(1, 0), AlphaBeta(1, 0)),
        "epsilon_gamma_box": Composite(eps, Gamma(gamma), Box()),
        "epsilon_plus": Composite(eps, ZPlus()),
        "epsilon_plus_flat": Composite(eps, ZPlus(), Flat()),
        "epsilon_alpha2_beta1": Composite(eps, AlphaBeta(2, 1)),
        "deep_taylor": Composite(ZPlus(), ZPlus(), Box()),
    }
    if name not in table:
        raise ValueError(f"Expected `composite` to be one of {', '.join(PRESETS)} or a "
                         f"Composite. Received: composite={name!r}")
    return table[name].made_relative() if relative else table[name]

