"""Relevance propagation rules for one linear layer ``z_j = Σ_i a_i w_ij + b_j``.

Relevance travels backwards as the *gradient* of a rewritten forward pass (the
layer's output is unchanged; only its backward pass is the rule's): a rule
receives the relevance ``R_j`` of the layer's outputs and returns that of its
inputs, ``R_i``. Each rule is one ratio of contributions, evaluated with the
"gradient trick" (Montavon et al., *Layer-wise relevance propagation: an
overview*, 2019, §10.2): with a modified forward ``ẑ = ρ(a, W)``,

    R_i = a_i · [ ∇_a ⟨ẑ(a), s⟩ ]_i,      s_j = R_j / stab(ẑ_j),

one transposed layer per term. ``stab(z) = z + ε · sign(z)`` (``sign(0) = 1``)
keeps a near-zero denominator from exploding; every rule but ε uses
``STABILIZER`` = 1e-6. A stabiliser in absolute terms absorbs all the relevance
of a layer whose outputs are far below it (an untrained model's logits can be
1e-11): a rule made ``relative`` scales it by the layer's outputs for each image,
``stab(z) = z + ε · mean_j |z_j| · sign(z)``, so that a model whose activations
are all c times larger gives c times the relevance.

Notation: ``W⁺ = max(W, 0)``, ``W⁻ = min(W, 0)``, likewise for inputs;
``(a w)⁺ = a⁺ w⁺ + a⁻ w⁻`` is a positive contribution, ``(a w)⁻ = a⁺ w⁻ + a⁻ w⁺``
a negative one. Rules that favour one sign take inputs of either sign through
these parts; where the graph shows the inputs are non-negative (after a ReLU),
the ``a⁻`` terms are dropped.
"""

import copy
import dataclasses
from typing import Callable, Optional

import tensorflow as tf

STABILIZER = 1e-6


@dataclasses.dataclass(frozen=True)
class Step:
    """One linear map of a layer: ``op(a, kernel) + bias``.

    Attributes:
      op: ``(inputs, kernel) -> outputs``, linear in each argument (a matmul or
        a convolution with the layer's strides, padding and dilation).
      kernel: The weights (in the layer's compute dtype).
      bias: The bias broadcast to the outputs' rank, or None.
    """

    op: Callable
    kernel: tf.Tensor
    bias: Optional[tf.Tensor] = None

    def __call__(self, a, kernel=None, bias=None):
        """``op(a, kernel) + bias`` with the step's own kernel and bias by default."""
        z = self.op(a, self.kernel if kernel is None else kernel)
        bias = self.bias if bias is None else bias
        return z if bias is None else z + bias


def stabilize(z: tf.Tensor, epsilon: float, *, relative: bool = False) -> tf.Tensor:
    """``z + ε · sign(z)``, with ``sign(0) = 1``; with ``relative``, ε is times the mean
    ``|z|`` of each row (one image's outputs of the layer; ε itself where that is 0)."""
    if relative:
        axes = list(range(1, z.shape.rank))
        scale = tf.reduce_mean(tf.abs(z), axis=axes, keepdims=True)
        epsilon = tf.constant(epsilon, z.dtype) * tf.where(scale > 0, scale,
                                                           tf.ones_like(scale))
    else:
        epsilon = tf.constant(epsilon, z.dtype)
    return z + tf.where(z >= 0, epsilon, -epsilon)


