"""Expected Gradients (Erion et al. 2021) and GradientSHAP (Lundberg & Lee 2017).

    EG(x) = E_{b ~ D, α ~ U(0, 1)} [(x' − b) ⊙ ∇f(b + α (x' − b))]
          ≈ (1/N) Σ_n (x'_n − b_n) ⊙ ∇f(b_n + α_n (x'_n − b_n))

with baselines ``b`` drawn uniformly from a reference set ``D`` and one α per
sample; ``x' = x`` for Expected Gradients, ``x' = x + ε``, ``ε ~ N(0, σ²)`` for
GradientSHAP (``noise_scale``). Completeness holds in expectation:
``E[Σ EG(x)] = f(x) − E_b[f(b)]`` (without input noise). Each sample is one
independent draw: ``return_error=True`` and ``num_samples="auto"`` apply.
"""

from typing import Optional, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks, streams as _random
from tf_smoothtaylor.engine import Scheme, per_point
from tf_smoothtaylor.engine.at_layer import split_inputs
from tf_smoothtaylor.methods.base import Explainer
from tf_smoothtaylor.methods.options import AUTO, Option
from tf_smoothtaylor.methods.registry import register


def _reference_array(references, max_references: int, seed: int) -> np.ndarray:
    """At most ``max_references`` inputs of an array or a dataset of batches: all of
    them, or a uniform random subset drawn with ``seed`` (data sorted by class
    would bias the first ones); an array is indexed before it is converted."""
    rng = np.random.default_rng([seed, 0x5EF])
    if isinstance(references, tf.data.Dataset):
        if int(references.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError("Expected `references` to be a finite tf.data.Dataset (a "
                             "random subset of it is kept). Received: an infinite dataset "
                             "(drop .repeat())")
        return _reservoir(references, max_references, rng)
    if isinstance(references, (str, bytes, dict)) or not hasattr(references, "__len__"):
        raise TypeError("Expected `references` to be an array of model inputs or a "
                        f"tf.data.Dataset. Received: {type(references).__name__}")
    count = len(references)
    if count > max_references:
        picked = np.sort(rng.choice(count, max_references, replace=False))
        references = (references[picked] if hasattr(references, "shape")
                      else [references[int(i)] for i in picked])
    try:
        return np.asarray(references, np.float32)
    except (TypeError, ValueError):
        raise TypeError("Expected `references` to be an array of model inputs or a "
                        f"tf.data.Dataset. Received: {type(references).__name__}") from None


def _reservoir(dataset, size: int, rng) -> np.ndarray:
    """A uniform random subset of ``size`` inputs of a dataset of batches (or of
    ``(inputs, ...)`` tuples), read once (Vitter's algorithm R)."""
    kept, seen = [], 0
    for element in dataset:
        batch = np.asarray(element[0] if isinstance(element, (tuple, list)) else element,
                           np.float32)
        for row in batch:
            if seen < size:
                kept.append(row)
            else:
                slot = rng.integers(0, seen + 1)
                if slot < size:
                    kept[slot] = row
            seen += 1
    return np.stack(kept) if kept else np.zeros([0], np.float32)


class ExpectedGradientsScheme(Scheme):
    """Sample n of an image: a reference ``b_n`` and ``α_n ~ U[0, 1]``; the point
    ``b_n + α_n (x' − b_n)`` (``x'``: x, or x plus noise for GradientSHAP),
    multiplier ``x' − b_n``, weight ``1/N``."""

    uses_random = True
    independent_points = True

    def __init__(self, *, references: tf.Variable, noise_scale, **attributes):
        super().__init__(**attributes)
        self.references, self.noise_scale = references, noise_scale
        self.point_weight = self.equal_weight(self.num_points)

    def points(self, x, params, keys, k):
        count = tf.shape(self.references)[0]
        u = _random.uniform(keys, _random.REFERENCES, k, [2])
        pick = tf.minimum(tf.cast(u[:, 0] * tf.cast(count, tf.float32), tf.int32), count - 1)
        b = tf.gather(self.references, pick)
        if self.noise_scale is not None:
            x = x + _random.normal(keys, _random.SMOOTHING, k, _random.row_shape(x),
                                   scale=tf.fill(tf.shape(k), self.noise_scale))
        alpha = per_point(u[:, 1], x)
        return b + alpha * (x - b), x - b, None


@register("expected_gradients", monte_carlo="always")
class ExpectedGradients(Explainer):
    """Expected Gradients / GradientSHAP attributions.

    Args:
      model: Keras model (explained on its logits).
      references: The reference set D: an array (M, ...) of model inputs, or a
        finite ``tf.data.Dataset`` of such batches (or of ``(inputs, ...)``
        tuples); at most ``max_references`` of them are kept on the device, a
        uniform random subset drawn with ``seed`` when there are more.
      num_samples: N, (baseline, α) samples per image; or ``"auto"`` (see
        SmoothTaylor's ``num_roots``).
      noise_scale: σ of GradientSHAP's input noise (None: Expected Gradients).
      max_references: Most reference inputs kept (default 1000).
      target_error, max_points: With ``num_samples="auto"``.
      layer, layer_input: Attribute at a layer (see ``Explainer``): the references
        are model inputs (an array, or a dict of every input of a multi-input
        model) whose activations there are the baselines.
      batch_size, seed, jit_compile: see ``Explainer``.

    Example:
      >>> eg = ExpectedGradients(model, references=x_train[:500], num_samples=200)
      >>> attributions = eg(images)
    """

    draw_setting = "num_samples"          # the setting that counts the draws
    options = {
        "references": Option("The reference set the baselines are drawn from (command "
                             "line: image files or globs, repeat the flag)", files=True),
        "num_samples": Option("N, (baseline, α) samples per image, or 'auto'", shared=True,
                              count=True),
        "noise_scale": Option("GradientSHAP's input noise σ (default none: Expected "
                              "Gradients)", flag="shap_noise_scale", kind=float, above=0),
        "max_references": Option("Most reference inputs kept (a seeded random subset of "
                                 "more)", minimum=1),
        **AUTO,
    }

    def __init__(self, model, *, references, num_samples: Union[int, str] = 100,
                 noise_scale: Optional[float] = None, max_references: int = 1000,
                 target_error: Optional[float] = None, max_points: Optional[int] = None,
                 layer=None, layer_input: bool = False, batch_size: int = 64, seed: int = 0,
                 jit_compile: bool = False):
        self.num_samples, self.target_error, self.max_points = _checks.point_count(
            "num_samples", num_samples, target_error, max_points)
        self.noise_scale = (None if noise_scale is None
                            else _checks.positive_float("noise_scale", noise_scale))
        self.max_references = _checks.positive_int("max_references", max_references)
        self.references = references
        super().__init__(model, layer=layer, layer_input=layer_input, batch_size=batch_size,
                         seed=seed, jit_compile=jit_compile)
        if layer is None:
            array = _reference_array(references, self.max_references, _checks.seed(seed))
        else:                                 # the references' activations at the layer
            array = self._layer_references(references, _checks.seed(seed))
        shape = self._logits.input_shape
        fits = array.ndim == len(shape) + 1 and len(array) > 0 and all(
            s is None or s == a for s, a in zip(shape, array.shape[1:]))
        if not fits:
            raise ValueError("Expected `references` to hold at least one model input of "
                             f"shape {shape}. Received: shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("Expected `references` to be finite. Received: NaN or Inf")
        # A variable, not a constant: the set is not copied into every traced graph.
        self._references = tf.Variable(array, trainable=False, name="references")

    def _layer_references(self, references, seed: int) -> np.ndarray:
        """At most ``max_references`` reference inputs (an array or a dict of every
        input; a seeded random subset of more) as the layer's activations."""
        rows = references if isinstance(references, dict) else {"": references}
        counts = {len(np.asarray(v)) for v in rows.values()}
        if len(counts) != 1:
            raise ValueError("Expected every input of `references` to hold the same number "
                             f"of rows. Received: {sorted(counts)}")
        count = counts.pop()
        if count > self.max_references:
            picked = np.sort(np.random.default_rng([seed, 0x5EF]).choice(
                count, self.max_references, replace=False))
            rows = {k: np.asarray(v)[picked] for k, v in rows.items()}
        given = rows[""] if "" in rows else rows
        context = split_inputs(self._logits, given)
        return self._logits.activations(context, self.batch_size).numpy()

    def make_scheme(self) -> Scheme:
        return ExpectedGradientsScheme(
            references=self._references, noise_scale=self.noise_scale,
            num_points=self.max_points or self.num_samples, target_error=self.target_error,
            max_points=self.max_points)
