"""What each Keras layer is to relevance propagation, and the linear maps of the
layers that take a rule.

Kinds:

* ``linear`` — Dense, Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D: the
  composite's rule (``rules``), then the layer's activation passed through;
* ``proportional`` — average pooling (global too), Add, Average: a weight-free
  sum, relevance split in proportion to each input's contribution (LRP-0 with the
  rules' stabiliser);
* ``route`` — max pooling (global too), Maximum, Concatenate, Flatten, Reshape,
  Permute, RepeatVector, padding, cropping, nearest-neighbour up-sampling,
  Dropout and the other training-only layers, Identity: the plain gradient
  routes relevance to where the values came from (the winner of a max);
* ``pass`` — elementwise maps (activations, Rescaling, Normalization,
  BatchNormalization not folded into a linear layer): relevance passes through
  unchanged, ``R_in = R_out``;
* ``gate`` — Multiply where all but one input are gates (a sigmoid-family
  activation's output, or a smaller, broadcast tensor: squeeze-and-excitation):
  the gates are held constant and take no relevance;
* ``model`` — a nested functional or Sequential model: rewritten the same way.
"""

from typing import List, Optional

import keras
import tensorflow as tf

from tf_smoothtaylor.lrp import table
from tf_smoothtaylor.lrp.rules import Step

L = keras.layers
DENSE = (L.Dense,)
CONV = (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D, L.DepthwiseConv2D,
        L.SeparableConv1D, L.SeparableConv2D)
PROPORTIONAL = (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
                L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
                L.Add, L.Average)
ROUTE = (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.GlobalMaxPooling1D,
         L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.Maximum, L.Concatenate, L.Flatten,
         L.Reshape, L.Permute, L.RepeatVector, L.ZeroPadding1D, L.ZeroPadding2D,
         L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D, L.Dropout,
         L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
         L.Identity, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D)
PASS = (L.Activation, L.ReLU, L.LeakyReLU, L.PReLU, L.ELU, L.Softmax, L.Rescaling,
        L.Normalization, L.BatchNormalization)
# Layers between the model's input and its first linear layer(s) that keep the
# "first layer" position (and carry the input's bounds for the box rule).
INPUT_SIDE = (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D,
              L.Cropping2D, L.Cropping3D, L.Rescaling, L.Normalization, L.Reshape,
              L.Flatten, L.Permute, L.Dropout, L.GaussianNoise, L.GaussianDropout,
              L.AlphaDropout, L.Identity, L.ActivityRegularization)
SIGMOIDS = ("sigmoid", "hard_sigmoid")


def kind(layer) -> Optional[str]:
    """The layer's kind (module docstring; a registered handler's own kind first), or
    None when LRP does not support it (``lrp.table``)."""
    entry = table.find(layer)
    return None if entry is None or entry.kind == "unsupported" else entry.kind


SUPPORTED = ("Dense, Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D, "
             "BatchNormalization, pooling (max and average, global too), Add, Average, "
             "Maximum, Concatenate, Multiply as a gate, Flatten, Reshape, Permute, "
             "RepeatVector, padding, cropping, nearest up-sampling, Rescaling, "
             "Normalization, activations, Dropout and the other training-only layers, "
             "nested functional and Sequential models")


NONNEGATIVE_ACTIVATIONS = ("relu", "relu6", "sigmoid", "hard_sigmoid", "softmax", "softplus")
RECTIFIERS = ("relu", "relu6")


def rectifies(layer) -> bool:
    """Whether the layer is a ReLU (maps every negative input to 0)."""
    if isinstance(layer, L.ReLU):
        return not layer.negative_slope and layer.threshold == 0
    return isinstance(layer, L.Activation) and activation_name(layer) in RECTIFIERS


