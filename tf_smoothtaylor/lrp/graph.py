"""A Keras model's forward pass re-run layer by layer with relevance rules as its
gradients.

``RelevanceFunction(model, composite)`` is called like the model and returns the
same outputs (a BatchNormalization merged into the linear layer before it gives
them to float round-off); the gradient of an output with respect to the input is
the output's *relevance* at the input. Each layer's backward pass is replaced by
its kind's rule (``layers``): relevance travels backwards in the gradient, so one
backward pass gives the map. The outputs' own gradient seeds relevance with the
outputs' values: the gradient of ``Σ_c g_c · f_c`` starts as ``g ⊙ f`` (a class
logit, for a one-hot ``g``).

The user's model is read, never changed: the rules and the merged weights live
in the rewritten pass only.
"""

import collections
import math
from typing import Callable, Dict, Optional

import keras
import tensorflow as tf

from tf_smoothtaylor.lrp import layers as kinds
from tf_smoothtaylor.lrp import table
from tf_smoothtaylor.lrp.composites import Composite
from tf_smoothtaylor.lrp.rules import STABILIZER, stabilize

_SOFTMAX = ("softmax", "softmax_v2", "log_softmax")
_PROBABILITIES = _SOFTMAX + ("sigmoid",)
UNBOUNDED = ()          # an input-side tensor without known bounds


def with_backward(forward, backward, *inputs):
    """``forward(*inputs)`` whose gradient is ``backward(inputs, outputs, dy)`` (a
    list, one per input)."""

    @tf.custom_gradient
    def function(*xs):
        out = forward(*xs)

        def grad(dy, variables=None):
            grads = backward(xs, out, dy)
            return (grads, [None] * len(variables)) if variables else grads

        return out, grad

    return function(*inputs)


