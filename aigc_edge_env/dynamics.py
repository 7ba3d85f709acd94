"""The random world between slots: users' positions, clocks, fading, batteries, requests.

Written once for a batch of independent systems (arrays of shape ``(B, N)``); the single
env passes ``n_systems=None`` and gets one system without the batch axis (arrays ``(N,)``).
All randomness comes from the ``numpy.random.Generator`` passed in, and one function,
:func:`draw_slots`, owns the order in which a slot's draws are made: both envs draw every
slot through it (the single env many slots ahead, the vector env one slot per step).

Per episode (at reset): distance ``U[d_min, d_max]``, device clock ``U[f_min, f_max]``,
fading ``g ~ CN(0, 1)`` (stationary start), battery ``U[initial range]``.
Per slot: requests ``Bernoulli(p_task)``, sizes, utility weights and deadlines uniform on
their ranges; fading follows the Gauss-Markov step; batteries (battery scenario) drain by
the energy of served requests, then gain a uniform harvest, capped at the capacity::

    battery' = min(capacity, battery - energy_used + harvest)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aigc_edge_env import physics
from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.model import SlotProblem

__all__ = ["SystemState", "draw_slots", "recharge", "reset_state"]


@dataclass
class SystemState:
    """What persists across the slots of an episode, per system and user, shape ``(B, N)`` (or ``(N,)``)."""

    distance_m: np.ndarray
    path_gain: np.ndarray  # 10^(-PL(d)/10), fixed with the distance
    device_clock_hz: np.ndarray
    fading: np.ndarray  # complex small-scale gain g
    battery_j: np.ndarray  # inf when batteries are disabled


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=shape)


def _scale(unit: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``U[0, 1)`` samples mapped onto ``U[low, high)`` (the same arithmetic as ``rng.uniform``)."""
    return bounds[0] + (bounds[1] - bounds[0]) * unit


def reset_state(config: AIGCEdgeConfig, rng: np.random.Generator, n_systems: int | None) -> SystemState:
    """A new episode's state for ``n_systems`` systems, or for one without a batch axis (None)."""
    shape = (config.n_users,) if n_systems is None else (n_systems, config.n_users)
    distance = _uniform(rng, config.distance_m_range, shape)
    clock = _uniform(rng, config.device_clock_ghz_range, shape) * 1e9
    fading = physics.complex_normal(rng, shape)
    if config.battery_enabled:
        battery = _uniform(rng, config.battery_initial_j_range, shape)
    else:
        battery = np.full(shape, np.inf)
    return SystemState(distance_m=distance, path_gain=physics.path_gain(distance), device_clock_hz=clock,
                       fading=fading, battery_j=battery)


def draw_slots(
    config: AIGCEdgeConfig, state: SystemState, rng: np.random.Generator, n_slots: int, *,
    first_is_current: bool | np.ndarray,
) -> tuple[SlotProblem, np.ndarray | None]:
    """The next ``n_slots`` slots of every system in ``state`` and the harvests between them.

    The draw order, per slot: the fading step (standard normals, real then imaginary
    parts), the harvest (battery scenario), then the requests (one block of ``U[0, 1)``:
    arrivals, upload, download, utility weight, deadline).  Drawing ``n`` slots at once or
    one at a time consumes the generator identically, so the single env may draw any
    number of slots ahead.

    ``first_is_current`` says that slot 0 is the current state's (requests only, as right
    after a reset): ``True`` for every system (then slot 0 draws no fading step and no
    harvest), or a boolean array of the batch shape (the vector env, whose sub-envs start
    episodes at different steps: every system draws the step, and those marked keep their
    current channel in slot 0).

    Returns the slots as one :class:`SlotProblem` of shape ``(n_slots, *state shape)``
    (``battery_j`` is the current level, a placeholder: batteries depend on the actions)
    and ``harvest[k]``, the energy (J) harvested on entering slot ``k`` (None without
    batteries; meaningless for a slot 0 that is current).  ``state.fading`` moves to the
    last slot's.
    """
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    current = np.asarray(first_is_current, dtype=bool)
    if current.ndim and current.shape != state.fading.shape[:-1]:
        raise ValueError(f"first_is_current must be a bool or an array of shape {state.fading.shape[:-1]}, "
                         f"got shape {current.shape}")
    shape = state.fading.shape
    first_draw = int(current.ndim == 0 and bool(current))  # the first slot that draws a fading step
    normals = np.zeros((n_slots, 2, *shape))
    units = np.empty((n_slots, 5, *shape))
    harvest_units = np.zeros((n_slots, *shape)) if config.battery_enabled else None
    standard_normal, uniform = rng.standard_normal, rng.random
    for k in range(n_slots):
        if k >= first_draw:
            standard_normal(out=normals[k])
            if harvest_units is not None:
                uniform(out=harvest_units[k])
        uniform(out=units[k])
    fading = _fading_path(config, state.fading, normals[first_draw:], current if current.ndim else None)
    if first_draw:
        fading = np.concatenate([state.fading[None], fading])
    state.fading = fading[-1]
    harvest = None if harvest_units is None else _scale(harvest_units, config.harvest_j_range)
    return _slot_problem(config, state, fading, np.moveaxis(units, 1, 0)), harvest


def _fading_path(config: AIGCEdgeConfig, fading: np.ndarray, normals: np.ndarray,
                 keep_first: np.ndarray | None) -> np.ndarray:
    """The Gauss-Markov path driven by ``normals`` ``(K, 2, ...)``; systems in ``keep_first`` skip step 1."""
    innovations = physics.complex_normal_from(np.moveaxis(normals, 1, 0))
    if keep_first is None:
        return physics.gauss_markov_path(fading, config.fading_correlation, innovations)
    first = physics.gauss_markov_path(fading, config.fading_correlation, innovations[:1])
    first[0] = np.where(keep_first[..., None], fading, first[0])
    return np.concatenate([first, physics.gauss_markov_path(first[0], config.fading_correlation, innovations[1:])])


def _slot_problem(config: AIGCEdgeConfig, state: SystemState, fading: np.ndarray, unit: np.ndarray) -> SlotProblem:
    """Slots on channels ``fading`` with requests from ``U[0, 1)`` draws ``unit`` (5 stacked on axis 0)."""
    shape = fading.shape
    gain = physics.faded_gain(state.path_gain, fading)
    bandwidth, noise = config.bandwidth_per_user_hz, config.noise_psd_w_per_hz
    return SlotProblem(
        config=config,
        has_request=unit[0] < config.task_probability,
        upload_bits=_scale(unit[1], config.upload_mbit_range) * 1e6,
        download_bits=_scale(unit[2], config.download_mbit_range) * 1e6,
        utility_weight=_scale(unit[3], config.utility_weight_range),
        deadline_s=_scale(unit[4], config.deadline_s_range),
        uplink_rate_bps=physics.shannon_rate_bps(bandwidth, config.user_tx_power_w, gain, noise),
        downlink_rate_bps=physics.shannon_rate_bps(bandwidth, config.bs_tx_power_w, gain, noise),
        device_clock_hz=np.broadcast_to(state.device_clock_hz, shape),
        battery_j=np.broadcast_to(state.battery_j, shape),
    )


def recharge(config: AIGCEdgeConfig, battery_j: np.ndarray, energy_used_j: np.ndarray,
             harvest_j: np.ndarray) -> np.ndarray:
    """Battery after a slot: ``min(capacity, battery - energy_used + harvest)`` (J)."""
    return np.minimum(config.battery_capacity_j, battery_j - energy_used_j + harvest_j)
