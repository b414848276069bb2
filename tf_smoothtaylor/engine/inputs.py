"""The engine's checks of what a caller passes: images, other inputs, random keys.

Every check raises ``ValueError``/``TypeError`` naming the argument, what was
expected and what was received, before anything is traced or run.
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf


class ImageError(ValueError):
    """The images themselves do not fit the model (shape) or are not finite: the
    fault of the images, not of the run (a pipeline records such an image as failed
    instead of retrying it)."""


class InputChecks:
    """Checks against ``self.model`` (a ``LogitModel``), mixed into the engine."""

    def check_images(self, images) -> tf.Tensor:
        """Returns ``images`` as a float32 tensor after checking it fits the model."""
        if isinstance(images, (str, bytes)) or images is None:
            raise TypeError("Expected `images` to be a numeric array or tensor. "
                            f"Received: images of type {type(images).__name__}")
        try:
            images = tf.convert_to_tensor(images)
        except (ValueError, TypeError) as error:
            raise TypeError("Expected `images` to be a numeric array or tensor. "
                            f"Received: {type(images).__name__} ({error})") from None
        if not (images.dtype.is_floating or images.dtype.is_integer):
            raise TypeError("Expected `images` to be a numeric array or tensor. "
                            f"Received: images of dtype {images.dtype.name}")
        expected = self.model.input_shape
        shape = tuple(images.shape)
        fits = len(shape) == len(expected) + 1 and all(
            e is None or e == s for e, s in zip(expected, shape[1:]))
        if not fits:
            wanted = "(batch, " + ", ".join(str(e) for e in expected) + ")"
            raise ImageError(f"Expected `images` of shape {wanted} to fit the "
                             f"model's input. Received: images of shape {shape}")
        images = tf.cast(images, tf.float32)
        if not bool(tf.reduce_all(tf.math.is_finite(images))):
            raise ImageError("Expected `images` to hold finite values. "
                             "Received: images containing NaN or Inf")
        return images

    def check_inputs(self, inputs) -> Tuple[tf.Tensor, Tuple[tf.Tensor, ...]]:
        """``(images, context)``: the explained input, checked, and the inputs held
        fixed per image (multi-input models: ``inputs`` is a dict of every input)."""
        context_specs = self.model.context
        if not context_specs:
            if isinstance(inputs, dict):
                raise TypeError("Expected `images` to be an array or tensor (the model has "
                                f"one input). Received: a dict of {sorted(inputs)}")
            return self.check_images(inputs), ()
        names = self.model.input_names
        explained = names[self.model.input_index]
        if not isinstance(inputs, dict) or set(inputs) != set(names):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"Expected a dict of every model input {names} (the one "
                             f"explained: {explained!r}). Received: {got}")
        images = self.check_images(inputs[explained])
        batch = int(images.shape[0])
        return images, tuple(check_input(name, inputs[name], shape, dtype, batch)
                             for name, shape, dtype in context_specs)


    def check_keys(self, keys, batch: int) -> Optional[tf.Tensor]:
        """Caller-given random keys: None, or one integer per image."""
        if keys is None:
            return None
        array = np.asarray(keys)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError("Expected `keys` to be None or one integer per image. "
                            f"Received: keys of dtype {array.dtype}")
        if array.shape != (batch,):
            raise ValueError(f"Expected `keys` to hold one integer per image ({batch}). "
                             f"Received: keys of shape {array.shape}")
        return tf.constant(array.astype(np.int64))


def check_input(name: str, value, shape: tuple, dtype: tf.DType, batch: int) -> tf.Tensor:
    """One model input ``name``, ``batch`` rows of ``shape`` (None: any size), as a
    ``dtype`` tensor.

    Raises:
      TypeError: ``value`` is not numeric.
      ValueError: Its shape or its number of rows differs.
    """
    try:
        value = tf.convert_to_tensor(value)
    except (ValueError, TypeError) as error:
        raise TypeError(f"Expected input {name!r} to be a numeric array. Received: "
                        f"{type(value).__name__} ({error})") from None
    if (value.shape.rank != len(shape) + 1 or value.shape[0] != batch or not all(
            e is None or e == s for e, s in zip(shape, value.shape[1:]))):
        wanted = "(" + ", ".join(str(e) for e in (batch,) + tuple(shape)) + ")"
        raise ValueError(f"Expected input {name!r} of shape {wanted}, one row per "
                         f"example. Received: shape {tuple(value.shape)}")
    return tf.cast(value, dtype)
