"""Argument checks shared by the public API.

Every check raises ``ValueError`` or ``TypeError`` with a message in the form
"Expected `name` to be <what>. Received: name=<value>", so that bad input never
surfaces as a TensorFlow stack trace or a silently wrong answer.
"""

import math
import numbers
from typing import Any, Iterable, Optional

import tensorflow as tf


def _received(name: str, value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"Received: {name}={text}"


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Returns ``value`` as an int >= ``minimum`` or raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected `{name}` to be an integer >= {minimum}. "
                        + _received(name, value))
    if value < minimum:
        raise ValueError(f"Expected `{name}` to be an integer >= {minimum}. "
                         + _received(name, value))
    return int(value)


def positive_float(name: str, value: Any) -> float:
    """Returns ``value`` as a finite float > 0 or raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Expected `{name}` to be a positive finite number. "
                        + _received(name, value))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Expected `{name}` to be a positive finite number. "
                         + _received(name, value))
    return float(value)


def finite_number(name: str, value: Any, *, expected: str = "a finite number") -> float:
    """Returns ``value`` as a float if it is a finite real number, else a ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise TypeError(f"Expected `{name}` to be {expected}. " + _received(name, value))
    return float(value)


def one_of(name: str, value: Any, valid: Iterable[str], *, otherwise: str = "") -> str:
    """Returns ``value`` if it is one of ``valid`` or raises, listing them.

    ``otherwise`` names the non-string alternatives (e.g. "a callable") for the
    message only.
    """
    valid = tuple(valid)
    if not isinstance(value, str) or value not in valid:
        options = ", ".join(repr(v) for v in valid)
        if otherwise:
            options += f", or {otherwise}"
        raise ValueError(f"Expected `{name}` to be one of {options}. "
                         + _received(name, value))
    return value


def noise_setting(noise_scale: Optional[float], noise_level: Optional[float], *,
                  default: tuple) -> tuple:
    """Checks that at most one of ``noise_scale`` and ``noise_level`` is set.

    Args:
      default: ``(noise_scale, noise_level)`` when neither is given.

    Returns:
      ``(noise_scale, noise_level)`` with the unset one ``None``.
    """
    if noise_scale is None and noise_level is None:
        noise_scale, noise_level = default
    if (noise_scale is None) == (noise_level is None):
        raise ValueError(
            "Expected at most one of `noise_scale` (absolute, in model-input "
            "space) and `noise_level` (fraction of each image's value range). "
            f"Received: noise_scale={noise_scale!r}, noise_level={noise_level!r}")
    if noise_scale is not None:
        return positive_float("noise_scale", noise_scale), None
    return None, positive_float("noise_level", noise_level)


DEFAULT_TARGET_ERROR = 0.05
DEFAULT_MAX_POINTS = 2000


def point_count(name: str, value: Any, target_error: Any, max_points: Any) -> tuple:
    """Checks a number of Monte Carlo points that may be ``"auto"``.

    Returns:
      ``(value, target_error, max_points)``: for an int, ``target_error`` and
      ``max_points`` must be None (they apply to "auto" only); for "auto" they
      default to 0.05 and 2000.
    """
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"Expected `{name}` to be an integer >= 1 or 'auto'. "
                             + _received(name, value))
        target_error = positive_float(
            "target_error", DEFAULT_TARGET_ERROR if target_error is None else target_error)
        max_points = positive_int(
            "max_points", DEFAULT_MAX_POINTS if max_points is None else max_points)
        return value, target_error, max_points
    value = positive_int(name, value)
    for setting, given in (("target_error", target_error), ("max_points", max_points)):
        if given is not None:
            raise ValueError(f"Expected `{setting}` only with {name}='auto' (it sets "
                             f"when to stop drawing points). Received: {name}={value}, "
                             f"{setting}={given!r}")
    return value, None, None


def seed(value: Any) -> int:
    """Returns ``value`` as a non-negative int seed or raises."""
    return positive_int("seed", value, minimum=0)


def images_and_attributions(images, attributions) -> tuple:
    """Both as float32 tensors, or raises unless they have the same shape."""
    images = tf.convert_to_tensor(images, tf.float32)
    attributions = tf.convert_to_tensor(attributions, tf.float32)
    if attributions.shape != images.shape:
        raise ValueError("Expected `attributions` shaped like `images` "
                         f"{tuple(images.shape)}. Received: {tuple(attributions.shape)}")
    return images, attributions
