"""Pictures: colour maps pinned, PNGs decode back, titles drawn."""

import numpy as np
import pytest
import tensorflow as tf

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


def test_grid_png_round_trip_and_titles(tmp_path):
    pixels = np.random.default_rng(0).uniform(size=(2, 20, 30, 3))
    maps = {"SmoothTaylor": np.random.default_rng(1).normal(size=(2, 20, 30)),
            "IG": np.zeros((2, 20, 30))}
    sheet = visualize.method_grid(pixels, maps)
    path = str(tmp_path / "grid.png")
    visualize.save_png(path, sheet)
    decoded = tf.io.decode_png(tf.io.read_file(path)).numpy()
    assert decoded.shape == sheet.shape and np.array_equal(decoded, sheet)
    header = sheet[:22]                                          # 7·2 px font + 2·4 px gaps
    assert (header == 0).any()                                   # title pixels are black
    # "SmoothTaylor" does not fit 30 px even at the smallest font: columns widen to it.
    assert sheet.shape == (22 + 2 * (20 + 4) + 4, 3 * (12 * 6 - 1 + 4) + 4, 3)


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        visualize.colorize(np.zeros((1, 2, 2)), kind="rainbow")
    with pytest.raises(ValueError, match="heatmaps"):
        visualize.colorize(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="pixels"):
        visualize.overlay(np.zeros((1, 3, 3, 3)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="uint8"):
        visualize.save_png("/tmp/x.png", np.zeros((2, 2, 3)))


def test_grid_titles_are_never_cut_on_small_tiles():
    from tf_smoothtaylor import _font
    tile = np.full((64, 64, 3), 200, np.uint8)
    titles = ["image", "integrated_gradients"]
    sheet = visualize.grid([[tile, tile]], titles=titles)
    assert sheet.shape[1] == 2 * (20 * 6 - 1 + 4) + 4        # widened to the longest title
    header = sheet[:_font.HEIGHT + 8]
    drawn = int((header == 0).all(axis=-1).sum())
    assert drawn == sum(int(_font.render(t, scale=1).sum()) for t in titles)
