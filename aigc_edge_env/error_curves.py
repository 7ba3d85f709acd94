"""Average-error (quality deficit) curves of a diffusion model versus reverse steps.

MODEL.md, "Steps, time, energy, quality": the error of content made with ``s``
reverse diffusion steps is decreasing and convex in ``s``.  Two pluggable forms:

* :class:`PowerLawErrorCurve`: ``eps(s) = eps_inf + a * s**(-b)``.  The default
  edge curve (``eps_inf=4.04, a=550, b=1.77``) is MODEL.md's fit to DDIM's CIFAR-10
  FID-versus-steps table (Song, Meng, Ermon, ICLR 2021, Table 1, eta = 0).
* :class:`TabulatedErrorCurve`: measured ``(steps, error)`` points, interpolated
  piecewise-linearly (and extrapolated flat beyond the last point).  Piecewise-linear
  interpolation of convex points is convex, so the solvers' assumptions still hold.

Both expose ``error(steps)`` and ``slope(steps)`` (d eps / d s, used by the SCA/KKT
solver); both are vectorised over numpy arrays of steps.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Union

import numpy as np


class ConfigError(ValueError):
    """A configuration value outside its accepted range (names the field)."""


def config_error(field: str, value: Any, accepted: str) -> ConfigError:
    return ConfigError(f"config field '{field}' = {value!r} is invalid: accepted {accepted}")


@dataclass(frozen=True)
class PowerLawErrorCurve:
    """``eps(s) = eps_inf + a * s**(-b)`` (dimensionless, FID-like)."""

    eps_inf: float
    a: float
    b: float

    def validate(self, field: str) -> None:
        if not np.isfinite(self.eps_inf) or self.eps_inf < 0:
            raise config_error(f"{field}.eps_inf", self.eps_inf, "a finite number >= 0")
        if not np.isfinite(self.a) or self.a < 0:
            raise config_error(f"{field}.a", self.a, "a finite number >= 0")
        if not np.isfinite(self.b) or self.b <= 0:
            raise config_error(f"{field}.b", self.b, "a finite number > 0")

    def error(self, steps: np.ndarray | float) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.float64)
        return self.eps_inf + self.a * steps ** (-self.b)

    def slope(self, steps: np.ndarray | float) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.float64)
        return -self.a * self.b * steps ** (-self.b - 1.0)


@dataclass(frozen=True)
class TabulatedErrorCurve:
    """Measured points ``(steps[i], errors[i])``, interpolated piecewise-linearly.

    ``steps`` strictly increasing and positive; ``errors`` non-increasing with
    non-decreasing slopes (convex), so the curve keeps MODEL.md's shape.
    """

    steps: tuple[float, ...]
    errors: tuple[float, ...]

    def validate(self, field: str) -> None:
        steps = np.asarray(self.steps, dtype=np.float64)
        errors = np.asarray(self.errors, dtype=np.float64)
        if steps.ndim != 1 or steps.size < 2 or steps.shape != errors.shape:
            raise config_error(field, self.__dict__, "'steps' and 'errors' of equal length >= 2")
        if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(errors))):
            raise config_error(field, self.__dict__, "finite numbers only")
        if steps[0] <= 0 or np.any(np.diff(steps) <= 0):
            raise config_error(f"{field}.steps", self.steps, "positive and strictly increasing")
        slopes = np.diff(errors) / np.diff(steps)
        if np.any(slopes > 0) or np.any(np.diff(slopes) < -1e-12):
            raise config_error(f"{field}.errors", self.errors, "non-increasing and convex in steps")

    def error(self, steps: np.ndarray | float) -> np.ndarray:
        return np.interp(np.asarray(steps, dtype=np.float64), self.steps, self.errors)

    def slope(self, steps: np.ndarray | float) -> np.ndarray:
        table_steps = np.asarray(self.steps)
        segment_slopes = np.diff(self.errors) / np.diff(table_steps)
        # Right-derivative on each segment; flat (zero) outside the table.
        index = np.searchsorted(table_steps, np.asarray(steps, dtype=np.float64), side="right") - 1
        padded = np.concatenate([[0.0], segment_slopes, [0.0]])
        return padded[np.clip(index + 1, 0, padded.size - 1)]


ErrorCurve = Union[PowerLawErrorCurve, TabulatedErrorCurve]


def error_curve_from_spec(field: str, spec: ErrorCurve | Mapping[str, Any]) -> ErrorCurve:
    """Build a curve from a curve object or a dict (``{eps_inf, a, b}`` or ``{steps, errors}``)."""
    if isinstance(spec, (PowerLawErrorCurve, TabulatedErrorCurve)):
        curve = spec
    elif isinstance(spec, Mapping) and set(spec) == {"eps_inf", "a", "b"}:
        curve = PowerLawErrorCurve(*(_number(f"{field}.{key}", spec[key]) for key in ("eps_inf", "a", "b")))
    elif isinstance(spec, Mapping) and set(spec) == {"steps", "errors"}:
        curve = TabulatedErrorCurve(
            _number_tuple(f"{field}.steps", spec["steps"]), _number_tuple(f"{field}.errors", spec["errors"])
        )
    else:
        raise config_error(
            field, spec, "a PowerLawErrorCurve, a TabulatedErrorCurve, or a dict with keys "
            "{'eps_inf', 'a', 'b'} or {'steps', 'errors'}"
        )
    curve.validate(field)
    return curve


def _number(field: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise config_error(field, value, "a real number")
    return float(value)


def _number_tuple(field: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not np.iterable(values):
        raise config_error(field, values, "a sequence of real numbers")
    return tuple(_number(field, value) for value in values)
