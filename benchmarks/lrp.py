"""LRP: images per second against a bare batched gradient, and every composite on the
Keras Applications (finite, not constant, relevance conserved).

Three parts, each printed as a table:

* ``speed``: LRP maps per second of each composite divided by the batched input
  gradients per second of a bare ``tf.function`` loop on the same model and batch
  (interleaved repetitions, median; target >= 0.5: one rule-modified backward
  pass);
* ``models``: every composite on MobileNetV2, ResNet50, DenseNet121, VGG16 and
  EfficientNetB0 (``weights=None``, BatchNormalization statistics set from one
  batch of images so activations keep their scale): finite, spread (std of the
  map) and Σ R / f_t(x) per image;
* ``demo``: AUPC, AUTVC and relevance mass of the composites, SmoothTaylor and
  IG on the bundled demo (the command line's metric settings), and the model
  randomisation check (Adebayo et al. 2018): the Spearman correlation of |map|
  between the trained demo model and a copy with every weight permuted, and with
  only the top (dense) layer's weights permuted (a map that explains the model
  should change: low is good).

Usage:
  python benchmarks/lrp.py speed [--model mobilenet_v2] [--batch 16] [--repeats 5]
  python benchmarks/lrp.py models [--size 64]
  python benchmarks/lrp.py demo
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402
from tf_smoothtaylor.lrp import PRESETS  # noqa: E402

SPEED_COMPOSITES = ("epsilon", "epsilon_gamma_box", "epsilon_plus", "deep_taylor",
                    "epsilon_alpha2_beta1")
APPLICATIONS = ("MobileNetV2", "ResNet50", "DenseNet121", "VGG16", "EfficientNetB0")


def speed(args):
    spec = tst.models.wrap(_common.build_model(args.model, args.size),
                           preprocess=lambda p: 2.0 * p - 1.0,
                           deprocess=lambda x: (x + 1.0) / 2.0)
    x = tf.constant(_common.images(args.batch, args.size))
    target = tf.zeros([args.batch], tf.int32)
    bare = _common.bare_gradient_loop(spec.model)
    bare(x, target).numpy()
    explainers = {name: tst.LRP(spec, composite=name, batch_size=args.batch)
                  for name in SPEED_COMPOSITES}
    for explainer in explainers.values():
        explainer(x, 0).numpy()                         # trace
    ratios = {name: [] for name in explainers}
    bare_rates = []
    for _ in range(args.repeats):
        for name, explainer in explainers.items():
            bare_time = _common.timed(bare, x, target)
            method_time = _common.timed(explainer, x, 0)
            bare_rates.append(args.batch / bare_time)
            ratios[name].append(bare_time / method_time)
    print(f"model={args.model} size={args.size} batch={args.batch} repeats={args.repeats} "
          f"bare={statistics.median(bare_rates):.2f} images/s")
    print("| composite | LRP ÷ bare gradient, median (min–max) |\n|---|---|")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.3f} "
              f"({min(values):.3f}–{max(values):.3f}) |")


def _calibrated(name: str, size: int):
    """A weights=None application whose BatchNormalization statistics are those of one
    batch (momentum 0 for one training-mode call): a random network otherwise shrinks
    its activations layer after layer (MobileNetV2's logits: ~1e-11)."""
    keras.utils.set_random_seed(0)
    spec = tst.models.load(name, weights=None, input_size=size)
    layers = [layer for layer in spec.model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    pixels = tf.random.stateless_uniform((16, size, size, 3), (3, 4))
    spec.model(spec.preprocess(pixels), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return spec


def models(args):
    print(f"size={args.size}, 2 images of uniform pixels, top-1 class; Σ R / f_t(x) per image")
    print("| model | " + " | ".join(PRESETS) + " |\n|---|" + "---|" * len(PRESETS))
    for name in APPLICATIONS:
        spec = _calibrated(name, args.size)
        pixels = tf.random.stateless_uniform((2, args.size, args.size, 3), (1, 2))
        x = spec.preprocess(pixels)
        logits = spec.model(x).numpy()
        cells = []
        for composite in PRESETS:
            maps = tst.LRP(spec, composite=composite, batch_size=2)(x).numpy()
            top = logits.max(axis=1)
            ratio = maps.sum(axis=(1, 2, 3)) / top
            finite = np.isfinite(maps).all()
            spread = maps.reshape(2, -1).std(axis=1).min()
            flag = "" if finite and spread > 0 else " ✗"
            cells.append(" / ".join(f"{r:.3g}" for r in ratio) + flag)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def demo(args):
    from tf_smoothtaylor import demo as bundled
    spec = bundled.load()
    pixels, _, masks, _ = bundled.samples()
    x = spec.preprocess(tf.constant(pixels, tf.float32))
    explainers = {f"lrp {name}": tst.LRP(spec, composite=name) for name in PRESETS}
    explainers["smooth_taylor"] = tst.SmoothTaylor(spec)
    explainers["integrated_gradients"] = tst.IntegratedGradients(spec)
    from tf_smoothtaylor.cli.commands import metric_options
    from tf_smoothtaylor.cli.config import RunConfig
    from tf_smoothtaylor.cli.runs import metric_functions
    scores = metric_functions(spec, ("aupc", "autvc", "relevance_mass"),   # the CLI's
                              metric_options(RunConfig(output_dir="unused"), spec))
    print("12 demo images, top-1 class; mean ± standard error")
    print("| method | aupc ↓ | autvc ↓ | relevance_mass ↑ | randomised ρ ↓ (all) | "
          "(top layer) |\n|---|---|---|---|---|---|")
    top = [spec.model.layers[-1].name]
    for name, explainer in explainers.items():
        maps = tst.heatmap(explainer(x))
        values = {name: np.asarray(score(x, maps, None, masks))
                  for name, score in scores.items()}
        values["randomisation"] = tst.metrics.randomization_check(explainer,
                                                                  images=x).numpy()
        values["top"] = tst.metrics.randomization_check(explainer, images=x,
                                                        layers=top).numpy()
        cells = [f"{v.mean():.4f} ± {v.std(ddof=1) / np.sqrt(len(v)):.4f}"
                 for v in values.values()]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main():
    parser = _common.parser(__doc__)
    parser.add_argument("part", choices=("speed", "models", "demo"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.part == "models" and args.size == 224:
        args.size = 64
    {"speed": speed, "models": models, "demo": demo}[args.part](args)


if __name__ == "__main__":
    main()
