"""Layer-wise relevance propagation (Bach et al., PLoS ONE 2015) and Deep Taylor
decomposition (Montavon et al., Pattern Recognition 2017).

The target logit ``f_t(x)`` is redistributed backwards, layer by layer, by each
layer's rule until it reaches the input:

    R^(L) = f_t(x) at the target,   R_i = Σ_j q_ij / Σ_i' q_i'j · R_j,

with ``q_ij`` the contribution of input i to output j as the layer's rule counts
it (``lrp.rules``); a composite (``lrp.composites``) picks the rule of each
layer. Relevance is the gradient of the model rewritten with those rules
(``lrp.graph``), so an LRP map is one point per image on the shared engine:
batched, chunked, one rule-modified backward pass.
"""

from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.logits import LogitModel, as_float32, resolve_targets
from tf_smoothtaylor.engine import Scheme
from tf_smoothtaylor.lrp import conservation
from tf_smoothtaylor.lrp.composites import PRESETS, Composite, preset
from tf_smoothtaylor.lrp.graph import RelevanceFunction
from tf_smoothtaylor.methods import _baselines
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.gradient import GradientScheme
from tf_smoothtaylor.methods.options import Option
from tf_smoothtaylor.methods.registry import register

# How far inputs may stray outside the box rule's bounds (round-off of preprocess).
BOUNDS_TOLERANCE = 1e-3


class RelevanceLogits:
    """The logits of a model whose gradient is relevance: called like ``LogitModel``
    (the engine differentiates this call); everything else — ``predict`` for the
    top-1 classes, shapes, checks — is the model's own ``LogitModel``.

    When the rewritten pass has a ``key`` (``RelevanceFunction.key``), graphs call one
    compiled function per Keras model and key (``LogitModel.shared``): every LRP
    explainer of a model with the same rules traces the rewritten pass once."""

    def __init__(self, logits: LogitModel, function: RelevanceFunction):
        self._logits, self._function, self._key = logits, function, function.key

    def __getattr__(self, name):
        return getattr(self._logits, name)

    def __call__(self, z: tf.Tensor, context=()):
        if self._key is None or tf.executing_eagerly():
            return as_float32(self._function(self._logits.inputs_of(z, context)))
        shared = self._logits.shared(self._key, self._function)
        return shared(tf.cast(z, tf.float32), tuple(context))


@register("lrp", exempt={
    "nan_isolation": "LRP rewrites every layer by its rule and refuses a layer it has no "
                     "rule for, as the test's NaN-making layer (an error naming it); its "
                     "pass keeps images apart as the engine's does"})
