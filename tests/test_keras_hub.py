"""KerasHub models built from configs (random weights; presets download and are not
used here): BERT explained through its token embeddings with the padding mask and
segment ids held fixed, and a ViT on its images — completeness against the model's
own logits, and the hint for a model whose inputs are all token ids."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor.engine.at_layer import LayerLogits, split_inputs



@pytest.fixture(scope="module")
def keras_hub():
    """KerasHub, imported by the tests that use it (its import takes seconds: not at
    collection, in every worker)."""
    return pytest.importorskip("keras_hub", reason="keras-hub is not installed "
                               "(pip install '.[text]')")

LAYER = "bert_backbone/token_embedding"


@pytest.fixture(scope="module")
def bert(keras_hub):
    keras.utils.set_random_seed(0)                     # from a config: random weights
    backbone = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32,
                                             max_sequence_length=12)
    return keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None)


def _inputs():
    rng = np.random.default_rng(0)
    mask = np.ones((2, 12), bool)
    mask[1, 9:] = False                                  # a padded second text
    return {"token_ids": rng.integers(1, 100, size=(2, 12)), "padding_mask": mask,
            "segment_ids": np.zeros((2, 12), np.int32)}


def test_bert_is_explained_through_its_token_embeddings_completely(bert):
    x = _inputs()
    with pytest.raises(ValueError, match=f"layer='{LAYER}'"):
        tst.IntegratedGradients(bert)(x, 0)
    attributions = tst.IntegratedGradients(bert, steps=32, rule="gauss_legendre",
                                           layer=LAYER)(x, 0)
    assert tuple(attributions.shape) == (2, 12, 16)
    logits = LayerLogits(bert, LAYER)
    context = split_inputs(logits, x)
    zero = logits.compiled()(tf.zeros_like(attributions), context).numpy()[:, 0]
    change = bert(x).numpy()[:, 0] - zero
    np.testing.assert_allclose(attributions.numpy().reshape(2, -1).sum(1), change,
                               atol=1e-3 * np.abs(change).max() + 1e-5)
    scores = tst.position_scores(attributions).numpy()
    np.testing.assert_allclose(scores.sum(1), attributions.numpy().reshape(2, -1).sum(1),
                               rtol=1e-5, atol=1e-6)


def test_vit_on_images_is_complete(keras_hub):
    backbone = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8,
                                            num_layers=1, num_heads=2, hidden_dim=16,
                                            mlp_dim=32)
    vit = keras_hub.models.ViTImageClassifier(backbone, num_classes=3, preprocessor=None)
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    maps = tst.IntegratedGradients(vit, steps=32, rule="gauss_legendre")(x, 1).numpy()
    change = vit(x).numpy()[:, 1] - vit(np.zeros_like(x)).numpy()[:, 1]
    np.testing.assert_allclose(maps.reshape(2, -1).sum(1), change,
                               atol=1e-3 * np.abs(change).max() + 1e-5)
