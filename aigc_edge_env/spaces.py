"""Observation encoding, action decoding and action masks, shared by the single and vector envs.

Every function takes batched arrays (leading batch axis ``B``) so the vector env calls
them once per step for all its sub-envs; the single env passes unbatched arrays ``(N,)``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from gymnasium import spaces

from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.model import Decision, SlotProblem, option_table

#: Per-user observation features, in the order of their blocks (each block has N entries).
USER_FEATURES = (
    "request",
    "uplink_spectral_efficiency",
    "upload_size",
    "download_size",
    "device_step_time",
    "device_step_energy",
    "deadline",
    "utility_weight",
    "battery",
)
#: Global features, after the per-user blocks.
GLOBAL_FEATURES = ("request_share", "edge_capacity", "episode_progress")

#: Spectral efficiency (bit/s/Hz) that maps to 1.0; higher values are clipped.
SPECTRAL_EFFICIENCY_SCALE = 30.0


def observation_n_users(size: int) -> int:
    """The number of users ``N`` of an observation of ``size = 9N + 3`` entries; ``ValueError`` otherwise."""
    n_user_values = size - len(GLOBAL_FEATURES)
    if n_user_values < len(USER_FEATURES) or n_user_values % len(USER_FEATURES):
        raise ValueError(f"observation size {size} is not {len(USER_FEATURES)} N + {len(GLOBAL_FEATURES)} "
                         "with N >= 1: not the AIGC env's observation")
    return n_user_values // len(USER_FEATURES)


def split_observation(observation: Any, n_users: int) -> tuple[Any, Any]:
    """Per-user features ``(..., N, 9)`` and global features ``(..., 3)`` of observations ``(..., 9N + 3)``.

    ``observation`` is a numpy array or a torch tensor with any leading batch shape; both
    parts are views of it (no copy), of the same type.  Row ``n`` of the per-user part is
    user ``n``'s :data:`USER_FEATURES`, in their order; the global part is
    :data:`GLOBAL_FEATURES`.  Raises ``ValueError`` when the last axis is not ``9N + 3``.
    """
    n_features, size = len(USER_FEATURES), observation.shape[-1]
    if size != n_features * n_users + len(GLOBAL_FEATURES):
        raise ValueError(f"observation of shape {tuple(observation.shape)} does not end in "
                         f"{n_features} * {n_users} + {len(GLOBAL_FEATURES)} entries (n_users={n_users})")
    blocks = observation[..., : n_features * n_users].reshape(*observation.shape[:-1], n_features, n_users)
    return blocks.swapaxes(-1, -2), observation[..., n_features * n_users:]


def agent_observation_size(mean_field: bool = False) -> int:
    """Entries of one agent's observation (:func:`agent_observations`): 12, or 21 with ``mean_field``."""
    return (1 + mean_field) * len(USER_FEATURES) + len(GLOBAL_FEATURES)


def agent_observations(observation: np.ndarray, n_users: int, mean_field: bool = False) -> np.ndarray:
    """Every user's agent observation (the multi-agent view's) from the single env's ``observation`` ``(9N + 3,)``.

    Row ``n`` is user ``n``'s :data:`USER_FEATURES`, then (with ``mean_field``) the mean of every user's
    features (the same for every row), then the :data:`GLOBAL_FEATURES`: shape ``(N, 12)``, or ``(N, 21)``.
    """
    observation = np.asarray(observation, dtype=np.float32)
    if observation.ndim != 1:
        raise ValueError(f"agent_observations takes one observation of shape (9N + 3,), got shape {observation.shape}")
    users, globals_ = split_observation(observation, n_users)
    parts = [users, np.broadcast_to(users.mean(axis=0), users.shape)] if mean_field else [users]
    return np.concatenate([*parts, np.broadcast_to(globals_, (n_users, len(GLOBAL_FEATURES)))], axis=-1)


def observation_space(config: AIGCEdgeConfig) -> spaces.Box:
    size = len(USER_FEATURES) * config.n_users + len(GLOBAL_FEATURES)
    return spaces.Box(low=0.0, high=1.0, shape=(size,), dtype=np.float32)


def action_space(config: AIGCEdgeConfig) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete([2] * config.n_users + [config.n_levels] * config.n_users)


