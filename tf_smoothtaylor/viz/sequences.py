"""Figures of attributions that are not images: text coloured per token, signed bars
of the top features, a series with its relevance as a coloured band.

Colours follow ``plot``'s signed convention: a diverging colormap with limits ``±v``,
``v`` the ``clip_percentile``-th percentile of ``|s|`` over everything drawn in the
figure (values beyond are clipped), white is 0, red positive evidence, blue negative.
Every function returns a ``Figure`` made without ``pyplot`` (a notebook shows it,
``fig.savefig`` writes it).
"""

from typing import Optional, Sequence

import numpy as np

from tf_smoothtaylor.viz import palette

def _scores(scores, rank: int, name: str = "scores") -> np.ndarray:
    """float64 scores of ``rank`` (a single example may drop the batch axis)."""
    values = np.asarray(scores, np.float64)
    if values.ndim == rank - 1:
        values = values[None]
    if values.ndim != rank:
        raise ValueError(f"Expected `{name}` with {rank} axes (batch first). "
                         f"Received: shape {values.shape}")
    return values


def tokens(words: Sequence, scores, *, skip: Sequence[str] = ("[PAD]", "<pad>"),
           labels: Optional[Sequence[str]] = None, clip_percentile: float = 99.0,
           line_characters: int = 90):
    """Each example's tokens as text, each on a box coloured by its score.

    Args:
      words: The tokens' strings — one sequence per example (word pieces from the
        tokenizer, e.g. ``tokenizer.id_to_token``), or one sequence for one example.
      scores: (B, L) one score per token (``tst.position_scores``), or (L,).
      skip: Tokens not drawn (padding).
      labels: One title per example.
      clip_percentile: Sets ``v`` (see the module docstring).
      line_characters: Wrap lines at about this many characters.

    Returns:
      A ``Figure``: one axes per example, one text artist per token drawn, in order.
    """
    values = _scores(scores, 2)
    if len(words) and isinstance(words[0], str):
        words = [words]
    if len(words) != len(values):
        raise ValueError(f"Expected one sequence of tokens per row of `scores` "
                         f"({len(values)}). Received: {len(words)} sequences")
    for i, row in enumerate(words):
        if len(row) != values.shape[1]:
            raise ValueError(f"Expected {values.shape[1]} tokens per example (the scores' "
                             f"length). Received: {len(row)} tokens for example {i}")
    shown = [[(str(w), s) for w, s in zip(row, values[i]) if str(w) not in set(skip)]
             for i, row in enumerate(words)]
    v = palette.scale_of(np.array([s for row in shown for _, s in row] or [0.0]),
                         clip_percentile)
    lines = [_wrap([w for w, _ in row], line_characters) for row in shown]
    heights = [0.35 + 0.28 * max(1, len(row_lines)) for row_lines in lines]
    figure = palette.new_figure(width=line_characters * 0.075, heights=heights)
    cmap = palette.colormap("all")
    for i, axis in enumerate(figure.axes):
        axis.set_axis_off()
        axis.set_xlim(0, line_characters)
        axis.set_ylim(len(lines[i]) + 0.2, -0.2)
        if labels is not None:
            axis.set_title(str(labels[i]), fontsize=8, loc="left")
        k = 0
        for line, positions in enumerate(lines[i]):
            for start in positions:
                word, score = shown[i][k]
                level = float(np.clip(score / v, -1.0, 1.0))
                axis.text(start, line + 0.5, word, family="monospace", fontsize=7,
                          va="center", ha="left", color="white" if abs(level) > 0.6 else "black",
                          bbox=dict(facecolor=cmap(0.5 + 0.5 * level), edgecolor="none",
                                    pad=1.0))
                k += 1
    palette.colorbar(figure, v, "token score")
    return figure


def _wrap(words: Sequence[str], width: int):
    """Start column of each word, per line, words separated by one space."""
    lines, current, column = [], [], 0
    for word in words:
        if current and column + len(word) > width:
            lines.append(current)
            current, column = [], 0
        current.append(column)
        column += len(word) + 1
    if current or not lines:
        lines.append(current)
    return lines


