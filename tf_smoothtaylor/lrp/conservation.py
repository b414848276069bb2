"""Whether an LRP map kept the relevance it started with.

Relevance starts as the target logit ``f_t(x)`` and is redistributed layer by layer;
a rule that conserves it (``Rule.conserves``) keeps ``Σ_i R_i = f_t(x)`` up to
outputs with no contribution of its kind, while ε and γ give biases a share. Either
way a stabiliser far above a layer's outputs absorbs everything: an untrained
model's logits can be 1e-11, below ε = 1e-6, and its map is then exactly zero. A
zero map looks like an answer ("nothing matters"), so it is reported:

* *vanished*: ``Σ_i |R_i| < VANISHED · |f_t(x)|`` (with ``f_t(x) ≠ 0``);
* *lost*, for a composite whose every rule conserves: ``|Σ_i R_i − f_t(x)| >
  LOST · |f_t(x)|``.
"""

import warnings
from typing import Sequence

import numpy as np

from tf_smoothtaylor.lrp.composites import Composite
from tf_smoothtaylor.lrp.rules import STABILIZER, AlphaBeta, Epsilon, ZPlus

VANISHED = 1e-3
LOST = 0.5
_LISTED = 10           # images named in a warning


def _named(indices: Sequence[int], batch: int) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_LISTED])
    more = f" and {len(indices) - _LISTED} more" if len(indices) > _LISTED else ""
    return f"{shown}{more} (of {batch})"


def _causes(composite: Composite, logits: np.ndarray) -> str:
    """The likely causes of vanished relevance, for ``logits`` of the images."""
    causes = []
    epsilons = [rule.epsilon for rule in composite.rules
                if isinstance(rule, Epsilon) and not rule.relative]
    if epsilons and np.max(np.abs(logits)) < 10 * max(epsilons):
        causes.append(f"the target logits (|f| ≤ {np.max(np.abs(logits)):.3g}) are below "
                      f"the ε rule's ε = {max(epsilons):g}, which absorbs them")
    if not composite.relative:
        causes.append(f"the layers' outputs are near or below the rules' stabiliser "
                      f"({STABILIZER:g}), as in an untrained model with tiny activations")
    if any(isinstance(rule, (ZPlus, AlphaBeta)) for rule in composite.rules):
        causes.append("outputs have no positive contribution to pass relevance to under "
                      "z⁺/αβ (positive by their bias alone)")
    return "; or ".join(causes) if causes else "the rules' stabilisers absorb it"


def _advice(composite: Composite) -> str:
    if composite.relative:
        return "Try another composite, or a smaller epsilon."
    return ("Pass relative_epsilon=True (--lrp_relative_epsilon): every stabiliser is then "
            "scaled to its layer's outputs for each image; or a smaller epsilon.")


def warn_if_lost(relevance: np.ndarray, logits: np.ndarray, composite: Composite) -> None:
    """Warns, naming the images, when a map's relevance vanished or (conserving
    rules) is far from the target logit (module docstring).

    Args:
      relevance: (B, ...) LRP maps.
      logits: (B,) each image's target logit ``f_t(x)``.
      composite: The rules that made the maps.
    """
    batch = relevance.shape[0]
    flat = relevance.reshape(batch, -1).astype(np.float64)
    logits = np.asarray(logits, np.float64)
    size = np.abs(logits)
    usable = np.isfinite(flat).all(axis=1) & np.isfinite(logits) & (size > 0)
    vanished = usable & (np.abs(flat).sum(axis=1) < VANISHED * size)
    if vanished.any():
        warnings.warn(
            f"LRP's relevance vanished for images {_named(np.flatnonzero(vanished), batch)}: "
            f"their maps hold less than {VANISHED:g} of the target logit f_t(x) they start "
            f"from (Σ|R| vs |f|), so they say nothing about the image. Likely cause: "
            f"{_causes(composite, logits[vanished])}. {_advice(composite)}", stacklevel=3)
    if composite.conserves:
        lost = usable & ~vanished & (np.abs(flat.sum(axis=1) - logits) > LOST * size)
        if lost.any():
            ratios = flat.sum(axis=1)[lost] / logits[lost]
            kept = ", ".join(f"{k:.3g}" for k in ratios[:_LISTED])
            warnings.warn(
                f"LRP's relevance is far from the target logit for images "
                f"{_named(np.flatnonzero(lost), batch)} although every rule of the "
                f"composite conserves it: Σ R / f_t(x) = {kept}. Likely cause: "
                f"{_causes(composite, logits[lost])}.", stacklevel=3)


__all__ = ["LOST", "VANISHED", "warn_if_lost"]
