"""The random world between slots: users' positions, clocks, fading, batteries, requests.

Written once for a batch of independent systems (arrays of shape ``(B, N)``); the single
env passes ``n_systems=None`` and gets one system without the batch axis (arrays ``(N,)``).
All randomness comes from the ``numpy.random.Generator`` passed in.

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

__all__ = ["SystemState", "reset_state", "draw_slot", "draw_slots", "advance_state", "recharge"]


@dataclass
class SystemState:
    """What persists across the slots of an episode, per system and user, shape ``(B, N)`` (or ``(N,)``)."""

    distance_m: np.ndarray
    path_gain: np.ndarray  # 10^(-PL(d)/10), fixed with the distance
    device_clock_hz: np.ndarray
    fading: np.ndarray  # complex small-scale gain g
    battery_j: np.ndarray  # inf when batteries are disabled
    # Slots elapsed in the episode, (B,) (0-d for one system), advanced by advance_state; the
    # single env draws slots ahead with draw_slots and keeps its own count.
    slot_index: np.ndarray


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=shape)


def _scale(unit: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``U[0, 1)`` samples mapped onto ``U[low, high)`` (the same arithmetic as ``rng.uniform``)."""
    return bounds[0] + (bounds[1] - bounds[0]) * unit


def reset_state(config: AIGCEdgeConfig, rng: np.random.Generator, n_systems: int | None) -> SystemState:
    """A new episode's state for ``n_systems`` systems, or for one without a batch axis (None)."""
    batch = () if n_systems is None else (n_systems,)
    shape = (*batch, config.n_users)
    distance = _uniform(rng, config.distance_m_range, shape)
    clock = _uniform(rng, config.device_clock_ghz_range, shape) * 1e9
    fading = physics.complex_normal(rng, shape)
    if config.battery_enabled:
        battery = _uniform(rng, config.battery_initial_j_range, shape)
    else:
        battery = np.full(shape, np.inf)
    return SystemState(
        distance_m=distance, path_gain=physics.path_gain(distance), device_clock_hz=clock, fading=fading,
        battery_j=battery, slot_index=np.zeros(batch, dtype=np.int64),
    )


def draw_slot(config: AIGCEdgeConfig, state: SystemState, rng: np.random.Generator) -> SlotProblem:
    """The slot instance of the current state: new requests on the current channel."""
    # One generator call for the slot: arrivals, then upload, download, utility, deadline.
    return _slot_problem(config, state, state.fading, rng.random((5, *state.fading.shape)))


def draw_slots(
    config: AIGCEdgeConfig, state: SystemState, rng: np.random.Generator, n_slots: int, *, first_is_current: bool
) -> tuple[SlotProblem, np.ndarray | None]:
    """The next ``n_slots`` slots of one system (no batch axis) and the harvests between them.

    Draws exactly what as many :func:`advance_state` and :func:`draw_slot` calls would, in
    the same order (per slot: fading step, harvest, requests), so the single env that uses
    it replays the generator stream of the slot-by-slot dynamics.  With
    ``first_is_current`` the first slot is the current state's (requests only, as after a
    reset).  Returns the slots as one :class:`SlotProblem` of shape ``(n_slots, N)``
    (``battery_j`` is the current level, a placeholder: batteries depend on the actions)
    and ``harvest[k]``, the energy harvested on entering slot ``k`` (None without
    batteries; with ``first_is_current``, ``harvest[0]`` means nothing: that slot was not
    entered here).  ``state.fading`` moves to the last slot's.
    """
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    shape = state.fading.shape
    normals = np.zeros((n_slots, 2, *shape))
    units = np.empty((n_slots, 5, *shape))
    harvest_units = np.zeros((n_slots, *shape)) if config.battery_enabled else None
    first_transition = 1 if first_is_current else 0
    standard_normal, uniform = rng.standard_normal, rng.random
    for k, (slot_normals, slot_units) in enumerate(zip(normals, units)):
        if k >= first_transition:
            standard_normal(out=slot_normals)
            if harvest_units is not None:
                uniform(out=harvest_units[k])
        uniform(out=slot_units)
    fading = np.empty((n_slots, *shape), dtype=complex)
    fading[:first_transition] = state.fading
    fading[first_transition:] = physics.gauss_markov_path(
        state.fading, config.fading_correlation, physics.complex_normal_from(np.moveaxis(normals[first_transition:], 1, 0)))
    state.fading = fading[-1]
    harvest = None if harvest_units is None else _scale(harvest_units, config.harvest_j_range)
    return _slot_problem(config, state, fading, np.moveaxis(units, 1, 0)), harvest


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


def advance_state(
    config: AIGCEdgeConfig, state: SystemState, energy_used_j: np.ndarray, rng: np.random.Generator
) -> None:
    """Move ``state`` to the next slot in place (fading step, battery update, slot count)."""
    state.fading = physics.gauss_markov_fading(state.fading, config.fading_correlation, rng)
    if config.battery_enabled:
        harvest = _uniform(rng, config.harvest_j_range, state.battery_j.shape)
        state.battery_j = recharge(config, state.battery_j, energy_used_j, harvest)
    state.slot_index = state.slot_index + 1
