"""Average-error (quality deficit) curves of a diffusion model versus reverse steps.

``docs/model.md`` (after the project's specification, "Steps, time, energy, quality"): the
error of content made with ``s`` reverse diffusion steps is decreasing and convex in ``s``.  Two pluggable forms:

* :class:`PowerLawErrorCurve`: ``eps(s) = eps_inf + a * s**(-b)``.  The default
  edge curve (``eps_inf=4.04, a=550, b=1.77``) is the specification's fit to DDIM's CIFAR-10
  FID-versus-steps table (Song, Meng, Ermon, ICLR 2021, Table 1, eta = 0).
* :class:`TabulatedErrorCurve`: measured ``(steps, error)`` points, interpolated
  piecewise-linearly (``numpy.interp``), flat below the first point and beyond the last.  Piecewise-linear
  interpolation of convex points is convex, so the solvers' assumptions still hold.

Both expose ``error(steps)`` and ``slope(steps)`` (d eps / d s, used by the SCA/KKT
solver); both are vectorised over numpy arrays of steps.

:data:`NAMED_ERROR_CURVES` are curves the config also accepts by name (``edge_error_curve="digits-ddim"``):
the published DDIM CIFAR-10 fits (the defaults) and the curve measured on the shipped digits model by
``aigc-edge calibrate`` (``docs/model.md``, "Measured error curves"; the run in ``docs/results.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np


@dataclass(frozen=True)
class PowerLawErrorCurve:
    """``eps(s) = eps_inf + a * s**(-b)`` (dimensionless, FID-like)."""

    eps_inf: float
    a: float
    b: float

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
    non-decreasing slopes (convex), so the curve keeps the model's shape (checked by the config).
    """

    steps: tuple[float, ...]
    errors: tuple[float, ...]

    def error(self, steps: np.ndarray | float) -> np.ndarray:
        return np.interp(np.asarray(steps, dtype=np.float64), self.steps, self.errors)

    def slope(self, steps: np.ndarray | float) -> np.ndarray:
        table_steps = np.asarray(self.steps)
        segment_slopes = np.diff(self.errors) / np.diff(table_steps)
        # Right-derivative on each segment; flat (zero) outside the table.
        index = np.searchsorted(table_steps, np.asarray(steps, dtype=np.float64), side="right") - 1
        padded = np.concatenate([[0.0], segment_slopes, [0.0]])
        return padded[np.clip(index + 1, 0, padded.size - 1)]


ErrorCurve: TypeAlias = PowerLawErrorCurve | TabulatedErrorCurve


#: Curves the config accepts by name.  ``ddim-cifar10`` / ``ddim-cifar10-device`` are the defaults of
#: ``edge_error_curve`` / ``device_error_curve`` (the specification's fit to DDIM's CIFAR-10 FID table; the
#: device's model is worse by a constant).  ``digits-ddim`` was measured here: DDIM (eta 0, trailing spacing,
#: no clipping) on the shipped 8x8 digits model, Frechet distance on a digits classifier's features, 1000
#: samples per step count, fitted on s = 5 ... 200 (largest relative residual 2.7%; 4 significant digits kept),
#: ``aigc-edge calibrate --threads 1 --fit-min-steps 5 --out results/calibrate/digits``;
#: ``digits-ddim-device`` raises its ``eps_inf`` in the defaults' ratio 6.0 / 4.04 (an assumption, not a
#: measurement).
NAMED_ERROR_CURVES: dict[str, ErrorCurve] = {
    "ddim-cifar10": PowerLawErrorCurve(eps_inf=4.04, a=550.0, b=1.77),
    "ddim-cifar10-device": PowerLawErrorCurve(eps_inf=6.0, a=550.0, b=1.77),
    "digits-ddim": PowerLawErrorCurve(eps_inf=6.406, a=919.2, b=1.699),
    "digits-ddim-device": PowerLawErrorCurve(eps_inf=6.406 * 6.0 / 4.04, a=919.2, b=1.699),
}
