"""The engine's compiled graph has a fixed size: it does not grow with the number of
points, the number of images or the chunk size (points are generated in-graph and
walked by a loop, never unrolled)."""

import numpy as np
import pytest

import tf_smoothtaylor as tst
from conftest import small_cnn


def _nodes(explainer) -> int:
    """Nodes of the explainer's compiled function, its loop bodies included."""
    (function,) = explainer._engine._compiled.values()
    graph_def = function._list_all_concrete_functions_for_serialization()[0].graph.as_graph_def()
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


@pytest.mark.parametrize("make", [
    lambda m, b, p: tst.SmoothTaylor(m, num_roots=p, batch_size=b),
    lambda m, b, p: tst.IntegratedGradients(m, steps=p, batch_size=b),
    lambda m, b, p: tst.SmoothGrad(m, num_samples=p, batch_size=b),
], ids=["smooth_taylor", "integrated_gradients", "smoothgrad"])
def test_the_compiled_graph_does_not_grow_with_points_images_or_batch_size(make):
    model = small_cnn()
    sizes = {}
    for batch_size, points, images in [(4, 8, 2), (4, 100, 2), (64, 100, 3)]:
        explainer = make(model, batch_size, points)
        x = np.random.default_rng(0).uniform(-1, 1, (images, 12, 12, 3)).astype(np.float32)
        explainer(x, 0)
        sizes[(batch_size, points, images)] = _nodes(explainer)
    assert len(set(sizes.values())) == 1, sizes