def encode_observation(problem: SlotProblem, slot_index: np.ndarray | int) -> np.ndarray:
    """Normalised float32 observation, shape ``batch + (9N + 3,)``, every entry in ``[0, 1]``.

    ``problem`` may be batched (arrays ``(B, N)``, ``slot_index`` of shape ``(B,)``) or a
    single slot (arrays ``(N,)``, a scalar ``slot_index``).  The blocks are written into one
    preallocated array (the vector env's hot path; the single env encodes a chunk of slots at once).
    """
    c = problem.config
    request = problem.has_request
    batch, n = request.shape[:-1], request.shape[-1]
    obs = np.empty((*batch, len(USER_FEATURES) * n + len(GLOBAL_FEATURES)))
    block = obs[..., : len(USER_FEATURES) * n].reshape(*batch, len(USER_FEATURES), n)
    min_clock_hz = c.device_clock_ghz_range[0] * 1e9
    block[..., 0, :] = request
    block[..., 1, :] = problem.uplink_rate_bps / c.bandwidth_per_user_hz / SPECTRAL_EFFICIENCY_SCALE
    block[..., 2, :] = request * problem.upload_bits / (c.upload_mbit_range[1] * 1e6)
    block[..., 3, :] = request * problem.download_bits / (c.download_mbit_range[1] * 1e6)
    block[..., 4, :] = min_clock_hz / problem.device_clock_hz  # device step time / slowest device's
    block[..., 5, :] = problem.local_step_energy_j / step_energy_scale_j(c)
    block[..., 6, :] = request * problem.deadline_s / c.deadline_s_range[1]
    block[..., 7, :] = request * problem.utility_weight / max(c.utility_weight_range[1], 1e-12)
    obs[..., -3] = request.sum(axis=-1) / n  # share of users with a request
    obs[..., -2] = min(1.0, c.edge_step_capacity / (c.n_users * c.max_steps))
    obs[..., -1] = np.asarray(slot_index) / c.horizon_slots
    write_battery_feature(obs, problem.battery_j, c)
    np.maximum(obs, 0.0, out=obs)  # clip to [0, 1]
    np.minimum(obs, 1.0, out=obs)
    return obs.astype(np.float32)


def step_energy_scale_j(config: AIGCEdgeConfig) -> float:
    """The device energy per step (J) that feature ``device_step_energy`` maps to 1: the fastest clock's."""
    fastest_clock_hz = config.device_clock_ghz_range[1] * 1e9
    return config.device_energy_coefficient * fastest_clock_hz**2 * config.device_cycles_per_step


def write_battery_feature(observation: np.ndarray, battery_j: np.ndarray, config: AIGCEdgeConfig) -> None:
    """Write block 8 (battery / capacity in [0, 1]; 1 without batteries) of ``observation`` in place."""
    n = config.n_users
    battery = battery_j / max(config.battery_capacity_j, 1e-12) if config.battery_enabled else 1.0
    observation[..., 8 * n: 9 * n] = np.clip(battery, 0.0, 1.0)


@lru_cache(maxsize=64)
def _action_highs(n_users: int, n_levels: int) -> np.ndarray:
    """Largest valid entry of each action position (read-only)."""
    highs = np.array([1] * n_users + [n_levels - 1] * n_users, dtype=np.uint64)
    highs.flags.writeable = False
    return highs


@lru_cache(maxsize=64)
def _level_steps(step_levels: tuple[int, ...]) -> np.ndarray:
    """The step levels as a read-only int64 array."""
    levels = np.asarray(step_levels, dtype=np.int64)
    levels.flags.writeable = False
    return levels


def integer_array(values: Any, what: str) -> np.ndarray:
    """``values`` as int64; ``ValueError`` naming ``what`` unless every entry is an integer.

    Integer and bool dtypes pass, as do floats with integral values; NaN, inf,
    fractions and values outside int64's range (which the cast would wrap) do not.
    """
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind not in "iubf" or (kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all())):
        raise ValueError(f"{what} entries must be integers, got dtype {array.dtype} with values {array!r}")
    if (kind == "u" and np.any(array >= 2**63)) or (kind == "f" and np.any(np.abs(array) >= 2.0**63)):
        raise ValueError(f"{what} entries must lie in int64's range (|value| < 2**63), got values {array!r}")
    return array.astype(np.int64, copy=False)


