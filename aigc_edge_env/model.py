"""The cost model of one slot: the single source of truth for the env and every solver.

* :class:`SlotProblem` holds one slot (or a batch of slots: every per-user array has
  shape ``(..., N)``), the config it came from, and derived per-user constants.
* :class:`Decision` holds offload bits and step counts.
* :func:`evaluate_decision` applies the env's deterministic repair rule and returns a
  :class:`SlotEvaluation` with the total cost, every component in physical units, and
  which requests were dropped and why.  It is two steps, both public:
  :func:`option_rows` computes what the rule and the cost need about each user's chosen
  option, :func:`serve` applies the rule to those rows and sums them.  The env computes
  :func:`option_grid` (the rows of every option) for many slots in one call and gathers
  each action's rows from it, so a step costs a gather and :func:`serve`.
* :func:`option_table` tabulates, for every user and step level, the cost of serving
  locally and the congestion-free part of the cost of serving at the edge, which is
  what the solvers optimise over.

Slot objective (docs/model.md): ``sum_n C_n`` with
``C_n = w_T T_n + w_E E_n + w_Q eps(s_n) - w_U u_n ln(1 + s_n)`` for a served request and
``C_drop`` for a dropped one.  Because the edge GPU split is the KKT optimum, the
offloaded compute times add up to ``Q^2 / F_E`` with ``Q = sum_{offloaded} sqrt(s_n)``, so
for a drop-free decision::

    slot cost = sum_n base_cost[n, x_n, s_n] + (w_T / F_E) * Q^2

where ``base_cost`` is the cost without edge compute time (:func:`option_table`).

Entries of users without a request are ignored.  Repair rule (what the env does with a decision that
breaks a constraint; the numbering of docs/model.md), in order:

1. A local request with more steps than the device supports (``S^L_max``) is dropped.
2. Edge capacity: offloaded requests are admitted in user-index order while the running
   total of their steps stays within ``S^E_max``; the first one that would exceed it and
   every offloaded request after it are dropped (a prefix rule, simple to anticipate).
3. With ``Q`` over the admitted edge requests, a request whose time exceeds its deadline,
   or whose device energy exceeds its battery, is dropped.
   (The time check at the edge is ``Q <= F_E (Tmax_n - transfer time) / sqrt(s_n)``, the
   same inequality solved for ``Q``.)
4. ``Q`` is recomputed over the edge requests still served.  Dropping only lowers ``Q``,
   so every served request still meets its deadline with the final times.

A dropped request costs ``C_drop`` (``config.drop_cost``), uses no energy and no GPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any, cast

import numpy as np

from aigc_edge_env import physics
from aigc_edge_env.config import AIGCEdgeConfig

__all__ = [
    "Decision",
    "DropReason",
    "N_SUMMED_COLUMNS",
    "OPTION_COLUMNS",
    "OptionTable",
    "PROBLEM_ARRAY_FIELDS",
    "SlotEvaluation",
    "SlotProblem",
    "evaluate_decision",
    "option_grid",
    "option_rows",
    "option_table",
    "request_components",
    "serve",
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
    solvers take single slots (shape ``(N,)``).  Built with anything else (other shapes, lists,
    non-positive rates, clocks or deadlines, negative sizes or batteries, NaN) it raises ``ValueError``
    naming the field.

    ``energy_price_per_j`` (cost per J, per user, default 0) is not part of the slot: it is a
    price on device energy that the solvers of :mod:`aigc_edge_env.baselines` add to what
    they minimise, ``slot cost + sum_n energy_price_per_j[n] * E_n`` (a shadow price of
    battery energy, set by a policy or a bound).  :func:`evaluate_decision`, the env's
    reward and every reported cost ignore it.  Any finite scalar or array broadcasting to the
    per-user shape is accepted, of either sign (the online bound shifts prices by penalties of
    both signs, :mod:`aigc_edge_env.baselines.information_relaxation`), and stored as a read-only
    array of that shape.
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
    energy_price_per_j: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(()))  # solvers only

    def __post_init__(self) -> None:
        _check_problem(self)
        object.__setattr__(self, "energy_price_per_j", _checked_prices(self.energy_price_per_j, self.has_request.shape))

    @property
    def n_users(self) -> int:
        return int(self.has_request.shape[-1])

    @cached_property
    def has_energy_prices(self) -> bool:
        """Some user's ``energy_price_per_j`` is non-zero (the solvers then price energy)."""
        return bool(np.any(self.energy_price_per_j))

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

    def select(self, index: Any) -> SlotProblem:
        """The sub-problem of batch entry ``index`` (e.g. ``problem.select(3)``)."""
        arrays = {name: getattr(self, name)[index] for name in PROBLEM_ARRAY_FIELDS}
        return SlotProblem(config=self.config, **arrays, energy_price_per_j=self.energy_price_per_j[index])


