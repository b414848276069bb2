"""AUTVC and Simpson's rule against independent computations."""

import math

import numpy as np
import pytest

from tf_smoothtaylor.metrics import autvc, pyramid, simpson

skimage_transform = pytest.importorskip(
    "skimage.transform", reason="scikit-image is the independent reference (pip install '.[test]')")


def reference_autvc(heatmap, downscale=1.5, min_size=30, percentile=99.0):
    """The definition computed with scikit-image and NumPy, in float64."""
    values = []
    for level in skimage_transform.pyramid_gaussian(heatmap.astype(np.float64),
                                                    downscale=downscale, preserve_range=True):
        if min(level.shape) < min_size:
            break
        magnitude = np.abs(level)
        low, high = magnitude.min(), np.percentile(magnitude, percentile)
        norm = np.clip((magnitude - low) / (high - low), 0, 1) if high > low else 0 * magnitude
        tv = np.abs(np.diff(norm, axis=0)).sum() + np.abs(np.diff(norm, axis=1)).sum()
        values.append(tv / norm.size)
    return reference_simpson(np.array(values))


def reference_simpson(y):
    n = len(y)
    if n == 1:
        return 0.0
    if n == 2:
        return 0.5 * (y[0] + y[1])
    odd = lambda v: (v[0] + v[-1] + 4 * v[1:-1:2].sum() + 2 * v[2:-1:2].sum()) / 3  # noqa: E731
    if n % 2:
        return odd(y)
    return 0.5 * (odd(y[:-1]) + 0.5 * (y[-2] + y[-1]) + 0.5 * (y[0] + y[1]) + odd(y[1:]))


def structured(size_h, size_w, rng):
    yy, xx = np.mgrid[0:size_h, 0:size_w]
    blob = np.exp(-((yy - size_h / 3) ** 2 + (xx - size_w / 2) ** 2) / (2 * (size_h / 8) ** 2))
    edges = ((xx // 16 + yy // 16) % 2) - 0.5
    return (blob + 0.3 * edges + 0.05 * rng.normal(size=(size_h, size_w))).astype(np.float32)


def test_pyramid_levels_of_224():
    sizes = [tuple(level.shape[1:]) for level in pyramid(np.zeros((1, 224, 224)))]
    assert sizes == [(224, 224), (150, 150), (100, 100), (67, 67), (45, 45), (30, 30)]


@pytest.mark.parametrize("shape", [(224, 224), (97, 131), (61, 45)])
def test_autvc_equals_scikit_image_computation(shape):
    rng = np.random.default_rng(sum(shape))
    maps = np.stack([rng.normal(size=shape).astype(np.float32),
                     structured(*shape, rng),
                     np.abs(structured(*shape, rng)) * (rng.uniform(size=shape) < 0.2)])
    got = autvc(maps).numpy()
    expected = [reference_autvc(m) for m in maps]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_pyramid_levels_match_scikit_image():
    rng = np.random.default_rng(0)
    heatmap = structured(101, 77, rng)
    ours = pyramid(heatmap[None], min_size=10)
    theirs = list(skimage_transform.pyramid_gaussian(heatmap.astype(np.float64), downscale=1.5,
                                                     preserve_range=True))
    for level, reference in zip(ours, theirs):
        np.testing.assert_allclose(level.numpy()[0], reference, atol=1e-5)


def test_constant_and_smooth_maps():
    constant = np.full((2, 64, 64), 3.0, np.float32)
    assert np.array_equal(autvc(constant).numpy(), [0.0, 0.0])
    rng = np.random.default_rng(1)
    noisy = rng.normal(size=(1, 64, 64)).astype(np.float32)
    smooth = np.broadcast_to(np.linspace(0, 1, 64, dtype=np.float32), (1, 64, 64))
    assert autvc(smooth).numpy()[0] < autvc(noisy).numpy()[0]


def test_simpson_is_exact_for_cubics_with_odd_points():
    x = np.arange(9, dtype=np.float64)
    cubic = 2 * x ** 3 - x ** 2 + 3 * x - 1
    exact = 2 * 8 ** 4 / 4 - 8 ** 3 / 3 + 3 * 8 ** 2 / 2 - 8
    assert math.isclose(float(simpson(cubic.astype(np.float32))), exact, rel_tol=1e-6)
    # Hand-computed: y = [1, 2, 4] → (1 + 8 + 4) / 3.
    assert math.isclose(float(simpson([1.0, 2.0, 4.0])), 13 / 3, rel_tol=1e-6)


def test_simpson_with_even_points_is_exact_for_lines_and_averages_two_variants():
    x = np.arange(6, dtype=np.float32)
    assert math.isclose(float(simpson(3 * x + 2)), 3 * 25 / 2 + 10, rel_tol=1e-6)
    cubic = x ** 3
    assert not math.isclose(float(simpson(cubic)), 5 ** 4 / 4, rel_tol=1e-3)
    # Hand-computed for y = [0, 1, 8, 27]:
    # Simpson(0, 1, 8) + trapezoid(8, 27) = 4 + 17.5; trapezoid(0, 1) + Simpson(1, 8, 27) = 0.5 + 20.
    assert math.isclose(float(simpson([0.0, 1.0, 8.0, 27.0])), (21.5 + 20.5) / 2, rel_tol=1e-6)
    assert float(simpson([2.0, 4.0])) == 3.0 and float(simpson([5.0])) == 0.0
    np.testing.assert_allclose(simpson(np.stack([x, 2 * x])).numpy(), [12.5, 25.0], rtol=1e-6)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"downscale": 1.0}, ValueError, "downscale"),
    ({"min_size": 0}, ValueError, "min_size"),
    ({"percentile": 120.0}, ValueError, "percentile"),
    ({"percentile": 0.0}, ValueError, "percentile"),
])
def test_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        autvc(np.zeros((1, 40, 40)), **kwargs)


