"""The solver view of one slot: candidates, penalised option costs, assignments.

:class:`SlotOptions` restates one slot's :class:`~aigc_edge_env.model.OptionTable` for
search; every solver in this package (heuristics, exact, ``sca_kkt``, the bound) reads it,
and its feasibility is the table's (``local_feasible``, ``edge_feasible_alone``), not
recomputed.  It keeps the *candidate* users (a request and at least one option feasible on
its own; the rest are dropped whatever is decided) and, per candidate ``k``, ``2L``
*options*: the device at each level (columns ``0 .. L-1``), then the edge at each level
(columns ``L .. 2L-1``).  ``cost[k, o]`` is

* on the device: the local cost, or ``C_drop + drop_penalty`` where that level is
  infeasible locally (the env would drop the request: choosing it means a *drop*);
* at the edge: the congestion-free edge cost, ``+inf`` where the option is infeasible
  even alone.

A search state is a *choice*: one option index per candidate, shape ``(K,)``.  For a choice
that is edge-feasible (``sum of edge steps <= S^E_max`` and ``Q <= max_sqrt_steps_sum`` of
every edge option chosen), the table's identity gives its *penalised cost*::

    sum_k cost[k, choice_k] + congestion_weight * Q^2,    Q = sum of sqrt(s) over the edge options chosen,

which is the env's slot cost over the candidates plus ``drop_penalty`` per drop.
``drop_penalty`` exceeds the spread of env costs over all decisions, so minimising the
penalised cost minimises the number of drops first and the cost second: no solver drops a
request when a drop-free decision exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from aigc_edge_env.model import Decision, OptionTable, SlotProblem, option_table

__all__ = ["SlotOptions", "min_of_others", "slot_options"]


@dataclass(frozen=True, eq=False)
class SlotOptions:
    """The candidates' options of one slot (module docstring); arrays ``(K,)``, ``(2L,)`` or ``(K, 2L)``."""

    table: OptionTable
    users: np.ndarray  # (K,) indices of the candidate users in the slot
    cost: np.ndarray  # (K, 2L) penalised option cost: C_drop + drop_penalty for a drop, inf if infeasible alone
    feasible: np.ndarray  # (K, 2L) the option is feasible alone (a device option: not a drop)
    max_sqrt_steps_sum: np.ndarray  # (K, 2L) largest Q the option's deadline allows (inf on the device)
    sqrt_steps: np.ndarray  # (2L,) the option's sqrt(s) at the edge, 0 on the device
    edge_steps: np.ndarray  # (2L,) the option's steps at the edge, 0 on the device
    drop_penalty: float  # added per dropped candidate, larger than any spread of env costs

    @property
    def levels(self) -> np.ndarray:
        """Step levels (steps), shape ``(L,)``."""
        return self.table.steps

    @property
    def n_levels(self) -> int:
        return int(self.table.steps.size)

    @property
    def n_candidates(self) -> int:
        return int(self.users.size)

    @property
    def congestion_weight(self) -> float:
        """``w_T / F_E`` (cost per sqrt-step squared)."""
        return self.table.congestion_weight

    @property
    def edge_step_capacity(self) -> int:
        """``S^E_max`` (steps per slot)."""
        return self.table.problem.config.edge_step_capacity

    @property
    def local_cost(self) -> np.ndarray:
        """``(K, L)`` device columns of :attr:`cost`."""
        return self.cost[:, : self.n_levels]

    @property
    def edge_cost(self) -> np.ndarray:
        """``(K, L)`` edge columns of :attr:`cost`."""
        return self.cost[:, self.n_levels:]

    @property
    def local_feasible(self) -> np.ndarray:
        """``(K, L)`` device columns of :attr:`feasible`."""
        return self.feasible[:, : self.n_levels]

    @property
    def edge_feasible_alone(self) -> np.ndarray:
        """``(K, L)`` edge columns of :attr:`feasible`."""
        return self.feasible[:, self.n_levels:]

    @property
    def has_local(self) -> np.ndarray:
        """``(K,)``: some device level is feasible."""
        return np.asarray(self.local_feasible.any(axis=1))

    @property
    def has_edge(self) -> np.ndarray:
        """``(K,)``: some edge level is feasible alone."""
        return np.asarray(self.edge_feasible_alone.any(axis=1))

    @property
    def fallback(self) -> np.ndarray:
        """``(K,)`` each candidate's cheapest device option (the smallest level, a drop, where none is feasible).

        A new array on each access (callers start choices from it)."""
        return np.argmin(self.local_cost, axis=1)

    @property
    def smallest_edge(self) -> np.ndarray:
        """``(K,)`` each candidate's edge option at the smallest level feasible alone (level 0 where none)."""
        return self.n_levels + np.argmax(self.edge_feasible_alone, axis=1)

    # --- a choice (one option index per candidate) ---------------------------------------
    def offloaded(self, choice: np.ndarray) -> np.ndarray:
        """``(K,)``: the chosen option is at the edge."""
        return choice >= self.n_levels

    def sqrt_steps_sum(self, choice: np.ndarray) -> float:
        """``Q``: the sum of ``sqrt(s)`` over the edge options chosen."""
        return float(self.sqrt_steps[choice][self.offloaded(choice)].sum())

    def edge_steps_sum(self, choice: np.ndarray) -> int:
        """Steps served at the edge."""
        return int(self.edge_steps[choice].sum())

    def chosen_cost(self, choice: np.ndarray) -> np.ndarray:
        """``(K,)`` penalised cost of each candidate's chosen option (congestion-free)."""
        return self.cost[np.arange(choice.size), choice]

    def violation(self, choice: np.ndarray) -> float:
        """Edge-capacity excess (steps) plus the largest deadline excess in ``Q``; 0 iff edge-feasible."""
        deadline = 0.0
        if choice.size:
            limit = float(self.max_sqrt_steps_sum[np.arange(choice.size), choice].min())
            deadline = max(self.sqrt_steps_sum(choice) - limit, 0.0)
        return max(self.edge_steps_sum(choice) - self.edge_step_capacity, 0) + deadline

    def penalised_cost(self, choice: np.ndarray) -> float:
        """Penalised cost of a choice (module docstring); ``inf`` if it is not edge-feasible."""
        if self.violation(choice) > 0.0:
            return float("inf")
        sqrt_steps_sum = self.sqrt_steps_sum(choice)
        return float(self.chosen_cost(choice).sum() + self.congestion_weight * sqrt_steps_sum * sqrt_steps_sum)

    def decision(self, choice: np.ndarray) -> Decision:
        """The env decision of a choice; users that are not candidates run locally at the smallest level."""
        n = self.table.problem.n_users
        offload = np.zeros(n, dtype=bool)
        steps = np.full(n, self.levels[0], dtype=np.int64)
        offload[self.users] = self.offloaded(choice)
        steps[self.users] = self.levels[choice % self.n_levels]
        return Decision(offload=offload, steps=steps)

    def choice_of(self, decision: Decision) -> np.ndarray:
        """The candidates' choice in a decision whose steps are configured levels."""
        steps = decision.steps[self.users]
        level = np.searchsorted(self.levels, steps)
        if np.any(level >= self.n_levels) or np.any(self.levels[np.minimum(level, self.n_levels - 1)] != steps):
            raise ValueError(f"decision steps {steps.tolist()} are not all step levels {self.levels.tolist()}")
        return np.where(decision.offload[self.users], self.n_levels + level, level)