#: The per-user array fields of :class:`SlotProblem` that describe the slot (what the env
#: draws, and the battery), in declaration order; ``energy_price_per_j`` is the solvers' extra.
PROBLEM_ARRAY_FIELDS = (
    "has_request", "upload_bits", "download_bits", "utility_weight", "deadline_s",
    "uplink_rate_bps", "downlink_rate_bps", "device_clock_hz", "battery_j",
)


#: Per-user fields of a :class:`SlotProblem` that must be finite and > 0, and finite and >= 0 (``battery_j``:
#: >= 0, ``inf`` without batteries).
_POSITIVE_FIELDS = ("deadline_s", "uplink_rate_bps", "downlink_rate_bps", "device_clock_hz")
_NON_NEGATIVE_FIELDS = ("upload_bits", "download_bits", "utility_weight")
_CHECKED_FIELDS = (*_POSITIVE_FIELDS, *_NON_NEGATIVE_FIELDS, "battery_j")
_INF_ALLOWED = (False,) * (len(_CHECKED_FIELDS) - 1) + (True,)  # battery_j is inf without batteries


def _check_problem(problem: SlotProblem) -> None:
    """``ValueError`` naming the field unless ``problem`` is a config and per-user numpy arrays of one shape
    ``(..., N)``, ``has_request`` boolean, the others in their ranges (:data:`_POSITIVE_FIELDS`).  ``N`` is the
    arrays' (the cost model reads the rates given, not ``config.n_users``, which sizes the env's draws)."""
    if not isinstance(problem.config, AIGCEdgeConfig):
        raise ValueError(f"SlotProblem.config must be an AIGCEdgeConfig (aigc_edge_env.make_config), got "
                         f"{type(problem.config).__name__}")
    shape = getattr(problem.has_request, "shape", None)
    for name in PROBLEM_ARRAY_FIELDS:
        value = getattr(problem, name)
        if not isinstance(value, np.ndarray) or value.shape != shape or not shape:
            raise ValueError(f"SlotProblem.{name} must be a numpy array of has_request's shape (..., N) "
                             f"({_shape_of(problem.has_request)}), got {_shape_of(value)}")
    if problem.has_request.dtype != bool:
        raise ValueError(f"SlotProblem.has_request must be a boolean array, got dtype {problem.has_request.dtype}")
    if problem.has_request.size == 0:
        return
    # one block per field (same shapes), then each block's least and largest value: a NaN makes the least NaN
    values = np.concatenate([getattr(problem, name) for name in _CHECKED_FIELDS], axis=0)
    values = values.reshape(len(_CHECKED_FIELDS), -1)
    lows, highs = values.min(axis=1).tolist(), values.max(axis=1).tolist()
    for name, low, high, inf_allowed in zip(_CHECKED_FIELDS, lows, highs, _INF_ALLOWED, strict=True):
        positive = name in _POSITIVE_FIELDS
        if not ((low > 0 if positive else low >= 0) and (high < math.inf or inf_allowed)):
            accepted = (">= 0 (inf without batteries)" if inf_allowed else
                        "finite and > 0" if positive else "finite and >= 0")
            raise ValueError(f"SlotProblem.{name} must be {accepted} for every user (with or without a request), "
                             f"got values in [{low}, {high}]")


