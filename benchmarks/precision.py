"""Monte Carlo precision: what ``return_error=True`` costs and what it reports.

Prints, measured in one run:
* the cost of ``return_error=True`` for SmoothTaylor: time with errors divided by
  time without, interleaved repetitions, median (target <= 1.03);
* the heatmaps' relative standard error ‖SE(h)‖₂ / ‖h‖₂ (mean over images)
  against the number of draws: SmoothTaylor's roots R for σ = 0.3, 0.5, 0.7 and
  IG's uniform baselines N, on the demo model and its 12 sample images (model
  inputs in [0, 1]) and on ``--model`` (``weights=None``, random images);
* the draws ``num_roots="auto"`` spends per image (mean, range) for targets 0.1,
  0.05 and 0.02 on the demo images and on ``--model``, next to the paper's fixed
  R = 150.

Usage:
  python benchmarks/precision.py [--model mobilenet_v2] [--size 224] [--repeats 5]
      [--only overhead|errors|auto]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def overhead(args) -> None:
    model = _common.build_model(args.model, args.size)
    x = _common.images(args.images, args.size)
    explainer = tst.SmoothTaylor(model, num_roots=args.points, batch_size=args.batch)
    explainer(x, 0).numpy()                                   # trace both variants
    explainer(x, 0, return_error=True).attributions.numpy()
    ratios = []
    for _ in range(args.repeats):
        plain = _common.timed(explainer, x, 0)
        with_error = _common.timed(lambda a, t: explainer(a, t, return_error=True).attributions,
                                   x, 0)
        ratios.append(with_error / plain)
    print(f"return_error overhead, SmoothTaylor on {args.model} {args.size}px, "
          f"{args.images} images x R={args.points}, batch_size={args.batch}: "
          f"median {np.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}; "
          f"{args.repeats} repetitions)")


def _table(title, make, inputs, counts, variants) -> None:
    """One row per variant (``make``'s settings), one column per number of draws:
    the mean relative heatmap error."""
    print(f"\n{title}")
    print("| setting | " + " | ".join(str(c) for c in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for label, settings in variants:
        curves = tst.convergence.curves(make(**settings), inputs, None, counts=counts)
        cells = [f"{float(np.nanmean(row)):.3f}" for row in curves["relative_error"]]
        print(f"| {label} | " + " | ".join(cells) + " |")


def error_against_draws(args) -> None:
    from tf_smoothtaylor import demo
    spec = demo.load()
    inputs = spec.preprocess(demo.samples()[0])
    model = _common.build_model(args.model, args.size)
    x = _common.images(args.images, args.size)
    sigmas = [(f"σ = {s}", dict(noise_scale=s)) for s in (0.3, 0.5, 0.7)]
    for name, target, data, roots, baselines in (
            ("the demo model, 12 images", spec, inputs, (10, 50, 150, 300), (4, 16, 64)),
            (f"{args.model} {args.size}px, {args.images} images", model, x, (10, 50, 150),
             (2, 4, 8))):
        _table(f"SmoothTaylor on {name}: relative heatmap error against R",
               lambda **s: tst.SmoothTaylor(target, num_roots=2, batch_size=args.batch, **s),
               data, roots, sigmas)
        _table(f"IG (16 steps, uniform baselines) on {name}: relative error against N",
               lambda **s: tst.IntegratedGradients(target, steps=16, baseline="uniform",
                                                   num_baselines=2, batch_size=args.batch),
               data, baselines, [("IG", {})])


def auto_draws(args, on_model: bool = False) -> None:
    from tf_smoothtaylor import demo
    if on_model:
        spec = _common.build_model(args.model, args.size)
        inputs = _common.images(args.images, args.size)
        where, cap = f"{args.model} {args.size}px, {args.images} images", args.model_max_points
    else:
        spec = demo.load()
        inputs = spec.preprocess(demo.samples()[0])
        where, cap = "the demo images", args.max_points
    print(f"\nnum_roots='auto' on {where} (σ = 0.5, max_points={cap}) "
          "against the fixed R = 150:")
    fixed = tst.SmoothTaylor(spec, num_roots=150, batch_size=args.batch)(inputs,
                                                                         return_error=True)
    print("| target | roots per image: mean (min–max) | reached (largest error) |")
    print("|---|---|---|")
    print(f"| fixed R = 150 | 150 | {float(np.max(fixed.relative_error)):.3f} |")
    for target in (0.1, 0.05, 0.02):
        estimate = tst.SmoothTaylor(spec, num_roots="auto", target_error=target,
                                    max_points=cap, batch_size=args.batch)(
            inputs, return_error=True)
        used = estimate.num_points
        print(f"| {target} | {used.mean():.0f} ({used.min()}–{used.max()}) | "
              f"{float(np.max(estimate.relative_error)):.3f} |")


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max_points", type=int, default=8000)
    parser.add_argument("--model_max_points", type=int, default=1000)
    parser.add_argument("--only", choices=["overhead", "errors", "auto"], default=None)
    args = parser.parse_args()
    if args.only in (None, "overhead"):
        overhead(args)
    if args.only in (None, "errors"):
        error_against_draws(args)
    if args.only in (None, "auto"):
        auto_draws(args)
        auto_draws(args, on_model=True)


if __name__ == "__main__":
    main()
