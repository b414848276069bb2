"""Adaptive noising: choose SmoothTaylor's σ per image (Goh et al. 2020).

A derivative-free line search on an objective of the map (lower is better),
run for all images at once; each image carries its own state as tensors:

1. σ ← mean(|x|) (model-input space); score ← J(σ); best ← (σ, score);
   step α ← ``step``; stalls s ← 0.
2. Up to ``max_iterations`` times, for the images still searching: probe
   |σ + α|; if it scores worse than the current score, move to |σ − α| instead
   (even if that is worse too), else to |σ + α|. If the new point is still worse
   than the current one: if s < ``max_stalls`` then α ← ``decay``·α and
   s ← s + 1, else the image stops. Otherwise s ← 0, and the best is updated if
   the new point beats it. The new point always becomes the current one.
3. Return the best σ and its map.

Every evaluation draws fresh roots (``draw`` = 1 for the start, 2i and 2i + 1 for
the probes of iteration i), so the kept score is the minimum of noisy values and
biased low; ``rescored`` re-evaluates the kept σ on roots never used before.
One iteration is one batched SmoothTaylor plus one batched objective for the
images still searching (and one more of each for those probing |σ − α|).
σ is floored at 1e-6 so that |σ − α| stays a valid noise scale.
"""

from typing import Callable, Dict, NamedTuple, Optional, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.logits import resolve_targets
from tf_smoothtaylor.methods.maps import heatmap
from tf_smoothtaylor.methods.smooth_taylor import SmoothTaylor
from tf_smoothtaylor.metrics.aupc import AUPC
from tf_smoothtaylor.metrics.autvc import autvc

OBJECTIVES = ("aupc", "autvc")
_MIN_SIGMA = 1e-6


class AdaptiveResult(NamedTuple):
    """Outcome of :func:`adaptive_noising`, one entry per image.

    Attributes:
      noise_scale: (B,) the best σ.
      attributions: (B, ...) the SmoothTaylor attributions at the best σ.
      objective: (B,) their objective value (the minimum found: biased low).
      rescored: (B,) the objective at the best σ on fresh roots (unbiased).
      final_step: (B,) the step α when the search ended.
      iterations: (B,) iterations run.
      history_noise_scale: (I + 1, B) σ after each iteration (NaN once stopped).
      history_objective: (I + 1, B) the current score after each iteration.
    """
    noise_scale: tf.Tensor
    attributions: tf.Tensor
    objective: tf.Tensor
    rescored: tf.Tensor
    final_step: tf.Tensor
    iterations: tf.Tensor
    history_noise_scale: tf.Tensor
    history_objective: tf.Tensor


def _objective_function(model, objective, options) -> Callable:
    """``(images, attributions, targets) -> (B,)`` scores; lower is better."""
    if callable(objective):
        return objective
    _checks.one_of("objective", objective, OBJECTIVES, otherwise="a callable")
    if objective == "autvc":
        return lambda images, attributions, targets: autvc(heatmap(attributions), **options)
    metric = AUPC(model, **options)
    return lambda images, attributions, targets: metric(images, heatmap(attributions),
                                                        targets).aupc


