"""The cost model of one slot: the single source of truth for the env and every solver.

* :class:`SlotProblem` holds one slot (or a batch of slots: every per-user array has
  shape ``(..., N)``), the config it came from, and derived per-user constants.
* :class:`Decision` holds offload bits and step counts.
* :func:`evaluate_decision` applies the env's deterministic repair rule and returns a
  :class:`SlotEvaluation` with the total cost, every component in physical units, and
  which requests were dropped and why.
* :func:`option_table` tabulates, for every user and step level, the cost of serving
  locally and the congestion-free part of the cost of serving at the edge, which is
  what the solvers optimise over.

Slot objective (MODEL.md): ``sum_n C_n`` with
``C_n = w_T T_n + w_E E_n + w_Q eps(s_n) - w_U u_n ln(1 + s_n)`` for a served request and
``C_drop`` for a dropped one.  Because the edge GPU split is the KKT optimum, the
offloaded compute times add up to ``Q^2 / F_E`` with ``Q = sum_{offloaded} sqrt(s_n)``, so
for a drop-free decision::

    slot cost = sum_n base_cost[n, x_n, s_n] + (w_T / F_E) * Q^2

where ``base_cost`` is the cost without edge compute time (:func:`option_table`).

Repair rule (what the env does with a decision that breaks a constraint), in order:

1. Entries of users without a request are ignored.
2. A local request with more steps than the device supports (``S^L_max``) is dropped.
3. Edge capacity: offloaded requests are admitted in user-index order while the running
   total of their steps stays within ``S^E_max``; the first one that would exceed it and
   every offloaded request after it are dropped (a prefix rule, simple to anticipate).
4. With ``Q`` over the admitted edge requests, a request whose time exceeds its deadline,
   or whose device energy exceeds its battery, is dropped.
5. ``Q`` is recomputed over the edge requests still served.  Dropping only lowers ``Q``,
   so every served request still meets its deadline with the final times.

A dropped request costs ``C_drop`` (``config.drop_cost``), uses no energy and no GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Any

import numpy as np

from aigc_edge_env import physics
from aigc_edge_env.config import AIGCEdgeConfig

__all__ = [
    "Decision",
    "DropReason",
    "OptionTable",
    "SlotEvaluation",
    "SlotProblem",
    "evaluate_decision",
    "option_table",
    "request_components",
]


class DropReason(IntEnum):
    """Why the repair rule dropped a request (``NONE`` = served or no request)."""

    NONE = 0
    DEVICE_CAPACITY = 1
    EDGE_CAPACITY = 2
    DEADLINE = 3
    BATTERY = 4


@dataclass(frozen=True, eq=False)
class SlotProblem:
    """One slot's instance: per-user arrays of shape ``(..., N)`` plus the config.

    A leading batch shape is allowed (the vector env evaluates many slots at once);
    solvers take single slots (shape ``(N,)``).
    """

    config: AIGCEdgeConfig
    has_request: np.ndarray  # bool
    upload_bits: np.ndarray  # D_n, bit
    download_bits: np.ndarray  # O_n, bit
    utility_weight: np.ndarray  # u_n
    deadline_s: np.ndarray  # Tmax_n, s
    uplink_rate_bps: np.ndarray  # r_n, bit/s
    downlink_rate_bps: np.ndarray  # r^dl_n, bit/s
    device_clock_hz: np.ndarray  # f_n, Hz
    battery_j: np.ndarray  # energy available this slot, J (inf without batteries)

    @property
    def n_users(self) -> int:
        return int(self.has_request.shape[-1])

    @cached_property
    def local_step_time_s(self) -> np.ndarray:
        return physics.local_step_time_s(self.config.device_cycles_per_step, self.device_clock_hz)

    @cached_property
    def local_step_energy_j(self) -> np.ndarray:
        c = self.config
        return physics.local_step_energy_j(c.device_energy_coefficient, c.device_cycles_per_step, self.device_clock_hz)

    @cached_property
    def edge_transfer_time_s(self) -> np.ndarray:
        """Upload plus download time ``D/r + O/r_dl`` (s)."""
        return self.upload_bits / self.uplink_rate_bps + self.download_bits / self.downlink_rate_bps

    @cached_property
    def edge_radio_energy_j(self) -> np.ndarray:
        """Device energy of offloading, ``p D/r + p_rx O/r_dl`` (J)."""
        c = self.config
        return (c.user_tx_power_w * self.upload_bits / self.uplink_rate_bps
                + c.user_rx_power_w * self.download_bits / self.downlink_rate_bps)

    def select(self, index: Any) -> "SlotProblem":
        """The sub-problem of batch entry ``index`` (e.g. ``problem.select(3)``)."""
        arrays = {name: getattr(self, name)[index] for name in _ARRAY_FIELDS}
        return SlotProblem(config=self.config, **arrays)


_ARRAY_FIELDS = (
    "has_request", "upload_bits", "download_bits", "utility_weight", "deadline_s",
    "uplink_rate_bps", "downlink_rate_bps", "device_clock_hz", "battery_j",
)


@dataclass(frozen=True, eq=False)
class Decision:
    """Offload bits ``x_n`` (bool) and reverse steps ``s_n`` (int), shape ``(..., N)``."""

    offload: np.ndarray
    steps: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "offload", np.asarray(self.offload, dtype=bool))
        steps = np.asarray(self.steps)
        if steps.dtype.kind not in "iu":
            if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
                raise ValueError(f"Decision.steps must be integers, got {self.steps!r}")
        object.__setattr__(self, "steps", steps.astype(np.int64))
        if self.offload.shape != self.steps.shape:
            raise ValueError(
                f"Decision.offload shape {self.offload.shape} != Decision.steps shape {self.steps.shape}"
            )


def request_components(
    problem: SlotProblem, offload: np.ndarray, steps: np.ndarray, sqrt_steps_sum: np.ndarray | float
) -> dict[str, np.ndarray]:
    """Time (s), energy (J), error, utility and cost of serving each request as decided.

    ``offload`` and ``steps`` broadcast against the per-user arrays (a trailing level axis
    is allowed after expanding those); ``sqrt_steps_sum`` is ``Q`` of the edge GPU
    (pass 0 for the congestion-free part).
    """
    c = problem.config
    local_time = steps * problem.local_step_time_s
    edge_time = problem.edge_transfer_time_s + physics.edge_compute_time_s(steps, sqrt_steps_sum, c.edge_steps_per_s)
    time_s = np.where(offload, edge_time, local_time)
    energy_j = np.where(offload, problem.edge_radio_energy_j, steps * problem.local_step_energy_j)
    error = np.where(offload, c.edge_error_curve.error(steps), c.device_error_curve.error(steps))
    utility = physics.step_utility(problem.utility_weight, steps)
    cost = (c.weight_time_per_s * time_s + c.weight_energy_per_j * energy_j
            + c.weight_error * error - c.weight_utility * utility)
    return {"time_s": time_s, "energy_j": energy_j, "error": error, "utility": utility, "cost": cost}


@dataclass(frozen=True, eq=False)
class SlotEvaluation:
    """Outcome of serving a decision; per-user arrays are zero for unserved users.

    ``cost`` is ``C_n`` for served requests, ``C_drop`` for dropped ones, 0 without request.
    """

    problem: SlotProblem
    decision: Decision
    served: np.ndarray
    dropped: np.ndarray
    drop_reason: np.ndarray  # DropReason codes
    offloaded: np.ndarray  # served at the edge
    time_s: np.ndarray
    energy_j: np.ndarray
    error: np.ndarray
    utility: np.ndarray
    cost: np.ndarray
    sqrt_steps_sum: np.ndarray  # Q over served edge requests
    edge_steps: np.ndarray  # steps served at the edge (compare S^E_max)
    total_cost: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_cost", self.cost.sum(axis=-1))

    @property
    def feasible(self) -> np.ndarray:
        """True where the decision is served as given (no request dropped)."""
        return ~self.dropped.any(axis=-1)

    @property
    def n_requests(self) -> np.ndarray:
        return self.problem.has_request.sum(axis=-1)

    def summary(self) -> dict[str, np.ndarray]:
        """Slot totals, each of batch shape (a scalar array for one slot).

        ``mean_error`` averages over served requests (0 when none); ``offload_share`` is
        the share of requests served at the edge; ``edge_load`` is edge steps over
        ``S^E_max`` (0 when the capacity is 0).
        """
        c = self.problem.config
        n_served = self.served.sum(axis=-1)
        n_requests = self.n_requests
        n_offloaded = self.offloaded.sum(axis=-1)
        return {
            "cost": self.total_cost,
            "time_s": self.time_s.sum(axis=-1),
            "energy_j": self.energy_j.sum(axis=-1),
            "mean_error": np.divide(self.error.sum(axis=-1), n_served, out=np.zeros(n_served.shape),
                                    where=n_served > 0),
            "utility": self.utility.sum(axis=-1),
            "n_requests": n_requests,
            "n_served": n_served,
            "n_dropped": n_requests - n_served,  # every request is served or dropped
            "n_offloaded": n_offloaded,
            "offload_share": np.divide(n_offloaded, n_requests, out=np.zeros(n_requests.shape),
                                       where=n_requests > 0),
            "edge_steps": self.edge_steps,
            "edge_load": self.edge_steps / c.edge_step_capacity if c.edge_step_capacity else 0.0 * self.edge_steps,
        }


def _validate_decision(problem: SlotProblem, decision: Decision) -> None:
    c = problem.config
    if decision.offload.shape != problem.has_request.shape:
        raise ValueError(
            f"decision shape {decision.offload.shape} does not match the problem's users {problem.has_request.shape}"
        )
    steps = decision.steps
    if (((steps < c.min_steps) | (steps > c.max_steps)) & problem.has_request).any():
        raise ValueError(
            f"Decision.steps of users with a request must lie in [{c.min_steps}, {c.max_steps}], "
            f"got {steps[problem.has_request].tolist()}"
        )


def _sqrt_steps_sum(at_edge: np.ndarray, steps: np.ndarray) -> np.ndarray:
    return np.where(at_edge, np.sqrt(steps), 0.0).sum(axis=-1, keepdims=True)


# Drop reasons as plain ints: numpy compares against these far faster than against IntEnum members.
_SERVED, _DEVICE_CAPACITY, _EDGE_CAPACITY, _DEADLINE, _BATTERY = (int(reason) for reason in DropReason)


def evaluate_decision(problem: SlotProblem, decision: Decision) -> SlotEvaluation:
    """Serve ``decision`` on ``problem`` under the repair rule of this module's docstring."""
    _validate_decision(problem, decision)
    c = problem.config
    active = problem.has_request
    steps = np.where(active, decision.steps, c.min_steps)
    offload = decision.offload & active
    local = active & ~offload
    reason = np.zeros(active.shape, dtype=np.int8)

    reason[local & (steps > c.device_step_capacity)] = _DEVICE_CAPACITY
    edge_running_steps = np.cumsum(np.where(offload, steps, 0), axis=-1)
    reason[offload & (edge_running_steps > c.edge_step_capacity)] = _EDGE_CAPACITY

    admitted = active & (reason == _SERVED)
    admitted_at_edge = admitted & offload
    parts = request_components(problem, offload, steps, _sqrt_steps_sum(admitted_at_edge, steps))
    reason[admitted & (parts["time_s"] > problem.deadline_s)] = _DEADLINE
    reason[admitted & (reason == _SERVED) & (parts["energy_j"] > problem.battery_j)] = _BATTERY

    served = active & (reason == _SERVED)
    at_edge = served & offload
    sqrt_steps_sum = _sqrt_steps_sum(at_edge, steps)
    if (admitted_at_edge & ~served).any():  # an edge request was dropped: Q fell, recompute the times
        parts = request_components(problem, offload, steps, sqrt_steps_sum)
    dropped = active & ~served
    zero = np.zeros(active.shape)
    return SlotEvaluation(
        problem=problem,
        decision=decision,
        served=served,
        dropped=dropped,
        drop_reason=reason,
        offloaded=at_edge,
        time_s=np.where(served, parts["time_s"], zero),
        energy_j=np.where(served, parts["energy_j"], zero),
        error=np.where(served, parts["error"], zero),
        utility=np.where(served, parts["utility"], zero),
        cost=np.where(served, parts["cost"], np.where(dropped, c.drop_cost, zero)),
        sqrt_steps_sum=sqrt_steps_sum[..., 0],
        edge_steps=np.where(at_edge, steps, 0).sum(axis=-1),
    )


