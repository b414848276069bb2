"""Relevance mass on the known evidence of the three ground-truth tasks (tabular
features 3, 7, 10; the series' pulse window; the text's keyword token), per method:
the share of |relevance| on the evidence, mean ± standard error over the examples,
and chance (the evidence's share of the positions). Text is explained at the
embedding layer (``layer="embedding"``, one score per token).

    python examples/task_relevance.py [--count 64]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402
from tf_smoothtaylor.demo import tasks  # noqa: E402


def explainers(task, model):
    """The methods compared on ``task`` (Occlusion needs no gradients: not at a layer)."""
    layer = {"layer": "embedding"} if task == "text" else {}
    chosen = {
        "SmoothTaylor": tst.SmoothTaylor(model, num_roots=64, noise_scale=0.5, **layer),
        "IntegratedGradients": tst.IntegratedGradients(model, steps=32, **layer),
        "SmoothGrad": tst.SmoothGrad(model, num_samples=64, noise_scale=0.5, **layer),
        "Gradient": tst.Gradient(model, **layer),
        "GradientXInput": tst.GradientXInput(model, **layer),
    }
    if task != "text":
        chosen["Occlusion"] = tst.Occlusion(model, window=1 if task == "tabular" else 4,
                                            baseline=0.0)
    return chosen


def scores(task, attributions):
    """One score per feature, step or token."""
    if task == "text":
        return tst.position_scores(attributions).numpy()
    return tst.heatmap(attributions).numpy()


def table(count: int = 64, seed: int = 7):
    """``{task: {method: (mean, standard error)}}`` and chance per task."""
    results, chance = {}, {}
    for task in tasks.TASKS:
        data = tasks.generate(task, count, seed)
        model = tasks.load(task)
        chance[task] = float(data.masks.mean())
        results[task] = {}
        for name, explainer in explainers(task, model).items():
            mass = tasks.relevance_mass(scores(task, explainer(data.inputs, data.labels)),
                                        data.masks)
            results[task][name] = (float(np.mean(mass)),
                                   float(np.std(mass, ddof=1) / np.sqrt(len(mass))))
    return results, chance


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64)
    args = parser.parse_args()
    results, chance = table(args.count)
    methods = list(dict.fromkeys(m for task in results.values() for m in task))
    print("| method | " + " | ".join(tasks.TASKS) + " |")
    print("|---|" + "---|" * len(tasks.TASKS))
    for method in methods:
        cells = [f"{results[t][method][0]:.3f} ± {results[t][method][1]:.3f}"
                 if method in results[t] else "—" for t in tasks.TASKS]
        print(f"| {method} | " + " | ".join(cells) + " |")
    print("| chance | " + " | ".join(f"{chance[t]:.3f}" for t in tasks.TASKS) + " |")
    print(f"\nrelevance mass (share of |relevance| on the evidence), mean ± standard "
          f"error over {args.count} examples per task, each explained for its label.")


if __name__ == "__main__":
    main()