def features(scores, *, names: Optional[Sequence[str]] = None, values=None, top: int = 10,
             labels: Optional[Sequence[str]] = None):
    """Signed bars of each example's ``top`` features by |score|, largest on top.

    Args:
      scores: (B, F) one score per feature, or (F,).
      names: The F feature names (default ``f0`` … ``f{F−1}``).
      values: (B, F) the features' values, shown beside their names.
      top: Bars per example.
      labels: One title per example.

    Returns:
      A ``Figure``, one axes per example whose bars' widths are the scores (red > 0,
      blue < 0).
    """
    values_ = _scores(scores, 2)
    count = values_.shape[1]
    names = [f"f{j}" for j in range(count)] if names is None else [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"Expected {count} feature `names`. Received: {len(names)}")
    shown = None if values is None else _scores(values, 2, "values")
    if shown is not None and shown.shape != values_.shape:
        raise ValueError(f"Expected `values` of shape {values_.shape}. "
                         f"Received: {shown.shape}")
    top = max(1, min(int(top), count))
    figure = palette.new_figure(width=4.2, heights=[0.5 + 0.22 * top] * len(values_))
    for i, axis in enumerate(figure.axes):
        order = np.argsort(-np.abs(values_[i]), kind="stable")[:top]
        widths = values_[i][order]
        ticks = [names[j] if shown is None else f"{names[j]} = {shown[i, j]:.3g}"
                 for j in order]
        axis.barh(np.arange(top), widths, color=[palette.SIGN_COLOURS[w >= 0]
                                                 for w in widths])
        axis.set_yticks(np.arange(top), ticks, fontsize=7)
        axis.invert_yaxis()
        axis.axvline(0.0, color="black", linewidth=0.6)
        axis.tick_params(axis="x", labelsize=7)
        axis.set_xlabel("attribution", fontsize=7)
        if labels is not None:
            axis.set_title(str(labels[i]), fontsize=8, loc="left")
    return figure


def series(data, scores, *, channel_names: Optional[Sequence[str]] = None,
           labels: Optional[Sequence[str]] = None, clip_percentile: float = 99.0):
    """Each example's channels as lines over a band coloured by relevance per time step.

    Args:
      data: (B, T, C) series (or (T, C)).
      scores: (B, T) one score per step (``tst.heatmap``: all channels), drawn as one
        band behind all the example's lines; or attributions (B, T, C): one axes per
        channel, each over its own channel's band.
      channel_names: The C channel names (the legend).
      labels: One title per example.
      clip_percentile: Sets ``v`` (see the module docstring).

    Returns:
      A ``Figure``: per example one axes (scores (B, T)) or C axes (attributions).
    """
    lines = _scores(data, 3, "data")
    relevance = np.asarray(scores, np.float64)
    if relevance.ndim == lines.ndim - 1 and relevance.shape == lines.shape[1:]:
        relevance = relevance[None]
    per_channel = relevance.ndim == 3
    if relevance.shape != (lines.shape if per_channel else lines.shape[:2]):
        raise ValueError(f"Expected `scores` of shape {lines.shape[:2]} (one per step) or "
                         f"{lines.shape} (per channel). Received: {relevance.shape}")
    batch, steps, channels = lines.shape
    names = [f"channel {c}" for c in range(channels)] if channel_names is None else \
        [str(n) for n in channel_names]
    v = palette.scale_of(relevance, clip_percentile)
    rows = channels if per_channel else 1
    figure = palette.new_figure(width=6.0, heights=[1.3] * (batch * rows))
    axes = np.array(figure.axes).reshape(batch, rows)
    cmap = palette.colormap("all")
    for i in range(batch):
        for r in range(rows):
            axis = axes[i, r]
            band = relevance[i, :, r] if per_channel else relevance[i]
            shown = range(channels) if not per_channel else [r]
            low = min(float(lines[i, :, c].min()) for c in shown)
            high = max(float(lines[i, :, c].max()) for c in shown)
            pad = 0.05 * (high - low) + 1e-6
            axis.imshow(band[None, :], aspect="auto", cmap=cmap, vmin=-v, vmax=v,
                        extent=(-0.5, steps - 0.5, low - pad, high + pad), alpha=0.6,
                        interpolation="nearest")
            for c in shown:
                axis.plot(np.arange(steps), lines[i, :, c], linewidth=0.9, label=names[c])
            axis.set_xlim(-0.5, steps - 0.5)
            axis.tick_params(labelsize=7)
            title = [] if labels is None else [str(labels[i])]
            if per_channel:
                title.append(names[r])
            if title:
                axis.set_title(" · ".join(title), fontsize=8, loc="left")
            if not per_channel and channels > 1:
                axis.legend(fontsize=6, loc="upper right")
    axes[-1, -1].set_xlabel("time step", fontsize=7)
    palette.colorbar(figure, v, "relevance per step")
    return figure
