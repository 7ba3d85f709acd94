"""The exact slot solver: enumeration of the edge's step multisets plus assignment problems.

Problem
-------
Over the candidate users (:mod:`.options`), choose for each one local (at a level) or
edge (at a level) to minimise the penalised cost ``sum of option costs + w Q^2`` (``w`` the
congestion weight ``w_T / F_E``): the
env's slot cost plus ``drop_penalty`` per drop, i.e. the fewest drops first, then the
least cost.  Users with no feasible option at all are dropped in every decision.

Method and correctness
----------------------
Call ``M`` the multiset of levels served at the edge (``c_l`` requests at level ``l``).
``Q(M) = sum_l c_l sqrt(s_l)`` and the edge load ``sum_l c_l s_l`` depend on ``M`` only, so
for a fixed ``M`` the congestion term ``w Q(M)^2`` is a constant and every edge option's
deadline feasibility (``Q(M) <= max_sqrt_steps_sum``) is fixed.  What remains is to fill
exactly ``c_l`` "edge slots" of each level with distinct users, every other user taking
its cheapest local option (or being dropped): a rectangular assignment problem with
costs ``delta[k, l] = edge_cost[k, l] - local_best[k]`` (``+inf`` where infeasible at
``Q(M)``), solved exactly by ``scipy.optimize.linear_sum_assignment``.  Let
``V(M) = sum_k local_best[k] + w Q(M)^2 + assignment(M)``.

* Every filled assignment of ``M`` is a feasible decision whose offloaded multiset is
  exactly ``M``, with cost ``V(M)``; so ``min_M V(M) >= OPT``.
* The optimal decision has some offloaded multiset ``M*``; it fills ``M*`` exactly, its
  edge options are feasible at ``Q(M*)`` and its local users pay at least
  ``local_best``; so ``V(M*) <= OPT``.

Hence ``OPT = min_M V(M)`` over the multisets with ``sum c_l s_l <= S^E_max``, at most as
many slots of a level as users that can offload it alone, and at most as many slots as
users with an edge option.  (Leaving a slot empty is never needed: the smaller multiset
is enumerated too, and has a smaller ``Q``.)

Pruning: for every ``M``, ``V(M) >= sum local_best + w Q^2 + max(LB_a, LB_b)`` where
``LB_b = sum_l`` (sum of the ``c_l`` smallest ``delta[., l]``) relaxes user-distinctness
across levels and ``LB_a`` = (sum of the ``|M|`` smallest per-user ``min_l delta[k, l]``)
relaxes the levels.  Feasibility at ``Q`` only changes where ``Q`` crosses a
``max_sqrt_steps_sum`` value, so the sorted prefix sums behind both bounds are computed
once per interval between consecutive such values and all multisets are bounded in a
few vectorised gathers.  The multisets are then solved in increasing order of their
bound (best first) until the next bound reaches the incumbent, which is seeded by the
heuristics' local-search multistart and any decisions the caller passes (e.g. ``sca_kkt``'s),
each repaired (:mod:`.repair`) and improved by the local search (:mod:`.local_search`).  Every multiset
left unsolved has ``V(M) >=`` its bound, so ``min(incumbent, smallest unsolved bound)``
is a certified bound whatever stops the search (the time budget, or a multiset count
above ``max_multisets``); it is combined with the Lagrangian bound of :mod:`.bound`,
which also proves optimality without enumeration when it meets the incumbent.

The search is exact up to a relative tolerance of ``1e-9`` on the cost.

Energy prices and drops as options
----------------------------------
With energy prices (``SlotProblem.energy_price_per_j``) the solver minimises the objective
``slot cost + sum_n pi_n E_n`` over the view of :mod:`.options` in which a drop is an
option at ``C_drop`` (no energy, no edge) for every candidate; ``drops_as_options=True``
asks for the same view at zero prices (then the objective is the cost and drops compete
with serving instead of coming last).  Nothing above changes: a drop is a device column
(it uses no edge), so ``local_best[k] = min(cheapest priced device option, C_drop)``, the
multisets, their bounds and the assignments are the same.

*Correctness.*  Call ``Omega`` the outcomes this view describes (each candidate served by
one option, the edge ones feasible together at their ``Q``, or dropped).  (1) The objective
of any env decision equals that of its outcome, and that outcome is in ``Omega``: the
repair rule only drops, a dropped request costs ``C_drop`` and uses no energy, and served
requests meet their constraints at the final ``Q``; requests without any option feasible
alone are dropped in every decision (the constant ``forced_drop_cost``).  So
``min over Omega <= min over decisions``, and the search's bound (the argument above,
applied to ``Omega``), hence ``ExactResult.lower_bound``, is certified for *every*
decision, drops included.  (2) The search returns a minimiser of ``Omega``.  If the env
realises each of its drops (:meth:`.options.SlotOptions.decision`: at a device level the
device cannot run, or through the edge-capacity prefix), the returned decision has the
minimiser's objective, so it is optimal over all decisions.  (3) Otherwise (a drop of a
request whose device runs every level and that the prefix rule cannot drop alone; it takes
a price above roughly ``(C_drop - cost of serving) / E``, far above battery prices) the
search is repeated over ``Omega`` without those drops, every outcome of which the env
realises; the bound of (1) still holds and ``proven_optimal`` says whether the two meet.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy.optimize import linear_sum_assignment

from aigc_edge_env.baselines.bound import lower_bound
from aigc_edge_env.baselines.heuristics import best_heuristic
from aigc_edge_env.baselines.local_search import local_search
from aigc_edge_env.baselines.options import SlotOptions, slot_options
from aigc_edge_env.baselines.repair import repair
from aigc_edge_env.model import Decision, SlotProblem, evaluate_decision

__all__ = ["ExactResult", "solve", "solve_exact"]

#: Relative tolerance of "proven optimal".
RELATIVE_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class ExactResult:
    """Outcome of :func:`solve_exact`; costs in the env's cost units."""

    decision: Decision
    cost: float  # env slot cost of ``decision`` (evaluate_decision)
    lower_bound: float  # certified on the objective: no decision (with as few drops, unless drops are options) is below
    proven_optimal: bool  # objective - lower_bound within RELATIVE_TOL
    n_assignments: int  # assignment problems solved
    elapsed_s: float
    objective: float  # what was minimised: cost + sum of energy price * device energy (= cost without prices)

    @property
    def gap(self) -> float:
        """Certified optimality gap ``objective - lower_bound`` (>= 0, cost units)."""
        return self.objective - self.lower_bound


