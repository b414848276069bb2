"""Figures: what each shows (axes, titles, colour limits, extents, curve values), and
that PDF and SVG output parse."""

import io
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed")

from tf_smoothtaylor import plot  # noqa: E402


def _maps(seed=0, shape=(2, 12, 16)):
    rng = np.random.default_rng(seed)
    return {"smooth_taylor": rng.normal(size=shape),
            "integrated_gradients": 5.0 * rng.normal(size=shape)}


def _map_images(axis):
    """The AxesImages of an axes: [grey background, map] for an overlay."""
    return axis.get_images()


def test_attributions_grid_titles_and_symmetric_limits():
    pixels = np.random.default_rng(1).uniform(size=(2, 12, 16, 3))
    maps = _maps()
    figure = plot.attributions(pixels, maps, labels=[3, 1], scores=[9.5, 2.25],
                               class_names=["a", "b", "c", "cat"], score_name="logit",
                               metrics={"smooth_taylor": {"autvc": [0.52, 0.61]}})
    grid = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert len(grid) == 2 * 3
    titles = [axis.get_title() for axis in grid]
    assert titles[0] == "cat\nlogit 9.5" and titles[3] == "b\nlogit 2.25"
    assert titles[1] == "smooth_taylor\nAUTVC 0.52" and titles[2] == "integrated_gradients"
    assert titles[4] == "smooth_taylor\nAUTVC 0.61"
    for row in range(2):
        for column, name in ((1, "smooth_taylor"), (2, "integrated_gradients")):
            shown = _map_images(grid[row * 3 + column])[-1]
            low, high = shown.get_clim()
            assert low == -high                                     # symmetric about 0
            assert high == pytest.approx(np.percentile(np.abs(maps[name][row]), 99.5))
            # Full resolution: the overlay covers exactly the image's pixels.
            assert shown.get_array().shape == (12, 16)
            assert tuple(shown.get_extent()) == (-0.5, 15.5, 11.5, -0.5)
    colorbars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert len(colorbars) == 4


def test_share_scale_gives_one_limit_per_row_and_absolute_is_sequential():
    maps = _maps()
    figure = plot.attributions(None, maps, share_scale=True, colorbar=False)
    assert len(figure.axes) == 2 * 2
    for row in range(2):
        limits = {figure.axes[row * 2 + j].get_images()[-1].get_clim() for j in range(2)}
        largest = max(np.percentile(np.abs(m[row]), 99.5) for m in maps.values())
        assert limits == {(-largest, largest)}
    figure = plot.attributions(None, maps["smooth_taylor"], methods=["st"], sign="absolute",
                               colorbar=False)
    shown = figure.axes[0].get_images()[-1]
    assert shown.get_clim()[0] == 0 and shown.get_cmap().name == plot.SEQUENTIAL
    assert np.all(shown.get_array() >= 0)
    positive = plot.attributions(None, {"m": maps["smooth_taylor"]}, sign="negative",
                                 colorbar=False).axes[0].get_images()[-1].get_array()
    np.testing.assert_array_equal(positive, np.maximum(-maps["smooth_taylor"][0], 0))


def test_attributions_refuses_bad_input():
    with pytest.raises(ValueError, match="sign"):
        plot.attributions(None, _maps(), sign="both")
    with pytest.raises(ValueError, match="images"):
        plot.attributions(np.zeros((2, 5, 5, 3)), _maps())
    with pytest.raises(ValueError, match="same shape"):
        plot.attributions(None, {"a": np.zeros((1, 4, 4)), "b": np.zeros((1, 5, 4))})


def test_curves_show_the_mean_and_standard_error_and_save_as_pdf_and_svg():
    curves = np.array([[1.0, 0.5, 0.2], [3.0, 1.5, 0.4]])
    figure = plot.curves({"smooth_taylor": curves}, name="AUPC")
    axis = figure.axes[0]
    (line,) = axis.get_lines()
    np.testing.assert_allclose(line.get_ydata(), curves.mean(axis=0))
    assert axis.get_legend().get_texts()[0].get_text() == "smooth_taylor"
    pdf, svg = io.BytesIO(), io.BytesIO()
    figure.savefig(pdf, format="pdf")
    figure.savefig(svg, format="svg")
    assert pdf.getvalue().startswith(b"%PDF")
    assert ElementTree.fromstring(svg.getvalue()).tag.endswith("svg")


def test_convergence_and_noise_search_plot_their_values():
    table = {"counts": np.array([8, 16, 32]),
             "relative_error": np.array([[0.4, 0.3], [0.28, 0.2], [0.2, 0.15]]),
             "autvc": np.array([[0.9, 0.8], [0.7, 0.6], [0.6, 0.5]])}
    figure = plot.convergence({"smooth_taylor": table}, labels=["a", "b"], target=0.25)
    error_axis = figure.axes[0]
    np.testing.assert_allclose(error_axis.get_lines()[1].get_ydata(), [0.3, 0.2, 0.15])
    assert error_axis.get_lines()[-1].get_ydata()[0] == 0.25          # the target line
    assert error_axis.get_yscale() == "log" and error_axis.get_xscale() == "log"

    class Result:
        history_noise_scale = np.array([[0.1, 0.2], [0.3, 0.25], [np.nan, 0.3]])
        history_objective = np.array([[2.0, 1.0], [1.5, 0.9], [1.4, 0.8]])
        noise_scale = np.array([0.3, 0.3])

    figure = plot.noise_search(Result())
    lines = figure.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_xdata(), [0.1, 0.3])       # NaN: stopped
    np.testing.assert_allclose(lines[0].get_ydata(), [2.0, 1.5])


def test_one_map_into_the_callers_axes():
    from matplotlib.figure import Figure
    figure = Figure()
    left, right = figure.subplots(1, 2)
    maps = _maps()["smooth_taylor"][:1]
    pixels = np.full((1, 12, 16, 3), 0.5)
    assert plot.attributions(pixels, {"st": maps}, ax=right, colorbar=False) is figure
    assert right.get_title() == "st" and not left.get_images()
    np.testing.assert_array_equal(right.get_images()[-1].get_array(), maps[0])
    with pytest.raises(ValueError, match="one image and one method"):
        plot.attributions(None, _maps(), ax=left)


def test_the_plotted_curve_is_the_metrics_curve():
    """plot.curves of an AUPC result draws that result's mean curve."""
    import tf_smoothtaylor as tst
    spec = tst.demo.load()
    x = spec.preprocess(tst.demo.samples()[0][:2])
    maps = tst.heatmap(tst.Gradient(spec)(x))
    result = tst.metrics.aupc(spec, x, maps, window=8, num_regions=4, num_copies=2)
    (line,) = plot.curves({"gradient": result}).axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), np.asarray(result.curves).mean(axis=0))
