"""Checks of the numeric options of the package's public functions: each bad value is refused with a
``ValueError`` that names the option and what it accepts, before any work starts."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["count_option", "positive_option"]


def count_option(name: str, value: Any, least: int) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an integer (not a bool) ``>= least``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def positive_option(name: str, value: Any, unit: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` and its ``unit`` unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}")
    return float(value)
