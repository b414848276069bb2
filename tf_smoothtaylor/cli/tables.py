"""The tables and the picture of a finished run: index.csv, metrics.csv,
summary.md (mean ± standard error per method and metric, the Monte Carlo
precision, the images that could not be processed) and grid.png."""

import csv
import io
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tf_smoothtaylor.data.rundir import OutputDir
from tf_smoothtaylor.metrics import registry as metrics_registry

#: metric name -> whether lower is better (the table's ↓ / ↑): the registry's at import;
#: the tables read the registry itself, so metrics registered later count too.
LOWER_IS_BETTER = {name: entry.lower_is_better
                   for name, entry in metrics_registry.ENTRIES.items()}


def _arrow(name: str) -> str:
    entry = metrics_registry.ENTRIES.get(name)
    return "↑" if entry is not None and not entry.lower_is_better else "↓"



def summarize(records: List[dict], metric_names: Sequence[str]) -> List[dict]:
    """Mean ± standard error per method and metric over the records."""
    methods = list(dict.fromkeys(m for r in records for m in r["methods"]))  # first-seen order
    rows = []
    for method in methods:
        row = {"method": method}
        for name in metric_names:
            values = np.array([r["methods"][method][name] for r in records
                               if method in r["methods"]
                               and r["methods"][method].get(name) is not None], np.float64)
            mean = float(values.mean()) if len(values) else math.nan
            error = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
            row[name] = (mean, error, len(values))
        rows.append(row)
    return rows


def markdown(rows: List[dict], metric_names: Sequence[str]) -> str:
    """The summary as a Markdown table (mean ± standard error)."""
    arrows = {name: _arrow(name) for name in metric_names}
    header = "| method | " + " | ".join(f"{name} {arrows[name]}" for name in metric_names) + " |"
    lines = [header, "|---" * (len(metric_names) + 1) + "|"]
    for row in rows:
        cells = [f"{row[name][0]:.4f} ± {row[name][1]:.4f}" if not math.isnan(row[name][1])
                 else f"{row[name][0]:.4f}" for name in metric_names]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    count = max((row[name][2] for row in rows for name in metric_names), default=0)
    return "\n".join(lines) + f"\n\nmean ± standard error over {count} images.\n"


def write_tables(out: OutputDir, records: List[dict], metric_names: Sequence[str], *,
                 failures: Optional[List[dict]] = None) -> str:
    """index.csv, metrics.csv and summary.md; returns the Markdown summary.

    ``failures`` (id, source, error) are listed at the end of the summary."""
    columns = ["id", "source", "label", "target", "method", "npy", "heatmap_png", "overlay_png"]
    index_rows, metric_rows = [], []
    for record in records:
        for method, entry in record["methods"].items():
            base = {"id": record["id"], "source": record["source"], "label": record["label"],
                    "target": record["target"], "method": method}
            index_rows.append({**base, **entry["files"]})
            metric_rows.append({**base, **{k: v for k, v in entry.items() if k != "files"}})
    extra = sorted({k for row in metric_rows for k in row} - set(columns))
    tables = [("index.csv", index_rows, columns)]
    if extra:                                     # explain computes no metric: no metrics.csv
        tables.append(("metrics.csv", metric_rows, columns[:5] + extra))
    for name, rows, fields in tables:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        out.write(name, buffer.getvalue().encode())
    summary = markdown(summarize(records, metric_names), metric_names) if metric_names else ""
    if summary:
        summary += precision_lines(records)
    if failures:
        summary += failure_lines(failures)
    if summary:
        out.write("summary.md", summary.encode())
    return summary


def precision_lines(records: List[dict]) -> str:
    """The Monte Carlo precision of each stochastic method: draws per image and the
    heatmaps' relative standard error (mean and largest over the images)."""
    lines = []
    methods = list(dict.fromkeys(m for r in records for m in r["methods"]))
    for method in methods:
        entries = [r["methods"][method] for r in records if method in r["methods"]]
        errors = np.array([e["relative_error"] for e in entries
                           if e.get("relative_error") is not None], np.float64)
        if len(errors):
            points = np.array([int(e["num_points"]) for e in entries if "num_points" in e])
            spent = (str(points[0]) if len(set(points)) == 1 else
                     f"{points.mean():.0f} (mean; {points.min()}–{points.max()})")
            lines.append(f"| {method} | {spent} | {errors.mean():.3f} | {errors.max():.3f} |")
    if not lines:
        return ""
    return ("\nMonte Carlo precision (relative standard error of each heatmap, "
            "‖SE(h)‖₂ / ‖h‖₂):\n\n| method | draws per image | mean | largest |\n"
            "|---|---|---|---|\n" + "\n".join(lines) + "\n")


def failure_lines(failures: List[dict]) -> str:
    """The images a run could not process, one Markdown line each."""
    lines = [f"\n{len(failures)} image(s) could not be processed:\n"]
    lines += [f"- `{f['id']}` ({f['source']}): {f['error']}" for f in failures]
    return "\n".join(lines) + "\n"


GRID_IMAGES = 16


def write_grid(out: OutputDir, records: List[dict], max_images: Optional[int] = GRID_IMAGES,
               figure_format: str = "png",
               class_names: Optional[Sequence[str]] = None,
               vocabulary: Optional[Sequence[str]] = None,
               feature_names: Optional[Sequence[str]] = None) -> Tuple[str, int]:
    """grid.<format>: the first ``max_images`` images (None: all), each with one
    overlay per method (inputs that are not images: ``plot.run_examples``) (``plot.attributions``: diverging colours, a colour bar per
    map, the class (its name, given ``class_names``) and logit over each image, the
    run's scores under each title).
    Returns the file's path and how many images it shows."""
    if not records:
        return "", 0
    from tf_smoothtaylor.viz import plot
    shown = records[:max_images] if max_images else records
    if "input_png" not in shown[0]:
        figure = plot.run_examples(out, shown, class_names=class_names, vocabulary=vocabulary,
                                   feature_names=feature_names)
        name = f"grid.{figure_format}"
        out.write(name, plot.to_bytes(figure, figure_format))
        return out.files.join(out.path, name), len(shown)
    images, maps, _, metrics = plot.run_arrays(out, shown)
    figure = plot.attributions(
        images, maps, labels=[class_names[r["target"]] if class_names else f"class {r['target']}"
                              for r in shown],
        scores=[r["target_logit"] for r in shown], score_name="logit", metrics=metrics)
    name = f"grid.{figure_format}"
    out.write(name, plot.to_bytes(figure, figure_format))
    return out.files.join(out.path, name), len(shown)
