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

Energy prices and drops as options
----------------------------------
A problem with energy prices (``SlotProblem.energy_price_per_j``, ``pi_n`` per J, not all
zero) is solved for the *objective* ``slot cost + sum_n pi_n E_n`` (``E_n`` the device energy
of the request's option; 0 for a drop).  Every option cost above then includes
``pi_n E_n`` (the table's ``local_energy_j`` / ``edge_energy_j``), and drops are *options*:
with a price, a served request can cost more than ``C_drop`` and the optimum may drop it.
In this mode (``drops_are_options``; also on request at zero prices, for certified bounds
over every decision) ``drop_penalty = 0`` and each device column costs

    min(priced device cost if the device can run that level, C_drop)

that is "the device at that level, or a drop, whichever is cheaper"
(:attr:`SlotOptions.dropped_on_device` says which).  Device options and drops use neither
the edge nor ``Q``, so a choice over this view describes every *outcome* (each request
served by one option, the edge ones edge-feasible together, or dropped at ``C_drop`` with
no energy) and its penalised cost is that outcome's objective.  Every env decision's
outcome is such an outcome (the repair rule only drops, and served requests meet their
constraints with the final ``Q``), so the least penalised cost over this view is a lower
bound on the objective of every decision, drops included.

The env has no "drop" action, so :meth:`SlotOptions.decision` *realises* a drop of a
request whose device could run the level: at a device level the device cannot run
(:attr:`SlotOptions.drop_level`: device capacity, deadline or battery), the env then
drops it and nothing else changes; where every level runs, by offloading it at an edge
level at which the repair rule drops it and nothing else (past the edge-capacity prefix,
or past its deadline or battery without pushing another request past its deadline; every
combination of levels of up to :data:`MAX_EDGE_DROPS` such requests is served and checked).
Otherwise the drop cannot be realised alone and the decision serves the request at the
column's level; :func:`slot_options` with ``clean_drops_only`` gives the view that keeps the
drop option only where a device level the device cannot run realises it (the exact solver
searches the decisions the env realises by drop classes, see :mod:`.exact`, and uses that
view where they are too many).  With every price
zero and no request for it, nothing of this applies: the view is the one above.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import cast

import numpy as np

from aigc_edge_env.model import Decision, OptionTable, SlotProblem, option_rows, option_table, serve
from aigc_edge_env.spaces import level_indices

__all__ = ["MAX_EDGE_DROPS", "SlotOptions", "min_of_others", "slot_options"]

#: Most requests a decision drops through the edge (:meth:`SlotOptions.decision`): ``L^k`` level combinations.
MAX_EDGE_DROPS = 3


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
    drop_penalty: float  # added per dropped candidate, larger than any spread of env costs (0 with drop options)
    dropped_on_device: np.ndarray  # (K, L) choosing the device column drops the request
    drop_level: np.ndarray  # (K,) the lowest device level the device cannot run (a clean drop), -1 if none
    drops_are_options: bool  # a drop is an option at C_drop (module docstring): energy prices, or asked for

    @property
    def levels(self) -> np.ndarray:
        """Step levels (steps), shape ``(L,)``."""
        return self.table.levels

    @property
    def n_levels(self) -> int:
        return int(self.table.levels.size)

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
    def penalised_local_cost(self) -> np.ndarray:
        """``(K, L)`` device columns of :attr:`cost`."""
        return self.cost[:, : self.n_levels]

    @property
    def penalised_edge_cost(self) -> np.ndarray:
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
        """``(K,)`` each candidate's cheapest device column (the smallest level, a drop, where none is feasible;
        with drop options it may be a drop).

        A new array on each access (callers start choices from it)."""
        return np.argmin(self.penalised_local_cost, axis=1)

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

    def single_moves(self, choice: np.ndarray, users: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each of ``users`` (default all) moved alone to each option, arrays ``(U, 2L)``: the new ``Q``,
        the new edge steps, and the ``Q`` limit then binding (the option's own and every other served
        edge option's deadline)."""
        users = np.arange(choice.size) if users is None else users
        current = choice[users]
        new_sqrt_steps_sum = self.sqrt_steps_sum(choice) - self.sqrt_steps[current][:, None] + self.sqrt_steps[None, :]
        new_edge_steps = self.edge_steps_sum(choice) - self.edge_steps[current][:, None] + self.edge_steps[None, :]
        others = min_of_others(self.max_sqrt_steps_sum[np.arange(choice.size), choice])[users]
        return new_sqrt_steps_sum, new_edge_steps, np.minimum(others[:, None], self.max_sqrt_steps_sum[users])

    def violation(self, choice: np.ndarray) -> float:
        """Edge-capacity excess (steps) plus the largest deadline excess in ``Q``; 0 iff edge-feasible."""
        limit = float(self.max_sqrt_steps_sum[np.arange(choice.size), choice].min()) if choice.size else np.inf
        return self.violation_of(self.edge_steps_sum(choice), self.sqrt_steps_sum(choice), limit)

    def violation_of(self, edge_steps_sum: int, sqrt_steps_sum: float, limit: float) -> float:
        """:meth:`violation` from a choice's edge steps, its ``Q`` and the least ``Q`` limit of its options."""
        return max(edge_steps_sum - self.edge_step_capacity, 0) + max(sqrt_steps_sum - limit, 0.0)

    def penalised_cost(self, choice: np.ndarray) -> float:
        """Penalised cost of a choice (module docstring); ``inf`` if it is not edge-feasible."""
        if self.violation(choice) > 0.0:
            return float("inf")
        sqrt_steps_sum = self.sqrt_steps_sum(choice)
        return float(self.chosen_cost(choice).sum() + self.congestion_weight * sqrt_steps_sum * sqrt_steps_sum)

    def decision(self, choice: np.ndarray) -> Decision:
        """The env decision of a choice; users that are not candidates run locally at the smallest level.

        With drop options, a drop at a level the device could run is realised as the module
        docstring says (where it can be)."""
        offloaded, level = self.offloaded(choice), choice % self.n_levels
        if self.drops_are_options:
            offloaded, level, _ = self._realise_drops(choice, offloaded, level)
        return self.decision_arrays(offloaded, level)

    def _realise_drops(self, choice: np.ndarray, offloaded: np.ndarray, level: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(offloaded, level, realised)``: each drop on a runnable device level moved where the env drops it.

        ``realised`` is false when some drop could not be realised (that request is then
        served at the column's level)."""
        rows = np.arange(choice.size)
        runnable_drop = ~offloaded & self.dropped_on_device[rows, level] & self.local_feasible[rows, level]
        if not runnable_drop.any():
            return offloaded, level, True
        level = level.copy()
        clean = runnable_drop & (self.drop_level >= 0)
        level[clean] = self.drop_level[clean]
        rest = np.flatnonzero(runnable_drop & ~clean)
        if rest.size == 0:
            return offloaded, level, True
        return self._edge_drop(offloaded, level, rest)

    def _edge_drop(self, offloaded: np.ndarray, level: np.ndarray, rest: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Drop the candidates ``rest`` (every device level runs) by offloading them at levels where the
        repair rule drops them and nothing else: tries every combination of edge levels (up to
        ``MAX_EDGE_DROPS`` candidates), each served through :func:`~aigc_edge_env.model.serve`."""
        if rest.size > MAX_EDGE_DROPS:
            return offloaded, level, False
        problem = self.table.problem
        combos = np.array(list(itertools.product(range(self.n_levels), repeat=rest.size)), dtype=np.int64)
        decision = self.decision_arrays(offloaded, level)
        offload = np.repeat(decision.offload[None], combos.shape[0], axis=0)
        steps = np.repeat(decision.steps[None], combos.shape[0], axis=0)
        offload[:, self.users[rest]] = True
        steps[:, self.users[rest]] = self.levels[combos]
        served = serve(option_rows(problem, offload, np.where(problem.has_request, steps, self.levels[0])),
                       problem.battery_j, problem.config).served
        wanted = np.zeros(problem.n_users, dtype=bool)
        wanted[self.users] = True
        wanted[self.users[~offloaded & self.dropped_on_device[np.arange(level.size), level]]] = False
        wanted[self.users[rest]] = False
        exact = np.flatnonzero((served == wanted).all(axis=1))
        if exact.size == 0:
            return offloaded, level, False
        offloaded, level = offloaded.copy(), level.copy()
        offloaded[rest], level[rest] = True, combos[exact[0]]
        return offloaded, level, True

    def decision_arrays(self, offloaded: np.ndarray, level: np.ndarray) -> Decision:
        """The env decision with the candidates' ``offloaded`` bits and ``level`` indices, as given."""
        n = self.table.problem.n_users
        offload = np.zeros(n, dtype=bool)
        steps = np.full(n, self.levels[0], dtype=np.int64)
        offload[self.users] = offloaded
        steps[self.users] = self.levels[level]
        return Decision(offload=offload, steps=steps)

    def drop_is_realised(self, choice: np.ndarray) -> bool:
        """Every drop of ``choice`` is realised by :meth:`decision` (always true without drop options)."""
        if not self.drops_are_options:
            return True
        return self._realise_drops(choice, self.offloaded(choice), choice % self.n_levels)[2]

    def choice_of(self, decision: Decision) -> np.ndarray:
        """The candidates' choice in a decision whose steps are configured levels."""
        level = level_indices(decision.steps[self.users], self.levels)
        return np.where(decision.offload[self.users], self.n_levels + level, level)


def slot_options(problem: SlotProblem, *, drops_as_options: bool = False,
                 clean_drops_only: bool = False, table: OptionTable | None = None) -> SlotOptions:
    """Build the solver view of a single slot (per-user arrays of shape ``(N,)``).

    Drops are options (module docstring) when the problem has energy prices or
    ``drops_as_options`` asks for it; ``clean_drops_only`` then keeps the drop option only
    for candidates with a device level the device cannot run (every drop of a choice is then
    realised by :meth:`SlotOptions.decision` alone).  ``table``: the problem's
    :func:`~aigc_edge_env.model.option_table` where the caller has it (energy prices do not
    enter it, so the priced copies of a slot share one).  Raises ``ValueError`` for a batch of
    slots or non-finite energy prices.
    """
    if problem.has_request.ndim != 1:
        raise ValueError(f"solvers take one slot (arrays of shape (N,)), got shape {problem.has_request.shape}")
    if table is None:
        table = option_table(problem)
    drop_cost = cast(float, problem.config.drop_cost)
    requested = problem.has_request[:, None]
    local_ok = table.local_feasible & requested
    edge_ok = table.edge_feasible_alone & requested
    users = np.flatnonzero(local_ok.any(axis=1) | edge_ok.any(axis=1))
    local_ok, edge_ok = local_ok[users], edge_ok[users]
    local, edge = table.local_cost[users], table.edge_base_cost[users]
    drop_level = np.where(local_ok.all(axis=1), -1, np.argmin(local_ok, axis=1))
    if problem.has_energy_prices or drops_as_options:
        price = problem.energy_price_per_j[users, None]  # finite: SlotProblem checks it
        if problem.has_energy_prices:
            local, edge = local + price * table.local_energy_j[users], edge + price * table.edge_energy_j[users]
        droppable = (drop_level >= 0) | (not clean_drops_only)
        served = local_ok & ((local <= drop_cost) | ~droppable[:, None])
        device_cost, drop_penalty, dropped = np.where(served, local, drop_cost), 0.0, ~served
    else:
        lowest = np.minimum(np.where(local_ok, local, np.inf).min(axis=1),
                            np.where(edge_ok, edge, np.inf).min(axis=1))
        # Any decision's env cost over the candidates lies in [sum(lowest), K * C_drop): a
        # served request costs less than C_drop (config guarantee), congestion only adds.
        drop_penalty = float(users.size * drop_cost - lowest.sum() + 1.0)
        device_cost, dropped = np.where(local_ok, local, drop_cost + drop_penalty), ~local_ok
    zeros = np.zeros(table.levels.size, dtype=np.int64)
    return SlotOptions(
        table=table,
        users=users,
        cost=np.concatenate([device_cost, np.where(edge_ok, edge, np.inf)], axis=1),
        feasible=np.concatenate([local_ok, edge_ok], axis=1),
        max_sqrt_steps_sum=np.concatenate([np.full(local.shape, np.inf), table.max_sqrt_steps_sum[users]], axis=1),
        sqrt_steps=np.concatenate([zeros, np.sqrt(table.levels)]),
        edge_steps=np.concatenate([zeros, table.levels]),
        drop_penalty=drop_penalty,
        dropped_on_device=dropped,
        drop_level=drop_level,
        drops_are_options=bool(problem.has_energy_prices or drops_as_options),
    )


def min_of_others(values: np.ndarray) -> np.ndarray:
    """For each entry of a 1-D array, the minimum of the other entries (``inf`` when there are none)."""
    if values.size < 2:
        return np.full(values.shape, np.inf)
    first, second = np.partition(values, 1)[:2]
    return np.where(np.arange(values.size) == np.argmin(values), second, first)
