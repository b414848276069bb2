"""The contract shared by every explainer.

An explainer is a thin holder of settings around one compiled engine
(``tf_smoothtaylor.engine``). All explainers share this contract:

* ``explain(images, targets=None) -> tf.Tensor`` (``__call__`` is an alias)
  returns float32 attributions shaped like ``images``;
* ``images`` are model inputs (after preprocessing), shape ``(batch,) +
  model input shape``, finite; an empty batch gives an empty result;
* ``targets``: ``None`` explains each image's top-1 predicted class; an int, or
  one int per image, names the class; a callable ``(model_output) -> (batch,)``
  picks any scalar (for other heads and multi-output models). Class outputs are
  explained on their **logits**: a final softmax is removed first;
* results depend on ``seed`` and the images' content only — never on
  ``batch_size``, on the other images of the call, or on their order. Random
  draws are keyed by a hash of each image's values, so an image preprocessed
  by two pipelines that differ by one ulp gets other draws; ``keys=`` (one
  integer per image, e.g. a file id) pins the draws to the caller's ids
  instead;
* a non-finite gradient of one image (NaN/Inf) makes that image's map
  non-finite and is reported with a warning; it never reaches other images;
* settings are keyword-only and checked at construction.
"""

import functools
import inspect
import warnings
from typing import Callable, NamedTuple, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_smoothtaylor.engine import checks as _checks
from tf_smoothtaylor.engine.at_layer import LayerLogits, integer_input_error, split_inputs
from tf_smoothtaylor.engine.logits import LogitModel, resolve_targets
from tf_smoothtaylor.engine import Engine, Scheme
from tf_smoothtaylor.methods import registry
from tf_smoothtaylor.methods.options import Option

Targets = Optional[Union[int, np.ndarray, list, Callable]]

def __getattr__(name: str):
    """``MONTE_CARLO`` / ``MONTE_CARLO_NAMES``: the registry's Monte Carlo methods in
    words (earlier versions' constants)."""
    if name in ("MONTE_CARLO", "MONTE_CARLO_NAMES"):
        return registry.monte_carlo(flags=name == "MONTE_CARLO_NAMES")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Estimate(NamedTuple):
    """Attributions with their Monte Carlo precision (``return_error=True``).

    Attributes:
      attributions: (B, ...) the estimate, as ``explain`` returns it.
      standard_error: (B, ...) per element, the standard error of the mean
        over the image's ``num_points`` independent points, √(s² / n).
      relative_error: (B,) the heatmap's relative Monte Carlo error
        ``‖SE(h)‖₂ / ‖h‖₂`` (h: the channel sum; each draw's channel sum is
        accumulated, so covariance between channels counts), with ``‖h‖²``
        estimated without its noise as ``‖ĥ‖² − ‖SE‖²`` (``engine.moments``); ``inf``
        (with a warning) when the map cannot be told from its noise, NaN when
        n < 2. RISE judges the map minus its spatial mean.
      num_points: Draws per image (n: roots, samples or random baselines): an
        int, or with a number chosen per image ("auto"), an int array (B,).
    """
    attributions: tf.Tensor
    standard_error: tf.Tensor
    relative_error: tf.Tensor
    num_points: Union[int, np.ndarray]


