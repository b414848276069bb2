"""Heatmaps from attributions."""

import keras
import numpy as np
import pytest

import tf_smoothtaylor as tst


def test_heatmap_sums_the_channel_axis_of_either_layout():
    rng = np.random.default_rng(0)
    last = rng.normal(size=(2, 20, 24, 3)).astype(np.float32)
    first = np.transpose(last, (0, 3, 1, 2))
    expected = last.sum(axis=-1)
    np.testing.assert_allclose(tst.heatmap(last), expected, rtol=1e-6)
    np.testing.assert_allclose(tst.heatmap(first, data_format="channels_first"), expected,
                               rtol=1e-6)
    keras.config.set_image_data_format("channels_first")
    try:
        np.testing.assert_allclose(tst.heatmap(first), expected, rtol=1e-6)
    finally:
        keras.config.set_image_data_format("channels_last")
    with pytest.raises(ValueError, match="data_format"):
        tst.heatmap(last, data_format="nhwc")
