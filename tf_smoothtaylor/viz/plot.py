"""Figures on matplotlib: attribution maps, metric curves, convergence, adaptive noising;
for inputs that are not images, ``tokens``, ``features`` and ``series`` (from
``viz.sequences``).

Every function returns a ``matplotlib.figure.Figure`` made without ``pyplot`` (no
window, no global state, nothing shown): a notebook displays it, ``fig.savefig``
writes PNG, PDF or SVG.

Colour scales. A signed map ``h`` (``sign="all"``) is drawn on a diverging
colormap with limits ``±v``, ``v`` the ``clip_percentile``-th percentile of
``|h|`` (values beyond are clipped), so that white is 0, red positive evidence and
blue negative; ``"positive"``/``"negative"`` show ``max(±h, 0)`` and
``"absolute"`` ``|h|`` on a sequential colormap from 0 to ``v``. With
``share_scale=True`` the methods of one image share ``v`` (the largest), so their
colours compare; otherwise each map has its own. The colour bar of each map shows
its scale in the map's own units (attribution per pixel, summed over channels).
"""

from typing import Mapping, Optional, Sequence

import numpy as np

from tf_smoothtaylor.viz.palette import (DIVERGING, FORMATS, SEQUENTIAL,
                                         figure_class as _figure_class, scale_of, to_bytes)
from tf_smoothtaylor.viz.sequences import features, series, tokens

__all__ = ["FORMATS", "SIGNS", "attributions", "convergence", "curves", "features",
           "noise_search", "run", "run_arrays", "run_examples", "scale_of", "series",
           "signed_view", "to_bytes", "tokens"]

SIGNS = ("all", "positive", "negative", "absolute")


def _figure(rows: int, columns: int, *, width: float = 2.6, height: float = 2.6,
            grid: bool = False):
    """A figure of ``rows × columns`` axes, each ``width × height`` inches. ``grid``:
    fixed margins in inches (room for three title lines over each map and a colour
    bar beside it) instead of matplotlib's constrained layout, whose cost grows with
    the number of axes (a 12-image grid: 1.4 s of layout)."""
    Shown = _figure_class()
    if not grid:
        figure = Shown(figsize=(columns * width, rows * height), layout="constrained")
        return figure, figure.subplots(rows, columns, squeeze=False)
    title, gap, left, right, between = 0.62, 0.1, 0.1, 0.6, 0.65     # inches
    figure = Shown(figsize=(columns * width, rows * height))
    cell_height = (rows * height - title - gap - (rows - 1) * (title + gap)) / rows
    cell_width = (columns * width - left - right - (columns - 1) * between) / columns
    axes = figure.subplots(rows, columns, squeeze=False, gridspec_kw=dict(
        left=left / (columns * width), right=1 - right / (columns * width),
        top=1 - title / (rows * height), bottom=gap / (rows * height),
        hspace=(title + gap) / cell_height, wspace=between / cell_width))
    return figure, axes


def _heatmaps(maps) -> np.ndarray:
    """(B, H, W) float64 from heatmaps (B, H, W) or attributions (B, H, W, C)."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    if maps.ndim != 3:
        raise ValueError("Expected maps of shape (batch, height, width) or attributions "
                         f"(batch, height, width, channels). Received: shape {maps.shape}")
    return maps


def signed_view(heatmap: np.ndarray, sign: str) -> np.ndarray:
    """What is drawn of a heatmap for ``sign`` (see the module docstring)."""
    if sign == "all":
        return heatmap
    if sign == "positive":
        return np.maximum(heatmap, 0.0)
    if sign == "negative":
        return np.maximum(-heatmap, 0.0)
    return np.abs(heatmap)


SHORT_NAMES = {"aupc": "AUPC", "autvc": "AUTVC", "relevance_mass": "mass",
               "relative_error": "rel. error", "deletion": "deletion", "insertion": "insertion"}


def _title(name: str, i: int, metrics: Optional[Mapping[str, Mapping[str, Sequence]]]) -> str:
    """The method's name, then its scores for image ``i``, two per line."""
    parts = [f"{SHORT_NAMES.get(metric, metric)} {float(np.asarray(values)[i]):.3g}"
             for metric, values in ((metrics or {}).get(name) or {}).items()]
    lines = ["  ".join(parts[k:k + 2]) for k in range(0, len(parts), 2)]
    return "\n".join([name] + lines)