def keeps_sign(layer, nonnegative_inputs, layer_kind) -> bool:
    """Whether the layer's outputs are known to be ≥ 0: a non-negative activation, or
    a routing, pooling or summing layer of inputs that all are."""
    if isinstance(layer, L.ReLU):
        return rectifies(layer)
    if layer_kind in ("dense", "conv") or isinstance(layer, L.Activation):
        return activation_name(layer) in NONNEGATIVE_ACTIVATIONS
    if layer_kind in ("route", "proportional") or isinstance(layer, L.Multiply):
        return bool(nonnegative_inputs) and all(nonnegative_inputs)
    return False


def activation_name(layer) -> str:
    """The name of a layer's activation function ("linear" when it has none)."""
    function = getattr(layer, "activation", None)
    if function is None:
        return "linear"
    return getattr(function, "__name__", type(function).__name__)


def _channel_shape(layer, rank: int, channels: int):
    """Shape to broadcast a per-channel vector against the layer's outputs."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return (channels,) + (1,) * (rank - 2)
    return (channels,)


def steps(layer, dtype, inputs_rank: int, fold=None) -> List[Step]:
    """The linear maps of ``layer`` (one, or two for a separable convolution), in
    ``dtype``, with a following BatchNormalization ``fold`` merged into the last:
    ``W' = W · s``, ``b' = (b − μ) · s + β`` with ``s = γ / √(σ² + ε)``."""
    cast = lambda v: None if v is None else tf.cast(tf.convert_to_tensor(v), dtype)  # noqa: E731
    bias = cast(layer.bias) if getattr(layer, "use_bias", False) else None
    if isinstance(layer, DENSE):
        found = [Step(_dense, cast(layer.kernel))]
    elif isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        found = [Step(_depthwise(layer), cast(layer.kernel))]
    elif isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        pointwise = lambda a, w: keras.ops.conv(a, w, strides=1, padding="valid",  # noqa: E731
                                                data_format=layer.data_format)
        found = [Step(_depthwise(layer), cast(layer.depthwise_kernel)),
                 Step(pointwise, cast(layer.pointwise_kernel))]
    else:
        found = [Step(lambda a, w: layer.convolution_op(a, w), cast(layer.kernel))]
    last = found[-1]
    kernel = last.kernel
    depthwise = isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D))
    channels = int(kernel.shape[-1]) * (int(kernel.shape[-2]) if depthwise else 1)
    if fold is not None:
        scale, shift = _batch_norm(fold, dtype)
        kernel = kernel * (tf.reshape(scale, kernel.shape[-2:]) if depthwise else scale)
        bias = shift if bias is None else bias * scale + shift
    if bias is not None:
        bias = tf.reshape(bias, _channel_shape(layer, inputs_rank, channels))
    return found[:-1] + [Step(last.op, kernel, bias)]


def _dense(a, w):
    return tf.matmul(a, w) if a.shape.rank == 2 else tf.tensordot(a, w, axes=1)


def _depthwise(layer):
    return lambda a, w: keras.ops.depthwise_conv(
        a, w, strides=layer.strides, padding=layer.padding,
        dilation_rate=layer.dilation_rate, data_format=layer.data_format)


def _batch_norm(layer, dtype):
    """``(s, t)`` with ``BN(z) = s · z + t`` at inference."""
    variance = tf.cast(tf.convert_to_tensor(layer.moving_variance), tf.float32)
    scale = tf.math.rsqrt(variance + layer.epsilon)
    if layer.scale:
        scale *= tf.cast(tf.convert_to_tensor(layer.gamma), tf.float32)
    shift = -tf.cast(tf.convert_to_tensor(layer.moving_mean), tf.float32) * scale
    if layer.center:
        shift += tf.cast(tf.convert_to_tensor(layer.beta), tf.float32)
    return tf.cast(scale, dtype), tf.cast(shift, dtype)


def folds_into(layer, batch_norm, rank: int) -> bool:
    """Whether ``batch_norm`` (after ``layer``) can be merged into ``layer``'s weights:
    a linear layer without activation, BN over its channel axis."""
    if not isinstance(layer, DENSE + CONV) or activation_name(layer) != "linear":
        return False
    axis = batch_norm.axis
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int):
        return False
    axis = axis % rank
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    return axis == (1 if channels_first and rank > 2 else rank - 1)
