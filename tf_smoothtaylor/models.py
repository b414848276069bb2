"""Keras Applications registry: logits models with their exact pixel transforms.

``load(name)`` returns a :class:`ModelSpec`: a Keras model that outputs
**logits** (``classifier_activation=None``), ``preprocess`` (pixels in [0, 1] →
model input, the family's own ``preprocess_input`` rule, as TensorFlow ops),
``deprocess`` (its exact inverse), the input size and the class names.
Explainers and metrics accept a ``ModelSpec`` wherever they accept a model.

Preprocessing modes (x = pixels in [0, 1]):

| mode  | model input                                   | families |
|-------|-----------------------------------------------|----------|
| caffe | 255·x, RGB→BGR, minus (103.939, 116.779, 123.68) | ResNet, VGG |
| torch | (x − (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225) | DenseNet |
| tf    | 2x − 1                                        | MobileNetV2, InceptionV3, Xception |
| scale255 | 255·x (the model rescales inside)          | MobileNetV3, EfficientNet(V2), ConvNeXt |

``preprocess`` rejects pixels outside [0, 1] (beyond 1e-3 of round-off) with a
``ValueError`` when called eagerly and an ``InvalidArgumentError`` inside a
graph — the usual mistake is passing pixels in [0, 255].
"""

import dataclasses
import json
import os
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

_TOLERANCE = 1e-3
_CAFFE_MEAN = (103.939, 116.779, 123.68)          # BGR
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/data/"
                    "imagenet_class_index.json")

MODES = ("caffe", "torch", "tf", "scale255")


@dataclasses.dataclass(frozen=True)
class Family:
    """How to build one Keras Application."""
    constructor: str
    input_size: int
    min_size: int
    mode: str


