"""The random world between slots: users' positions, clocks, fading, batteries, requests.

Written once for a batch of independent systems (arrays of shape ``(B, N)``); the single
env uses ``B = 1``.  All randomness comes from the ``numpy.random.Generator`` passed in.

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

__all__ = ["SystemState", "reset_state", "draw_slot", "advance_state"]


@dataclass
class SystemState:
    """What persists across the slots of an episode, per system and user, shape ``(B, N)``."""

    distance_m: np.ndarray
    device_clock_hz: np.ndarray
    fading: np.ndarray  # complex small-scale gain g
    battery_j: np.ndarray  # inf when batteries are disabled
    slot_index: np.ndarray  # (B,) slots elapsed in the episode


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=shape)


def reset_state(config: AIGCEdgeConfig, rng: np.random.Generator, n_systems: int) -> SystemState:
    shape = (n_systems, config.n_users)
    distance = _uniform(rng, config.distance_m_range, shape)
    clock = _uniform(rng, config.device_clock_ghz_range, shape) * 1e9
    fading = physics.complex_normal(rng, shape)
    if config.battery_enabled:
        battery = _uniform(rng, config.battery_initial_j_range, shape)
    else:
        battery = np.full(shape, np.inf)
    return SystemState(distance, clock, fading, battery, np.zeros(n_systems, dtype=np.int64))


def draw_slot(config: AIGCEdgeConfig, state: SystemState, rng: np.random.Generator) -> SlotProblem:
    """The slot instance of the current state: new requests on the current channel."""
    shape = state.distance_m.shape
    gain = physics.channel_gain(state.distance_m, state.fading)
    bandwidth, noise = config.bandwidth_per_user_hz, config.noise_psd_w_per_hz
    return SlotProblem(
        config=config,
        has_request=rng.random(shape) < config.task_probability,
        upload_bits=_uniform(rng, config.upload_mbit_range, shape) * 1e6,
        download_bits=_uniform(rng, config.download_mbit_range, shape) * 1e6,
        utility_weight=_uniform(rng, config.utility_weight_range, shape),
        deadline_s=_uniform(rng, config.deadline_s_range, shape),
        uplink_rate_bps=physics.shannon_rate_bps(bandwidth, config.user_tx_power_w, gain, noise),
        downlink_rate_bps=physics.shannon_rate_bps(bandwidth, config.bs_tx_power_w, gain, noise),
        device_clock_hz=state.device_clock_hz,
        battery_j=state.battery_j,
    )


def advance_state(
    config: AIGCEdgeConfig, state: SystemState, energy_used_j: np.ndarray, rng: np.random.Generator
) -> None:
    """Move ``state`` to the next slot in place (fading step, battery update, slot count)."""
    state.fading = physics.gauss_markov_fading(state.fading, config.fading_correlation, rng)
    if config.battery_enabled:
        harvest = _uniform(rng, config.harvest_j_range, state.battery_j.shape)
        state.battery_j = np.minimum(config.battery_capacity_j, state.battery_j - energy_used_j + harvest)
    state.slot_index = state.slot_index + 1
