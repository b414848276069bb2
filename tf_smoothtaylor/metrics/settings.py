"""The paper's metric settings, fitted to an image size.

At 224 px the paper uses AUPC windows of k = 15 px, L = 30 regions and P = 50
copies, and AUTVC levels down to 30 px. Smaller images get proportionally
smaller windows and pyramid floors (so CIFAR- or MNIST-sized maps are scored,
not refused or silently scored 0):

    k = clip(round(15 s / 224), 2, 15)          s = the shorter image side
    L = min(30, ⌊s / 2k⌋²)                      (always room without overlap)
    min_size = min(30, max(2, round(30 s / 224)), largest two-level floor)
"""

from typing import Dict

from tf_smoothtaylor.metrics.autvc import largest_min_size

PAPER = {"aupc": {"window": 15, "num_regions": 30, "num_copies": 50},
         "autvc": {"min_size": 30}}


def fitted_settings(height: int, width: int) -> Dict[str, dict]:
    """``{"aupc": {window, num_regions, num_copies}, "autvc": {min_size}}`` for H×W images."""
    side = min(int(height), int(width))
    paper_window, paper_regions = PAPER["aupc"]["window"], PAPER["aupc"]["num_regions"]
    paper_floor = PAPER["autvc"]["min_size"]
    window = min(paper_window, max(2, round(paper_window * side / 224)))
    return {"aupc": {"window": window,
                     "num_regions": min(paper_regions, (side // (2 * window)) ** 2),
                     "num_copies": PAPER["aupc"]["num_copies"]},
            "autvc": {"min_size": min(paper_floor, max(2, round(paper_floor * side / 224)),
                                      largest_min_size(height, width))}}