_APPS = keras.applications
FAMILIES: Dict[str, Family] = {
    "resnet50": Family("ResNet50", 224, 32, "caffe"),
    "resnet101": Family("ResNet101", 224, 32, "caffe"),
    "resnet152": Family("ResNet152", 224, 32, "caffe"),
    "densenet121": Family("DenseNet121", 224, 32, "torch"),
    "densenet169": Family("DenseNet169", 224, 32, "torch"),
    "densenet201": Family("DenseNet201", 224, 32, "torch"),
    "vgg16": Family("VGG16", 224, 32, "caffe"),
    "vgg19": Family("VGG19", 224, 32, "caffe"),
    "mobilenet_v2": Family("MobileNetV2", 224, 32, "tf"),
    "mobilenet_v3_small": Family("MobileNetV3Small", 224, 32, "scale255"),
    "mobilenet_v3_large": Family("MobileNetV3Large", 224, 32, "scale255"),
    "inception_v3": Family("InceptionV3", 299, 75, "tf"),
    "xception": Family("Xception", 299, 71, "tf"),
    **{f"efficientnet_b{i}": Family(f"EfficientNetB{i}", size, 32, "scale255")
       for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
    **{f"efficientnet_v2_{v.lower()}": Family(f"EfficientNetV2{v}", size, 32, "scale255")
       for v, size in (("B0", 224), ("B1", 240), ("B2", 260), ("B3", 300), ("S", 384),
                       ("M", 480), ("L", 480))},
    **{f"convnext_{v.lower()}": Family(f"ConvNeXt{v}", 224, 32, "scale255")
       for v in ("Tiny", "Small", "Base", "Large", "XLarge")},
}


def _check_pixels(pixels: tf.Tensor) -> tf.Tensor:
    pixels = tf.convert_to_tensor(pixels, tf.float32)
    if tf.executing_eagerly():
        if int(tf.size(pixels)):
            low, high = float(tf.reduce_min(pixels)), float(tf.reduce_max(pixels))
            if low < -_TOLERANCE or high > 1 + _TOLERANCE:
                raise ValueError("Expected pixels in [0, 1] (divide 8-bit images by 255). "
                                 f"Received: pixels in [{low:.4g}, {high:.4g}]")
    else:
        # One reduction and one Assert: a quarter of the two assert_* ops' graph.
        inside = tf.reduce_all((pixels >= -_TOLERANCE) & (pixels <= 1 + _TOLERANCE))
        with tf.control_dependencies([tf.debugging.Assert(
                inside, ["pixels must lie in [0, 1]"])]):
            pixels = tf.identity(pixels)
    return tf.clip_by_value(pixels, 0.0, 1.0)


def pixel_transforms(mode: str) -> Tuple[Callable, Callable]:
    """``(preprocess, deprocess)`` of a preprocessing mode (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"Expected `mode` to be one of {MODES}. Received: mode={mode!r}")
    if mode == "caffe":
        mean = tf.constant(_CAFFE_MEAN)
        return (lambda p: _check_pixels(p)[..., ::-1] * 255.0 - mean,
                lambda x: ((tf.convert_to_tensor(x, tf.float32) + mean) / 255.0)[..., ::-1])
    if mode == "torch":
        mean, std = tf.constant(_TORCH_MEAN), tf.constant(_TORCH_STD)
        return (lambda p: (_check_pixels(p) - mean) / std,
                lambda x: tf.convert_to_tensor(x, tf.float32) * std + mean)
    if mode == "tf":
        return (lambda p: _check_pixels(p) * 2.0 - 1.0,
                lambda x: (tf.convert_to_tensor(x, tf.float32) + 1.0) / 2.0)
    return (lambda p: _check_pixels(p) * 255.0,
            lambda x: tf.convert_to_tensor(x, tf.float32) / 255.0)


def imagenet_class_names() -> List[str]:
    """The 1000 ImageNet class names in Keras's index order.

    Human-readable names come from Keras's class index (downloaded once into the
    Keras cache). Offline, the WordNet ids bundled with tensorflow-datasets are
    returned instead, with a warning.
    """
    try:
        path = keras.utils.get_file("imagenet_class_index.json", _CLASS_INDEX_URL,
                                    cache_subdir="models")
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
        return [index[str(i)][1] for i in range(len(index))]
    except Exception as error:  # noqa: BLE001 — any download failure falls back
        import tensorflow_datasets as tfds
        labels = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012",
                              "labels.txt")
        warnings.warn(f"ImageNet class names could not be downloaded ({error}); using "
                      "WordNet ids instead.", stacklevel=2)
        with open(labels, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]


def select_input(model, input_name: str):
    """A multi-input model (or ModelSpec) with the input to explain named.

    Explainers built on it take a dict of every input, one row per image, and
    explain ``input_name`` while the other inputs (metadata, a second view, ...)
    are held fixed at each image's values:

      >>> explainer = SmoothTaylor(select_input(model, "image"), num_roots=50)
      >>> maps = explainer({"image": images, "metadata": metadata})   # like images

    Random draws are keyed by the explained input (or by ``keys=``). Metrics and
    serving take single-input models.

    Raises:
      ValueError: if the model has no input of that name.
    """
    from tf_smoothtaylor.engine.logits import InputSelection, LogitModel
    if not isinstance(input_name, str):
        raise TypeError(f"Expected `input_name` to be a str. Received: {input_name!r}")
    selection = InputSelection(model, input_name)
    LogitModel(selection)                       # checks the name now, not at first use
    return selection


@dataclasses.dataclass
class ModelSpec:
    """A logits model with its pixel transforms.

    Attributes:
      model: Keras model from model inputs to logits.
      preprocess: Pixels in [0, 1] → model inputs (TensorFlow ops).
      deprocess: Model inputs → pixels in [0, 1] (exact inverse).
      input_size: (height, width); None for a series or features model.
      mode: Preprocessing mode ("caffe", "torch", "tf", "scale255", "custom", or "identity"
        for a wrapped model without transforms).
      name: Registry name or the model's name.
    """
    model: keras.Model
    preprocess: Callable
    deprocess: Callable
    input_size: Optional[Tuple[int, int]]
    mode: str
    name: str
    _class_names: Optional[Sequence[str]] = None

    @property
    def class_names(self) -> List[str]:
        """Class names (ImageNet names for registry models)."""
        if self._class_names is None:
            self._class_names = imagenet_class_names()
        return list(self._class_names)


def _size(input_size, default: int) -> Tuple[int, int]:
    if input_size is None:
        return default, default
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        return input_size, input_size
    if (isinstance(input_size, (tuple, list)) and len(input_size) == 2
            and all(isinstance(s, int) for s in input_size)):
        return tuple(input_size)
    raise TypeError("Expected `input_size` to be None, an int or (height, width). "
                    f"Received: input_size={input_size!r}")


def registry_name(name: str) -> str:
    """The ``FAMILIES`` key of ``name``: a key or a Keras class name, in any case."""
    if isinstance(name, str):
        wanted = name.strip().lower()
        for key, family in FAMILIES.items():
            if wanted in (key, family.constructor.lower()):
                return key
    raise ValueError(f"Expected `name` to be a registered model: {', '.join(FAMILIES)} "
                     "(or its Keras class name, e.g. 'MobileNetV2'). "
                     f"Received: name={name!r}")


def load(name: str, *, weights: Optional[str] = "imagenet",
         input_size: Union[None, int, Tuple[int, int]] = None) -> ModelSpec:
    """Builds a registered Keras Application as a logits :class:`ModelSpec`.

    Args:
      name: A key of ``FAMILIES`` (e.g. "densenet121", "resnet152") or the
        Keras class name ("DenseNet121", "MobileNetV2"), in any case.
      weights: "imagenet" (downloaded by Keras into its cache), None (random),
        or the path of a weights file.
      input_size: None (the family's size), an int, or (height, width); with
        ImageNet weights it must be the family's size.

    Returns:
      :class:`ModelSpec`.

    Raises:
      ValueError: unknown name, input size too small, missing weights file.
      ConnectionError: ImageNet weights could not be downloaded.

    Example:
      >>> spec = load("densenet121")
      >>> explainer = tf_smoothtaylor.SmoothTaylor(spec)
      >>> x = spec.preprocess(pixels)        # pixels in [0, 1]
    """
    name = registry_name(name)
    family = FAMILIES[name]
    height, width = _size(input_size, family.input_size)
    if min(height, width) < family.min_size:
        raise ValueError(f"Expected `input_size` of at least {family.min_size} for {name}. "
                         f"Received: input_size={(height, width)}")
    if weights == "imagenet" and (height, width) != (family.input_size,) * 2:
        raise ValueError(f"Expected input_size={family.input_size} for {name} with ImageNet "
                         f"weights (the classifier is fixed to it). "
                         f"Received: input_size={(height, width)}")
    if weights not in (None, "imagenet") and not (isinstance(weights, str)
                                                  and os.path.isfile(weights)):
        raise ValueError("Expected `weights` to be 'imagenet', None or the path of a "
                         f"weights file. Received: weights={weights!r}")
    constructor = getattr(_APPS, family.constructor)
    try:
        model = constructor(weights=weights, input_shape=(height, width, 3),
                            classifier_activation=None)
    except Exception as error:
        if "URL fetch failure" in str(error):
            raise ConnectionError(
                f"Could not download the ImageNet weights of {name!r}: {error}. Without "
                "network access, copy the weights file into ~/.keras/models/ on this "
                "machine, or pass weights='/path/to/file.h5', or weights=None for random "
                "weights.") from error
        raise
    preprocess, deprocess = pixel_transforms(family.mode)
    return ModelSpec(model, preprocess, deprocess, (height, width), family.mode, name)


def wrap(model: keras.Model, *, preprocess: Optional[Callable] = None,
         deprocess: Optional[Callable] = None,
         class_names: Optional[Sequence[str]] = None) -> ModelSpec:
    """Any Keras classifier with one input as a :class:`ModelSpec`.

    Args:
      model: Keras model with one (batch, height, width, channels) image input, or
        one series (batch, steps, channels) or features (batch, features) input
        (``input_size`` None: no pixel transforms, the values are model inputs).
      preprocess: Pixels in [0, 1] → model inputs (identity if None); images only.
      deprocess: Its inverse (identity if None); give both or neither.
      class_names: Optional names of the output classes.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected `model` to be a Keras model. Received: {type(model).__name__}")
    if (preprocess is None) != (deprocess is None):
        raise ValueError("Expected both `preprocess` and `deprocess`, or neither. "
                         f"Received: preprocess={preprocess!r}, deprocess={deprocess!r}")
    shape = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    if len(shape) not in (1, 2, 3) or (len(shape) != 3 and preprocess is not None):
        raise ValueError("Expected `model` to take (batch, height, width, channels) images "
                         "(series (batch, steps, channels) and features (batch, features) "
                         f"without pixel transforms). Received: input shape {shape}"
                         + (" with `preprocess`" if len(shape) in (1, 2) else ""))
    identity = lambda t: tf.convert_to_tensor(t, tf.float32)  # noqa: E731
    return ModelSpec(model, preprocess or identity, deprocess or identity,
                     shape[:2] if len(shape) == 3 else None,
                     "custom" if preprocess else "identity", model.name,
                     None if class_names is None else list(class_names))
