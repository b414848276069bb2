"""Runs the paper's experiments and writes its tables (Goh et al., ICPR 2020).

Protocol (PAPER.md): the first N ILSVRC2012 validation images by file name
(resize 256, centre crop 224), DenseNet121 and ResNet152 with ImageNet weights,
explained on their top-1 logit; AUPC (k = 15, L = 30, P = 50) and AUTVC.

* Table I   — Integrated Gradients, M = 50: zero baseline, and N ∈ {1, 5, 10, 20}
  uniform-noise baselines;
* Table II  — SmoothTaylor: R ∈ {100, 150, 200} × σ ∈ {0.3, 0.5, 0.7}, and the
  extremes σ ∈ {1e-4, 1e-2, 1, 2} with R = 10;
* Table III — adaptive noising (R = 150) with the AUPC and the AUTVC objective,
  next to SmoothTaylor σ = 0.5, R = 150.

Every configuration is a resumable run in ``OUTPUT/<model>/<config>/``: rerun the
same command after an interruption and finished images are not recomputed.

With ImageNet and a GPU (the paper's 1000 images):
  python examples/reproduce_paper.py --manual_dir ~/imagenet --limit 1000 \\
      --output_dir paper_tables

``--quick`` shrinks every grid and metric for a plumbing run (tests use it with
a tiny local ILSVRC2012_img_val.tar and ``--weights none``).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tf_smoothtaylor import data, models  # noqa: E402
from tf_smoothtaylor.cli import runs  # noqa: E402
from tf_smoothtaylor.integrations.adaptive import AdaptiveNoising  # noqa: E402
from tf_smoothtaylor.methods import IntegratedGradients, SmoothTaylor  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("manual_dir", None, "Directory with ILSVRC2012_img_val.tar.")
flags.DEFINE_string("data_dir", None, "tfds data directory.")
flags.DEFINE_string("output_dir", "paper_tables", "Where runs and tables go.")
flags.DEFINE_integer("limit", 1000, "First N validation images.", lower_bound=1)
flags.DEFINE_multi_string("models", ["densenet121", "resnet152"], "Registry models.")
flags.DEFINE_string("weights", "imagenet", "'imagenet' or 'none' (plumbing only).")
flags.DEFINE_integer("size", None, "Input size (default: the model's).", lower_bound=32)
flags.DEFINE_integer("batch_size", 64, "Gradient evaluations per chunk.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed.", lower_bound=0)
flags.DEFINE_bool("quick", False, "Tiny grids and metrics (plumbing run).")
flags.mark_flag_as_required("manual_dir")


def grids(quick: bool):
    """Configurations per table: name -> (kind, settings)."""
    if quick:
        return {
            "I": {"ig_zero": ("ig", dict(steps=2)),
                  "ig_noise_n1": ("ig", dict(steps=2, baseline="uniform", num_baselines=1))},
            "II": {"st_r2_s0.5": ("st", dict(num_roots=2, noise_scale=0.5)),
                   "st_r2_s1e-04": ("st", dict(num_roots=2, noise_scale=1e-4))},
            "III": {"st_r2_s0.5": ("st", dict(num_roots=2, noise_scale=0.5)),
                    "adaptive_aupc": ("adaptive", dict(objective="aupc", num_roots=2,
                                                       max_iterations=1)),
                    "adaptive_autvc": ("adaptive", dict(objective="autvc", num_roots=2,
                                                        max_iterations=1))},
        }
    table_i = {"ig_zero": ("ig", dict(steps=50))}
    table_i.update({f"ig_noise_n{n}": ("ig", dict(steps=50, baseline="uniform", num_baselines=n))
                    for n in (1, 5, 10, 20)})
    table_ii = {f"st_r{r}_s{s}": ("st", dict(num_roots=r, noise_scale=s))
                for r in (100, 150, 200) for s in (0.3, 0.5, 0.7)}
    table_ii.update({f"st_r10_s{s:g}": ("st", dict(num_roots=10, noise_scale=s))
                     for s in (1e-4, 1e-2, 0.5, 1.0, 2.0)})
    table_iii = {"st_r150_s0.5": ("st", dict(num_roots=150, noise_scale=0.5)),
                 "adaptive_aupc": ("adaptive", dict(objective="aupc", num_roots=150)),
                 "adaptive_autvc": ("adaptive", dict(objective="autvc", num_roots=150))}
    return {"I": table_i, "II": table_ii, "III": table_iii}


def metric_options(quick: bool, seed: int, batch_size: int):
    if quick:
        return {"aupc": dict(window=4, num_regions=4, num_copies=4, seed=seed,
                             batch_size=batch_size), "autvc": dict(min_size=8)}
    return {"aupc": dict(window=15, num_regions=30, num_copies=50, seed=seed,
                         batch_size=batch_size), "autvc": dict(min_size=30)}


def explainer_for(kind, settings, spec, options, cache):
    common = dict(batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    if kind == "ig":
        explainer = IntegratedGradients(spec, **settings, **common)
        return lambda x, t, k: (explainer(x, t, keys=k), {})
    if kind == "st":
        # One compiled SmoothTaylor per R: σ is a per-call value, so the σ grid of
        # Table II reuses it (the same roots as a new explainer with that σ).
        roots, sigma = settings["num_roots"], settings["noise_scale"]
        if roots not in cache:
            cache[roots] = SmoothTaylor(spec, num_roots=roots, **common)
        explainer = cache[roots]
        return lambda x, t, k: (explainer(x, t, keys=k, noise_scale=sigma), {})
    search = AdaptiveNoising(spec, objective_options=options[settings["objective"]],
                             **settings, **common)
    # The search runs SmoothTaylor with per-image σ: share the compiled one of this R.
    search.explainer = cache.setdefault(settings["num_roots"], search.explainer)

    def adapt(x, t, k):
        result = search(x, t, keys=k)
        return result.attributions, {"noise_scale": result.noise_scale.numpy(),
                                     "aupc_or_autvc_best": result.objective.numpy()}
    return adapt


def main(argv):
    del argv
    options = metric_options(FLAGS.quick, FLAGS.seed, FLAGS.batch_size)
    weights = None if FLAGS.weights.lower() == "none" else FLAGS.weights
    tables = {name: [] for name in ("I", "II", "III")}
    for model_name in FLAGS.models:
        spec = models.load(model_name, weights=weights, input_size=FLAGS.size)
        size = spec.input_size[0]
        functions = runs.metric_functions(spec, ["aupc", "autvc"], options)
        done, explainers = {}, {}
        for table, configs in grids(FLAGS.quick).items():
            for config, (kind, settings) in configs.items():
                if config not in done:
                    out = runs.OutputDir(
                        os.path.join(FLAGS.output_dir, model_name, config),
                        {"model": model_name, "weights": FLAGS.weights, "size": size,
                         "limit": FLAGS.limit, "config": config, "settings": settings,
                         "metrics": options, "seed": FLAGS.seed})
                    batches = data.imagenet_validation(
                        FLAGS.manual_dir, data_dir=FLAGS.data_dir, limit=FLAGS.limit, size=size,
                        resize=int(round(size * 256 / 224)), batch_size=8)
                    records = runs.process(spec, batches,
                                           {config: explainer_for(kind, settings, spec, options,
                                                                   explainers)},
                                           out, metrics=functions, total=FLAGS.limit,
                                           limit=FLAGS.limit)
                    runs.write_tables(out, records, ["aupc", "autvc"])
                    done[config] = runs.summarize(records, ["aupc", "autvc"])[0]
                tables[table].append((model_name, config, done[config]))
    titles = {"I": "Table I — Integrated Gradients", "II": "Table II — SmoothTaylor",
              "III": "Table III — adaptive noising"}
    sections = []
    for table, rows in tables.items():
        lines = [f"## {titles[table]}", "", "| model | configuration | AUPC | AUTVC |",
                 "|---|---|---|---|"]
        for model_name, config, row in rows:
            cells = [f"{row[m][0]:.3f} ± {row[m][1]:.3f}" for m in ("aupc", "autvc")]
            lines.append(f"| {model_name} | {config} | {cells[0]} | {cells[1]} |")
        section = "\n".join(lines) + "\n"
        runs.atomic_write(os.path.join(FLAGS.output_dir, f"table_{table}.md"), section.encode())
        sections.append(section)
    header = (f"# Reproduction of Goh et al. (ICPR 2020)\n\nFirst {FLAGS.limit} ILSVRC2012 "
              f"validation images; weights: {FLAGS.weights}; mean ± standard error; lower is "
              "better.\n\n")
    text = header + "\n".join(sections)
    runs.atomic_write(os.path.join(FLAGS.output_dir, "tables.md"), text.encode())
    print(text)


if __name__ == "__main__":
    app.run(main)
