"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018).

With ``A`` the activations (h, w, K) of a convolutional layer and
``g = ∂f_t/∂A`` the gradient of the target logit with respect to them:

    Grad-CAM:    α_k = (1/hw) Σ_ij g_ij^k
    Grad-CAM++:  a_ij^k = clip(g_ij^k² / (2 g_ij^k² + Σ_ab A_ab^k g_ij^k³), 0, ½)
                 (0 where 0/0),   α_k = Σ_ij a_ij^k · ReLU(g_ij^k)
    L = ReLU(Σ_k α_k A^k),  upsampled bilinearly from (h, w) to the input's (H, W).

(Grad-CAM++'s coefficients are those of the exponential of the logit, as in the
paper; its weights use ReLU(g), as common implementations do, not the
exponential's gradient, which would only rescale the map.) The paper assumes
``A ≥ 0`` (a ReLU layer): then every coefficient that counts (g > 0) lies in
(0, ½] and the clip changes nothing. On a layer with negative activations
(a linear convolution, ConvNeXt's residual outputs) ``Σ A g³`` can turn the
denominator negative or near zero, flipping or exploding the coefficient; it is
clipped to [0, ½] there, and ``heatmaps``/``explain`` warn, naming the layer.

For a model whose last convolution feeds global average pooling and a dense
layer of weights ``w``, Grad-CAM is the class activation map of Zhou et al.
2016, ``ReLU(Σ_k w_k^t A^k) / hw``.

The default layer is the last layer with a 4-D output whose spatial size is
more than one pixel (h·w > 1): the last feature map before global pooling. For a
series (T, C) or token ids (L,), the same over (steps, K) activations — a Conv1D's
or a per-token layer's — with the map upsampled linearly to T (or L): one score
per time step (every channel of the step gets ``L / C``) or per token. (A
4-D layer after pooling — MobileNetV3's 1×1 ``logits`` convolution — would give
a constant map.) ``settings()["layer"]`` names the layer used.

One forward and one backward pass per image, in chunks of ``batch_size`` images;
the served graph (``run_in_graph``) takes the logits and the top-1 class from
that same forward pass.
"""

import warnings
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine.at_layer import recorded
from tf_smoothtaylor.engine.logits import select_target
from tf_smoothtaylor.engine.tracing import graph_function
from tf_smoothtaylor.engine.report import finite_rows, warn_if_not_finite
from tf_smoothtaylor.engine import graph_classes
from tf_smoothtaylor.methods.single_pass import SinglePassExplainer
from tf_smoothtaylor.methods.options import Option
from tf_smoothtaylor.methods.registry import register


def _layers(model):
    """Every layer of ``model``, nested models' layers in place, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        yield layer


def _output_shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _spatial_size(shape) -> Optional[int]:
    """h·w of a (batch, h, w, channels) shape, or the steps of (batch, steps,
    channels); None when a side is unknown."""
    sides = shape[1:-1]
    if any(side is None for side in sides):
        return None
    return int(np.prod(sides))


def find_layer(model, name: Optional[str] = None, rank: int = 4):
    """The layer named ``name`` (searched in nested models too) or, by default,
    the last layer with a ``rank``-D output — (batch, h, w, channels) for images,
    (batch, steps, channels) for series and tokens — of more than one pixel or step
    (or unknown sides): the last feature map before pooling."""
    layers = [layer for layer in _layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    wanted = ("4-D output (batch, height, width, channels) of more than one pixel"
              if rank == 4 else "3-D output (batch, steps, channels) of more than one step")
    if name is None:
        candidates = [layer for layer in layers if not isinstance(layer, keras.Model)
                      and len(_output_shape(layer) or ()) == rank
                      and (_spatial_size(_output_shape(layer)) or 2) > 1]
        if not candidates:
            raise ValueError(f"Expected `model` to have a layer with a {wanted} for "
                             "Grad-CAM. Received: a model without one")
        return candidates[-1]
    for layer in layers:
        if layer.name == name:
            shape = _output_shape(layer)
            if len(shape or ()) != rank:
                raise ValueError(f"Expected `layer` to name a layer with a {rank}-D output. "
                                 f"Received: layer={name!r}, output shape {shape}")
            return layer
    raise ValueError(f"Expected `layer` to name a layer of the model. Received: "
                     f"layer={name!r}; layers: {[layer.name for layer in layers][-12:]} "
                     "(last 12)")


@register("grad_cam")
class GradCAM(SinglePassExplainer):
    """Grad-CAM and Grad-CAM++ maps.

    Args:
      model: Keras model (explained on its logits).
      layer: Name of the convolutional layer whose activations are weighted
        (searched in nested sub-models too); default: the last layer with a 4-D
        output of more than one pixel (``settings()`` names it).
      plus_plus: Grad-CAM++ weights instead of Grad-CAM's.
      batch_size: Images per compiled chunk.
      seed, jit_compile: see ``Explainer`` (Grad-CAM draws no random numbers).

    ``explain`` returns (B, H, W, C) attributions holding ``L / C`` in every
    channel, so that ``tst.heatmap(attributions)`` (the channel sum every metric
    scores) is the Grad-CAM map ``L``; :meth:`heatmaps` returns ``L`` (B, H, W).

    Example:
      >>> cam = GradCAM(model)                        # last 4-D layer
      >>> maps = cam.heatmaps(images)                 # (B, H, W)
      >>> cam_pp = GradCAM(model, layer="conv5_block3_out", plus_plus=True)
    """

    takes_ids = True          # the gradient is taken at a layer: token ids are fine

    options = {
        "layer": Option("The layer whose activations are weighted (default: the last "
                        "feature map of more than one pixel or step)", shared=True, kind=str),
        "plus_plus": Option("Grad-CAM++'s weights (the grad_cam_plus_plus method)",
                            flag=None),
    }

    def __init__(self, model, *, layer: Optional[str] = None, plus_plus: bool = False,
                 batch_size: int = 16, seed: int = 0, jit_compile: bool = False):
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"Expected `layer` to be a layer name or None. Received: {layer!r}")
        if not isinstance(plus_plus, bool):
            raise TypeError(f"Expected `plus_plus` to be a bool. Received: {plus_plus!r}")
        self.layer, self.plus_plus = layer, plus_plus
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        if self._logits.context:
            raise ValueError("Expected a single-input model for Grad-CAM. Received: a model "
                             "with inputs held fixed per image")
        shape = self._logits.input_shape
        tokens = len(shape) == 1 and self._logits.input_dtype.is_integer
        if len(shape) not in (2, 3) and not tokens:
            raise ValueError("Expected images (height, width, channels), series (steps, "
                             "channels) or token ids (tokens,) for Grad-CAM. Received: "
                             f"input shape {shape}")
        self._layer = find_layer(self.model, layer, rank=4 if len(shape) == 3 else 3)
        self._layer_given = layer is not None
        self.layer = self._layer.name

    def with_model(self, model) -> "GradCAM":
        """See ``Explainer.with_model``; a default layer is found anew in ``model``."""
        settings = self.settings()
        if not self._layer_given:
            settings["layer"] = None
        return type(self).from_settings(model, settings)

    def _function(self, target_fn):
        return self._engine.compiled("grad_cam", target_fn, lambda: graph_function(
            lambda x, t: self._maps(x, t, target_fn)[:2],
            input_signature=[self._engine.image_spec(), tf.TensorSpec((None,), tf.int32)]))

    def _maps(self, images, targets, target_fn, *, top1=False):
        """One forward and backward pass over a chunk: ``((B, H, W) maps, per image
        whether Grad-CAM++ met negative activations, logits, classes)``; with
        ``top1``, ``targets`` < 0 mean the top-1 class of this same pass."""
        self._engine.trace_count += 1
        with tf.GradientTape() as tape, recorded(self._layer) as seen:   # records A
            logits = self._logits.traced(images)
            classes = graph_classes(logits, targets) if top1 else targets
            score = select_target(logits, classes, target_fn)
        activations = seen[-1]
        grads = tf.cast(tape.gradient(score, activations), tf.float32)
        activations = tf.cast(activations, tf.float32)
        sequence = activations.shape.rank == 3            # (B, steps, K): as (B, steps, 1, K)
        if sequence:
            activations, grads = activations[:, :, None, :], grads[:, :, None, :]
        negative = tf.zeros(tf.shape(images)[:1], tf.bool)
        if self.plus_plus:
            weights, negative = plus_plus_weights(activations, grads)
        else:
            weights = tf.reduce_mean(grads, axis=[1, 2])
        # Σ_k α_k A^k as an element-wise product and sum: no float32 matmul (TF32 on GPUs).
        maps = tf.nn.relu(tf.reduce_sum(activations * weights[:, None, None, :], axis=-1))
        if sequence:
            size = tf.stack([tf.shape(images)[1], 1])
            maps = tf.image.resize(maps[..., None], size, method="bilinear")[..., 0, 0]
        else:
            size = tf.shape(images)[1:3]
            maps = tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]
        return maps, negative, logits, classes

    def heatmaps(self, images, targets=None) -> tf.Tensor:
        """The Grad-CAM maps L, float32: (B, H, W) for images, (B, T) for series and
        token ids (one score per step or token)."""
        images, context = self._engine.check_inputs(images)
        classes, target_fn, _ = self._engine.start(images, targets, None, context)
        if classes is None:
            return tf.zeros(tf.shape(images)[:3 if images.shape.rank == 4 else 2])
        function = self._function(target_fn)
        chunks = [function(images[i:i + self.batch_size], classes[i:i + self.batch_size])
                  for i in range(0, int(images.shape[0]), self.batch_size)]
        maps = tf.concat([chunk[0] for chunk in chunks], 0)
        negative = np.concatenate([chunk[1].numpy() for chunk in chunks])
        if negative.any():
            warnings.warn(
                f"Grad-CAM++ on layer {self._layer.name!r}: images "
                f"{np.flatnonzero(negative).tolist()} (0-based, in this call) have negative "
                "activations there, for which the paper's coefficients (derived for A ≥ 0) "
                "can turn negative or explode; they were clipped to [0, ½]. A ReLU layer "
                "(or plain Grad-CAM) avoids this.", stacklevel=2)
        warn_if_not_finite(finite_rows(maps).numpy(), stacklevel=3)
        return maps

    def _broadcast(self, maps):
        if len(self._logits.input_shape) == 1:          # token ids: a score per token
            return maps
        channels = int(self._logits.input_shape[-1])
        return tf.repeat(maps[..., None] / channels, channels, axis=-1)

    def explain(self, images, targets=None, *, keys=None, return_error: bool = False):
        """``L / C`` broadcast over the C channels (see the class docstring); ``keys``
        is accepted for the common contract and unused (no random draws)."""
        _refuse_error(return_error)
        if not tf.executing_eagerly():                 # traced in a tf.function
            return self._traced(images, targets, keys, return_error)
        return self._broadcast(self.heatmaps(images, targets))

    __call__ = explain

    def run_in_graph(self, images, targets, *, keys=None, with_error: bool = False):
        """Graph-only maps for serving and ``tf.distribute`` (targets < 0: top-1):
        ``(attributions, logits, classes)``."""
        _refuse_error(with_error)
        maps, _, logits, classes = self._maps(images, targets, None, top1=True)
        return self._broadcast(maps), logits, classes


@register("grad_cam_plus_plus")
class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++: ``GradCAM(model, plus_plus=True)`` (see ``GradCAM``)."""

    def __init__(self, model, *, layer: Optional[str] = None, batch_size: int = 16,
                 seed: int = 0, jit_compile: bool = False):
        super().__init__(model, layer=layer, plus_plus=True, batch_size=batch_size,
                         seed=seed, jit_compile=jit_compile)


def plus_plus_weights(activations: tf.Tensor, grads: tf.Tensor):
    """Grad-CAM++'s ``α_k = Σ_ij a_ij^k ReLU(g_ij^k)`` with ``a`` clipped to [0, ½]
    (see the module docstring), and per image whether any activation is negative."""
    squared = grads * grads
    totals = tf.reduce_sum(activations, axis=[1, 2], keepdims=True)
    coefficients = tf.clip_by_value(
        tf.math.divide_no_nan(squared, 2.0 * squared + totals * squared * grads), 0.0, 0.5)
    weights = tf.reduce_sum(coefficients * tf.nn.relu(grads), axis=[1, 2])
    negative = tf.reduce_any(activations < 0, axis=[1, 2, 3])
    return weights, negative


def _refuse_error(asked) -> None:
    if asked:
        raise ValueError("Expected a Monte Carlo method for `return_error=True` / "
                         "`include_error=True`. Received: Grad-CAM, which is deterministic")
