"""Attribution metrics: one value per example, batched and seeded.

The paper's metrics (lower is better for both):
* ``aupc`` — sensitivity by region perturbation (area under the perturbation curve);
* ``autvc`` — multi-scale average total variation (noise level).

The wider suite:
* ``deletion`` / ``insertion`` — curves and AUC, most relevant pixels first;
* ``sensitivity_n`` — correlation of relevance sums with output drops (Ancona et al.);
* ``infidelity`` and ``max_sensitivity`` — Yeh et al. 2019;
* ``relevance_mass`` — fraction of relevance inside a ground-truth mask;
* ``randomization_check`` — Spearman correlation of maps before/after destroying the
  model's weights (Adebayo et al.).

``AUPC``, ``Deletion``, ``Insertion``, ``SensitivityN`` and ``Infidelity`` are the
model-based metrics as classes: built once, they compile once per image shape and
can be called on batch after batch; the functions build a new one per call.

One result convention: a metric returns its per-image values as a (B,) tensor,
or, when it also has curves (AUPC, deletion, insertion), a named result whose
``.score`` is that (B,) tensor (``.aupc`` / ``.auc`` name the same values);
``score_of`` takes either.

``simpson`` is the integration rule of AUPC and AUTVC; ``fitted_settings`` gives
the paper's AUPC/AUTVC settings scaled to an image size.
"""

from tf_smoothtaylor.metrics._stats import pearson, spearman
from tf_smoothtaylor.metrics.aupc import AUPC, AUPCResult, aupc, select_regions
from tf_smoothtaylor.metrics.autvc import autvc, pyramid, saliency_norm
from tf_smoothtaylor.metrics.deletion import (CurveResult, Deletion, Insertion, deletion,
                                              insertion)
from tf_smoothtaylor.metrics.infidelity import Infidelity, infidelity
from tf_smoothtaylor.metrics.integrate import simpson
from tf_smoothtaylor.metrics.localisation import relevance_mass
from tf_smoothtaylor.metrics.max_sensitivity import max_sensitivity
from tf_smoothtaylor.metrics.randomization import randomization_check, randomized_model
from tf_smoothtaylor.metrics.sensitivity_n import SensitivityN, sensitivity_n
from tf_smoothtaylor.metrics.settings import fitted_settings


def score_of(result):
    """The per-image values (B,) of any metric's result (a tensor or ``.score``)."""
    return getattr(result, "score", result)


__all__ = ["AUPC", "AUPCResult", "CurveResult", "Deletion", "Infidelity", "Insertion",
           "SensitivityN", "aupc", "autvc", "deletion", "fitted_settings", "infidelity",
           "insertion",
           "max_sensitivity", "pearson", "pyramid", "randomization_check", "randomized_model",
           "relevance_mass", "saliency_norm", "score_of", "select_regions", "sensitivity_n",
           "simpson",
           "spearman"]