def _checked_prices(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``energy_price_per_j`` broadcast to the per-user ``shape``; ``ValueError`` naming it unless finite numbers."""
    try:
        if np.asarray(value).dtype.kind not in "iuf":  # not a bool, a string or None: numbers only
            raise TypeError
        price = np.broadcast_to(np.asarray(value, dtype=np.float64), shape)
    except (TypeError, ValueError):
        raise ValueError(f"SlotProblem.energy_price_per_j must be a number or an array of numbers broadcasting to "
                         f"has_request's shape {shape} (cost per J), got {_shape_of(value)}") from None
    if not np.isfinite(price).all():
        raise ValueError(f"SlotProblem.energy_price_per_j must be finite (cost per J), got {price.tolist()}")
    return price


def _shape_of(value: Any) -> str:
    return f"shape {value.shape}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"


#: Step counts a :class:`Decision` accepts are below this in magnitude (int64 holds them; far above any level).
_MAX_STEPS = 2**62


@dataclass(frozen=True, eq=False)
class Decision:
    """Offload bits ``x_n`` (bool, or 0 and 1) and reverse steps ``s_n`` (integers), shape ``(..., N)``;
    ``ValueError`` for anything else."""

    offload: np.ndarray
    steps: np.ndarray

    def __post_init__(self) -> None:
        offload = np.asarray(self.offload)
        if offload.dtype != bool and (offload.dtype.kind not in "iuf" or not np.all((offload == 0) | (offload == 1))):
            raise ValueError(f"Decision.offload must be booleans (or 0 and 1), got {self.offload!r}")
        object.__setattr__(self, "offload", offload.astype(bool))
        steps = np.asarray(self.steps)
        fractional = steps.dtype.kind == "f" and not (np.all(np.isfinite(steps)) and np.all(steps == np.round(steps)))
        if steps.dtype.kind not in "iuf" or fractional or np.any(np.abs(steps) >= _MAX_STEPS):
            raise ValueError(f"Decision.steps must be integers of magnitude below 2**62, got {self.steps!r}")
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
    edge_time = problem.edge_transfer_time_s + physics.edge_compute_time_s(
        steps, np.asarray(sqrt_steps_sum), c.edge_steps_per_s)
    time_s = np.where(offload, edge_time, local_time)
    energy_j = np.where(offload, problem.edge_radio_energy_j, steps * problem.local_step_energy_j)
    error = np.where(offload, c.edge_error_curve.error(steps), c.device_error_curve.error(steps))
    utility = physics.step_utility(problem.utility_weight, steps)
    cost = (c.weight_time_per_s * time_s + c.weight_energy_per_j * energy_j
            + c.weight_error * error - c.weight_utility * utility)
    return {"time_s": time_s, "energy_j": energy_j, "error": error, "utility": utility, "cost": cost}


#: Columns of the option rows (axis 0 of :func:`option_rows`).  The first
#: ``N_SUMMED_COLUMNS`` add up over served requests; times and costs are congestion-free
#: (the edge compute time ``sqrt(s_n) Q / F_E`` is added once ``Q`` is known).  Users
#: without a request have all-zero rows with both limits ``+inf``.
OPTION_COLUMNS = (
    "request",  # 1 for a request, 0 for a user without one
    "offloaded",  # 1 for a request served at the edge
    "edge_steps",  # s_n at the edge, else 0
    "edge_sqrt_steps",  # sqrt(s_n) at the edge, else 0 (its sum is Q)
    "energy_j",  # device energy, J
    "base_time_s",  # local time, or upload + download time at the edge, s
    "error",  # average error eps(s_n)
    "utility",  # u_n ln(1 + s_n)
    "base_cost",  # C_n without the edge compute-time term
    "steps",  # s_n of a request, else 0
    "edge_steps_limit",  # S^E_max at the edge (bound on the running edge-step total), else +inf
    "max_sqrt_steps_sum",  # largest Q meeting the deadline; -inf when the request fails locally
)
N_SUMMED_COLUMNS = OPTION_COLUMNS.index("steps")
(_REQUEST, _OFFLOADED, _EDGE_STEPS, _EDGE_SQRT_STEPS, _ENERGY, _BASE_TIME, _ERROR, _UTILITY, _BASE_COST, _STEPS,
 _EDGE_STEPS_LIMIT, _MAX_SQRT_STEPS_SUM) = range(len(OPTION_COLUMNS))


def option_rows(
    problem: SlotProblem, offload: np.ndarray, steps: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Everything the repair rule and the cost need about each user's chosen option.

    Returns an array of shape ``(K,) + broadcast(per-user arrays, offload, steps)`` whose
    axis 0 is :data:`OPTION_COLUMNS` (column-first: each column is contiguous, so the cost
    sums are one matrix product), written into ``out`` if given.  ``steps`` must lie in
    ``[S_min, S_max]`` (:func:`evaluate_decision` replaces those of users without a
    request, which are ignored, by ``S_min``).  The device-capacity and local-deadline
    checks are folded into ``max_sqrt_steps_sum`` (``+inf`` if the local option is
    feasible, ``-inf`` if not); at the edge it is ``F_E (Tmax - transfer time) / sqrt(s)``,
    the largest ``Q`` meeting the deadline.
    """
    c = problem.config
    offload = np.asarray(offload, dtype=bool)
    parts = request_components(problem, offload, steps, 0.0)
    sqrt_steps = np.sqrt(steps)
    local_ok = (steps <= c.device_step_capacity) & (parts["time_s"] <= problem.deadline_s)
    max_sqrt_steps_sum = c.edge_steps_per_s * (problem.deadline_s - problem.edge_transfer_time_s) / sqrt_steps
    active = problem.has_request
    at_edge = offload & active
    columns = (  # a user without a request: zero values (all finite, masked below), no limits
        active, offload, offload * steps, offload * sqrt_steps,
        *(parts[name] for name in ("energy_j", "time_s", "error", "utility", "cost")), steps,
        np.where(at_edge, c.edge_step_capacity, np.inf),
        np.where(at_edge, max_sqrt_steps_sum, np.where(local_ok | ~active, np.inf, -np.inf)),
    )
    shape = (len(columns), *np.broadcast(*columns).shape)
    rows = np.empty(shape) if out is None else out
    if rows.shape != shape:
        raise ValueError(f"out has shape {rows.shape}, expected {shape}")
    for row, column in zip(rows, columns, strict=True):
        row[...] = column
    rows[_REQUEST + 1:_EDGE_STEPS_LIMIT] *= rows[_REQUEST]
    return rows


def option_grid(problem: SlotProblem, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`option_rows` of every mode and level: shape ``(K, 2, L) + batch + (N,)``.

    Index ``[:, x, l, ..., n]`` is user ``n`` served locally (``x = 0``) or at the edge
    (``x = 1``) at level ``config.step_levels[l]``; gathering one ``(x, l)`` per user gives
    the rows :func:`serve` takes (how the env evaluates an action without recomputing).
    The option axes lead so that every vectorised operation runs over the contiguous
    slots and users.  ``out``: an array of that shape to write into (the env reuses one).
    """
    user_axes = (1,) * problem.has_request.ndim
    offload = np.array([False, True]).reshape(2, 1, *user_axes)
    levels = np.asarray(problem.config.step_levels, dtype=np.int64).reshape(-1, *user_axes)
    return option_rows(problem, offload, levels, out=out)


# Drop reasons as plain ints: numpy compares against these far faster than against IntEnum members.
_DEVICE_CAPACITY, _EDGE_CAPACITY, _DEADLINE, _BATTERY = (int(reason) for reason in list(DropReason)[1:])


def _share(part, whole):
    """``part / whole``, 0 where ``whole`` is 0; for Python floats or numpy arrays alike."""
    if isinstance(whole, np.ndarray):
        return np.divide(part, whole, out=np.zeros(whole.shape), where=whole > 0)
    return part / whole if whole > 0 else 0.0


@dataclass(eq=False)
class SlotEvaluation:
    """Outcome of serving one slot's decision (or a batch of them) under the repair rule.

    Built by :func:`serve`, which computes only the masks and the slot totals; per-user
    arrays (``served``, ``time_s``, ``cost``, ...) are computed when asked for and are zero
    for users not served; ``cost`` is ``C_n`` for a served request, ``C_drop`` for a dropped
    one, 0 without request.
    """

    config: AIGCEdgeConfig
    rows: np.ndarray  # (K, ..., N) option rows of the decision (OPTION_COLUMNS)
    admitted: np.ndarray  # passed the edge-capacity prefix (always true for local and idle users)
    meets_deadline: np.ndarray  # device capacity and deadline hold at the admitted Q (true for idle users)
    kept: np.ndarray  # not dropped: served, or no request
    sqrt_steps_sum: np.ndarray  # Q over served edge requests, batch shape
    served_totals: np.ndarray  # (N_SUMMED_COLUMNS, ...) column sums over the kept rows

    @cached_property
    def _has_request(self) -> np.ndarray:
        return self.rows[_REQUEST] > 0

    @cached_property
    def served(self) -> np.ndarray:
        return self.kept & self._has_request

    @cached_property
    def dropped(self) -> np.ndarray:
        return self._has_request & ~self.kept

    @cached_property
    def offloaded(self) -> np.ndarray:
        """Served at the edge."""
        return self.kept & (self.rows[_OFFLOADED] > 0)

    @cached_property
    def drop_reason(self) -> np.ndarray:
        """:class:`DropReason` code per user (``NONE`` for served and idle users)."""
        reason = np.zeros(self.kept.shape, dtype=np.int8)
        local = self._has_request & (self.rows[_OFFLOADED] == 0)
        reason[self.dropped] = _BATTERY
        reason[self.admitted & ~self.meets_deadline] = _DEADLINE
        reason[~self.admitted] = _EDGE_CAPACITY
        reason[local & (self.rows[_STEPS] > self.config.device_step_capacity)] = _DEVICE_CAPACITY
        return reason

    @cached_property
    def _edge_compute_time_s(self) -> np.ndarray:
        """``sqrt(s_n) Q / F_E`` of served edge requests, 0 elsewhere."""
        compute = physics.edge_compute_time_s(self.rows[_STEPS], self.sqrt_steps_sum[..., None],
                                              self.config.edge_steps_per_s)
        return np.where(self.offloaded, compute, 0.0)

    def _served_column(self, column: int) -> np.ndarray:
        return np.where(self.kept, self.rows[column], 0.0)

    @property
    def time_s(self) -> np.ndarray:
        return self._served_column(_BASE_TIME) + self._edge_compute_time_s

    @property
    def energy_j(self) -> np.ndarray:
        return self._served_column(_ENERGY)

    @property
    def error(self) -> np.ndarray:
        return self._served_column(_ERROR)

    @property
    def utility(self) -> np.ndarray:
        return self._served_column(_UTILITY)

    @property
    def cost(self) -> np.ndarray:
        c = self.config
        served = self._served_column(_BASE_COST) + c.weight_time_per_s * self._edge_compute_time_s
        return np.where(self.dropped, cast(float, c.drop_cost), served)

    @property
    def edge_steps(self) -> np.ndarray:
        """Steps served at the edge (compare ``S^E_max``), batch shape."""
        return self.served_totals[_EDGE_STEPS]

    @property
    def total_cost(self) -> np.ndarray:
        """The slot's cost, ``summary()["cost"]``, batch shape (computed alone: the hot path of valuing
        many candidate decisions)."""
        totals = self.served_totals
        return np.asarray(_slot_cost(self.config, totals[_BASE_COST], totals[_EDGE_SQRT_STEPS],
                                     self.n_requests - totals[_REQUEST]))

    @property
    def feasible(self) -> np.ndarray | np.bool_:
        """True where the decision is served as given (no request dropped)."""
        return ~self.dropped.any(axis=-1)

    @property
    def n_requests(self) -> np.ndarray:
        return self.rows[_REQUEST].sum(axis=-1)

    def summary(self) -> dict[str, np.ndarray | float]:
        """Slot totals: Python floats for one slot, arrays of batch shape for a batch.

        The weighted terms add up to the cost: ``cost = weighted_time + weighted_energy +
        weighted_error - weighted_utility + drop_cost``.

        ``cost`` and ``time_s`` add the edge compute time of the KKT split, whose sum over
        served edge requests is ``Q^2 / F_E``.  ``mean_error`` averages over served requests
        (0 when none); ``offload_share`` is the share of requests served at the edge;
        ``edge_load`` is edge steps over ``S^E_max`` (0 when the capacity is 0).
        """
        c = self.config
        totals: list[Any]
        n_requests: float | np.ndarray
        if self.served_totals.ndim == 1:  # one slot: plain floats are faster than 0-d arrays
            totals, n_requests = self.served_totals.tolist(), float(np.count_nonzero(self.rows[_REQUEST]))
        else:
            totals, n_requests = list(self.served_totals), self.n_requests
        n_served, n_offloaded, edge_steps, sqrt_steps_sum, energy_j, base_time_s, error, utility, base_cost = totals
        compute_time_s = sqrt_steps_sum * sqrt_steps_sum / c.edge_steps_per_s
        time_s = base_time_s + compute_time_s
        n_dropped = n_requests - n_served  # every request is served or dropped
        return {
            "cost": _slot_cost(c, base_cost, sqrt_steps_sum, n_dropped),
            "time_s": time_s,
            "energy_j": energy_j,
            "mean_error": _share(error, n_served),
            "utility": utility,
            "weighted_time": c.weight_time_per_s * time_s,
            "weighted_energy": c.weight_energy_per_j * energy_j,
            "weighted_error": c.weight_error * error,
            "weighted_utility": c.weight_utility * utility,
            "drop_cost": c.drop_cost * n_dropped,
            "n_requests": n_requests,
            "n_served": n_served,
            "n_dropped": n_dropped,
            "n_offloaded": n_offloaded,
            "offload_share": _share(n_offloaded, n_requests),
            "edge_steps": edge_steps,
            "edge_load": edge_steps / c.edge_step_capacity if c.edge_step_capacity else 0.0 * edge_steps,
        }


def _slot_cost(config: AIGCEdgeConfig, base_cost: Any, sqrt_steps_sum: Any, n_dropped: Any) -> Any:
    """``sum_n C_n`` over served requests (their base costs plus ``w_T Q^2 / F_E``, the edge compute time of
    the KKT split) plus ``C_drop`` per dropped request; Python floats or arrays of batch shape alike."""
    compute_time_s = sqrt_steps_sum * sqrt_steps_sum / config.edge_steps_per_s
    return base_cost + config.weight_time_per_s * compute_time_s + config.drop_cost * n_dropped


def _validate_decision(problem: SlotProblem, decision: Decision) -> None:
    if not isinstance(decision, Decision):
        raise ValueError(f"decision must be a Decision(offload, steps), got {type(decision).__name__}")
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


def _all_finite(values: np.ndarray) -> bool:
    """Every entry finite (``math.isfinite`` for one value: far faster than numpy)."""
    return math.isfinite(values) if values.ndim == 0 else bool(np.isfinite(values).all())


def serve(rows: np.ndarray, battery_j: np.ndarray | None, config: AIGCEdgeConfig) -> SlotEvaluation:
    """Apply the repair rule (module docstring) to the chosen options' :func:`option_rows`.

    ``battery_j`` is the energy each device has this slot (``None``: no battery limit).
    The device-capacity and deadline checks (rules 1 and 3) are one comparison per user,
    ``Q <= max_sqrt_steps_sum``; the edge-capacity prefix (rule 2) is the running total
    of edge steps against ``edge_steps_limit``.
    """
    admitted = rows[_EDGE_STEPS].cumsum(axis=-1) <= rows[_EDGE_STEPS_LIMIT]
    admitted_sqrt_steps_sum = np.vecdot(rows[_EDGE_SQRT_STEPS], admitted)
    meets_deadline = rows[_MAX_SQRT_STEPS_SUM] >= admitted_sqrt_steps_sum[..., None]
    kept = admitted & meets_deadline
    if battery_j is not None:
        kept &= rows[_ENERGY] <= battery_j
    served_totals = np.vecdot(rows[:N_SUMMED_COLUMNS], kept)  # dropping only lowers Q: the served stay feasible
    if not _all_finite(served_totals[_BASE_COST]):  # a non-finite value anywhere poisons the sums
        bad = ~np.isfinite(rows[:N_SUMMED_COLUMNS]).all(axis=0) | np.isnan(rows[N_SUMMED_COLUMNS:]).any(axis=0)
        raise ValueError(
            f"the options of users {sorted(set(np.nonzero(bad)[-1].tolist()))} have non-finite costs: their "
            "sizes, rates or clocks overflow the cost model (e.g. 1e300 bits at 1e-300 bit/s); keep each "
            "user's transfer and compute times and energies within float range"
        )
    return SlotEvaluation(
        config=config, rows=rows, admitted=admitted, meets_deadline=meets_deadline, kept=kept,
        sqrt_steps_sum=served_totals[_EDGE_SQRT_STEPS], served_totals=served_totals,
    )


def evaluate_decision(problem: SlotProblem, decision: Decision) -> SlotEvaluation:
    """Serve ``decision`` on ``problem`` under the repair rule of this module's docstring."""
    _validate_decision(problem, decision)
    steps = np.where(problem.has_request, decision.steps, problem.config.min_steps)  # ignored: any valid value
    return serve(option_rows(problem, decision.offload, steps), problem.battery_j, problem.config)


@dataclass(frozen=True, eq=False)
class OptionTable:
    """Per-user, per-level options of one slot, shape ``(N, L)`` (the solvers' view).

    For a drop-free decision, ``slot cost = sum of chosen base costs + congestion_weight * Q^2``.
    Feasibility is computed here once; every consumer (the action mask, every solver) reads it.
    Rows are filled for every user, with or without a request.

    * ``local_cost[n, l]``: ``C_n`` of running level ``l`` on the device.
    * ``local_feasible[n, l]``: device capacity, deadline and battery hold.
    * ``edge_base_cost[n, l]``: ``C_n`` at the edge without the compute time term.
    * ``max_sqrt_steps_sum[n, l]``: the largest ``Q`` at which the edge option meets its
      deadline, ``F_E (Tmax - transfer) / sqrt(s)`` (``-inf`` when its radio energy exceeds
      the battery or the transfers alone miss the deadline); served with the others, the
      option is feasible iff ``Q <= max_sqrt_steps_sum``.
    * ``edge_feasible_alone[n, l]``: the edge option is feasible ignoring the other users:
      its deadline at ``Q = sqrt(s)``, ``s <= S^E_max`` and the battery.  Like
      ``local_feasible`` it holds on a prefix of the levels (every limit is monotone in ``s``).
    * ``local_energy_j[n, l]``, ``edge_energy_j[n, l]``: device energy ``E_n`` of the option
      (J; at the edge the radio energy, the same at every level), what an energy price multiplies.
    * ``congestion_weight``: ``w_T / F_E``.
    """

    problem: SlotProblem
    levels: np.ndarray  # (L,) the step levels
    local_cost: np.ndarray
    local_feasible: np.ndarray
    edge_base_cost: np.ndarray
    max_sqrt_steps_sum: np.ndarray
    edge_feasible_alone: np.ndarray
    congestion_weight: float
    local_energy_j: np.ndarray
    edge_energy_j: np.ndarray


def option_table(problem: SlotProblem) -> OptionTable:
    """Tabulate every (user, mode, level) option (see :class:`OptionTable`).

    For a batch of slots (per-user arrays ``(..., N)``) every table has shape ``(..., N, L)``.
    Read off :func:`option_grid` of the problem with every user asking (so users without a
    request get their options' values too), plus the battery.
    """
    c = problem.config
    grid = option_grid(dataclasses.replace(problem, has_request=np.ones_like(problem.has_request)))
    local, edge = (np.moveaxis(grid[:, mode], 1, -1) for mode in (0, 1))  # (K, ..., N, L)
    battery_j = problem.battery_j[..., None]
    levels = np.asarray(c.step_levels, dtype=np.int64)
    edge_ok = (edge[_ENERGY] <= battery_j) & (edge[_MAX_SQRT_STEPS_SUM] >= 0)
    max_sqrt_steps_sum = np.where(edge_ok, edge[_MAX_SQRT_STEPS_SUM], -np.inf)
    return OptionTable(
        problem=problem,
        levels=levels,
        local_cost=local[_BASE_COST],
        local_feasible=(local[_MAX_SQRT_STEPS_SUM] > 0) & (local[_ENERGY] <= battery_j),
        edge_base_cost=edge[_BASE_COST],
        max_sqrt_steps_sum=max_sqrt_steps_sum,
        edge_feasible_alone=(max_sqrt_steps_sum >= np.sqrt(levels)) & (levels <= c.edge_step_capacity),
        congestion_weight=c.weight_time_per_s / c.edge_steps_per_s,
        local_energy_j=local[_ENERGY],
        edge_energy_j=edge[_ENERGY],
    )
