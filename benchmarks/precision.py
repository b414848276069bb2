"""Monte Carlo precision: what ``return_error=True`` costs, whether the errors it
reports are the errors the maps have, and what ``"auto"`` counts save.

Prints, measured in one run:
* ``overhead``: the cost of ``return_error=True`` for SmoothTaylor: time with errors
  divided by time without, interleaved repetitions, median;
* ``realised``: for SmoothTaylor, SmoothGrad, IG with uniform baselines and RISE, on
  the demo model (its 12 sample images) and on ``--model`` (``weights=None``, random
  images), the heatmaps' relative error each call *reports* against the error the
  maps *have*, measured from ``--runs`` independent runs (other random keys) of the
  same images: with h̄ the runs' mean and s² = Σ_p Var_runs(h_p), the realised error
  of one run is √s² / √(‖h̄‖² − s²/K) (the denominator without its own noise).
  RISE is judged on maps minus their spatial mean, as it reports;
* ``rise_pixels``: RISE's per-pixel standard errors (raw maps) against each pixel's
  spread over ``--runs`` independent runs, on the demo model;
* ``auto``: SmoothTaylor with ``num_roots="auto"`` against the fixed number of roots
  that gives every image the same worst-image error: the gradients each spends.

Usage:
  python benchmarks/precision.py [--model mobilenet_v2] [--size 224] [--runs 8]
      [--only overhead|realised|auto|rise_pixels] [--masks 1000]
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


def _heatmaps(estimate, centred):
    heat = tst.heatmap(estimate.attributions).numpy().reshape(len(estimate.attributions), -1)
    return heat - heat.mean(axis=1, keepdims=True) if centred else heat


def _realised_row(name, explainer, inputs, runs, centred):
    """One table row: mean over images of the reported error, of the realised one,
    and of their ratio."""
    count = len(inputs)
    reported, maps = [], []
    for run in range(runs):
        estimate = explainer(inputs, keys=np.arange(count) + 1000 * run, return_error=True)
        reported.append(estimate.relative_error.numpy())
        maps.append(_heatmaps(estimate, centred))
    maps, reported = np.stack(maps), np.stack(reported)
    spread2 = maps.var(axis=0, ddof=1).sum(axis=1)
    mean = maps.mean(axis=0)
    signal2 = (mean * mean).sum(axis=1) - spread2 / runs
    realised = np.sqrt(spread2 / np.maximum(signal2, 1e-30))
    typical = np.sqrt(np.mean(np.where(np.isfinite(reported), reported, np.nan) ** 2, axis=0))
    ratio = typical / realised
    naive = typical / np.sqrt(1 + typical ** 2)        # ‖SE‖ / ‖ĥ‖, the noisy denominator
    print(f"| {name} | {np.nanmean(typical):.3f} | {realised.mean():.3f} | "
          f"{np.nanmean(ratio):.2f} ({np.nanmin(ratio):.2f}–{np.nanmax(ratio):.2f}) | "
          f"{np.nanmean(naive / realised):.2f} |")


def realised_errors(args) -> None:
    from tf_smoothtaylor import demo
    spec = demo.load()
    cases = [("the demo model, 12 images", spec, spec.preprocess(demo.samples()[0]),
              dict(roots=150, samples=50, baselines=16, masks=1000))]
    model = _common.build_model(args.model, args.size)
    preprocess = lambda p: 2.0 * p - 1.0   # noqa: E731  MobileNetV2's pixel transform
    cases.append((f"{args.model} {args.size}px (weights=None), {args.images} images",
                  tst.models.wrap(model, preprocess=preprocess,
                                  deprocess=lambda v: (v + 1.0) / 2.0),
                  _common.images(args.images, args.size),
                  dict(roots=32, samples=32, baselines=8, masks=500)))
    for title, target, inputs, counts in cases:
        print(f"\nReported against realised relative error, {title}, {args.runs} runs "
              "(mean over the images; ratio per image, mean (min–max); last column: what dividing "
              "by the noisy ‖ĥ‖ would report):")
        print("| method | reported | realised | reported / realised | ‖SE‖/‖ĥ‖ / realised |")
        print("|---|---|---|---|---|")
        batch = dict(batch_size=args.batch)
        for name, explainer, centred in (
                (f"SmoothTaylor R = {counts['roots']}, σ = 0.5",
                 tst.SmoothTaylor(target, num_roots=counts["roots"], **batch), False),
                (f"SmoothGrad N = {counts['samples']}",
                 tst.SmoothGrad(target, num_samples=counts["samples"], **batch), False),
                (f"IG, {counts['baselines']} uniform baselines × 16 steps",
                 tst.IntegratedGradients(target, steps=16, baseline="uniform",
                                         num_baselines=counts["baselines"], **batch), False),
                (f"RISE N = {counts['masks']} (centred maps)",
                 tst.RISE(target, num_masks=counts["masks"], batch_size=4 * args.batch),
                 True)):
            _realised_row(name, explainer, inputs, args.runs, centred)


def rise_pixels(args) -> None:
    """RISE's per-pixel standard errors (raw maps, not centred) against the spread of
    each pixel over ``--runs`` independent runs, on the demo model's 12 images."""
    from tf_smoothtaylor import demo
    spec = demo.load()
    x = spec.preprocess(demo.samples()[0])
    count = len(x)
    rise = tst.RISE(spec, num_masks=args.masks, batch_size=256)
    maps, errors = [], []
    for run in range(args.runs):
        estimate = rise(x, keys=np.arange(count) + 1000 * run, return_error=True)
        maps.append(estimate.attributions.numpy().sum(-1))      # each channel holds S / C
        errors.append(estimate.standard_error.numpy().sum(-1))
    realised = np.stack(maps).var(axis=0, ddof=1).reshape(count, -1).sum(axis=1)
    reported = (np.stack(errors) ** 2).mean(axis=0).reshape(count, -1).sum(axis=1)
    ratio = np.sqrt(reported / realised)
    print(f"RISE N = {args.masks} on the demo model, {count} images, {args.runs} runs: "
          f"per-pixel standard error reported / realised (root of summed variances) "
          f"{ratio.mean():.3f} ({ratio.min():.3f}–{ratio.max():.3f})")