def validate_actions(actions: np.ndarray, config: AIGCEdgeConfig, batch_shape: tuple[int, ...]) -> np.ndarray:
    """Check a (batch of) MultiDiscrete action(s); return them as int64 of shape ``batch + (2N,)``.

    Raises ``ValueError`` naming the problem for a wrong shape, non-integer values
    (NaN included) or an index outside its range.
    """
    n, n_levels = config.n_users, config.n_levels
    array = np.asarray(actions)
    expected = batch_shape + (2 * n,)
    if array.shape != expected:
        raise ValueError(f"action must have shape {expected} (N={n} offload bits, then N level indices), "
                         f"got shape {array.shape}")
    array = integer_array(array, "action")
    if np.count_nonzero(array.astype(np.uint64) > _action_highs(n, n_levels)):  # negatives wrap to huge values
        offload, levels = array[..., :n], array[..., n:]
        if ((offload < 0) | (offload > 1)).any():
            raise ValueError(f"action offload bits (first N={n} entries) must be 0 or 1, got {offload.tolist()}")
        raise ValueError(f"action step-level indices (last N={n} entries) must lie in [0, {n_levels - 1}], "
                         f"got {levels.tolist()}")
    return array


def actions_to_decision(actions: np.ndarray, config: AIGCEdgeConfig) -> Decision:
    """Validated int actions -> :class:`Decision` (levels mapped to step counts)."""
    n = config.n_users
    return Decision(offload=actions[..., :n].astype(bool), steps=_level_steps(config.step_levels)[actions[..., n:]])


def level_indices(steps: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The index of each step count in the sorted ``levels``; ``ValueError`` unless every one is a level."""
    index = np.clip(np.searchsorted(levels, steps), 0, levels.size - 1)
    if np.any(levels[index] != steps):
        raise ValueError(f"decision steps {np.asarray(steps).tolist()} are not all step levels {levels.tolist()}")
    return index


def decision_to_actions(decision: Decision, config: AIGCEdgeConfig) -> np.ndarray:
    """:class:`Decision` -> MultiDiscrete action; steps must be step levels, the last axis ``config.n_users``."""
    if decision.offload.shape[-1:] != (config.n_users,):
        raise ValueError(f"a decision of shape {decision.offload.shape} for an env of {config.n_users} users: its "
                         f"last axis must be the {config.n_users} users")
    index = level_indices(decision.steps, np.asarray(config.step_levels, dtype=np.int64))
    return np.concatenate([decision.offload.astype(np.int64), index], axis=-1)


def action_mask(problem: SlotProblem) -> np.ndarray:
    """Flat boolean mask of length ``2N + L N`` for MaskablePPO, shape ``batch + (2N + LN,)``.

    A user without a request may only pick index 0 (its entries are ignored anyway).
    Otherwise an offload bit is allowed if some level of that mode is feasible for the
    user alone, and a level if it is feasible alone in some allowed mode; a user with no
    feasible option keeps every choice open (it will be dropped whatever it picks).
    Feasibility "alone" is :func:`~aigc_edge_env.model.option_table`'s ``local_feasible`` and
    ``edge_feasible_alone``: it ignores the other users (edge congestion and capacity), so an
    allowed action can still be dropped by the repair rule.  Works on one slot or a batch.
    """
    table = option_table(problem)
    feasible = np.stack([table.local_feasible, table.edge_feasible_alone], axis=-2)  # (..., N, 2, L)
    mode_ok = np.asarray(feasible.any(axis=-1))  # (..., N, 2)
    level_ok = (feasible & mode_ok[..., None]).any(axis=-2)  # (..., N, L)
    stuck = ~mode_ok.any(axis=-1, keepdims=True)
    idle = ~problem.has_request[..., None]
    mode_ok = np.where(idle, np.array([True, False]), mode_ok | stuck)
    level_ok = np.where(idle, np.arange(problem.config.n_levels) == 0, level_ok | stuck)
    batch = problem.has_request.shape[:-1]
    return np.concatenate([mode_ok.reshape(*batch, -1), level_ok.reshape(*batch, -1)], axis=-1)
