"""Monte Carlo precision: what ``return_error=True`` costs and what it reports.

Prints, measured in one run:
* the cost of ``return_error=True`` for SmoothTaylor: time with errors divided by
  time without, interleaved repetitions, median (target <= 1.03);
* the heatmaps' relative standard error ‖SE(h)‖₂ / ‖h‖₂ (mean over images)
  against the number of roots R for σ = 0.3, 0.5, 0.7 on the demo model and its
  sample images (model inputs in [0, 1]).

Usage:
  python benchmarks/precision.py [--model mobilenet_v2] [--size 224] [--repeats 5]
"""

import argparse
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


def error_against_roots(args) -> None:
    from tf_smoothtaylor import demo
    spec = demo.load()
    inputs = spec.preprocess(demo.samples()[0])
    print("\nrelative heatmap error (mean over the 12 demo images) against R:")
    roots = (10, 50, 150, 300)
    print("| σ | " + " | ".join(f"R = {r}" for r in roots) + " |")
    print("|---|" + "---|" * len(roots))
    for sigma in (0.3, 0.5, 0.7):
        cells = []
        for r in roots:
            estimate = tst.SmoothTaylor(spec, num_roots=r, noise_scale=sigma)(
                inputs, return_error=True)
            cells.append(f"{float(np.nanmean(estimate.relative_error)):.3f}")
        print(f"| {sigma} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenet_v2", choices=["mobilenet_v2", "resnet50"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    overhead(args)
    error_against_roots(args)


if __name__ == "__main__":
    main()