class Explainer:
    """Base class: holds the model and the settings, and delegates to its scheme.

    A method's settings live here, checked at construction; what the engine needs
    (points, multipliers, weights, draw size) is a separate :class:`Scheme` that
    :meth:`make_scheme` builds from the settings the first time the engine is
    needed, so a subclass may set its settings before or after calling
    ``Explainer.__init__``.

    Args:
      model: A Keras model (or an object with a Keras model as ``.model``).
      layer: Attribute to this layer's output instead of the model's input: its
        name, its path through nested models (``"backbone/token_embedding"``) or
        the layer (``engine.at_layer``); the model's inputs are held fixed.
      layer_input: With ``layer``, attribute to what the layer receives instead.
      batch_size: Gradient evaluations per compiled chunk; memory grows with it,
        results do not change with it.
      seed: Seed of every random draw (roots, noise, baselines).
      jit_compile: Compile each chunk's forward/backward pass with XLA.
    """

    # Forward-only methods that replace whole inputs (Occlusion) can take integer
    # inputs (token ids) as they are: what a window becomes is an id too.
    takes_ids = False

    options = {
        "batch_size": Option("Model evaluations per compiled chunk (memory grows with it, "
                             "results do not change)", shared=True, minimum=1),
        "seed": Option("Seed of every random draw", shared=True, minimum=0),
        "jit_compile": Option("Compile each chunk's forward/backward pass with XLA",
                              shared=True),
        "layer": Option("Attribute to this layer's output (a name, a path through nested "
                        "models, or the layer), the model's inputs held fixed: token ids "
                        "through their embeddings", shared=True, kind=str),
        "layer_input": Option("With `layer`: attribute to what the layer receives (its "
                              "input) instead of its output", shared=True),
    }

    def __init__(self, model, *, layer=None, layer_input: bool = False, batch_size: int = 64,
                 seed: int = 0, jit_compile: bool = False):
        if not isinstance(layer_input, bool):
            raise TypeError(f"Expected `layer_input` to be a bool. Received: {layer_input!r}")
        if layer_input and layer is None:
            raise ValueError("Expected `layer` with layer_input=True (the layer whose input "
                             "is attributed to). Received: layer=None")
        self.layer_input = layer_input
        self._logits = LogitModel(model) if layer is None else LayerLogits(
            model, layer, side="input" if layer_input else "output")
        self.layer = None if layer is None else (
            layer if isinstance(layer, str) else self._logits.layer.name)
        if layer is None and self._logits.input_dtype.is_integer and not self.takes_ids:
            raise integer_input_error(self._logits.model, [self._logits.input_names[
                self._logits.input_index]])
        self._built_on = model              # the model or ModelSpec given (its transforms)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.seed = _checks.seed(seed)
        if not isinstance(jit_compile, bool):
            raise TypeError("Expected `jit_compile` to be a bool. "
                            f"Received: jit_compile={jit_compile!r}")
        self.jit_compile = jit_compile

    def make_scheme(self) -> Scheme:
        """The engine's view of this method, from its settings (see ``engine.scheme``)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its scheme")

    def engine_model(self) -> LogitModel:
        """The function the engine differentiates: the model's logits (LRP: with its
        rules as their gradient)."""
        return self._logits

    @functools.cached_property
    def scheme(self) -> Scheme:
        """The points, multipliers and weights the engine evaluates (made once, eagerly
        even when first asked for inside a traced function)."""
        with tf.init_scope():
            return self.make_scheme()

    @functools.cached_property
    def _engine(self) -> Engine:
        with tf.init_scope():
            return Engine(self.engine_model(), self.scheme, batch_size=self.batch_size,
                          seed=self.seed, jit_compile=self.jit_compile)

    @property
    def num_points(self) -> int:
        """Model evaluations per image (the most, with ``"auto"`` counts)."""
        return self.scheme.num_points

    @property
    def independent_points(self) -> bool:
        """Whether the draws are independent (standard errors, ``"auto"``)."""
        return self.scheme.independent_points

    @property
    def points_per_image(self) -> Optional[int]:
        """Model evaluations per image, or None when ``"auto"`` counts choose them
        per image."""
        return None if self.scheme.target_error is not None else self.scheme.num_points

    @property
    def model(self):
        """The Keras model being explained."""
        return self._logits.model

    @property
    def spec(self):
        """What the explainer was built on: a ModelSpec (with its pixel transforms)
        or the Keras model itself."""
        return self._built_on

    def settings(self) -> dict:
        """The keyword settings of this explainer, as its constructor takes them (a
        ``preprocess`` taken from the model is not a setting: another model brings
        its own)."""
        parameters = inspect.signature(type(self).__init__).parameters
        settings = {name: getattr(self, name) for name, parameter in parameters.items()
                    if parameter.kind is parameter.KEYWORD_ONLY}
        if getattr(self, "_preprocess_from_model", False):
            settings["preprocess"] = None
        return settings

    @classmethod
    def from_settings(cls, model, settings: dict) -> "Explainer":
        """The explainer of this method on ``model`` with ``settings`` as
        :meth:`settings` gives them (its inverse, as Keras's ``from_config`` is
        ``get_config``'s); an explainer among them (SmoothGrad's ``base``) moves to
        ``model``.

        Raises:
          TypeError: A setting this method does not take (naming it).
        """
        if not isinstance(settings, dict):
            raise TypeError(f"Expected `settings` to be a dict. Received: {settings!r}")
        taken = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(settings) - set(taken))
        if unknown:
            raise TypeError(f"Expected settings of {cls.__name__} "
                            f"({', '.join(n for n in taken if n not in ('self', 'model'))}). "
                            f"Received: {unknown}")
        return cls(model, **{name: value.with_model(model) if isinstance(value, Explainer)
                             else value for name, value in settings.items()})

    def with_model(self, model) -> "Explainer":
        """The same method with the same settings on another model (or ModelSpec);
        an explainer given as a setting (SmoothGrad's ``base``) moves along."""
        return type(self).from_settings(model, self.settings())

    @property
    def trace_count(self) -> int:
        """How many times the compiled attribution function was traced."""
        return self._engine.trace_count

    def explain(self, images, targets: Targets = None, *, keys=None,
                return_error: bool = False) -> Union[tf.Tensor, "Estimate"]:
        """Attributions of ``images`` for ``targets`` (see the module docstring).

        Args:
          images: (batch, ...) model inputs; for a multi-input model (built on
            ``models.select_input(model, name)``), a dict of every input, one row
            per image: the named one is explained, the others are held fixed.
          targets: None (top-1), an int, one int per image, or a callable.
          keys: None to key random draws by image content, or one integer per
            image (the same key gives the same draws, whatever the pixels).
          return_error: Also return the Monte Carlo standard errors (methods
            whose draws are independent: ``registry.monte_carlo()``), and the draws each
            image used.

        Returns:
          float32 tensor shaped like ``images``; with ``return_error``, an
          :class:`Estimate`.
        """
        if not tf.executing_eagerly():
            return self._traced(images, targets, keys, return_error)
        images, context = self._inputs(images)
        self._check_against(images)
        return self._run(images, targets, self.scheme.extras(images), keys, context,
                         return_error)

    def _check_against(self, images: tf.Tensor) -> None:
        """Warnings about the settings seen against the inputs explained (a baseline
        outside their range); none by default."""

    def _inputs(self, images):
        """``(explained values, inputs held fixed)``: the checked images (and a
        multi-input model's other inputs), or with ``layer`` the layer's activations
        and every model input."""
        if self.layer is None:
            return self._engine.check_inputs(images)
        context = split_inputs(self._logits, images)
        return self._logits.activations(context, self.batch_size), context

    def _traced(self, images, targets, keys, return_error):
        """``explain`` called while a ``tf.function`` is traced: the graph path
        (``run_in_graph``), with the checks a graph allows — the rank and the targets'
        kind and length when tracing, the classes' range when it runs
        (``InvalidArgumentError``)."""
        if not isinstance(return_error, bool):
            raise TypeError(f"Expected `return_error` to be a bool. Received: {return_error!r}")
        if isinstance(images, dict) or self._logits.context:
            raise ValueError("Expected a single-input model inside a tf.function. Received: "
                             "a model with inputs held fixed per image, or `layer` (call "
                             "it eagerly)")
        images = tf.convert_to_tensor(images, tf.float32)
        rank = len(self._logits.input_shape) + 1
        if images.shape.rank != rank:
            raise ValueError(f"Expected `images` of rank {rank} (a batch of inputs shaped "
                             f"{self._logits.input_shape}). Received: shape {images.shape}")
        batch = images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]
        classes = graph_targets(targets, batch, self._logits.num_classes)
        if return_error and not self.independent_points:
            raise ValueError("Expected a Monte Carlo method whose points are independent "
                             f"draws ({registry.monte_carlo()}) for `return_error=True`. "
                             f"Received: {type(self).__name__}")
        if self.points_per_image is None:
            raise ValueError("Expected a fixed number of draws inside a tf.function: an "
                             "'auto' count decides between rounds in Python (call it eagerly)")
        result, _, _ = self.run_in_graph(images, classes, keys=keys, with_error=return_error)
        if return_error:
            return Estimate(*result,
                            num_points=self.scheme.num_points // self.scheme.draw_size)
        return result

    def _fixed_image_size(self, method: str) -> Tuple[int, int]:
        """(height, width) of the model's image input, or a ``ValueError`` naming
        ``method`` when the input is not a fixed-size image."""
        shape = self._logits.input_shape
        if len(shape) != 3 or shape[0] is None or shape[1] is None:
            raise ValueError("Expected image inputs of fixed (height, width, channels) for "
                             f"{method}. Received: input shape {shape}")
        return int(shape[0]), int(shape[1])

    def run_in_graph(self, images: tf.Tensor, targets: tf.Tensor, *, keys=None,
                     with_error: bool = False):
        """Graph-only attribution for serving and ``tf.distribute``: see
        ``Engine.run_in_graph`` (targets < 0 mean the top-1 class)."""
        return self._engine.run_in_graph(images, targets, keys=keys, with_error=with_error)

    def _run(self, images, targets, extras, keys, context, return_error):
        if not isinstance(return_error, bool):
            raise TypeError(f"Expected `return_error` to be a bool. Received: {return_error!r}")
        scheme = self.scheme
        if return_error and not scheme.independent_points:
            raise ValueError(
                "Expected a Monte Carlo method whose points are independent draws "
                f"({registry.monte_carlo()}) for `return_error=True`. "
                f"Received: {type(self).__name__}"
                + ("" if scheme.uses_random else ", which is deterministic"))
        if scheme.target_error is not None:
            *outputs, used = self._engine.run_auto(
                images, targets, extras, keys=keys, context=context,
                target_error=scheme.target_error, max_points=scheme.max_points)
            return Estimate(*outputs, num_points=used) if return_error else outputs[0]
        outputs = self._engine.run(images, targets, extras, keys=keys, context=context,
                                   with_error=return_error)
        if return_error:
            return Estimate(*outputs, num_points=scheme.num_points // scheme.draw_size)
        return outputs

    __call__ = explain


def graph_targets(targets, batch: tf.Tensor, num_classes: Optional[int]) -> tf.Tensor:
    """``targets`` as an int32 tensor (batch,) inside a traced function, -1 for the
    top-1 class: None, an int, or one int per image (a tensor or an array).

    Raises:
      TypeError: A callable or non-integer targets.
      ValueError: A class out of range, a negative class or the wrong count, when
        known while tracing; ``InvalidArgumentError`` when it runs otherwise.
    """
    if targets is None:
        return tf.fill([batch], -1)
    if callable(targets):
        raise TypeError("Expected `targets` to be None, an int or one int per image inside "
                        "a tf.function. Received: a callable (call the explainer eagerly)")
    targets = tf.convert_to_tensor(targets)
    if not targets.dtype.is_integer:
        raise TypeError("Expected `targets` to be None, an int class index or one int per "
                        f"image. Received: targets of dtype {targets.dtype.name}")
    targets = tf.cast(targets, tf.int32)
    if targets.shape.rank == 0:
        targets = tf.fill([batch], targets)
    elif targets.shape.rank != 1:
        raise ValueError("Expected `targets` to hold one class index per image. Received: "
                         f"targets of shape {targets.shape}")
    count, known = targets.shape[0], tf.get_static_value(batch)
    if count is not None and known is not None and count != known:
        raise ValueError(f"Expected `targets` to hold one class index per image ({known}). "
                         f"Received: targets of shape {targets.shape}")
    value = tf.get_static_value(targets)
    if value is not None:                  # known while tracing: the eager call's checks
        resolve_targets(value, len(value), num_classes, predict=None)
    checks = [tf.debugging.assert_equal(
                  tf.shape(targets)[0], batch,
                  message="Expected `targets` to hold one class index per image"),
              tf.debugging.assert_non_negative(
                  targets, message="Expected `targets` to be class indices >= 0")]
    with tf.control_dependencies(checks):
        return tf.identity(targets)


def warn_if_16_bit(model: LogitModel, method: str) -> None:
    """Warns when a forward-only method's scores are 16-bit: their differences
    (f(z) − f(x) near a logit of 20 moves in steps of 0.016 in float16) lose what
    the method measures."""
    if model.output_dtype.size < 4 and model.output_dtype.is_floating:
        warnings.warn(
            f"{method} takes differences of the model's scores, which are "
            f"{model.output_dtype.name} here: they lose most of their precision (a "
            "float16 logit near 20 moves in steps of 0.016). Give the model a float32 "
            "output layer (Keras's advice under mixed precision: dtype='float32' on the "
            "last layer); every difference is then taken in float32.", stacklevel=3)


def noise_scales(images: tf.Tensor, noise_scale: Optional[float],
                 noise_level: Optional[float]) -> tf.Tensor:
    """Per-image σ: ``noise_scale``, or ``noise_level × (max(x) − min(x))``."""
    batch = tf.shape(images)[0]
    if noise_scale is not None:
        return tf.fill([batch], noise_scale)
    axes = list(range(1, images.shape.rank))
    spread = tf.reduce_max(images, axis=axes) - tf.reduce_min(images, axis=axes)
    return noise_level * spread