def _auto_against_fixed(title, spec, inputs, target, cap, batch) -> None:
    """SmoothTaylor "auto" at ``target`` against the fixed R that gives the same
    worst-image error (the count each image's own error asks for, at most)."""
    auto = tst.SmoothTaylor(spec, num_roots="auto", target_error=target, max_points=cap,
                            batch_size=batch)(inputs, return_error=True)
    used, errors = auto.num_points, auto.relative_error.numpy()
    worst = float(np.max(errors))
    fixed_roots = int(np.ceil(np.max(used * (errors / worst) ** 2)))
    fixed = tst.SmoothTaylor(spec, num_roots=fixed_roots, batch_size=batch)(
        inputs, return_error=True)
    spent_auto, spent_fixed = int(used.sum()), fixed_roots * len(inputs)
    print(f"| {title} | {target} | {used.mean():.0f} ({used.min()}–{used.max()}) | "
          f"{worst:.3f} | {fixed_roots} | {float(np.max(fixed.relative_error)):.3f} | "
          f"{spent_auto} / {spent_fixed} = {spent_auto / spent_fixed:.2f} |")


def auto_draws(args) -> None:
    from tf_smoothtaylor import demo
    spec = demo.load()
    print('\nSmoothTaylor (σ = 0.5) num_roots="auto" against a fixed R with the same '
          "worst-image error:")
    print("| images | target | auto: roots per image, mean (min–max) | auto: worst error | "
          "fixed R for that error | fixed: worst error | gradients, auto / fixed |")
    print("|---|---|---|---|---|---|---|")
    _auto_against_fixed("demo, 12 images", spec, spec.preprocess(demo.samples()[0]), 0.2,
                        args.max_points, args.batch)
    model = _common.build_model(args.model, args.size)
    _auto_against_fixed(f"{args.model} {args.size}px, {args.images} images", model,
                        _common.images(args.images, args.size), 0.5, args.model_max_points,
                        args.batch)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max_points", type=int, default=8000)
    parser.add_argument("--model_max_points", type=int, default=2000)
    parser.add_argument("--masks", type=int, default=1000)
    parser.add_argument("--only", choices=["overhead", "realised", "auto", "rise_pixels"],
                        default=None)
    args = parser.parse_args()
    if args.only in (None, "overhead"):
        overhead(args)
    if args.only in (None, "realised"):
        realised_errors(args)
    if args.only in (None, "auto"):
        auto_draws(args)
    if args.only in (None, "rise_pixels"):
        rise_pixels(args)


if __name__ == "__main__":
    main()