class LRP(Explainer):
    """Layer-wise relevance propagation with a composite of rules.

    Relevance is conserved by the z⁺, αβ, box and flat rules and by every
    non-linear layer (``Σ_i R_i = f_t(x)`` up to outputs with no contribution of
    the rule's kind, e.g. a positive output made by its bias alone under z⁺); the
    ε and γ rules give a share to biases (none on bias-free layers, ε → 0). Which
    layers are supported and how each passes relevance: ``lrp.layers``. A map whose
    relevance vanished (``Σ|R| < 10⁻³ |f_t(x)|``: a stabiliser above the layers'
    outputs absorbed it) or, under rules that all conserve, whose sum is far from
    the logit, is reported with a warning naming the images (``lrp.conservation``).

    Args:
      model: A functional or Sequential Keras model (explained on its logits).
      composite: A preset (``lrp.composites.PRESETS``: "epsilon_plus" — ε for
        dense layers, z⁺ for convolutions: one backward pass and a bit —,
        "epsilon_gamma_box", "epsilon_plus_flat", "epsilon_alpha2_beta1",
        "deep_taylor", ... ) or an ``lrp.Composite``.
      epsilon: ε of the presets' ε rule.
      gamma: γ of the presets' γ rule.
      relative_epsilon: Scale every stabiliser (ε, and the other rules' 1e-6) by
        the mean ``|z|`` of its layer's outputs for each image, so that relevance
        does not vanish in a model whose activations are tiny (an untrained one's
        logits can be 1e-11); the maps of a model whose activations are all c
        times larger are then c times larger.
      canonize: Merge each BatchNormalization that follows a linear layer into
        that layer's weights (``W·s``, ``(b − μ)·s + β``) so the rule sees the
        layer the model computes; other BatchNormalizations pass relevance
        through unchanged.
      preprocess: Pixels in [0, 1] -> model inputs; the box rule's bounds are
        ``preprocess(0)`` and ``preprocess(1)`` (the model's own when it is a
        ``models.ModelSpec``; without one, inputs are pixels in [0, 1]).
      batch_size, seed, jit_compile: see ``Explainer``.

    Raises:
      ValueError: for a layer LRP does not support (naming it), and, with a box
        rule, for inputs outside its bounds.

    Example:
      >>> lrp = LRP(spec, composite="epsilon_gamma_box")
      >>> relevance = lrp.explain(images)            # sums to about each logit
      >>> dtd = LRP(spec, composite="deep_taylor")   # Deep Taylor decomposition
    """

    options = {
        "composite": Option("The rules by layer type and position (a preset; in Python "
                            "also an lrp.Composite)", flag="lrp_composite", choices=PRESETS),
        "epsilon": Option("ε of the ε rule", flag="lrp_epsilon", kind=float, minimum=0),
        "gamma": Option("γ of the γ rule", flag="lrp_gamma", kind=float, minimum=0),
        "relative_epsilon": Option("Scale every stabiliser by its layer's mean absolute "
                                   "output per image (relevance does not vanish in models "
                                   "with tiny activations)", flag="lrp_relative_epsilon"),
        "canonize": Option("Merge each BatchNormalization into the linear layer before it",
                           flag="lrp_canonize"),
        "preprocess": Option("Pixels in [0, 1] -> model inputs, for the box rule's bounds "
                             "(the model's own when it is a ModelSpec)", flag=None),
    }

    def __init__(self, model, *, composite: Union[str, Composite] = "epsilon_plus",
                 epsilon: float = 1e-6, gamma: float = 0.25, relative_epsilon: bool = False,
                 canonize: bool = True,
                 preprocess: Optional[Callable] = None, batch_size: int = 64, seed: int = 0,
                 jit_compile: bool = False):
        self.epsilon = _checks.finite_number("epsilon", epsilon)
        self.gamma = _checks.finite_number("gamma", gamma)
        for name, value in (("epsilon", self.epsilon), ("gamma", self.gamma)):
            if value < 0:
                raise ValueError(f"Expected `{name}` to be ≥ 0. Received: {name}={value}")
        for name, value in (("relative_epsilon", relative_epsilon), ("canonize", canonize)):
            if not isinstance(value, bool):
                raise TypeError(f"Expected `{name}` to be a bool. Received: {name}={value!r}")
        self.relative_epsilon, self.canonize = relative_epsilon, canonize
        if isinstance(composite, str):
            self._composite = preset(composite, epsilon=self.epsilon, gamma=self.gamma,
                                     relative=relative_epsilon)
        elif isinstance(composite, Composite):
            self._composite = composite.made_relative() if relative_epsilon else composite
        else:
            raise TypeError("Expected `composite` to be a preset name or an lrp.Composite. "
                            f"Received: composite of type {type(composite).__name__}")
        self.composite = composite
        self.preprocess, self._preprocess_from_model = _baselines.resolve_preprocess(
            model, preprocess)
        super().__init__(model, batch_size=batch_size, seed=seed, jit_compile=jit_compile)
        self._relevance = self._make_relevance()      # checks every layer now

    def _make_relevance(self) -> "RelevanceLogits":
        logits = self._logits
        function = RelevanceFunction(
            logits.model, self._composite, canonize=self.canonize, strip=logits.stripped,
            bounds=self.bounds if self.needs_bounds else None,
            input_index=logits.input_index)
        return RelevanceLogits(logits, function)

    @property
    def needs_bounds(self) -> bool:
        """Whether the composite has a box rule."""
        return self._composite.needs_bounds

    def bounds(self, images: tf.Tensor):
        """The box rule's ``(low, high)``, shaped like ``images``: the model inputs of
        black and of white pixels."""
        low = _baselines.black(images, self.preprocess)
        high = tf.ones_like(images)
        if self.preprocess is not None:
            high = tf.broadcast_to(tf.cast(self.preprocess(high), tf.float32), tf.shape(images))
        return tf.minimum(low, high), tf.maximum(low, high)

    def engine_model(self) -> "RelevanceLogits":
        return self._relevance

    def make_scheme(self) -> Scheme:
        return GradientScheme(times_input=False)

    def explain(self, images, targets=None, *, keys=None, return_error: bool = False):
        if not tf.executing_eagerly():                 # traced in a tf.function
            return self._traced(images, targets, keys, return_error)
        images, context = self._engine.check_inputs(images)
        if self.needs_bounds:
            self._check_bounds(images)
        batch = int(images.shape[0])
        extras = self.scheme.extras(images)
        if callable(targets) or return_error or not batch or self._logits.num_outputs != 1:
            return self._run(images, targets, extras, keys, context, return_error)
        # The logits that pick the top-1 classes also judge the maps (one forward pass).
        logits = self._logits.predict(images, self.batch_size, context)
        classes, _ = resolve_targets(targets, batch, self._logits.num_classes, lambda: logits)
        self._engine.check_probabilities(images, logits, context)
        maps = self._run(images, classes, extras, keys, context, return_error)
        conservation.warn_if_lost(maps.numpy(), logits[np.arange(batch), classes],
                                  self._composite)
        return maps

    __call__ = explain

    def _check_bounds(self, images: tf.Tensor) -> None:
        if images.shape.rank is None or images.shape.rank < 2 or not images.shape[0]:
            return
        low, high = self.bounds(images)
        below = float(tf.reduce_max(low - images))
        above = float(tf.reduce_max(images - high))
        if max(below, above) > BOUNDS_TOLERANCE or not np.isfinite(below + above):
            raise ValueError(
                "Expected model inputs within the box rule's bounds, the model inputs of "
                "black and white pixels (set `preprocess` to the model's pixel transform, "
                "or choose a composite without a box rule). Received: inputs up to "
                f"{max(below, above):.4g} outside them")