@dataclass(frozen=True, eq=False)
class OptionTable:
    """Per-user, per-level costs of one slot, shape ``(N, L)`` (the solvers' view).

    For a drop-free decision, ``slot cost = sum of chosen base costs + congestion_weight * Q^2``.

    * ``local_cost[n, l]``: ``C_n`` of running level ``l`` on the device.
    * ``local_feasible[n, l]``: device capacity, deadline and battery hold.
    * ``edge_base_cost[n, l]``: ``C_n`` at the edge without the compute time term.
    * ``edge_max_sqrt_sum[n, l]``: the largest ``Q`` for which the edge option meets its
      deadline, ``F_E (Tmax - transfer) / sqrt(s)`` (``-inf`` when its radio energy exceeds
      the battery); the option is feasible iff ``Q <= edge_max_sqrt_sum``.
    * ``congestion_weight``: ``w_T / F_E``.
    """

    problem: SlotProblem
    steps: np.ndarray  # (L,) the levels
    local_cost: np.ndarray
    local_feasible: np.ndarray
    edge_base_cost: np.ndarray
    edge_max_sqrt_sum: np.ndarray
    congestion_weight: float


def option_table(problem: SlotProblem) -> OptionTable:
    """Tabulate every (user, mode, level) option (see :class:`OptionTable`).

    For a batch of slots (per-user arrays ``(..., N)``) every table has shape ``(..., N, L)``.
    """
    c = problem.config
    levels = np.asarray(c.step_levels, dtype=np.int64)
    column = {name: getattr(problem, name)[..., None] for name in _ARRAY_FIELDS}
    grid = SlotProblem(config=c, **column)  # per-user arrays as (N, 1) columns against (L,) levels
    local = request_components(grid, False, levels, 0.0)
    edge = request_components(grid, True, levels, 0.0)
    local_feasible = ((levels <= c.device_step_capacity) & (local["time_s"] <= grid.deadline_s)
                      & (local["energy_j"] <= grid.battery_j))
    slack_s = grid.deadline_s - grid.edge_transfer_time_s
    edge_max_sqrt_sum = np.where(
        (edge["energy_j"] <= grid.battery_j) & (slack_s >= 0), c.edge_steps_per_s * slack_s / np.sqrt(levels), -np.inf
    )
    return OptionTable(
        problem=problem,
        steps=levels,
        local_cost=local["cost"],
        local_feasible=local_feasible,
        edge_base_cost=edge["cost"],
        edge_max_sqrt_sum=edge_max_sqrt_sum,
        congestion_weight=c.weight_time_per_s / c.edge_steps_per_s,
    )
