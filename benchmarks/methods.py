"""Forward-only methods and Grad-CAM against bare loops (and xplique, if installed).

Prints, measured in one run with interleaved repetitions (median):
* Occlusion and RISE: forward passes/s of the engine's forward-only mode divided
  by that of a bare ``tf.function`` forward loop on the same model and batch
  (target >= 0.95);
* Grad-CAM and Grad-CAM++: time per image divided by that of one bare batched
  input gradient per image (≈ 1 expected: one forward and backward pass);
* with ``xplique`` importable: its GradCAM, Occlusion and Rise on the same model,
  images and settings, time relative to ours.

Usage:
  python benchmarks/methods.py [--model mobilenet_v2] [--size 224] [--images 4]
      [--batch 16] [--repeats 3]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def bare_forward_loop(model):
    @tf.function
    def step(x, t):
        return tf.gather(model(x, training=False), t, batch_dims=1)
    return step


def _median_ratio(reference, ours, repeats):
    ratios = []
    for _ in range(repeats):
        ratios.append(reference() / ours())
    return float(np.median(ratios)), min(ratios), max(ratios)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--masks", type=int, default=64)
    args = parser.parse_args()
    model = _common.build_model(args.model, args.size)
    x = _common.images(args.images, args.size)
    targets = np.zeros(args.images, np.int32)
    forward, gradient = bare_forward_loop(model), _common.bare_gradient_loop(model)
    window = args.size // 7

    occlusion = tst.Occlusion(model, window=window, batch_size=args.batch)
    rise = tst.RISE(model, num_masks=args.masks, batch_size=args.batch)
    batch = tf.constant(_common.images(args.batch, args.size, seed=1))
    batch_targets = tf.zeros([args.batch], tf.int32)

    def bare_forward(passes):
        def run():
            return sum(_common.timed(forward, batch, batch_targets)
                       for _ in range(-(-passes // args.batch)))
        return run

    print(f"{args.model} {args.size}px, {args.images} images, batch {args.batch}, "
          f"median of {args.repeats}:")
    for name, explainer in (("Occlusion", occlusion), ("RISE", rise)):
        explainer(x, targets).numpy()                              # traced
        forward(batch, batch_targets).numpy()
        passes = explainer.num_points * args.images
        ratio = _median_ratio(bare_forward(passes),
                              lambda e=explainer: _common.timed(e, x, targets), args.repeats)
        print(f"  {name} ({explainer.num_points} forward passes per image): "
              f"{ratio[0]:.3f} × the bare forward loop (min {ratio[1]:.3f}, max {ratio[2]:.3f})")

    images = tf.constant(x)
    gradient(images, tf.constant(targets)).numpy()
    for name, explainer in (("Grad-CAM", tst.GradCAM(model, batch_size=args.batch)),
                            ("Grad-CAM++", tst.GradCAMPlusPlus(model, batch_size=args.batch))):
        explainer(x, targets).numpy()
        ratio = _median_ratio(
            lambda e=explainer: _common.timed(e, x, targets),
            lambda: _common.timed(gradient, images, tf.constant(targets)), args.repeats)
        print(f"  {name}: {ratio[0]:.3f} × the time of one bare input gradient per image "
              f"(min {ratio[1]:.3f}, max {ratio[2]:.3f})")

    try:
        import xplique.attributions as xp
    except ImportError:
        print("  xplique not importable: no side-by-side")
        return
    labels = tf.one_hot(targets, model.output_shape[-1])
    theirs = {
        "Grad-CAM": (xp.GradCAM(model, batch_size=args.batch),
                     tst.GradCAM(model, batch_size=args.batch)),
        "Occlusion": (xp.Occlusion(model, batch_size=args.batch, patch_size=window,
                                   patch_stride=window, occlusion_value=0.0), occlusion),
        "RISE": (xp.Rise(model, batch_size=args.batch, nb_samples=args.masks,
                         grid_size=7, preservation_probability=0.5), rise),
    }
    for name, (xplique_method, ours) in theirs.items():
        xplique_method.explain(x, labels)                       # traced
        ratio = _median_ratio(
            lambda m=xplique_method: _common.timed(lambda: np.asarray(m.explain(x, labels))),
            lambda e=ours: _common.timed(e, x, targets), args.repeats)
        print(f"  {name}: xplique's time / ours = {ratio[0]:.3f} "
              f"(min {ratio[1]:.3f}, max {ratio[2]:.3f})")


if __name__ == "__main__":
    main()
