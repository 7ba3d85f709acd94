"""The random world between slots: users' positions, clocks, fading, batteries, requests.

Written once for a batch of independent systems (arrays of shape ``(B, N)``); the single
env passes ``n_systems=None`` and gets one system without the batch axis (arrays ``(N,)``).
All randomness comes from the ``numpy.random.Generator`` passed in, one per system, and
one function, :func:`draw_slots`, owns the order in which a slot's draws are made: both
envs draw every slot through it (the single env many slots ahead, the vector env one slot
of every sub-env per step), so a sub-env of the vector env replays the single env.

Per episode (at reset): distance ``U[d_min, d_max]``, device clock ``U[f_min, f_max]``,
fading ``g ~ CN(0, 1)`` (stationary start), battery ``U[initial range]``; under the trace
channel (``channel_model="trace"``) then each user's trace (uniform over the set's traces) and
its starting sample (uniform over that trace).
Per slot: requests ``Bernoulli(p_task)``, sizes, utility weights and deadlines uniform on
their ranges; fading follows the Gauss-Markov step; batteries (battery scenario) drain by
the energy of served requests, then gain a uniform harvest, capped at the capacity::

    battery' = min(capacity, battery - energy_used + harvest)

Under the trace channel each slot is the user's next trace sample (one second of measured
throughput, wrapping around at the trace's end): downlink rate = the sample (Mbit/s, floored
at :data:`TRACE_FLOOR_MBPS`), uplink rate = ``trace_uplink_fraction`` times it.  The fading is
still drawn (and unused), so a slot's draws come in one order under either channel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.random import Generator

from aigc_edge_env import physics
from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.model import SlotProblem
from aigc_edge_env.traces import load_trace_set

__all__ = ["SystemState", "TRACE_FLOOR_MBPS", "draw_slots", "recharge", "reset_state"]

#: Floor on a trace sample (Mbit/s): a measured 0 (an outage second) becomes a rate this low, so times
#: stay finite and every edge option misses any deadline under ``upload / (fraction * floor)``.
TRACE_FLOOR_MBPS = 0.01


@dataclass
class SystemState:
    """What persists across the slots of an episode, per system and user, shape ``(B, N)`` (or ``(N,)``)."""

    distance_m: np.ndarray
    path_gain: np.ndarray  # 10^(-PL(d)/10), fixed with the distance
    device_clock_hz: np.ndarray
    fading: np.ndarray  # complex small-scale gain g
    battery_j: np.ndarray  # inf when batteries are disabled
    # position of each user's current sample in the trace set (aigc_edge_env.traces), -1 under the Rayleigh
    # channel; None (a planner's state that does not know it) draws a fresh position from the generator
    trace_position: np.ndarray | None = None


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=shape)


def _scale(unit: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``U[0, 1)`` samples mapped onto ``U[low, high)`` (the same arithmetic as ``rng.uniform``)."""
    return bounds[0] + (bounds[1] - bounds[0]) * unit


def _generators(rng: Generator | Sequence[Generator], batch_shape: tuple[int, ...]) -> list[Generator]:
    """One generator per system: ``rng`` itself for one system, else a sequence of ``prod(batch_shape)``."""
    if isinstance(rng, np.random.Generator):
        if batch_shape:
            raise ValueError(f"a batch of systems {batch_shape} needs one generator per system, got one generator")
        return [rng]
    generators = list(rng)
    if not batch_shape or len(generators) != math.prod(batch_shape):
        raise ValueError(f"systems of batch shape {batch_shape} need {math.prod(batch_shape)} generators, "
                         f"got {len(generators)}")
    return generators


