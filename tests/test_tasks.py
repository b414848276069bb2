"""The ground-truth tasks: the evidence decides the label, the shipped models learned
it, and integrated gradients and occlusion put their relevance on it."""

import numpy as np
import pytest

import tf_smoothtaylor as tst
from tf_smoothtaylor.demo import tasks


@pytest.mark.parametrize("task", tasks.TASKS)
def test_the_evidence_decides_the_label_and_the_shipped_model_learned_it(task):
    data = tasks.generate(task, 300, seed=11)
    assert data.masks.shape == data.inputs.shape[:2] and data.masks.any(axis=1).all()
    model = tasks.load(task)
    logits = model.predict(data.inputs, verbose=0)
    assert np.mean(np.argmax(logits, -1) == data.labels) >= 0.97
    # Removing the evidence leaves the model without a reason: the margin collapses.
    removed = data.inputs.copy()
    if task == "tabular":
        removed[:, list(tasks.RELEVANT_FEATURES)] = 0.0
    elif task == "series":
        removed[..., 0] = np.where(data.masks, 0.0, removed[..., 0])
    else:
        removed[data.masks] = tasks.VOCABULARY.index("the")
    margin = np.abs(logits[:, 1] - logits[:, 0]).mean()
    after = model.predict(removed, verbose=0)
    assert np.abs(after[:, 1] - after[:, 0]).mean() < 0.35 * margin


@pytest.mark.parametrize("task", tasks.TASKS)
def test_integrated_gradients_put_relevance_on_the_evidence(task):
    data = tasks.generate(task, 32, seed=5)
    model = tasks.load(task)
    layer = {"layer": "embedding"} if task == "text" else {}
    attributions = tst.IntegratedGradients(model, steps=32, **layer)(data.inputs, data.labels)
    scores = (tst.position_scores(attributions) if task == "text"
              else tst.heatmap(attributions)).numpy()
    mass = tasks.relevance_mass(scores, data.masks)
    assert mass.mean() >= 3 * data.masks.mean()
    if task == "tabular":
        occlusion = tst.Occlusion(model, window=1, baseline=0.0)(data.inputs, data.labels)
        top = np.argsort(-np.abs(occlusion.numpy()), axis=1)[:, :3]
        hits = np.isin(top, tasks.RELEVANT_FEATURES).mean()
        assert hits >= 0.85


def test_relevance_mass_and_bad_task_names():
    np.testing.assert_allclose(tasks.relevance_mass([[1.0, -3.0, 0.0]], [[False, True, True]]),
                               [0.75])
    assert np.isnan(tasks.relevance_mass([[0.0, 0.0]], [[True, False]]))[0]
    with pytest.raises(ValueError, match="among"):
        tasks.generate("images", 3)


def test_the_relevance_example_builds_its_methods_for_every_task():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "task_relevance.py")
    spec = importlib.util.spec_from_file_location("task_relevance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for task in tasks.TASKS:
        chosen = module.explainers(task, tasks.load(task))
        assert {"SmoothTaylor", "IntegratedGradients"} <= set(chosen)
        assert ("Occlusion" in chosen) == (task != "text")


def test_a_real_tabular_set_offline_is_explained_better_than_a_random_ranking():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the test extra)")
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "tabular_breast_cancer.py")
    spec = importlib.util.spec_from_file_location("tabular_breast_cancer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(epochs=30, rows=32)
    assert result["accuracy"] >= 0.93
    deletion = result["deletion"]
    for method in ("IntegratedGradients", "Occlusion", "GradientXInput"):
        assert deletion[method] < deletion["random ranking"] - 2.0, deletion
