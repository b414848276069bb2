"""Line charts drawn with numpy (no plotting library needed).

Just enough for figures a run writes beside its maps: panels of a few series
against a shared x axis (optionally logarithmic), the end values of each axis
written at its ends, a title per panel and a legend.
"""

from typing import List, Optional, Sequence

import numpy as np

from tf_smoothtaylor import _font

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75)]
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 22, 22


def _label(value: float) -> str:
    return f"{value:.3g}"


def _text(canvas, text, top, left, color=(0, 0, 0)):
    mask = _font.render(text, scale=1)
    height = min(mask.shape[0], canvas.shape[0] - top)
    width = min(mask.shape[1], canvas.shape[1] - left)
    if height > 0 and width > 0:
        canvas[top:top + height, left:left + width][mask[:height, :width]] = color


def _segment(canvas, a, b, color):
    """A 2-pixel line from (row, col) ``a`` to ``b``."""
    steps = int(max(abs(b[0] - a[0]), abs(b[1] - a[1]))) + 1
    rows = np.round(np.linspace(a[0], b[0], steps)).astype(int)
    cols = np.round(np.linspace(a[1], b[1], steps)).astype(int)
    for dr, dc in ((0, 0), (1, 0), (0, 1)):
        canvas[np.clip(rows + dr, 0, canvas.shape[0] - 1),
               np.clip(cols + dc, 0, canvas.shape[1] - 1)] = color


def panel(title: str, x: Sequence[float], series: Sequence[Sequence[float]], *,
          x_label: str = "", log_x: bool = True, size=(200, 300)) -> np.ndarray:
    """One panel (H, W, 3) uint8: each of ``series`` (y values at ``x``) as a line
    with markers, colours from ``COLORS`` in order; non-finite points are skipped."""
    height, width = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = np.asarray(x, np.float64)
    values = np.asarray(series, np.float64).reshape(len(series), len(x))
    if len(x) == 0 or (log_x and np.any(x <= 0)):
        raise ValueError("Expected at least one x value (positive for a log axis). "
                         f"Received: x={x.tolist()}")
    position_x = np.log(x) if log_x else x
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    if high - low <= 0:
        low, high = low - 0.5, high + 0.5
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    x0, x1 = position_x.min(), position_x.max()
    span_x = x1 - x0 if x1 > x0 else 1.0
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def place(px, py):
        return (_TOP + (high - py) / (high - low) * plot_h,
                _LEFT + (px - x0) / span_x * plot_w)

    canvas[_TOP:_TOP + plot_h + 1, _LEFT - 1] = 0                   # y axis
    canvas[_TOP + plot_h, _LEFT - 1:_LEFT + plot_w + 1] = 0         # x axis
    _text(canvas, title, 6, _LEFT)
    _text(canvas, _label(high - pad), _TOP, 4)
    _text(canvas, _label(low + pad), _TOP + plot_h - 8, 4)
    _text(canvas, _label(x.min()), height - _BOTTOM + 6, _LEFT - 4)
    _text(canvas, x_label + (" (log)" if log_x and x_label else ""), height - _BOTTOM + 6,
          _LEFT + plot_w // 2 - 3 * len(x_label) - 9)
    right = _label(x.max())
    _text(canvas, right, height - _BOTTOM + 6, width - _RIGHT - 6 * len(right))
    for index, ys in enumerate(values):
        color = COLORS[index % len(COLORS)]
        points = [place(px, py) for px, py in zip(position_x, ys) if np.isfinite(py)]
        for a, b in zip(points, points[1:]):
            _segment(canvas, a, b, color)
        for row, col in points:
            r, c = int(round(row)), int(round(col))
            canvas[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3] = color
    return canvas


def figure(rows: List[List[np.ndarray]], *, legend: Optional[Sequence[str]] = None,
           gap: int = 6) -> np.ndarray:
    """Panels of one size in rows, on a white sheet, with a legend line below
    (a coloured square per series label)."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    legend_height = 16 if legend else 0
    sheet = np.full((len(rows) * (height + gap) + gap + legend_height,
                     columns * (width + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = gap + r * (height + gap), gap + c * (width + gap)
            sheet[top:top + height, left:left + width] = image
    left, top = gap + _LEFT, sheet.shape[0] - legend_height
    for index, label in enumerate(legend or ()):
        color = COLORS[index % len(COLORS)]
        sheet[top + 2:top + 9, left:left + 7] = color
        _text(sheet, str(label), top + 2, left + 10)
        left += 10 + 6 * len(str(label)) + 14
    return sheet

