"""How a Monte Carlo map settles as draws are added.

For the Monte Carlo methods (``methods.registry.monte_carlo()``), draw k of an image
is the same in every run (keyed by the image and k), so the maps with R = 8,
16, 32, ... draws are prefixes of one sequence of draws: the curves show one
run growing. Per image and R: the heatmap's relative Monte Carlo error
``‖SE(h)‖₂ / ‖h‖₂`` (falls like 1/√R) and AUTVC (the paper's noise level:
falls as the map's noise averages out).
"""

from typing import Dict, Optional, Sequence

import numpy as np

from tf_smoothtaylor.methods.maps import heatmap
from tf_smoothtaylor.methods import registry
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.metrics.autvc import autvc


def draw_counts(largest: int, smallest: int = 8) -> list:
    """Doubling counts ``smallest, 2·smallest, ...`` below ``largest``, then ``largest``."""
    counts, count = [], smallest
    while count < largest:
        counts.append(count)
        count *= 2
    return counts + [largest]


def curves(explainer: Explainer, images, targets=None, *, counts: Sequence[int], keys=None,
           autvc_options: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """Relative error and AUTVC of ``explainer``'s maps with each number of draws.

    Args:
      explainer: A Monte Carlo explainer (``methods.registry.monte_carlo()``); its other
        settings are kept, the number of draws is set to each of ``counts``.
      images, targets, keys: As for ``explain``.
      counts: Numbers of draws (increasing, each ≥ 2).
      autvc_options: Settings of ``autvc`` (e.g. ``min_size``).

    Returns:
      ``{"counts": (C,), "relative_error": (C, B), "autvc": (C, B)}``.
    """
    setting = getattr(explainer, "draw_setting", None)
    if not explainer.independent_points or setting is None:
        raise ValueError("Expected a Monte Carlo explainer with independent draws "
                         f"({registry.monte_carlo()}). Received: {type(explainer).__name__}")
    counts = [int(c) for c in counts]
    if not counts or counts[0] < 2 or any(b <= a for a, b in zip(counts, counts[1:])):
        raise ValueError(f"Expected `counts` to increase from at least 2. Received: {counts}")
    relative, noise = [], []
    for count in counts:
        settings = dict(explainer.settings(), target_error=None, max_points=None)
        settings[setting] = count
        estimate = type(explainer)(explainer.spec, **settings)(images, targets, keys=keys,
                                                                return_error=True)
        relative.append(estimate.relative_error.numpy())
        noise.append(np.asarray(autvc(heatmap(estimate.attributions), **(autvc_options or {}))))
    return {"counts": np.array(counts), "relative_error": np.stack(relative),
            "autvc": np.stack(noise)}
