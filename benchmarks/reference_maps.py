"""Every method's maps and every metric's values on the bundled demo, saved to one
``.npz`` or compared bit for bit with a saved one: a check that a change meant to
move code (not to change maths) changed no number.

Stores, on the demo's 12 sample images: each registered method's attributions with
small settings (standard errors and relative errors where the method has them; an
``"auto"`` count for SmoothTaylor), the explainers' top-1 classes, and AUPC,
AUTVC, deletion, insertion, infidelity, sensitivity-n, max-sensitivity, relevance
mass and the randomisation check of one map.

Usage:
  python benchmarks/reference_maps.py --save /tmp/before.npz
  python benchmarks/reference_maps.py --compare /tmp/before.npz
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def _settings(name, references):
    """Small settings per method (every method of the registry must have a row)."""
    return {
        "smooth_taylor": dict(num_roots=12), "integrated_gradients": dict(steps=8),
        "smoothgrad": dict(num_samples=8), "gradient": {}, "gradient_x_input": {},
        "grad_cam": {}, "grad_cam_plus_plus": {}, "rise": dict(num_masks=64, grid_size=4),
        "occlusion": dict(window=8), "blur_ig": dict(steps=8),
        "expected_gradients": dict(references=references, num_samples=8),
        "lrp": {},
    }[name]


def arrays():
    """``{name: array}`` of every stored number."""
    from tf_smoothtaylor import demo, metrics
    from tf_smoothtaylor.methods import BY_NAME
    spec = demo.load()
    pixels, _, masks, _ = demo.samples()
    images = np.asarray(spec.preprocess(pixels), np.float32)
    out = {}
    for name, method in BY_NAME.items():
        explainer = method(spec, batch_size=16, **_settings(name, images[:4]))
        out[f"{name}/maps"] = explainer(images).numpy()
        if getattr(explainer, "independent_points", False):
            estimate = explainer(images, return_error=True)
            out[f"{name}/standard_error"] = estimate.standard_error.numpy()
            out[f"{name}/relative_error"] = estimate.relative_error.numpy()
    auto = tst.SmoothTaylor(spec, num_roots="auto", target_error=0.5, max_points=64,
                            batch_size=16)(images, return_error=True)
    out["smooth_taylor_auto/maps"] = auto.attributions.numpy()
    out["smooth_taylor_auto/num_points"] = np.asarray(auto.num_points)
    maps = out["smooth_taylor/maps"]
    heat = tst.heatmap(maps).numpy()
    model = dict(preprocess=spec.preprocess, deprocess=spec.deprocess)
    out["aupc"] = metrics.aupc(spec.model, images, heat, window=8, num_regions=6,
                               num_copies=4, **model).aupc.numpy()
    out["autvc"] = metrics.autvc(heat, min_size=8).numpy()
    out["deletion"] = metrics.deletion(spec.model, images, heat, steps=8).auc.numpy()
    out["insertion"] = metrics.insertion(spec.model, images, heat, steps=8).auc.numpy()
    out["infidelity"] = metrics.infidelity(spec.model, images, maps, num_samples=8).numpy()
    out["sensitivity_n"] = metrics.sensitivity_n(spec.model, images, heat, ns=(1, 10),
                                                 num_subsets=8).numpy()
    out["max_sensitivity"] = metrics.max_sensitivity(
        tst.Gradient(spec), images[:4], num_samples=3).numpy()
    out["relevance_mass"] = metrics.relevance_mass(heat, masks).numpy()
    out["randomization"] = metrics.randomization_check(tst.Gradient(spec),
                                                       images=images[:4]).numpy()
    return out


def main():
    parser = _common.parser(__doc__)
    parser.add_argument("--save", help="write the arrays to this .npz")
    parser.add_argument("--compare", help="compare the arrays with this .npz")
    args = parser.parse_args()
    if bool(args.save) == bool(args.compare):
        parser.error("give exactly one of --save and --compare")
    now = arrays()
    if args.save:
        np.savez(args.save, **now)
        print(f"saved {len(now)} arrays to {args.save}")
        return
    before = dict(np.load(args.compare))
    changed = sorted(name for name in set(now) | set(before)
                     if name not in now or name not in before
                     or not np.array_equal(now[name], before[name], equal_nan=True))
    for name in changed:
        print(f"differs: {name}")
    print(f"{len(now)} arrays, {len(changed)} differ from {args.compare}")
    sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
