"""The Keras Applications registry and pixel transforms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor import models


def _module_of(name):
    return getattr(keras.applications, models.FAMILIES[name].constructor).__module__


# One family per Keras Applications module (its smallest variant) is built; the other
# variants of a module come from the same builder, head and preprocessing.
REPRESENTATIVES = ["convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_b0",
                   "inception_v3", "mobilenet_v2", "mobilenet_v3_small", "resnet50", "vgg16",
                   "vgg19", "xception"]


def test_every_family_is_a_variant_of_a_built_representative():
    by_module = {_module_of(name): name for name in REPRESENTATIVES}
    assert len(by_module) == len(REPRESENTATIVES)              # one per module
    for name, family in models.FAMILIES.items():
        representative = models.FAMILIES[by_module[_module_of(name)]]
        assert callable(getattr(keras.applications, family.constructor))
        assert family.mode == representative.mode, name
        assert family.min_size <= family.input_size


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_every_family_builds_with_logits_and_inverts_its_preprocessing(name):
    family = models.FAMILIES[name]
    size = max(family.min_size, 32)
    spec = models.load(name, weights=None, input_size=size)
    last = spec.model.layers[-1]
    assert getattr(last, "activation", keras.activations.linear) is keras.activations.linear
    assert not isinstance(last, keras.layers.Softmax)
    assert spec.model.output_shape == (None, 1000)
    assert spec.input_size == (size, size) and spec.mode == family.mode
    pixels = np.random.default_rng(0).uniform(size=(2, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(spec.deprocess(spec.preprocess(pixels)), pixels, atol=1e-5)


@pytest.mark.parametrize("mode,pixel,expected", [
    ("caffe", [1.0, 0.5, 0.0], [0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68]),  # BGR
    ("torch", [1.0, 0.5, 0.0], [(1 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, -0.406 / 0.225]),
    ("tf", [1.0, 0.5, 0.0], [1.0, 0.0, -1.0]),
    ("scale255", [1.0, 0.5, 0.0], [255.0, 127.5, 0.0]),
])
def test_pinned_preprocessing_modes(mode, pixel, expected):
    preprocess, _ = models.pixel_transforms(mode)
    np.testing.assert_allclose(preprocess(np.array([[[pixel]]], np.float32))[0, 0, 0],
                               expected, rtol=1e-6)


def test_modes_match_keras_preprocess_input():
    pixels = np.random.default_rng(1).uniform(size=(1, 8, 8, 3)).astype(np.float32)
    for mode, module in [("caffe", keras.applications.resnet), ("torch", keras.applications.densenet),
                         ("tf", keras.applications.mobilenet_v2)]:
        preprocess, _ = models.pixel_transforms(mode)
        np.testing.assert_allclose(preprocess(pixels), module.preprocess_input(pixels * 255.0),
                                   rtol=1e-5, atol=1e-4)


def test_spec_is_accepted_as_a_model_by_explainers_and_metrics():
    spec = models.load("vgg16", weights=None, input_size=32)     # "caffe" pixels
    pixels = np.random.default_rng(2).uniform(size=(1, 32, 32, 3)).astype(np.float32)
    x = spec.preprocess(pixels)
    ig = tst.IntegratedGradients(spec, steps=4)
    assert ig.preprocess is spec.preprocess                     # zero baseline = black pixels
    np.testing.assert_allclose(ig.baselines(x), spec.preprocess(np.zeros_like(pixels)))
    maps = tst.heatmap(tst.SmoothTaylor(spec, num_roots=2)(x))
    result = tst.metrics.aupc(spec, x, maps, window=4, num_regions=2, num_copies=2)
    assert np.isfinite(result.aupc.numpy()).all()


def test_imagenet_weights_go_through_keras_download_and_explain_offline_failure():
    try:
        models.load("mobilenet_v2")
    except ConnectionError as error:
        message = str(error)
        assert "URL fetch failure" in message                   # Keras's own download path
        assert "weights=None" in message and "~/.keras/models" in message
    else:                                                        # weights were cached or online
        pass


def test_wrap_any_model():
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    spec = models.wrap(model, preprocess=lambda p: p - 0.5, deprocess=lambda x: x + 0.5,
                       class_names=list("abcd"))
    assert spec.class_names == ["a", "b", "c", "d"] and spec.input_size == (16, 16)
    np.testing.assert_allclose(spec.deprocess(spec.preprocess(np.full((1, 2, 2, 3), 0.25))), 0.25)


@pytest.mark.parametrize("call,error,match", [
    (lambda: models.load("resnet18", weights=None), ValueError, "resnet50, resnet101"),
    (lambda: models.load("inception_v3", weights=None, input_size=64), ValueError,
     "at least 75"),
    (lambda: models.load("resnet50", weights="imagenet", input_size=128), ValueError,
     "input_size=224"),
    (lambda: models.load("resnet50", weights="/nonexistent.h5"), ValueError, "weights"),
    (lambda: models.load("resnet50", weights=None, input_size="big"), TypeError, "input_size"),
    (lambda: models.wrap("model"), TypeError, "model"),
    (lambda: models.pixel_transforms("tf")[0](np.full((1, 2, 2, 3), 255.0)), ValueError,
     r"pixels in \[0, 1\]"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_of_range_pixels_fail_inside_a_graph_too():
    preprocess, _ = models.pixel_transforms("tf")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 1\]"):
        tf.function(preprocess)(tf.fill([1, 2, 2, 3], 2.0))


def test_class_names_fall_back_to_wordnet_ids_offline():
    spec = models.load("mobilenet_v2", weights=None, input_size=32)
    with pytest.warns(UserWarning, match="WordNet") if _offline() else _no_warning():
        names = spec.class_names
    assert len(names) == 1000


def _offline():
    import socket
    try:
        socket.getaddrinfo("storage.googleapis.com", 443)
        return False
    except OSError:
        return True


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


@pytest.mark.parametrize("spelling", ["mobilenet_v2", "MobileNetV2", "mobilenetv2", " MOBILENET_V2 "])
def test_registry_names_and_keras_class_names_in_any_case(spelling):
    assert models.registry_name(spelling) == "mobilenet_v2"


def test_unknown_model_name_lists_the_registry():
    with pytest.raises(ValueError, match="registered model.*mobilenet_v2.*Keras class name"):
        models.registry_name("MobileNetV9")
