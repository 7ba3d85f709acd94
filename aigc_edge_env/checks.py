"""Checks of the numeric options of the package's public functions: each bad value is refused with a
``ValueError`` that names the option and what it accepts, before any work starts."""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeGuard

import numpy as np

__all__ = ["bool_option", "count_option", "is_count", "is_finite_number", "positive_option"]


def is_count(value: Any, least: int) -> TypeGuard[int]:
    """``value`` is an integer (Python or numpy, not a bool) ``>= least``; narrowed as ``int`` (``int(value)``
    is one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= least


def is_finite_number(value: Any) -> TypeGuard[numbers.Real]:
    """``value`` is a finite real number (Python or numpy, not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def count_option(name: str, value: Any, least: int) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an integer (not a bool) ``>= least``."""
    if not is_count(value, least):
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def bool_option(name: str, value: Any) -> bool:
    """``value`` as a bool; ``ValueError`` naming ``name`` unless it is ``True`` or ``False`` (numpy's too): a
    string such as ``"no"`` is truthy, so it would switch the option on."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def positive_option(name: str, value: Any, unit: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` and its ``unit`` unless it is a finite number > 0."""
    if not (is_finite_number(value) and float(value) > 0):
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}")
    return float(value)
