"""Figures of tokens, features and series: what each draws (texts and their colours,
bar widths and signs, band values and limits), and bad input named."""

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed")

from matplotlib import colors  # noqa: E402

from tf_smoothtaylor import plot  # noqa: E402


def test_tokens_are_drawn_in_order_coloured_by_sign_without_padding():
    words = [["the", "movie", "was", "great", "[PAD]"], ["bad", "plot", "[PAD]", "[PAD]", "x"]]
    scores = np.array([[0.1, -0.5, 0.0, 2.0, 9.0], [-2.0, 0.2, 5.0, 5.0, 0.0]])
    figure = plot.tokens(words, scores, labels=["a", "b"], clip_percentile=100)
    first, second = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert [t.get_text() for t in first.texts] == ["the", "movie", "was", "great"]
    assert [t.get_text() for t in second.texts] == ["bad", "plot", "x"]
    assert first.get_title(loc="left") == "a"
    box = {t.get_text(): colors.to_rgb(t.get_bbox_patch().get_facecolor()) for t in
           first.texts + second.texts}
    assert box["great"][0] > 0.4 > box["great"][2]             # red: strongest positive
    assert box["bad"][2] > 0.3 > box["bad"][0]                 # blue: strongest negative
    np.testing.assert_allclose(box["was"], (0.97, 0.97, 0.97), atol=0.03)    # 0: white
    assert colors.to_rgb(first.texts[3].get_color()) == (1, 1, 1)   # light text on dark
    long = plot.tokens(["w%d" % i for i in range(60)], np.arange(60.0), line_characters=30)
    rows = {round(t.get_position()[1], 3) for t in long.axes[0].texts}
    assert len(rows) >= 8                                          # wrapped lines
    with pytest.raises(ValueError, match="Expected 5 tokens per example"):
        plot.tokens([["a"], ["b"]], scores)


def test_feature_bars_are_the_top_scores_by_magnitude_with_their_sign():
    scores = np.array([[0.5, -3.0, 0.1, 2.0], [1.0, 0.0, -0.2, 0.0]])
    figure = plot.features(scores, names=["age", "bmi", "bp", "s1"], top=3,
                           values=[[30, 22, 80, 1], [40, 25, 90, 2]], labels=["p1", "p2"])
    first = figure.axes[0]
    widths = [bar.get_width() for bar in first.patches]
    assert widths == [-3.0, 2.0, 0.5]
    assert [t.get_text() for t in first.get_yticklabels()] == ["bmi = 22", "s1 = 1", "age = 30"]
    assert [colors.to_hex(bar.get_facecolor()) for bar in first.patches] == [
        "#2e6fba", "#c0392b", "#c0392b"]
    with pytest.raises(ValueError, match="4 feature `names`"):
        plot.features(scores, names=["a"])


def test_series_band_holds_the_step_scores_and_lines_the_channels():
    data = np.random.default_rng(0).normal(size=(2, 40, 3))
    scores = np.zeros((2, 40))
    scores[:, 10:15] = 2.0
    scores[1, 30] = -1.0
    figure = plot.series(data, scores, channel_names=["x", "y", "z"], clip_percentile=100)
    axes = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert len(axes) == 2
    band = axes[1].get_images()[0]
    np.testing.assert_allclose(band.get_array()[0], scores[1])
    assert band.get_clim() == (-2.0, 2.0)
    np.testing.assert_allclose(axes[0].lines[2].get_ydata(), data[0, :, 2])
    per_channel = plot.series(data[0], np.repeat(scores[0][:, None], 3, axis=1) * [1, 0, -1])
    shown = [axis for axis in per_channel.axes if axis.get_label() != "<colorbar>"]
    assert len(shown) == 3 and [len(axis.lines) for axis in shown] == [1, 1, 1]
    np.testing.assert_allclose(shown[2].get_images()[0].get_array()[0], -scores[0])
    with pytest.raises(ValueError, match=r"one per step"):
        plot.series(data, scores[:, :5])
