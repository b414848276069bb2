"""What every figure shares: the figure class a notebook shows, encoding, colour
scales and colormaps, stacked axes and a colour bar."""

import functools
from typing import Sequence

import numpy as np

DIVERGING, SEQUENTIAL = "RdBu_r", "inferno"
FORMATS = ("png", "pdf", "svg")
SIGN_COLOURS = {True: "#c0392b", False: "#2e6fba"}      # positive red, negative blue


def to_bytes(figure, figure_format: str = "png") -> bytes:
    """A figure encoded as PNG (100 dpi), PDF or SVG."""
    if figure_format not in FORMATS:
        raise ValueError(f"Expected a figure format among {FORMATS}. "
                         f"Received: {figure_format!r}")
    import io
    buffer = io.BytesIO()
    figure.savefig(buffer, format=figure_format, dpi=100)
    return buffer.getvalue()


@functools.lru_cache(maxsize=None)
def figure_class():
    """``Figure`` that a notebook displays as PNG without pyplot (made once; matplotlib
    is imported on the first figure, not with this module)."""
    from matplotlib.figure import Figure
    return type("Figure", (Figure,), {"_repr_png_": lambda self: to_bytes(self)})


def scale_of(heatmap: np.ndarray, clip_percentile: float) -> float:
    """``v``: the ``clip_percentile``-th percentile of ``|h|`` (1 for a zero map)."""
    heatmap = np.asarray(heatmap, np.float64)
    finite = np.abs(heatmap[np.isfinite(heatmap)])
    value = float(np.percentile(finite, clip_percentile)) if finite.size else 0.0
    return value if value > 0 else 1.0


def colormap(sign: str = "all"):
    """The diverging colormap for signed values, else the sequential one."""
    import matplotlib
    return matplotlib.colormaps[DIVERGING if sign == "all" else SEQUENTIAL]


def new_figure(*, width: float, heights: Sequence[float]):
    """A figure ``width`` inches wide with one axes per entry of ``heights`` (inches),
    stacked top to bottom, laid out by matplotlib's constrained layout."""
    figure = figure_class()(figsize=(width, float(sum(heights)) + 0.2), layout="constrained")
    figure.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    return figure


def colorbar(figure, v: float, label: str) -> None:
    """A horizontal colour bar from −v to v under all the figure's axes."""
    from matplotlib import cm, colors
    shown = cm.ScalarMappable(colors.Normalize(-v, v), colormap("all"))
    bar = figure.colorbar(shown, ax=figure.axes, orientation="horizontal", fraction=0.04,
                          pad=0.02, aspect=40)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
