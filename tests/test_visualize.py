"""Per-image pictures: colour maps pinned, overlays keep the image, bad input refused."""

import numpy as np
import pytest

from tf_smoothtaylor import visualize


def test_colormaps_pinned_at_a_few_values():
    signed = np.array([[[-1.0, -0.5, 0.0, 0.5, 1.0]]])
    assert visualize.colorize(signed, percentile=100)[0, 0].tolist() == [
        [5, 48, 97], [67, 147, 195], [255, 255, 255], [214, 96, 77], [103, 0, 31]]
    magnitude = np.array([[[0.0, 0.5, 1.0, -1.0]]])
    assert visualize.colorize(magnitude, kind="sequential", percentile=100)[0, 0].tolist() == [
        [0, 0, 4], [187, 55, 84], [252, 255, 164], [252, 255, 164]]


def test_overlay_keeps_the_image_where_relevance_is_zero():
    pixels = np.full((1, 4, 4, 3), 0.4)
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 1.0
    out = visualize.overlay(pixels, maps, percentile=100)
    assert out[0, 3, 3].tolist() == [102, 102, 102]
    assert out[0, 0, 0, 0] > out[0, 0, 0, 2]                    # positive → red


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        visualize.colorize(np.zeros((1, 2, 2)), kind="rainbow")
    with pytest.raises(ValueError, match="heatmaps"):
        visualize.colorize(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="pixels"):
        visualize.overlay(np.zeros((1, 3, 3, 3)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="uint8"):
        visualize.save_png("/tmp/x.png", np.zeros((2, 2, 3)))
