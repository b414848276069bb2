"""Attribution metrics: one value per example, batched and seeded.

* ``aupc`` — sensitivity by region perturbation (the paper's AUPC).
* ``autvc`` — multi-scale average total variation (the paper's noise level).
* ``simpson`` — the integration rule both use.
"""

from tf_smoothtaylor.metrics.aupc import AUPC, AUPCResult, aupc, select_regions
from tf_smoothtaylor.metrics.autvc import autvc, pyramid, saliency_norm
from tf_smoothtaylor.metrics.integrate import simpson

__all__ = ["AUPC", "AUPCResult", "aupc", "autvc", "pyramid", "saliency_norm",
           "select_regions", "simpson"]
