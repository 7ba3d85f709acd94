"""Fitting measured error-versus-steps points to the env's curve forms (numpy and scipy only).

Two fits, one for each form :func:`aigc_edge_env.config.error_curve_from_spec` accepts:

* :func:`fit_power_law`: ``eps(s) = eps_inf + a s^-b`` (``docs/model.md``), by least squares on the
  *relative* residuals ``fit(s)/measured(s) - 1`` (scale-free, so the small errors at many steps count
  as much as the large ones at few), with ``eps_inf, a >= 0`` and ``b`` in ``[B_RANGE]``.  The start
  is the best ``b`` on a grid with ``(eps_inf, a)`` solved exactly (a bounded linear least-squares
  problem) for each, then all three are refined together.
* :func:`fit_convex_table`: the nearest (same relative least squares) non-increasing convex
  piecewise-linear curve through the measured step counts, written as a ``{steps, errors}`` table.
  A convex non-increasing curve with knots at ``x_1 < ... < x_n`` is ``c + sum_j w_j (x_j - x)_+``
  with ``c, w_j >= 0``, so this too is a bounded linear least-squares problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from aigc_edge_env.error_curves import PowerLawErrorCurve, TabulatedErrorCurve

#: Accepted exponents ``b`` of the power-law fit (the config accepts ``(0, 100]``).
B_RANGE = (0.01, 10.0)


@dataclass(frozen=True)
class PowerLawFit:
    """A fitted power law and its fit quality on the points it was fitted to."""

    curve: PowerLawErrorCurve
    steps: tuple[float, ...]
    measured: tuple[float, ...]
    relative_residuals: tuple[float, ...]  # fit(s)/measured(s) - 1 per point

    @property
    def max_relative_residual(self) -> float:
        return float(np.max(np.abs(self.relative_residuals)))

    @property
    def rms_relative_residual(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.relative_residuals))))


def _points(steps: Sequence[float], errors: Sequence[float], minimum: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=np.float64)
    y = np.asarray(errors, dtype=np.float64)
    if s.ndim != 1 or s.shape != y.shape or s.size < minimum:
        raise ValueError(f"steps and errors must be 1-D of equal length >= {minimum}, got shapes {s.shape}, {y.shape}")
    if not (np.all(np.isfinite(s)) and np.all(s > 0) and np.all(np.diff(s) > 0)):
        raise ValueError(f"steps must be positive, finite and strictly increasing, got {s.tolist()}")
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError(f"errors must be positive and finite (the fit is on relative residuals), got {y.tolist()}")
    return s, y


def _linear_part(s: np.ndarray, y: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    """Best ``(eps_inf, a) >= 0`` for a fixed ``b`` and its relative sum of squares."""
    design = np.column_stack([np.ones_like(s), s ** (-b)]) / y[:, None]
    solution = optimize.lsq_linear(design, np.ones_like(s), bounds=(0.0, np.inf))
    return solution.x, float(np.sum(np.square(design @ solution.x - 1.0)))


def fit_power_law(steps: Sequence[float], errors: Sequence[float]) -> PowerLawFit:
    """Fit ``eps_inf + a s^-b`` to measured ``(steps, errors)`` (at least 3 points; see the module docstring)."""
    s, y = _points(steps, errors, 3)
    grid = np.geomspace(B_RANGE[0], B_RANGE[1], 200)
    b0 = min(grid, key=lambda b: _linear_part(s, y, b)[1])
    (eps0, a0), _ = _linear_part(s, y, b0)

    def residuals(p: np.ndarray) -> np.ndarray:
        return (p[0] + p[1] * s ** (-p[2])) / y - 1.0

    lower, upper = np.array([0.0, 0.0, B_RANGE[0]]), np.array([np.inf, np.inf, B_RANGE[1]])
    start = np.clip([eps0, a0, b0], lower, upper)
    result = optimize.least_squares(residuals, start, bounds=(lower, upper), x_scale="jac", xtol=1e-12, ftol=1e-12,
                                    gtol=1e-12)
    best = result.x if np.sum(result.fun**2) <= np.sum(residuals(start) ** 2) else start
    curve = PowerLawErrorCurve(eps_inf=float(best[0]), a=float(best[1]), b=float(best[2]))
    return PowerLawFit(curve, tuple(s.tolist()), tuple(y.tolist()), tuple(residuals(best).tolist()))


def fit_convex_table(steps: Sequence[float], errors: Sequence[float]) -> TabulatedErrorCurve:
    """The nearest non-increasing convex table through the measured step counts (at least 2 points)."""
    s, y = _points(steps, errors, 2)
    hinges = np.maximum(s[None, 1:] - s[:, None], 0.0)  # (x_j - x_i)_+ for knots j = 1 .. n-1
    basis = np.column_stack([np.ones_like(s), hinges])
    solution = optimize.lsq_linear(basis / y[:, None], np.ones_like(s), bounds=(0.0, np.inf))
    return TabulatedErrorCurve(tuple(s.tolist()), tuple((basis @ solution.x).tolist()))


def curve_spec(curve: PowerLawErrorCurve | TabulatedErrorCurve) -> dict[str, Any]:
    """The curve as the config's plain dict (``edge_error_curve`` / ``device_error_curve`` accept it as is)."""
    if isinstance(curve, PowerLawErrorCurve):
        return {"eps_inf": curve.eps_inf, "a": curve.a, "b": curve.b}
    return {"steps": list(curve.steps), "errors": list(curve.errors)}