def reset_state(config: AIGCEdgeConfig, rng: Generator | Sequence[Generator], n_systems: int | None) -> SystemState:
    """A new episode's state: one system without a batch axis (``n_systems=None``, one generator) or
    ``n_systems`` systems, each drawn from its own generator exactly as one system would be."""
    generators = _generators(rng, () if n_systems is None else (n_systems,))
    states = [_reset_one(config, generator) for generator in generators]
    if n_systems is None:
        return states[0]
    return SystemState(**{field.name: np.stack([getattr(state, field.name) for state in states])
                          for field in dataclasses.fields(SystemState)})


def _reset_one(config: AIGCEdgeConfig, rng: Generator) -> SystemState:
    """One system's new episode, in draw order: distances, clocks, fading, batteries, trace positions."""
    shape = (config.n_users,)
    distance = _uniform(rng, config.distance_m_range, shape)
    clock = _uniform(rng, config.device_clock_ghz_range, shape) * 1e9
    fading = physics.complex_normal(rng, shape)
    if config.battery_enabled:
        battery = _uniform(rng, config.battery_initial_j_range, shape)
    else:
        battery = np.full(shape, np.inf)
    position = _trace_start(config, rng) if config.channel_model == "trace" else np.full(shape, -1)
    return SystemState(distance_m=distance, path_gain=physics.path_gain(distance), device_clock_hz=clock,
                       fading=fading, battery_j=battery, trace_position=position)


def _trace_start(config: AIGCEdgeConfig, rng: Generator) -> np.ndarray:
    """Each user's first trace position: a trace uniform over the set, then a sample uniform over it."""
    traces = load_trace_set(config.trace_name)
    trace = rng.integers(traces.n_traces, size=config.n_users)
    return traces.positions(trace, rng.integers(traces.lengths[trace]))


def draw_slots(
    config: AIGCEdgeConfig, state: SystemState, rng: Generator | Sequence[Generator], n_slots: int, *,
    first_is_current: bool,
) -> tuple[SlotProblem, np.ndarray | None]:
    """The next ``n_slots`` slots of every system in ``state`` and the harvests between them.

    Each system draws from its own generator (``rng`` for one system without a batch axis,
    else a sequence with one generator per system), in this order per slot: the fading
    step (standard normals, real then imaginary parts), the harvest (battery scenario),
    then the requests (one block of ``U[0, 1)``: arrivals, upload, download, utility
    weight, deadline).  Drawing ``n`` slots at once or one at a time consumes a generator
    identically, so the single env may draw any number of slots ahead, and a sub-env of
    the vector env replays the single env seeded like its generator.

    ``first_is_current`` says that slot 0 is the current state's (requests only, as right
    after a reset): it draws no fading step and no harvest.

    Returns the slots as one :class:`SlotProblem` of shape ``(n_slots, *state shape)``
    (``battery_j`` is the current level, a placeholder: batteries depend on the actions)
    and ``harvest[k]``, the energy (J) harvested on entering slot ``k`` (None without
    batteries; meaningless for a slot 0 that is current).  ``state.fading`` moves to the
    last slot's.
    """
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    batch, n_users = state.fading.shape[:-1], state.fading.shape[-1]
    generators = _generators(rng, batch)
    first_step = int(bool(first_is_current))  # the first slot that draws a fading step and a harvest
    # Per system and slot: 2N standard normals, then N harvest uniforms (battery scenario) and
    # 5N request uniforms, drawn by one call: consecutive uniforms are the same stream as two calls.
    normals = np.zeros((len(generators), n_slots, 2, n_users))
    uniforms = np.zeros((len(generators), n_slots, 6 if config.battery_enabled else 5, n_users))
    for generator, system_normals, system_uniforms in zip(generators, normals, uniforms, strict=True):
        standard_normal, uniform = generator.standard_normal, generator.random
        if first_step:
            uniform(out=system_uniforms[0, -5:])  # the current slot's requests only
        for k in range(first_step, n_slots):
            standard_normal(out=system_normals[k])
            uniform(out=system_uniforms[k])
    innovations = physics.complex_normal_from(np.moveaxis(_slots_first(normals[:, first_step:], batch), 1, 0))
    fading = physics.gauss_markov_path(state.fading, config.fading_correlation, innovations)
    if first_step:
        fading = np.concatenate([state.fading[None], fading])
    state.fading = fading[-1]
    if config.channel_model == "trace":
        uplink, downlink = _trace_rates_bps(config, state, generators, n_slots, first_step)
    else:
        gain = physics.faded_gain(state.path_gain, fading)
        bandwidth, noise = config.bandwidth_per_user_hz, config.noise_psd_w_per_hz
        uplink = physics.shannon_rate_bps(bandwidth, config.user_tx_power_w, gain, noise)
        downlink = physics.shannon_rate_bps(bandwidth, config.bs_tx_power_w, gain, noise)
    slot_uniforms = _slots_first(uniforms, batch)  # (n_slots, rows, *batch, N)
    harvest = _scale(slot_uniforms[:, 0], config.harvest_j_range) if config.battery_enabled else None
    return _slot_problem(config, state, uplink, downlink, np.moveaxis(slot_uniforms[:, -5:], 1, 0)), harvest