@dataclass(frozen=True, eq=False)
class _Multisets:
    """Edge multisets ``(M, L)`` with their ``Q`` (sqrt-steps) and lower bounds (penalised cost)."""

    counts: np.ndarray
    sqrt_steps_sum: np.ndarray
    bound: np.ndarray


#: The best choice found: ``(penalised cost, choice)``.
_Incumbent = tuple[float, np.ndarray]


def _tolerance(value: float) -> float:
    return RELATIVE_TOL * max(1.0, abs(value))


def _enumerate_counts(opts: SlotOptions, max_multisets: int) -> np.ndarray | None:
    """All level-count vectors ``(M, L)`` within the limits of the module docstring.

    Built level by level (vectorised); ``None`` once more than ``max_multisets`` rows appear.
    """
    capacity = opts.edge_step_capacity
    per_level = np.minimum(opts.edge_feasible_alone.sum(axis=0), capacity // opts.levels)
    max_total = int(opts.has_edge.sum())
    counts = np.zeros((1, 0), dtype=np.int64)
    steps = np.zeros(1, dtype=np.int64)
    total = np.zeros(1, dtype=np.int64)
    for s, limit in zip(opts.levels, per_level, strict=True):
        choices = np.minimum(np.minimum((capacity - steps) // s, max_total - total), limit) + 1
        if choices.sum() > max_multisets:
            return None
        parent = np.repeat(np.arange(choices.size), choices)
        count = np.arange(choices.sum()) - np.repeat(np.cumsum(choices) - choices, choices)
        counts = np.column_stack([counts[parent], count])
        steps, total = steps[parent] + count * s, total[parent] + count
    return counts


def _prefix_sums(values: np.ndarray, axis: int) -> np.ndarray:
    """Sorted prefix sums along ``axis`` with a leading 0 (sum of the ``j`` smallest at ``j``)."""
    ordered = np.sort(values, axis=axis)
    zero_shape = list(ordered.shape)
    zero_shape[axis] = 1
    return np.concatenate([np.zeros(zero_shape), np.cumsum(ordered, axis=axis)], axis=axis)


def _local_best(opts: SlotOptions) -> np.ndarray:
    """``(K,)`` cost of each candidate's fallback (cheapest local option, or the penalised drop)."""
    return opts.penalised_local_cost.min(axis=1)


def _edge_limits(opts: SlotOptions) -> np.ndarray:
    """``(K, L)`` ``max_sqrt_steps_sum`` of the edge options."""
    return opts.max_sqrt_steps_sum[:, opts.n_levels:]


def _bound_multisets(opts: SlotOptions, counts: np.ndarray) -> _Multisets:
    """Lower bounds ``V(M) >= base + w Q^2 + max(LB_a, LB_b)`` for every multiset."""
    sqrt_steps_sum = counts @ np.sqrt(opts.levels)
    delta = opts.penalised_edge_cost - _local_best(opts)[:, None]  # (K, L)
    limits = _edge_limits(opts)
    thresholds = np.unique(limits[np.isfinite(delta)])
    interval = np.searchsorted(thresholds, sqrt_steps_sum, side="left")
    present, group = np.unique(interval, return_inverse=True)
    upper = np.append(thresholds, np.inf)[present]  # within an interval, feasible iff max_sqrt_steps_sum >= this
    feasible = limits[None] >= upper[:, None, None]
    grouped = np.where(feasible, delta[None], np.inf)  # (G, K, L)
    by_level = _prefix_sums(grouped, axis=1)  # (G, K+1, L)
    by_user = _prefix_sums(grouped.min(axis=2), axis=1)  # (G, K+1)
    level_index = np.arange(opts.n_levels)[None, :]
    lb_b = by_level[group[:, None], counts, level_index].sum(axis=1)
    lb_a = by_user[group, counts.sum(axis=1)]
    bound = _local_best(opts).sum() + opts.congestion_weight * sqrt_steps_sum**2 + np.maximum(lb_a, lb_b)
    return _Multisets(counts=counts, sqrt_steps_sum=sqrt_steps_sum, bound=bound)


def _assign(opts: SlotOptions, counts: np.ndarray, sqrt_steps_sum: float) -> _Incumbent:
    """``V(M)`` and its optimal choice (``inf`` if ``M`` cannot be filled)."""
    choice = opts.fallback
    local_best = _local_best(opts)
    base = float(local_best.sum() + opts.congestion_weight * sqrt_steps_sum**2)
    slot_level = np.repeat(np.arange(opts.n_levels), counts)
    if slot_level.size == 0:
        return base, choice
    feasible = _edge_limits(opts) >= sqrt_steps_sum
    delta = np.where(feasible, opts.penalised_edge_cost - local_best[:, None], np.inf)[:, slot_level]
    rows = np.flatnonzero(np.isfinite(delta).any(axis=1))
    if rows.size < slot_level.size:
        return float("inf"), choice
    try:
        row, col = linear_sum_assignment(delta[rows])
    except ValueError:  # no complete assignment with finite cost
        return float("inf"), choice
    choice[rows[row]] = opts.n_levels + slot_level[col]
    return base + float(delta[rows][row, col].sum()), choice


def _seed(opts: SlotOptions, decisions: Sequence[Decision]) -> _Incumbent:
    """The best of the heuristics' local-search multistart and the given decisions (each
    repaired and improved by the local search)."""
    candidates = [best_heuristic(opts)]
    candidates += [local_search(opts, [repair(opts, opts.choice_of(decision))]) for decision in decisions]
    costs = [opts.penalised_cost(choice) for choice in candidates]
    best = int(np.argmin(costs))
    return costs[best], candidates[best]


def _search(
    opts: SlotOptions, incumbent: _Incumbent, deadline: float, max_multisets: int
) -> tuple[_Incumbent, float, int]:
    """Best-first search over multisets: ``(best choice, certified bound, assignments solved)``.

    The bound is on the penalised optimum; ``-inf`` when the multisets were too many to list.
    """
    counts = _enumerate_counts(opts, max_multisets)
    if counts is None:
        return incumbent, -np.inf, 0
    multisets = _bound_multisets(opts, counts)
    order = np.argsort(multisets.bound, kind="stable")
    solved = 0
    for index in order:
        bound = float(multisets.bound[index])
        if bound >= incumbent[0] - _tolerance(incumbent[0]) or time.perf_counter() > deadline:
            return incumbent, min(incumbent[0], bound), solved
        value, choice = _assign(opts, multisets.counts[index], float(multisets.sqrt_steps_sum[index]))
        solved += 1
        if value < incumbent[0]:
            incumbent = (value, choice)
    return incumbent, incumbent[0], solved


def solve_exact(
    problem: SlotProblem,
    time_budget_s: float = 2.0,
    max_multisets: int = 2_000_000,
    seed_decisions: Sequence[Decision] = (),
    drops_as_options: bool = False,
) -> ExactResult:
    """The optimal decision of one slot, or the best found with a certified bound.

    Stops at ``time_budget_s`` (seconds, checked between assignment problems) or when the
    edge multisets exceed ``max_multisets``; ``proven_optimal`` says whether it finished.
    ``seed_decisions`` (e.g. other solvers' decisions a caller already has, over the step
    levels) join the incumbent's seeds; they only speed up the search.  With energy prices,
    or ``drops_as_options``, drops are options and the bound holds for every decision
    (module docstring); otherwise the fewest drops come first.
    """
    if time_budget_s <= 0:
        raise ValueError(f"time_budget_s must be > 0 seconds, got {time_budget_s}")
    start = time.perf_counter()
    deadline = start + time_budget_s
    opts = slot_options(problem, drops_as_options=drops_as_options)
    forced_drop_cost = float((problem.has_request.sum() - opts.n_candidates) * cast(float, problem.config.drop_cost))
    incumbent = _seed(opts, seed_decisions)
    lagrangian = lower_bound(problem)
    solved = 0
    if incumbent[0] - (lagrangian - forced_drop_cost) <= _tolerance(incumbent[0]):
        bound_penalised = lagrangian - forced_drop_cost  # bounds the penalised optimum too
    else:
        incumbent, bound_penalised, solved = _search(opts, incumbent, deadline, max_multisets)
    value, choice = incumbent
    if not opts.drop_is_realised(choice):  # case (3) of the module docstring
        unrealised = opts.decision(choice)
        opts = slot_options(problem, drops_as_options=True, clean_drops_only=True)
        (value, choice), _, more = _search(opts, _seed(opts, [*seed_decisions, unrealised]), deadline, max_multisets)
        solved += more
    decision = opts.decision(choice)
    evaluation = evaluate_decision(problem, decision)
    cost = float(evaluation.total_cost)
    if opts.drops_are_options:
        objective = cost
        if problem.has_energy_prices:
            objective += float(problem.energy_price_per_j @ evaluation.energy_j)
        bound = min(objective, max(lagrangian, bound_penalised + forced_drop_cost))
        proven = objective - bound <= _tolerance(objective)
    else:
        drops = int(evaluation.dropped.sum()) - (int(problem.has_request.sum()) - opts.n_candidates)
        certified = bound_penalised - drops * opts.drop_penalty + forced_drop_cost
        objective, bound = cost, min(cost, max(lagrangian, certified))
        proven = value - bound_penalised <= _tolerance(value)
    return ExactResult(
        decision=decision,
        cost=cost,
        lower_bound=bound,
        proven_optimal=proven,
        n_assignments=solved,
        elapsed_s=time.perf_counter() - start,
        objective=objective,
    )


def solve(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """The ``exact`` solver of the registry (default time budget; ``rng`` is unused; honours energy prices)."""
    return solve_exact(problem).decision