def slot_options(problem: SlotProblem) -> SlotOptions:
    """Build the solver view of a single slot (per-user arrays of shape ``(N,)``)."""
    if problem.has_request.ndim != 1:
        raise ValueError(f"solvers take one slot (arrays of shape (N,)), got shape {problem.has_request.shape}")
    table = option_table(problem)
    drop_cost = cast(float, problem.config.drop_cost)
    requested = problem.has_request[:, None]
    local_ok = table.local_feasible & requested
    edge_ok = table.edge_feasible_alone & requested
    users = np.flatnonzero(local_ok.any(axis=1) | edge_ok.any(axis=1))
    local_ok, edge_ok = local_ok[users], edge_ok[users]
    local, edge = table.local_cost[users], table.edge_base_cost[users]
    lowest = np.minimum(np.where(local_ok, local, np.inf).min(axis=1), np.where(edge_ok, edge, np.inf).min(axis=1))
    # Any decision's env cost over the candidates lies in [sum(lowest), K * C_drop): a
    # served request costs less than C_drop (config guarantee), congestion only adds.
    drop_penalty = float(users.size * drop_cost - lowest.sum() + 1.0)
    zeros = np.zeros(table.steps.size, dtype=np.int64)
    return SlotOptions(
        table=table,
        users=users,
        cost=np.hstack([np.where(local_ok, local, drop_cost + drop_penalty), np.where(edge_ok, edge, np.inf)]),
        feasible=np.hstack([local_ok, edge_ok]),
        max_sqrt_steps_sum=np.hstack([np.full(local.shape, np.inf), table.max_sqrt_steps_sum[users]]),
        sqrt_steps=np.concatenate([zeros, np.sqrt(table.steps)]),
        edge_steps=np.concatenate([zeros, table.steps]),
        drop_penalty=drop_penalty,
    )


def min_of_others(values: np.ndarray) -> np.ndarray:
    """For each entry of a 1-D array, the minimum of the other entries (``inf`` when there are none)."""
    if values.size < 2:
        return np.full(values.shape, np.inf)
    first, second = np.partition(values, 1)[:2]
    return np.where(np.arange(values.size) == np.argmin(values), second, first)