def _trace_rates_bps(config: AIGCEdgeConfig, state: SystemState, generators: list[Generator], n_slots: int,
                     first_step: int) -> tuple[np.ndarray, np.ndarray]:
    """Uplink and downlink rates ``(n_slots, *state shape)`` of the next slots' trace samples; moves
    ``state.trace_position`` to the last slot's (a state without positions first draws them)."""
    traces = load_trace_set(config.trace_name)
    if state.trace_position is None:
        shape = state.fading.shape
        state.trace_position = np.stack([_trace_start(config, g) for g in generators]).reshape(shape)
    steps = np.arange(1 - first_step, n_slots + 1 - first_step).reshape(-1, *([1] * state.fading.ndim))
    positions = traces.advance(state.trace_position, steps)
    state.trace_position = positions[-1]
    downlink = np.maximum(traces.throughput_mbps[positions], TRACE_FLOOR_MBPS) * 1e6
    return config.trace_uplink_fraction * downlink, downlink


def _slots_first(values: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """Per-system draws ``(systems, n_slots, *inner, N)`` as ``(n_slots, *inner, *batch, N)`` (a view)."""
    values = values.reshape(*batch, *values.shape[1:])
    n_batch = len(batch)
    inner = range(n_batch + 1, values.ndim - 1)
    return values.transpose(n_batch, *inner, *range(n_batch), values.ndim - 1)


def _slot_problem(config: AIGCEdgeConfig, state: SystemState, uplink_rate_bps: np.ndarray,
                  downlink_rate_bps: np.ndarray, unit: np.ndarray) -> SlotProblem:
    """Slots at these rates with requests from ``U[0, 1)`` draws ``unit`` (5 stacked on axis 0)."""
    shape = uplink_rate_bps.shape
    return SlotProblem(
        config=config,
        has_request=unit[0] < config.task_probability,
        upload_bits=_scale(unit[1], config.upload_mbit_range) * 1e6,
        download_bits=_scale(unit[2], config.download_mbit_range) * 1e6,
        utility_weight=_scale(unit[3], config.utility_weight_range),
        deadline_s=_scale(unit[4], config.deadline_s_range),
        uplink_rate_bps=uplink_rate_bps,
        downlink_rate_bps=downlink_rate_bps,
        device_clock_hz=np.broadcast_to(state.device_clock_hz, shape),
        battery_j=np.broadcast_to(state.battery_j, shape),
    )


def recharge(config: AIGCEdgeConfig, battery_j: np.ndarray, energy_used_j: np.ndarray,
             harvest_j: np.ndarray) -> np.ndarray:
    """Battery after a slot: ``min(capacity, battery - energy_used + harvest)`` (J)."""
    return np.minimum(config.battery_capacity_j, battery_j - energy_used_j + harvest_j)