def _functional(model):
    """The functional graph of a functional or Sequential model."""
    graph = getattr(model, "_functional", model) if isinstance(
        model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        raise TypeError(
            "Expected a functional or Sequential Keras model (built, with inputs) for LRP: "
            "relevance rules rewrite the model's graph of layers. Received: model "
            f"{model.name!r} of type {type(model).__name__}, which has no such graph")
    return graph


class RelevanceFunction:
    """``inputs -> outputs`` of ``model`` whose gradient is relevance (module docstring).

    Args:
      model: A functional or Sequential Keras model.
      composite: The rules of the linear layers.
      canonize: Merge a BatchNormalization that follows a linear layer (without
        activation) into that layer's weights; other BatchNormalizations pass
        relevance through unchanged.
      strip: Drop a softmax or sigmoid producing a model output (explain logits).
      bounds: ``inputs -> (low, high)``, the lowest and highest values the
        explained input can take, shaped like it (for the box rule); or None.
      input_index: Which of the model's (flattened) inputs is explained.
    """

    def __init__(self, model, composite: Composite, *, canonize: bool = True,
                 strip: bool = True, bounds: Optional[Callable] = None, input_index: int = 0):
        self.model, self.composite = model, composite
        self.canonize, self.strip, self.bounds = canonize, strip, bounds
        self.input_index = input_index
        self.check(model)

    @property
    def key(self):
        """What the rewritten pass computes with besides the model, hashable — so one
        compiled pass serves every function with the same key — or None when it
        cannot be shared: box-rule bounds (a caller's own callable) or a user's rule
        that is not hashable."""
        if self.bounds is not None:
            return None
        key = ("lrp", self.input_index, self.composite, self.canonize, self.strip,
               table.version())
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def check(self, model) -> None:
        """Raises a ``ValueError`` naming the first layer LRP does not support (in
        nested models too), and when a rule needs bounds no one gave."""
        for node in self._nodes(_functional(model)):
            layer = node.operation
            kind = kinds.kind(layer)
            if kind is None:
                raise ValueError(
                    f"Expected layers that LRP supports ({kinds.SUPPORTED}), or a handler "
                    "registered for the layer's class (tf_smoothtaylor.lrp.register). "
                    f"Received: layer {layer.name!r} of type {type(layer).__name__} in model "
                    f"{model.name!r}")
            if kind == "model" and table.find(layer).handler is None:
                self.check(layer)
        if self.composite.needs_bounds and self.bounds is None:
            raise ValueError("Expected the input's bounds (low, high) for the box rule. "
                             "Received: none")

    @staticmethod
    def _nodes(graph):
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.operation is not None and not node.is_input:
                    yield node

    def __call__(self, inputs):
        flat = tf.nest.flatten(inputs)
        sides = [self.bounds(x) if self.bounds is not None and i == self.input_index
                 else UNBOUNDED for i, x in enumerate(flat)]
        outputs = self._run(self.model, flat, sides, at_output=True)
        seeded = [with_backward(tf.identity, lambda xs, out, dy: [dy * out], y)
                  for y in outputs]
        return tf.nest.pack_sequence_as(_functional(self.model)._outputs_struct, seeded)

    # -- one model's graph -----------------------------------------------------
    def _run(self, model, inputs, sides, *, at_output: bool):
        """The outputs of ``model`` (a list) for ``inputs``; ``sides``, per input: None,
        or — for an input on the model's input side (no linear layer before it) — its
        bounds ``(low, high)`` or ``UNBOUNDED``."""
        graph = _functional(model)
        values = {id(t): x for t, x in zip(graph.inputs, inputs)}
        # The tensors on the input side (before the first linear layer): their bounds.
        near = {id(t): side for t, side in zip(graph.inputs, sides) if side is not None}
        nonnegative = set()                  # ids of tensors known to be ≥ 0
        readers = collections.defaultdict(list)               # tensor id -> layers
        for node in self._nodes(graph):
            for t in node.input_tensors:
                readers[id(t)].append(node.operation)
        outputs = {id(t) for t in graph.outputs}
        folds = self._folds(graph, readers, outputs) if self.canonize else {}
        folded = {id(bn) for bn in folds.values()}
        for node in self._nodes(graph):
            if any(id(t) not in values for t in node.input_tensors):
                continue
            layer = node.operation
            args, kwargs = node.arguments.fill_in(values)
            xs = [values[id(t)] for t in node.input_tensors]
            last = at_output and all(id(t) in outputs for t in node.outputs)
            side = [near.get(id(t)) for t in node.input_tensors]
            entry = table.find(layer)
            kind = entry.kind
            if id(layer) in folded:
                result = xs[0]                       # already applied by the linear layer
            elif entry.handler is not None:          # the table's handler (users' first)
                result = entry.handler(table.Call(
                    layer=layer, node=node, inputs=xs, args=args, kwargs=kwargs, last=last,
                    first=side[0] is not None, bounds=side[0] or None,
                    nonnegative=id(node.input_tensors[0]) in nonnegative, function=self))
            elif kind in ("dense", "conv"):
                result = self._linear(layer, kind, xs[0], folds.get(id(layer)),
                                      first=side[0] is not None,
                                      bounds=side[0] or None, last=last,
                                      nonnegative=id(node.input_tensors[0]) in nonnegative,
                                      rectified=self._rectified(layer, node, folds, readers,
                                                                outputs))
            else:                                    # a nested model: rewritten the same way
                result = self._run(layer, xs, side, at_output=last)
                result = result[0] if len(result) == 1 else result
            produced = tf.nest.flatten(result)
            for t, y in zip(node.outputs, produced):
                values[id(t)] = y
            if kinds.keeps_sign(layer, [id(t) in nonnegative for t in node.input_tensors],
                                kind):
                nonnegative.update(id(t) for t in node.outputs)
            if (isinstance(layer, kinds.INPUT_SIDE) and len(xs) == 1
                    and id(node.input_tensors[0]) in near):
                near[id(node.outputs[0])] = _carry(layer, side[0])
        return [values[id(t)] for t in graph.outputs]

    @staticmethod
    def _folds(graph, readers, outputs) -> Dict[int, object]:
        """``id(linear layer) -> the BatchNormalization merged into it``."""
        folds = {}
        for node in RelevanceFunction._nodes(graph):
            bn = node.operation
            if not isinstance(bn, keras.layers.BatchNormalization):
                continue
            tensor = node.input_tensors[0]
            producer = tensor._keras_history.operation
            if (len(readers[id(tensor)]) == 1 and id(tensor) not in outputs
                    and len(getattr(producer, "_inbound_nodes", [])) == 1
                    and len(getattr(bn, "_inbound_nodes", [])) == 1
                    and kinds.folds_into(producer, bn, len(tensor.shape))):
                folds[id(producer)] = bn
        return folds

    def _rectified(self, layer, node, folds, readers, outputs) -> bool:
        """Whether the layer's negative outputs carry no relevance: a ReLU follows (its
        own activation, or the only reader of its output, after a merged BN) and every
        rule gives zero inputs none."""
        if not all(rule is None or rule.silent_on_zeros for rule in
                   (self.composite.dense, self.composite.conv)):
            return False
        if kinds.activation_name(layer) in kinds.RECTIFIERS:
            return True
        tensor = node.outputs[0]
        if id(layer) in folds:
            bn = folds[id(layer)]
            tensor = bn._inbound_nodes[0].outputs[0]
        after = readers.get(id(tensor), [])
        return (id(tensor) not in outputs and len(after) == 1
                and kinds.rectifies(after[0]))

    def _linear(self, layer, kind, x, fold, *, first: bool, bounds, last: bool,
                nonnegative: bool, rectified: bool):
        dtype = tf.as_dtype(layer.compute_dtype)
        x = tf.cast(x, dtype)
        steps = kinds.steps(layer, dtype, x.shape.rank, fold)
        for index, step in enumerate(steps):
            rule = self.composite.rule_for(kind, first and index == 0)
            if rule.needs_bounds and (bounds is None or index > 0):
                raise ValueError(
                    f"Expected the box rule only on a first layer (one that sees the model's "
                    f"input). Received: it on layer {layer.name!r}, which does not")
            options = dict(bounds=bounds, nonnegative=nonnegative) if index == 0 else {}
            if index == len(steps) - 1:
                options["rectified"] = rectified
            x = with_backward(
                step, lambda xs, z, r, step=step, rule=rule, options=options:
                [rule.propagate(step, xs[0], z, r, **options)], x)
        name = kinds.activation_name(layer)
        if name == "linear" or (last and self.strip and name in _PROBABILITIES):
            return x
        return _passed(layer.activation, x)

    def _pass(self, layer, x, last: bool):
        name = kinds.activation_name(layer)
        softmax = isinstance(layer, keras.layers.Softmax) or name in _SOFTMAX
        if last and self.strip and (softmax or name in _PROBABILITIES):
            return x
        if softmax:
            raise ValueError(
                "Expected a softmax only as the model's last layer for LRP (it is removed "
                f"there). Received: layer {layer.name!r} inside the model")
        return _passed(lambda v: layer(v, training=False) if _has_training(layer)
                       else layer(v), x)


def _has_training(layer) -> bool:
    return bool(getattr(layer, "_call_has_training_arg", False))


def _inference(layer, kwargs):
    if _has_training(layer):
        return {**kwargs, "training": False}
    return kwargs


def _passed(function, x):
    """``function(x)`` (elementwise) passing relevance through unchanged."""
    return with_backward(function, lambda xs, out, dy: [tf.cast(dy, xs[0].dtype)], x)


def _proportional(layer, xs, *, relative: bool):
    """A weight-free linear layer: ``R_i = x_i ⊙ ∇_{x_i}⟨layer(x), R / stab(layer(x))⟩``
    (``stab`` relative to the outputs with ``relative``)."""
    def backward(inputs, out, r):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            again = layer(list(inputs)) if len(inputs) > 1 else layer(inputs[0])
        s = r / stabilize(tf.cast(out, r.dtype), STABILIZER, relative=relative)
        grads = tape.gradient(again, list(inputs), output_gradients=tf.cast(s, again.dtype))
        return [x * tf.cast(g, x.dtype) for x, g in zip(inputs, grads)]

    return with_backward(lambda *v: layer(list(v)) if len(v) > 1 else layer(v[0]),
                         backward, *xs)


def _gate(layer, node, xs):
    """Multiply with gates: the one other input takes all the relevance."""
    sources = [t._keras_history.operation for t in node.input_tensors]
    sizes = [math.prod(d or 0 for d in t.shape[1:]) for t in node.input_tensors]
    gated = [kinds.activation_name(op) in kinds.SIGMOIDS for op in sources]
    if sum(gated) != len(xs) - 1:
        gated = [size < max(sizes) for size in sizes]
    if sum(gated) != len(xs) - 1:
        raise ValueError(
            "Expected Multiply to gate one input by the others (a sigmoid-family output, or "
            f"a smaller tensor broadcast over it). Received: layer {layer.name!r} with inputs "
            f"of shapes {[tuple(t.shape) for t in node.input_tensors]}")
    keep = gated.index(False)

    def backward(inputs, out, r):
        return [tf.cast(r, x.dtype) if i == keep else tf.zeros_like(x)
                for i, x in enumerate(inputs)]

    return with_backward(lambda *v: layer(list(v)), backward, *xs)


def _carry(layer, bounds):
    """The bounds after an input-side layer (monotone maps: the lower and upper of the
    images of the two bounds)."""
    if not bounds:
        return bounds
    low, high = (layer(b, training=False) if _has_training(layer) else layer(b)
                 for b in bounds)
    return tf.minimum(low, high), tf.maximum(low, high)


def passing(call: table.Call):
    """Handler of elementwise maps: relevance passes through, ``R_in = R_out`` (a
    softmax only as the model's last layer, where it is removed)."""
    return call.function._pass(call.layer, call.inputs[0], call.last)


def proportional(call: table.Call):
    """Handler of weight-free sums (average pooling, Add): relevance split in
    proportion to each input's contribution."""
    return _proportional(call.layer, call.inputs,
                         relative=call.function.composite.relative)


def routing(call: table.Call):
    """Handler of layers that move values (max pooling, reshapes, padding): the plain
    gradient routes relevance to where each value came from."""
    return call.layer(*call.args, **_inference(call.layer, call.kwargs))


def gating(call: table.Call):
    """Handler of Multiply by gates: the gates are held constant, the one other input
    takes all the relevance."""
    return _gate(call.layer, call.node, call.inputs)


passing.kind, proportional.kind, routing.kind, gating.kind = (
    "pass", "proportional", "route", "gate")

L = keras.layers
table.built_in([
    table.Entry(kinds.DENSE, "dense", None),
    table.Entry(kinds.CONV, "conv", None),
    table.Entry((keras.Model,), "model", None),
    table.Entry((L.UpSampling2D,), "unsupported", None,
                accepts=lambda layer: layer.interpolation != "nearest"),
    table.Entry(kinds.PROPORTIONAL, "proportional", proportional),
    table.Entry(kinds.ROUTE, "route", routing),
    table.Entry(kinds.PASS, "pass", passing),
    table.Entry((L.Multiply,), "gate", gating),
])


__all__ = ["RelevanceFunction", "gating", "passing", "proportional", "routing",
           "with_backward"]