def attributions(images, maps, *, methods: Optional[Sequence[str]] = None, labels=None,
                 scores=None, score_name: str = "score",
                 class_names: Optional[Sequence[str]] = None,
                 metrics: Optional[Mapping[str, Mapping[str, Sequence]]] = None,
                 sign: str = "all", overlay: bool = True, cmap: Optional[str] = None,
                 clip_percentile: float = 99.5, colorbar: bool = True,
                 share_scale: bool = False, alpha: float = 0.75, ax=None):
    """One row per image: the image, then one map per method, each with a colour bar.

    Args:
      images: (B, H, W, 3) pixels in [0, 1] (or (B, H, W, 1)); None to draw the
        maps alone.
      maps: A dict ``method -> maps`` (heatmaps (B, H, W) or attributions
        (B, H, W, C), summed over channels), or one array (then ``methods`` names it).
      methods: The columns' order (default: the dict's).
      labels: Per image the explained class (int) or a name, shown over the image.
      scores: Per image the model's score of that class, shown with it (named
        ``score_name``, e.g. "logit" or "p").
      class_names: Names of the class indices in ``labels``.
      metrics: ``{method: {metric: (B,) values}}`` written under each map's title
        (e.g. ``{"smooth_taylor": {"autvc": values}}``).
      sign: ``"all"``, ``"positive"``, ``"negative"`` or ``"absolute"``.
      overlay: Draw each map over the image in grey (its opacity grows with |h|);
        else the map alone.
      cmap: A matplotlib colormap name (default: diverging for ``"all"``,
        sequential otherwise).
      clip_percentile: Percentile of |h| that sets the colour limit ``v``.
      colorbar: A colour bar per map.
      share_scale: One ``v`` per image (row), the largest of its methods.
      alpha: Largest opacity of an overlaid map.
      ax: A matplotlib ``Axes`` to draw one map into (one image, one method; over
        the image when ``images`` is given), e.g. a panel of the caller's figure.

    Returns:
      A ``matplotlib.figure.Figure`` with ``B × (1 + M)`` axes (``B × M`` without
      images), titled; with ``ax``, the figure ``ax`` belongs to.
    """
    if sign not in SIGNS:
        raise ValueError(f"Expected `sign` to be one of {SIGNS}. Received: sign={sign!r}")
    if not 0 < clip_percentile <= 100:
        raise ValueError("Expected `clip_percentile` in (0, 100]. "
                         f"Received: clip_percentile={clip_percentile!r}")
    if not isinstance(maps, Mapping):
        maps = {(methods or ["attributions"])[0]: maps}
    methods = list(methods or maps)
    missing = [name for name in methods if name not in maps]
    if missing:
        raise ValueError(f"Expected maps for every method of `methods`. Received: none for "
                         f"{missing}")
    drawn = {name: _heatmaps(maps[name]) for name in methods}
    count, size = next(iter(drawn.values())).shape[0], next(iter(drawn.values())).shape[1:]
    if any(value.shape != (count,) + size for value in drawn.values()):
        raise ValueError("Expected every method's maps to have the same shape. Received: "
                         + ", ".join(f"{k} {v.shape}" for k, v in drawn.items()))
    pixels = None
    if images is not None:
        pixels = np.clip(np.asarray(images, np.float64), 0.0, 1.0)
        if pixels.shape[:3] != (count,) + size:
            raise ValueError(f"Expected `images` of shape {(count,) + size + (3,)} to match "
                             f"the maps. Received: {pixels.shape}")
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
    colormap = cmap or (DIVERGING if sign == "all" else SEQUENTIAL)
    lower = -1.0 if sign == "all" else 0.0
    if ax is not None:
        if count != 1 or len(methods) != 1:
            raise ValueError("Expected one image and one method with `ax`. Received: "
                             f"{count} images, methods {methods}")
        view = signed_view(drawn[methods[0]][0], sign)
        _draw(ax.figure, ax, view, scale_of(view, clip_percentile), lower, colormap,
              None if pixels is None else pixels[0], overlay, alpha, colorbar,
              label=sign == "all")
        ax.set_title(_title(methods[0], 0, metrics), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return ax.figure
    first = 1 if pixels is not None else 0
    figure, axes = _figure(count, first + len(methods), grid=True)
    for i in range(count):
        views = {name: signed_view(drawn[name][i], sign) for name in methods}
        limits = {name: scale_of(view, clip_percentile) for name, view in views.items()}
        if share_scale:
            limits = dict.fromkeys(methods, max(limits.values()))
        if pixels is not None:
            axis = axes[i, 0]
            axis.imshow(pixels[i], interpolation="nearest")
            axis.set_title(_image_title(i, labels, scores, score_name, class_names),
                           fontsize=9)
        for j, name in enumerate(methods):
            axis = axes[i, first + j]
            _draw(figure, axis, views[name], limits[name], lower, colormap,
                  None if pixels is None else pixels[i], overlay, alpha, colorbar,
                  label=sign == "all" and j == len(methods) - 1)
            axis.set_title(_title(name, i, metrics), fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    return figure


def _draw(figure, axis, view, v, lower, colormap, pixels, overlay, alpha, colorbar, *,
          label: bool):
    """One map on ``axis``: over the image in grey (opacity ``alpha·|h|/v``) or alone,
    colour limits ``[lower·v, v]``, with its colour bar (and the sign convention)."""
    if pixels is not None and overlay:
        axis.imshow(pixels.mean(axis=-1), cmap="gray", vmin=0, vmax=1,
                    interpolation="nearest")
        opacity = alpha * np.clip(np.abs(view) / v, 0.0, 1.0)
        shown = axis.imshow(view, cmap=colormap, vmin=lower * v, vmax=v, alpha=opacity,
                            interpolation="nearest")
    else:
        shown = axis.imshow(view, cmap=colormap, vmin=lower * v, vmax=v,
                            interpolation="nearest")
    if colorbar:
        bar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.03, shrink=0.9)
        bar.solids.set_alpha(1.0)
        bar.ax.tick_params(labelsize=7)
        if label:
            bar.set_label("− against · for +", fontsize=7)


def _image_title(i, labels, scores, score_name, class_names) -> str:
    if labels is None:
        return "image"
    label = np.asarray(labels)[i] if not isinstance(labels, (list, tuple)) else labels[i]
    if class_names is not None and isinstance(label, (int, np.integer)):
        label = class_names[int(label)]
    title = str(label)
    if scores is not None:
        title += f"\n{score_name} {float(np.asarray(scores)[i]):.3g}"
    return title


def curves(results: Mapping[str, object], *, name: str = "AUPC", x_label: str = "step",
           y_label: str = "target logit (normalised)"):
    """Per method, the mean curve over images with a band of ± one standard error.

    Args:
      results: ``{method: result}`` where a result has ``.curves`` (B, S + 1) (AUPC,
        deletion, insertion) or is that array.
      name: The metric's name (the title).
      x_label, y_label: The axes' labels.

    Returns:
      A ``Figure`` with one axes, one line per method.
    """
    figure, axes = _figure(1, 1, width=4.5, height=3.2)
    axis = axes[0, 0]
    for method, result in results.items():
        values = np.asarray(getattr(result, "curves", result), np.float64)
        if values.ndim != 2:
            raise ValueError(f"Expected curves of shape (images, steps) for {method!r}. "
                             f"Received: shape {values.shape}")
        steps = np.arange(values.shape[1])
        mean = values.mean(axis=0)
        error = (values.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1
                 else np.zeros_like(mean))
        (line,) = axis.plot(steps, mean, label=method)
        axis.fill_between(steps, mean - error, mean + error, color=line.get_color(), alpha=0.2)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(f"{name} curves (mean ± standard error over images)", fontsize=9)
    axis.legend(fontsize=8)
    return figure


def convergence(tables: Mapping[str, Mapping[str, np.ndarray]], *,
                labels: Optional[Sequence[str]] = None, target: Optional[float] = None):
    """Per method, the heatmap's relative error and AUTVC against the number of draws
    (log–log for the error), one line per image, and the target error if given.

    Args:
      tables: ``{method: convergence.curves(...)}`` (``counts`` (C,),
        ``relative_error`` (C, B), ``autvc`` (C, B)).
      labels: One name per image.
      target: A relative error to mark (e.g. ``"auto"``'s ``target_error``).
    """
    figure, axes = _figure(len(tables), 2, width=4.0, height=3.0)
    for row, (method, table) in enumerate(tables.items()):
        counts = np.asarray(table["counts"])
        for column, key in enumerate(("relative_error", "autvc")):
            axis = axes[row, column]
            values = np.asarray(table[key], np.float64)
            for b in range(values.shape[1]):
                label = labels[b] if labels is not None else f"image {b}"
                axis.plot(counts, values[:, b], marker="o", markersize=3, label=label)
            axis.set_xscale("log", base=2)
            if key == "relative_error":
                axis.set_yscale("log")
                if target is not None:
                    axis.axhline(target, color="k", linestyle="--", linewidth=1,
                                 label=f"target {target:g}")
            axis.set_xlabel("draws")
            axis.set_title(f"{method}: {key.replace('_', ' ')}", fontsize=9)
        axes[row, 0].legend(fontsize=7)
    return figure


def noise_search(result, *, labels: Optional[Sequence[str]] = None):
    """Adaptive noising: the objective against σ as the search went, per image, the
    chosen σ marked.

    Args:
      result: An ``AdaptiveResult`` (``history_noise_scale``, ``history_objective``
        (I + 1, B), ``noise_scale`` (B,)).
    """
    sigmas = np.asarray(result.history_noise_scale, np.float64)
    scores = np.asarray(result.history_objective, np.float64)
    chosen = np.asarray(result.noise_scale, np.float64)
    figure, axes = _figure(1, 1, width=4.5, height=3.2)
    axis = axes[0, 0]
    for b in range(sigmas.shape[1]):
        kept = np.isfinite(sigmas[:, b]) & np.isfinite(scores[:, b])
        label = labels[b] if labels is not None else f"image {b}"
        (line,) = axis.plot(sigmas[kept, b], scores[kept, b], marker="o", markersize=4,
                            linewidth=0.8, alpha=0.8, label=label)
        axis.axvline(chosen[b], color=line.get_color(), linestyle=":", linewidth=1)
    axis.set_xlabel("σ (noise scale)")
    axis.set_ylabel("objective")
    axis.set_title("adaptive noising, in search order (dotted: the σ chosen)", fontsize=9)
    axis.legend(fontsize=8)
    return figure


def run(output_dir: str, *, max_images: Optional[int] = None, **options):
    """The attribution figure of a finished run directory: its images' overlays from
    the saved maps, titled with the target and the run's scores.

    Args:
      output_dir: A directory written by ``tf-smoothtaylor explain/evaluate``.
      max_images: The most images shown (default: all).
      options: Passed to :func:`attributions` (``sign``, ``share_scale``, ...).
    """
    from tf_smoothtaylor.data.rundir import OutputDir
    out = OutputDir(output_dir)
    records = out.results()
    if not records:
        raise ValueError(f"Expected a run directory with finished images. Received: "
                         f"{output_dir!r} with none")
    images, maps, labels, metrics = run_arrays(out, records[:max_images])
    options.setdefault("labels", labels)
    options.setdefault("metrics", metrics)
    return attributions(images, maps, **options)


def run_examples(out, records, *, class_names: Optional[Sequence[str]] = None,
                 vocabulary: Optional[Sequence[str]] = None,
                 feature_names: Optional[Sequence[str]] = None):
    """The figure of a run's examples that are not images: per example and method,
    signed bars of the top features (tabular rows), the series over its relevance
    band, or the text coloured per token (token ids explained at a layer, shown as
    ``vocabulary``'s tokens; tabular features named ``feature_names``) (``features``,
    ``series``, ``tokens``), titled with the example, method, class and logit."""
    import io
    values = np.stack([np.load(io.BytesIO(out.read(record["input_npy"])))
                       for record in records])
    rows, labels, inputs = [], [], []
    for record, x in zip(records, values):
        target = record["target"]
        name = class_names[target] if class_names else f"class {target}"
        for method, entry in record["methods"].items():
            rows.append(np.load(io.BytesIO(out.read(entry["files"]["npy"]))))
            labels.append(f"{record['id']} · {method} · {name} (logit "
                          f"{record['target_logit']:.3g})")
            inputs.append(x)
    maps = np.stack(rows)
    if values.ndim == 2 and maps.ndim == 3:            # token ids, attributions (L, D)
        ids = np.stack(inputs).astype(np.int64)
        words = [[vocabulary[i] if vocabulary is not None and 0 <= i < len(vocabulary)
                  else str(i) for i in row] for row in ids]
        return tokens(words, maps.sum(axis=-1), labels=labels)
    if values.ndim == 2:
        names = list(feature_names) if feature_names is not None and len(
            feature_names) == values.shape[1] else None
        return features(maps, names=names, values=np.stack(inputs), labels=labels)
    if values.ndim == 3:
        return series(np.stack(inputs), maps.sum(axis=-1), labels=labels)
    raise ValueError(f"Expected tabular rows or series in the run. Received: inputs of "
                     f"shape {values.shape[1:]}")


def run_arrays(out, records):
    """``(images, maps, labels, metrics)`` of the ``records`` of a run directory, as
    :func:`attributions` takes them."""
    import io
    import tensorflow as tf
    methods = list(records[0]["methods"])
    pixels = np.stack([tf.io.decode_png(out.read(record["input_png"]), channels=3).numpy()
                       for record in records]) / 255.0
    maps, metrics = {}, {}
    for method in methods:
        maps[method] = np.stack([np.load(io.BytesIO(out.read(
            record["methods"][method]["files"]["npy"]))) for record in records])
        names = [key for key, value in records[0]["methods"][method].items()
                 if isinstance(value, (int, float)) and key not in ("num_points",)]
        metrics[method] = {key: [record["methods"][method].get(key, np.nan)
                                 for record in records] for key in names}
    labels = [record.get("target_name") or record["target"] for record in records]
    return pixels, maps, labels, metrics