def test_bad_heatmaps():
    with pytest.raises(ValueError, match="tf_smoothtaylor.heatmap"):
        autvc(np.zeros((1, 40, 40, 3)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        autvc(np.full((1, 40, 40), np.nan))


def test_maps_too_small_for_two_levels_are_refused_not_scored_zero():
    maps = np.random.default_rng(0).normal(size=(1, 43, 43)).astype(np.float32)
    with pytest.raises(ValueError, match=r"min_size=30.*43×43.*min_size <= 29"):
        autvc(maps)
    assert autvc(maps, min_size=29).numpy()[0] > 0


def test_settings_are_the_papers_at_224_and_fit_small_images():
    from tf_smoothtaylor.metrics import fitted_settings
    assert fitted_settings(224, 224) == {"aupc": {"window": 15, "num_regions": 30,
                                                  "num_copies": 50}, "autvc": {"min_size": 30}}
    assert fitted_settings(32, 32) == {"aupc": {"window": 2, "num_regions": 30,
                                                "num_copies": 50}, "autvc": {"min_size": 4}}


def test_callback_fits_metric_settings_to_small_images(cnn, images):
    from tf_smoothtaylor.integrations.callbacks import AttributionMetrics
    import tf_smoothtaylor as tst
    transforms = {"preprocess": lambda p: 2 * p - 1, "deprocess": lambda x: (x + 1) / 2}
    callback = AttributionMetrics(tst.Gradient(cnn), images,
                                  metric_options={"aupc": {"num_copies": 4, **transforms}})
    assert callback.metric_options["autvc"]["min_size"] == 2          # 12×12 images
    options = dict(callback.metric_options["aupc"])
    assert {k: options[k] for k in ("window", "num_regions", "num_copies")} == {
        "window": 2, "num_regions": 9, "num_copies": 4}
    autvc_value, aupc_value = callback.evaluate()
    assert autvc_value > 0 and np.isfinite(aupc_value)
