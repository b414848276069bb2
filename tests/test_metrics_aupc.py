"""AUPC on an analytic model whose logit is the sum of the pixels in a known region."""

import itertools

import keras
import numpy as np
import pytest

from tf_smoothtaylor.metrics import AUPC, aupc

SIZE, REGION = 48, (slice(8, 24), slice(20, 36))


class RegionSum(keras.layers.Layer):
    """Logit 0: sum of the pixels in REGION (all channels); logit 1: its negative."""

    def call(self, x):
        inside = keras.ops.sum(x[:, REGION[0], REGION[1], :], axis=(1, 2, 3))
        return keras.ops.stack([inside, -inside], axis=-1)


@pytest.fixture(scope="module")
def region_model():
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), RegionSum()])


@pytest.fixture(scope="module")
def bright_images():
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0.6, 1.0, (2, SIZE, SIZE, 3)).astype(np.float32)
    return pixels


def region_heatmap(batch=2):
    maps = np.zeros((batch, SIZE, SIZE), np.float32)
    maps[:, REGION[0], REGION[1]] = 1.0
    return maps


SETTINGS = dict(window=6, num_regions=8, num_copies=6, batch_size=16)


def test_region_heatmap_beats_random_beats_inverted(region_model, bright_images):
    rng = np.random.default_rng(1)
    good = aupc(region_model, bright_images, region_heatmap(), targets=0, **SETTINGS).aupc
    rand = aupc(region_model, bright_images, rng.uniform(size=(2, SIZE, SIZE)), targets=0,
                **SETTINGS).aupc
    bad = aupc(region_model, bright_images, 1.0 - region_heatmap(), targets=0, **SETTINGS).aupc
    assert np.all(good.numpy() < rand.numpy()) and np.all(rand.numpy() < bad.numpy())
    # The inverted map never touches the region: the curve stays at 1, AUPC = L.
    np.testing.assert_allclose(bad.numpy(), SETTINGS["num_regions"], rtol=1e-5)


def test_curve_matches_hand_computation(region_model, bright_images):
    # Window fully inside the region: the logit drops by (sum of window − noise sum).
    result = aupc(region_model, bright_images[:1], region_heatmap(1), targets=0,
                  window=6, num_regions=1, num_copies=1)
    row, col = result.regions.numpy()[0, 0]
    assert REGION[0].start <= row and row + 6 <= REGION[0].stop
    start = bright_images[0][REGION[0], REGION[1]].sum()
    window = bright_images[0, row:row + 6, col:col + 6].sum()
    curve = result.curves.numpy()[0]
    assert curve[0] == pytest.approx(1.0)
    # U[0, 1] noise over 6·6·3 = 108 values has mean 54; the drop is within ±25 of it.
    assert abs((start - curve[1] * start) - (window - 54)) < 25
    assert result.aupc.numpy()[0] == pytest.approx(0.5 * (1 + curve[1]), rel=1e-6)


def test_windows_never_overlap_and_are_most_relevant_first(region_model, bright_images):
    maps = np.random.default_rng(2).uniform(size=(2, SIZE, SIZE)).astype(np.float32)
    result = aupc(region_model, bright_images, maps, targets=0, **SETTINGS)
    k = SETTINGS["window"]
    for image in range(2):
        windows = result.regions.numpy()[image]
        for (r1, c1), (r2, c2) in itertools.combinations(windows, 2):
            assert abs(r1 - r2) >= k or abs(c1 - c2) >= k
        scores = [maps[image, r:r + k, c:c + k].mean() for r, c in windows]
        assert scores == sorted(scores, reverse=True)
        assert windows[:, 0].max() <= SIZE - k - 1 and windows[:, 1].max() <= SIZE - k - 1


def test_seed_and_batch_size_invariance(region_model, bright_images):
    maps = np.random.default_rng(3).uniform(size=(2, SIZE, SIZE)).astype(np.float32)
    first = aupc(region_model, bright_images, maps, targets=0, seed=5, **SETTINGS).curves.numpy()
    again = aupc(region_model, bright_images, maps, targets=0, seed=5, **SETTINGS).curves.numpy()
    other = aupc(region_model, bright_images, maps, targets=0, seed=6, **SETTINGS).curves.numpy()
    settings = dict(SETTINGS, batch_size=5)
    rebatched = aupc(region_model, bright_images, maps, targets=0, seed=5, **settings).curves
    alone = aupc(region_model, bright_images[1:], maps[1:], targets=0, seed=5, **settings).curves
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 1e-4
    np.testing.assert_allclose(rebatched, first, atol=1e-5)
    np.testing.assert_allclose(alone, first[1:], atol=1e-5)


def test_reused_metric_traces_once_and_top1_default(region_model, bright_images):
    metric = AUPC(region_model, **SETTINGS)
    maps = region_heatmap()
    top1 = metric(bright_images, maps)            # logit 0 > logit 1 for bright images
    assert np.allclose(top1.curves, metric(bright_images, maps, targets=0).curves)
    metric(bright_images[:1], maps[:1])
    assert metric.trace_count == 1


def test_preprocess_and_deprocess_round_trip(region_model, bright_images):
    # A model fed inputs in [-1, 1]: same curve as pixels in [0, 1] up to the affine map.
    inputs = keras.Input((SIZE, SIZE, 3))
    shifted = keras.Model(inputs, RegionSum()(keras.layers.Rescaling(0.5, 0.5)(inputs)))
    plain = aupc(region_model, bright_images, region_heatmap(), targets=0, **SETTINGS)
    normalised = aupc(shifted, bright_images * 2 - 1, region_heatmap(), targets=0,
                      preprocess=lambda p: p * 2 - 1, deprocess=lambda x: (x + 1) / 2, **SETTINGS)
    np.testing.assert_allclose(normalised.curves, plain.curves, atol=1e-4)


def test_constant_heatmap_is_defined(region_model, bright_images):
    result = aupc(region_model, bright_images, np.zeros((2, SIZE, SIZE)), targets=0, **SETTINGS)
    assert np.isfinite(result.aupc.numpy()).all()
    assert result.regions.numpy()[0, 0].tolist() == [0, 0]      # ties: row-major order


@pytest.mark.parametrize("kwargs,args,error,match", [
    ({}, dict(heatmaps=np.zeros((2, SIZE, SIZE - 1))), ValueError, "heatmaps"),
    ({}, dict(heatmaps=np.zeros((2, SIZE, SIZE, 3))), ValueError, "heatmaps"),
    ({"window": SIZE}, {}, ValueError, "window"),
    ({"window": 20, "num_regions": 30}, {}, ValueError, "num_regions"),
    ({}, dict(images=np.full((2, SIZE, SIZE, 3), 2.0, np.float32)), ValueError, r"\[0, 1\]"),
    ({"num_copies": 0}, {}, ValueError, "num_copies"),
    ({}, dict(targets=7), ValueError, "targets"),
])
def test_bad_input(region_model, bright_images, kwargs, args, error, match):
    call = dict(images=bright_images, heatmaps=region_heatmap(), targets=0)
    call.update(args)
    with pytest.raises(error, match=match):
        aupc(region_model, call["images"], call["heatmaps"], targets=call["targets"],
             **dict(SETTINGS, **kwargs))
