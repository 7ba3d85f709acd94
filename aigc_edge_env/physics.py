"""Closed-form physics of the model (``docs/model.md``), one function per formula, vectorised over numpy arrays.

Units are SI throughout (bits, seconds, joules, watts, hertz, metres) unless a name says
otherwise.  Everything else in the package (the cost model, the env, the solvers) calls
these functions instead of restating a formula.
"""

from __future__ import annotations

import math

import numpy as np

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)


def path_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """3GPP macro-cell path loss ``128.1 + 37.6 log10(d / 1 km)`` in dB."""
    return 128.1 + 37.6 * np.log10(np.asarray(distance_m, dtype=np.float64) / 1000.0)


def path_gain(distance_m: np.ndarray) -> np.ndarray:
    """Large-scale power gain ``10^(-PL/10)`` (linear), fixed while the distance is."""
    return 10.0 ** (-path_loss_db(distance_m) / 10.0)


def faded_gain(large_scale_gain: np.ndarray, fading: np.ndarray) -> np.ndarray:
    """Power gain ``h = 10^(-PL/10) |g|^2`` from the large-scale gain and the fading ``g``."""
    return large_scale_gain * np.abs(fading) ** 2


def shannon_rate_bps(
    bandwidth_hz: float, power_w: float, gain: np.ndarray, noise_psd_w_per_hz: float
) -> np.ndarray:
    """Shannon rate ``b log2(1 + p h / (N0 b))`` in bit/s.

    Below an SNR of 1e-15, where ``1 + snr`` rounds to 1, the first-order ``snr / ln 2``
    keeps the rate positive (and the times finite) for every accepted config.
    """
    snr = power_w * np.asarray(gain) / (noise_psd_w_per_hz * bandwidth_hz)
    return bandwidth_hz * np.where(snr > 1e-15, np.log2(1.0 + snr), snr / _LN2)


def gain_from_rate_bps(
    bandwidth_hz: float, power_w: float, rate_bps: np.ndarray, noise_psd_w_per_hz: float
) -> np.ndarray:
    """The power gain ``h`` whose :func:`shannon_rate_bps` is ``rate_bps`` (its inverse, to rounding)."""
    snr = np.expm1(np.asarray(rate_bps, dtype=np.float64) / bandwidth_hz * _LN2)
    return snr * noise_psd_w_per_hz * bandwidth_hz / power_w


def gauss_markov_path(initial: np.ndarray, correlation: float, innovations: np.ndarray) -> np.ndarray:
    """``K`` steps of ``g_k = rho g_{k-1} + sqrt(1 - rho^2) w_k`` from ``g_0 = initial``.

    ``innovations`` stacks ``w_1 .. w_K`` on axis 0 (shape ``(K, *initial.shape)``);
    returns ``g_1 .. g_K`` in the same shape.  A loop over the ``K`` steps, each vectorised
    over the users (two numpy calls a step).
    """
    scaled_innovations = math.sqrt(1.0 - correlation**2) * innovations
    path = np.empty(scaled_innovations.shape, dtype=np.result_type(initial, scaled_innovations))
    previous = initial
    for fading, scaled_innovation in zip(path, scaled_innovations, strict=True):
        np.multiply(correlation, previous, out=fading)
        fading += scaled_innovation
        previous = fading
    return path


def complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Samples of ``CN(0, 1)``: real and imaginary parts each ``N(0, 1/2)``.

    One generator call (real parts first, then imaginary parts: the same stream as two calls).
    """
    return complex_normal_from(rng.standard_normal((2, *shape)))


def complex_normal_from(standard_normals: np.ndarray) -> np.ndarray:
    """``CN(0, 1)`` samples from standard normals stacked as (real parts, imaginary parts) on axis 0."""
    return (standard_normals[0] + 1j * standard_normals[1]) / _SQRT2


def local_step_time_s(cycles_per_step: float, clock_hz: np.ndarray) -> np.ndarray:
    """Device seconds per reverse step, ``c_L / f``."""
    return cycles_per_step / np.asarray(clock_hz)


def local_step_energy_j(energy_coefficient: float, cycles_per_step: float, clock_hz: np.ndarray) -> np.ndarray:
    """Device joules per reverse step, ``kappa f^2 c_L``."""
    return energy_coefficient * np.asarray(clock_hz) ** 2 * cycles_per_step


def edge_compute_time_s(steps: np.ndarray, sqrt_steps_sum: np.ndarray, edge_steps_per_s: float) -> np.ndarray:
    """Edge compute time ``sqrt(s_n) Q / F_E`` under the KKT-optimal GPU split.

    The split ``f_n = F_E sqrt(s_n) / Q`` (``Q`` = sum of ``sqrt(s_m)`` over the slot's
    offloaded tasks) minimises ``sum s_n / f_n`` subject to ``sum f_n <= F_E``;
    ``sqrt_steps_sum`` must broadcast against ``steps``.
    """
    return np.sqrt(steps) * sqrt_steps_sum / edge_steps_per_s


def edge_allocation_steps_per_s(steps: np.ndarray, edge_steps_per_s: float) -> np.ndarray:
    """The KKT-optimal split ``f_n = F_E sqrt(s_n) / Q`` of the edge GPU (steps/s)."""
    roots = np.sqrt(np.asarray(steps, dtype=np.float64))
    return edge_steps_per_s * roots / roots.sum(axis=-1, keepdims=True)


def step_utility(utility_weight: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Utility of the steps, ``u ln(1 + s)``."""
    return np.asarray(utility_weight) * np.log1p(steps)