class AdaptiveNoising:
    """Reusable adaptive noising for one model: compiled once, called on many batches.

    ``AdaptiveNoising.method`` is the registry name of the method it tunes.

    Args: as :func:`adaptive_noising`, without ``images`` and ``targets``.
    """

    method = SmoothTaylor.registry_name

    def __init__(self, model, *, objective: Union[str, Callable] = "aupc",
                 num_roots: int = 150, step: float = 0.1, decay: float = 0.9,
                 max_stalls: int = 3, max_iterations: int = 20, seed: int = 0,
                 batch_size: int = 64, objective_options: Optional[Dict] = None,
                 jit_compile: bool = False):
        self.step = _checks.positive_float("step", step)
        self.decay = _checks.positive_float("decay", decay)
        if self.decay >= 1.0:
            raise ValueError(f"Expected `decay` in (0, 1). Received: decay={decay}")
        self.max_stalls = _checks.positive_int("max_stalls", max_stalls, minimum=0)
        self.max_iterations = _checks.positive_int("max_iterations", max_iterations, minimum=0)
        options = dict(objective_options or {})
        if objective == "aupc":
            options.setdefault("seed", seed)
            options.setdefault("batch_size", batch_size)
        self._score = _objective_function(model, objective, options)
        self.explainer = SmoothTaylor(model, num_roots=num_roots, noise_scale=1.0,
                                      batch_size=batch_size, seed=seed,
                                      jit_compile=jit_compile)

    def __call__(self, images, targets=None, *, keys=None) -> AdaptiveResult:
        """Runs the search on ``images`` (see :func:`adaptive_noising`); ``keys``
        (one integer per image) pins the roots as in ``Explainer.explain``."""
        explainer = self.explainer
        images = explainer._engine.check_images(images)
        batch = int(images.shape[0])
        keys = explainer._engine.check_keys(keys, batch)
        if callable(targets):
            per_image = lambda index: targets  # noqa: E731
        else:
            explainer._logits.check_outputs(False)
            classes, _ = resolve_targets(targets, batch, explainer._logits.num_classes,
                                         lambda: explainer._engine.predict(images))
            per_image = lambda index: tf.gather(classes, index)  # noqa: E731

        def evaluate(index, sigma, draw):
            subset = tf.gather(images, index)
            maps = explainer.explain(subset, per_image(index), noise_scale=sigma, draw=draw,
                                     keys=None if keys is None else tf.gather(keys, index))
            scores = tf.cast(self._score(subset, maps, per_image(index)), tf.float32)
            return maps, scores

        return self._search(batch, images, evaluate)

    def _search(self, batch, images, evaluate) -> AdaptiveResult:
        everyone = tf.range(batch)
        sigma = tf.maximum(tf.reduce_mean(tf.abs(tf.reshape(images, [batch, -1])), axis=1),
                           _MIN_SIGMA)
        maps, score = evaluate(everyone, sigma, 1)
        best_sigma, best_score, best_maps = sigma, score, maps
        alpha = tf.fill([batch], self.step)
        stalls = tf.zeros([batch], tf.int32)
        active = tf.ones([batch], tf.bool)
        iterations = tf.zeros([batch], tf.int32)
        history_sigma, history_score = [sigma], [score]

        for iteration in range(1, self.max_iterations + 1):
            index = tf.where(active)[:, 0]
            if int(tf.size(index)) == 0:
                break
            s_now, a_now, score_now = (tf.gather(t, index) for t in (sigma, alpha, score))
            plus = tf.maximum(tf.abs(s_now + a_now), _MIN_SIGMA)
            new_maps, new_score = evaluate(index, plus, 2 * iteration)
            new_sigma = plus
            worse = new_score > score_now
            if bool(tf.reduce_any(worse)):
                where = tf.where(worse)[:, 0]
                minus = tf.maximum(tf.abs(tf.gather(s_now - a_now, where)), _MIN_SIGMA)
                minus_maps, minus_score = evaluate(tf.gather(index, where), minus,
                                                   2 * iteration + 1)
                position = where[:, None]
                new_sigma = tf.tensor_scatter_nd_update(new_sigma, position, minus)
                new_score = tf.tensor_scatter_nd_update(new_score, position, minus_score)
                new_maps = tf.tensor_scatter_nd_update(new_maps, position, minus_maps)
            still_worse = new_score > score_now
            stall_now = tf.gather(stalls, index)
            stop = still_worse & (stall_now >= self.max_stalls)
            shrink = still_worse & ~stop
            improved = ~still_worse & (new_score < tf.gather(best_score, index))
            position = index[:, None]

            def scatter(tensor, values):
                return tf.tensor_scatter_nd_update(tensor, position, values)

            alpha = scatter(alpha, tf.where(shrink, a_now * self.decay, a_now))
            stalls = scatter(stalls, tf.where(shrink, stall_now + 1,
                                              tf.where(still_worse, stall_now, 0)))
            active = scatter(active, ~stop)
            best_sigma = scatter(best_sigma, tf.where(improved, new_sigma,
                                                      tf.gather(best_sigma, index)))
            best_score = scatter(best_score, tf.where(improved, new_score,
                                                      tf.gather(best_score, index)))
            kept = tf.where(tf.reshape(improved, [-1] + [1] * (new_maps.shape.rank - 1)),
                            new_maps, tf.gather(best_maps, index))
            best_maps = scatter(best_maps, kept)
            sigma, score = scatter(sigma, new_sigma), scatter(score, new_score)
            iterations = scatter(iterations, tf.gather(iterations, index) + 1)
            history_sigma.append(tf.where(tf.scatter_nd(position, tf.ones_like(index, tf.bool),
                                                        [batch]), sigma, np.nan))
            history_score.append(tf.where(tf.scatter_nd(position, tf.ones_like(index, tf.bool),
                                                        [batch]), score, np.nan))

        _, rescored = evaluate(everyone, best_sigma, 2 * self.max_iterations + 2)
        return AdaptiveResult(best_sigma, best_maps, best_score, rescored, alpha, iterations,
                              tf.stack(history_sigma), tf.stack(history_score))


def adaptive_noising(model, images, *, targets=None,
                     objective: Union[str, Callable] = "aupc", num_roots: int = 150,
                     step: float = 0.1, decay: float = 0.9, max_stalls: int = 3,
                     max_iterations: int = 20, seed: int = 0, batch_size: int = 64,
                     objective_options: Optional[Dict] = None,
                     jit_compile: bool = False) -> AdaptiveResult:
    """SmoothTaylor with σ chosen per image by the paper's line search.

    To search many batches, build :class:`AdaptiveNoising` once and call it.

    Args:
      model: Keras model (or an object holding one as ``.model``).
      images: (B, ...) model inputs.
      targets: None (top-1), an int or one int per image (a callable works with
        "autvc" and callable objectives).
      objective: "aupc", "autvc", or a callable
        ``(images, attributions, targets) -> (B,)`` (lower is better).
      num_roots: R roots per evaluation (the paper: 150).
      step: Initial step α.
      decay: Factor applied to α at each stall.
      max_stalls: Stalls allowed in a row before an image stops.
      max_iterations: Iterations at most.
      seed: Seed of the roots (and of AUPC's noise).
      batch_size: Gradient evaluations per chunk (also AUPC's forward batch).
      objective_options: Keyword arguments of ``metrics.AUPC`` (``preprocess``,
        ``deprocess``, ``window``, ...) or ``metrics.autvc`` (``min_size``, ...).
      jit_compile: Compile SmoothTaylor's gradients with XLA.

    Returns:
      :class:`AdaptiveResult`.

    Example:
      >>> result = adaptive_noising(model, images, objective="autvc")
      >>> result.noise_scale, result.rescored
    """
    return AdaptiveNoising(model, objective=objective, num_roots=num_roots, step=step,
                           decay=decay, max_stalls=max_stalls, max_iterations=max_iterations,
                           seed=seed, batch_size=batch_size,
                           objective_options=objective_options,
                           jit_compile=jit_compile)(images, targets)