def transpose(step: Step, a: tf.Tensor, kernel: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
    """``∇_a ⟨op(a, kernel), s⟩``: the layer's transpose applied to ``s`` (does not
    depend on ``a``'s values, only on its shape)."""
    with tf.GradientTape() as tape:
        tape.watch(a)
        z = step.op(a, kernel)
    return tape.gradient(z, a, output_gradients=s)


class Rule:
    """How relevance crosses one linear layer (subclasses: the rules below)."""

    #: Whether the rule needs the input's bounds (the box rule).
    needs_bounds = False
    #: Whether an input of value 0 gets no relevance (every rule that weighs by ``a``).
    silent_on_zeros = True
    #: Whether the rule passes on all the relevance it receives wherever the layer's
    #: outputs have a contribution of the kind it counts (biases take no share).
    conserves = False
    #: Whether the stabiliser scales with the layer's outputs (``made_relative``).
    relative = False

    def stabilized(self, z: tf.Tensor, epsilon: float = STABILIZER) -> tf.Tensor:
        """``stabilize(z, epsilon)``, relative to the layer's outputs when the rule is."""
        return stabilize(z, epsilon, relative=self.relative)

    def propagate(self, step: Step, a: tf.Tensor, z: tf.Tensor, r: tf.Tensor, *,
                  bounds=None, nonnegative: bool = False, rectified: bool = False) -> tf.Tensor:
        """Relevance ``R_i`` of the inputs ``a`` from ``r = R_j`` of the outputs ``z``.

        Args:
          step: The linear map (``z = step(a)``).
          a: Its inputs; ``z``: its outputs for them.
          r: The outputs' relevance.
          bounds: ``(low, high)`` shaped like ``a`` (the box rule).
          nonnegative: Whether ``a ≥ 0`` is known (the graph: after a ReLU).
          rectified: Whether outputs ``z_j < 0`` are known to carry no relevance (a
            ReLU follows and every later rule gives a zero input none).
        """
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


def made_relative(rule: Rule) -> Rule:
    """A copy of ``rule`` whose stabiliser is relative to the layer's outputs (module
    docstring); the rule itself is unchanged."""
    if rule.relative:
        return rule
    twin = copy.copy(rule)
    twin.relative = True
    return twin


def _signs(t):
    return tf.nn.relu(t), -tf.nn.relu(-t)


def _by_parts(step, a, first, second, s, nonnegative):
    """``a⁺ ⊙ Jᵀ_first(s) + a⁻ ⊙ Jᵀ_second(s)`` (just the first term when a ≥ 0)."""
    if nonnegative:
        return a * transpose(step, a, first, s)
    positive, negative = _signs(a)
    return (positive * transpose(step, positive, first, s)
            + negative * transpose(step, negative, second, s))


def _parts_sum(step, a, first, second, nonnegative):
    """``op(a⁺, first) + op(a⁻, second)`` (``op(a, first)`` when a ≥ 0)."""
    if nonnegative:
        return step.op(a, first)
    positive, negative = _signs(a)
    return step.op(positive, first) + step.op(negative, second)


class Zero(Rule):
    """LRP-0 (Bach et al., PLoS ONE 2015): ``R_i = Σ_j a_i w_ij / z_j · R_j``.

    A zero denominator passes no relevance. On a bias-free ReLU network, LRP-0
    everywhere equals Gradient × Input.
    """

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        return a * transpose(step, a, step.kernel, tf.math.divide_no_nan(r, z))


class Epsilon(Rule):
    """LRP-ε (Bach et al. 2015): ``R_i = Σ_j a_i w_ij / (z_j + ε·sign(z_j)) · R_j``.

    ε absorbs the relevance of weak or contradictory outputs (larger ε: sparser,
    less noisy maps; ε → 0 is LRP-0). Biases absorb their share: relevance is
    conserved only on bias-free layers and for ε → 0.
    """

    def __init__(self, epsilon: float = 1e-6):
        if not epsilon >= 0:
            raise ValueError(f"Expected `epsilon` ≥ 0. Received: epsilon={epsilon}")
        self.epsilon = float(epsilon)

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        return a * transpose(step, a, step.kernel, r / self.stabilized(z, self.epsilon))


class Gamma(Rule):
    """LRP-γ (Montavon et al. 2019): contributions of the output's own sign favoured,

        R_i = Σ_j (a_i w_ij + γ (a_i w_ij)^±) / (z_j + γ (Σ_i' (a_i' w_i'j)^± + b_j^±)) · R_j,

    with ``±`` the sign of ``z_j``: for non-negative inputs and ``z_j > 0`` the
    classic ``a_i (w_ij + γ w_ij⁺)``; the denominator keeps ``z_j``'s sign and is at
    least as large, so it never crosses zero. γ = 0 is LRP-0; γ → ∞ tends to z⁺.
    """

    def __init__(self, gamma: float = 0.25):
        if not gamma >= 0:
            raise ValueError(f"Expected `gamma` ≥ 0. Received: gamma={gamma}")
        self.gamma = float(gamma)

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        w_plus, w_minus = _signs(step.kernel)
        up = step.kernel + self.gamma * w_plus           # contributions of z ≥ 0
        down = step.kernel + self.gamma * w_minus        # contributions of z < 0
        positive = _parts_sum(step, a, w_plus, w_minus, nonnegative)
        bias = step.bias if step.bias is not None else tf.zeros([], z.dtype)
        rising = z >= 0
        extra = tf.where(rising, positive + tf.nn.relu(bias),
                         (z - bias - positive) - tf.nn.relu(-bias))
        s = r / self.stabilized(z + self.gamma * extra)
        if rectified:                                    # only z ≥ 0 carries relevance
            if nonnegative:
                return a * transpose(step, a, up, s)
            pos, neg = _signs(a)
            return pos * transpose(step, pos, up, s) + neg * transpose(step, neg, down, s)
        zero = tf.zeros_like(s)
        s_up, s_down = tf.where(rising, s, zero), tf.where(rising, zero, s)
        if nonnegative:
            return a * (transpose(step, a, up, s_up) + transpose(step, a, down, s_down))
        pos, neg = _signs(a)
        return (pos * (transpose(step, pos, up, s_up) + transpose(step, pos, down, s_down))
                + neg * (transpose(step, neg, down, s_up) + transpose(step, neg, up, s_down)))


class ZPlus(Rule):
    """z⁺ (Montavon et al., Pattern Recognition 2017, Deep Taylor decomposition):
    relevance in proportion to the positive contributions,

        R_i = Σ_j (a_i w_ij)⁺ / Σ_i' (a_i' w_i'j)⁺ · R_j      (a ≥ 0: a_i w_ij⁺ / Σ a w⁺).

    Biases take no relevance, so it is conserved wherever an output has a positive
    contribution.
    """

    conserves = True

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        w_plus, w_minus = _signs(step.kernel)
        s = r / self.stabilized(_parts_sum(step, a, w_plus, w_minus, nonnegative))
        return _by_parts(step, a, w_plus, w_minus, s, nonnegative)


class AlphaBeta(Rule):
    """LRP-αβ (Bach et al. 2015), α − β = 1:

        R_i = Σ_j ( α (a_i w_ij)⁺ / Σ_i' (a_i' w_i'j)⁺ − β (a_i w_ij)⁻ / Σ_i' (a_i' w_i'j)⁻ ) R_j.

    Biases take no relevance. α1β0 is z⁺.
    """

    conserves = True

    def __init__(self, alpha: float = 1.0, beta: float = 0.0):
        if abs(alpha - beta - 1.0) > 1e-9 or beta < 0:
            raise ValueError("Expected `alpha` − `beta` = 1 with `beta` ≥ 0 (the αβ rule "
                             f"conserves relevance). Received: alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        w_plus, w_minus = _signs(step.kernel)
        s = self.alpha * r / self.stabilized(_parts_sum(step, a, w_plus, w_minus,
                                                        nonnegative))
        out = _by_parts(step, a, w_plus, w_minus, s, nonnegative)
        if self.beta:
            s = self.beta * r / self.stabilized(_parts_sum(step, a, w_minus, w_plus,
                                                           nonnegative))
            out -= _by_parts(step, a, w_minus, w_plus, s, nonnegative)
        return out


class Box(Rule):
    """z^B, the box rule for inputs bounded by ``l ≤ a ≤ h`` (Montavon et al. 2017):

        R_i = Σ_j (a_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) / Σ_i' (a_i' w_i'j − l_i' w_i'j⁺ − h_i' w_i'j⁻) · R_j.

    For the first layer, with ``l`` and ``h`` the model inputs of black (pixels 0)
    and white (pixels 1); biases take no relevance.
    """

    conserves = True

    needs_bounds = True

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        low, high = bounds
        w_plus, w_minus = _signs(step.kernel)
        denominator = (step.op(a, step.kernel) - step.op(low, w_plus)
                       - step.op(high, w_minus))
        s = r / self.stabilized(denominator)
        return (a * transpose(step, a, step.kernel, s) - low * transpose(step, low, w_plus, s)
                - high * transpose(step, high, w_minus, s))


class Flat(Rule):
    """Flat (Lapuschkin et al., Nature Communications 2019): every input of an
    output's receptive field gets an equal share, ``R_i = Σ_j 1 / Σ_i' 1 · R_j``."""

    conserves = True

    silent_on_zeros = False

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        ones, kernel = tf.ones_like(a), tf.ones_like(step.kernel)
        s = r / self.stabilized(step.op(ones, kernel))
        return transpose(step, ones, kernel, s)


class WSquare(Rule):
    """w² (Montavon et al. 2017): ``R_i = Σ_j w_ij² / Σ_i' w_i'j² · R_j``, independent
    of the input (for a first layer of unbounded inputs)."""

    conserves = True

    silent_on_zeros = False

    def propagate(self, step, a, z, r, *, bounds=None, nonnegative=False, rectified=False):
        ones, kernel = tf.ones_like(a), tf.square(step.kernel)
        s = r / self.stabilized(step.op(ones, kernel))
        return transpose(step, ones, kernel, s)
