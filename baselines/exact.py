"""The exact slot solver: the edge's step multisets, valued by dynamic programming (docs/solver.md, section 9).

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
``Q(M)``).  Let ``V(M) = sum_k local_best[k] + w Q(M)^2 + A(M)``, ``A(M)`` the assignment's value.

* Every filled assignment of ``M`` is a feasible decision whose offloaded multiset is
  exactly ``M``, with cost ``V(M)``; so ``min_M V(M) >= OPT``.
* The optimal decision has some offloaded multiset ``M*``; it fills ``M*`` exactly, its
  edge options are feasible at ``Q(M*)`` and its local users pay at least
  ``local_best``; so ``V(M*) <= OPT``.

Hence ``OPT = min_M V(M)`` over the multisets with ``sum c_l s_l <= S^E_max``, at most as
many slots of a level as users that can offload it alone, and at most as many slots as
users with an edge option.  (Leaving a slot empty is never needed: the smaller multiset
is enumerated too, and has a smaller ``Q``.)

*Dynamic programming* (:func:`_fill_values`).  For a fixed feasibility of the options, one
pass over the users gives ``A(M)`` for *every* multiset at once: after user ``k``,
``A(M) = min(A(M), min_l A(M - e_l) + delta[k, l])`` (``k`` left out, or ``k`` at level
``l``), one vectorised update per user.  Options with ``delta >= 0`` are left out (moving
such a user to its fallback lowers the cost and ``Q``, so some optimum uses none), and at
each level only the ``max |M|`` cheapest users (a user beyond them is swapped for a
cheaper one left out: the values do not change).  Feasibility changes only where ``Q``
crosses a ``max_sqrt_steps_sum`` value; at the default deadlines no multiset crosses one
and a single pass solves the slot.  Otherwise the multisets fall into groups of equal
feasibility: the pass with the first group's (the loosest) feasibility values that group
and bounds the later ones (their options are a subset), as do the bounds below; then, best
first by bound, a multiset still open is solved as an assignment problem
(``scipy.optimize.linear_sum_assignment``) or its whole group by a pass.  The optimum's
choice is its multiset's assignment, the same as 0.5.0's best-first search gave.

*Bounds* (the search without passes, and the groups): for every ``M``,
``V(M) >= sum local_best + w Q^2 + max(LB_a, LB_b)`` where ``LB_b = sum_l`` (sum of the ``c_l``
smallest ``delta[., l]``) relaxes user-distinctness across levels and ``LB_a`` = (sum of the
``|M|`` smallest per-user ``min_l delta[k, l]``) relaxes the levels, each with the
feasibility of ``M``'s group.  Where a pass would be too large (:data:`DP_WORK_LIMIT`), the
multisets are solved as assignment problems in increasing order of that bound (best first)
until the next bound reaches the incumbent, seeded by the heuristics' local-search
multistart and any decisions the caller passes, each repaired (:mod:`.repair`) and improved
by the local search (:mod:`.local_search`).  Every multiset left unsolved has ``V(M) >=`` its
bound, so ``min(incumbent, smallest unsolved bound)`` is a certified bound whatever stops
the search (the time budget, or a multiset count above ``max_multisets``); it is combined
with the Lagrangian bound of :mod:`.bound`.

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
request whose device runs every level and that the env cannot drop alone; it takes a
price above roughly ``(C_drop - cost of serving) / E``, far above battery prices) the
decisions are split by the first request the edge-capacity prefix drops (the *drop
classes* of :func:`_drop_classes`, docs/solver.md section 9): one dynamic programme over
the users in index order gives every class's optimum over a relaxation of the outcomes
the env realises in that class, whose minimum bounds every decision; the best class's
optimum is realised (then it is the optimum, proven) except where it relies on a request
dropped by its deadline or battery after being admitted, which is searched for
exhaustively and, where not found, the classes are solved again without such drops.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from scipy.optimize import linear_sum_assignment

from aigc_edge_env.baselines.bound import lower_bound
from aigc_edge_env.baselines.heuristics import best_heuristic
from aigc_edge_env.baselines.local_search import local_search
from aigc_edge_env.baselines.options import MAX_EDGE_DROPS, SlotOptions, slot_options
from aigc_edge_env.baselines.repair import repair
from aigc_edge_env.checks import bool_option, count_option, positive_option
from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.model import (
    PROBLEM_ARRAY_FIELDS,
    Decision,
    OptionTable,
    SlotProblem,
    evaluate_decision,
    option_rows,
    option_table,
    serve,
)

__all__ = ["ExactResult", "solve", "solve_exact", "solve_many"]

#: Relative tolerance of "proven optimal".
RELATIVE_TOL = 1e-9
#: Largest :func:`_pass_work` (multisets x levels x requests) for which the dynamic programme is
#: used; beyond it, the best-first search over multisets with assignment problems.
DP_WORK_LIMIT = 4_000_000
#: Largest work (deadline groups x :func:`_pass_work`) of the drop classes' dynamic programme
#: (:func:`_drop_classes`); beyond it, the search without the drops the env cannot make alone.
CLASS_WORK_LIMIT = 50_000_000
#: Open multisets of a deadline group above which the group gets a dynamic-programming pass
#: instead of one assignment problem per multiset.
GROUP_PASS_MIN = 4


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
    energy_j: np.ndarray  # device energy per user of ``decision`` (J; evaluate_decision), shape (N,)

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


@dataclass(frozen=True, eq=False)
class _Space:
    """The edge multisets within the limits of the module docstring, rows in lexicographic order.

    ``counts[0]`` is the empty multiset; ``minus[l, i]`` is the row of ``counts[i] - e_l``
    (one request fewer at level ``l``), or ``S`` (a padding row) where ``counts[i, l] == 0``.
    Read-only: shared between slots through :func:`_space`.
    """

    counts: np.ndarray  # (S, L)
    minus: np.ndarray  # (L, S)
    sqrt_steps_sum: np.ndarray  # (S,) Q of each multiset
    steps: np.ndarray  # (S,) its edge load (steps)

    @property
    def size(self) -> int:
        return int(self.counts.shape[0])

    @functools.cached_property
    def most_requests(self) -> int:
        """The most requests of any multiset (``max_M |M|``)."""
        return int(self.counts.sum(axis=1).max())

    @functools.cached_property
    def largest_sqrt_steps_sum(self) -> float:
        return float(self.sqrt_steps_sum.max())


#: Spaces of at most this many multisets are kept (:func:`_space`), at most :data:`SPACES_KEPT` of them.
SPACE_ROWS_KEPT = 100_000
SPACES_KEPT = 256
_spaces: collections.OrderedDict[tuple, _Space | None] = collections.OrderedDict()
_spaces_lock = threading.Lock()


def _space(levels: tuple[int, ...], capacity: int, per_level: tuple[int, ...], max_total: int,
           max_multisets: int) -> _Space | None:
    """:func:`_build_space`, kept for the next slots of the same shape when small (least recently used out)."""
    key = (levels, capacity, per_level, max_total, max_multisets)
    with _spaces_lock:
        if key in _spaces:
            _spaces.move_to_end(key)
            return _spaces[key]
    space = _build_space(levels, capacity, per_level, max_total, max_multisets)
    if space is None or space.size <= SPACE_ROWS_KEPT:
        with _spaces_lock:
            _spaces[key] = space
            if len(_spaces) > SPACES_KEPT:
                _spaces.popitem(last=False)
    return space


def _build_space(levels: tuple[int, ...], capacity: int, per_level: tuple[int, ...], max_total: int,
                 max_multisets: int) -> _Space | None:
    """All level-count vectors with ``sum c_l s_l <= capacity``, ``c_l <= per_level[l]`` and
    ``sum c_l <= max_total``, with their ``minus`` rows; ``None`` beyond ``max_multisets`` rows.

    Built level by level (vectorised): a row of the first ``j + 1`` levels is its parent (a row
    of the first ``j``) and a count; the children of a parent are consecutive, so ``M - e_l``
    for ``l < j`` is the child with the same count of the parent's ``minus`` row (which has
    at least as many children), and for ``l = j`` the previous row.
    """
    counts = np.zeros((1, 0), dtype=np.int64)
    steps = np.zeros(1, dtype=np.int64)
    total = np.zeros(1, dtype=np.int64)
    minus: list[np.ndarray] = []
    for s, limit in zip(levels, per_level, strict=True):
        choices = np.minimum(np.minimum((capacity - steps) // s, max_total - total), limit) + 1
        size = int(choices.sum())
        if size > max_multisets:
            return None
        start = np.cumsum(choices) - choices
        parent = np.repeat(np.arange(choices.size), choices)
        count = np.arange(size) - start[parent]
        minus = [np.where(row[parent] < 0, -1, start[np.maximum(row[parent], 0)] + count) for row in minus]
        minus.append(np.where(count > 0, np.arange(size) - 1, -1))
        counts = np.column_stack([counts[parent], count])
        steps, total = steps[parent] + count * s, total[parent] + count
    table = np.array(minus)
    table[table < 0] = counts.shape[0]
    sqrt_steps_sum = counts @ np.sqrt(np.asarray(levels, dtype=np.float64))
    for array in (counts, table, sqrt_steps_sum, steps):
        array.flags.writeable = False
    return _Space(counts=counts, minus=table, sqrt_steps_sum=sqrt_steps_sum, steps=steps)


def _slot_space(opts: SlotOptions, max_multisets: int) -> _Space | None:
    """:func:`_space` of a slot: at most as many requests at a level as can offload it alone, and
    at most as many as have an edge option."""
    alone = opts.edge_feasible_alone
    per_level = np.minimum(alone.sum(axis=0), opts.edge_step_capacity // opts.levels)
    return _space(tuple(opts.levels.tolist()), int(opts.edge_step_capacity), tuple(per_level.tolist()),
                  int(np.count_nonzero(alone.any(axis=1))), int(max_multisets))


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


def _search(opts: SlotOptions, counts: np.ndarray, incumbent: _Incumbent, deadline: float
            ) -> tuple[_Incumbent, float, int]:
    """Best-first search over the multisets ``counts`` by their bounds (:func:`_bound_multisets`):
    ``(best choice, certified bound on the penalised optimum, assignments solved)``."""
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


def _fill_values(delta: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """``A_b(M)`` for every multiset ``M`` of a :class:`_Space` and each table ``delta[b]`` (``(B, K, L)``,
    ``inf`` where an option is not allowed): the least sum of ``delta[b, k, l]`` over distinct
    requests ``k`` filling ``M`` exactly (request ``k`` at level ``l`` fills one slot of level
    ``l``), ``inf`` where none does.  Returns ``(B, S)``.

    Dynamic programme over the requests: after request ``k``, ``A(M)`` is the least cost of
    filling ``M`` with requests ``0 .. k``, either without ``k`` or with ``k`` at some level
    ``l`` and ``M - e_l`` filled by the earlier ones (``minus``); one vectorised update per
    request, over every multiset, level and table at once.
    """
    batch, size = delta.shape[0], minus.shape[1]
    values = np.full((batch, size + 1), np.inf)  # column S: the padding row of minus
    values[:, 0] = 0.0
    filled = values[:, :size]
    for k in np.flatnonzero(np.isfinite(delta).any(axis=(0, 2))):
        moved = values.take(minus, axis=1)  # (B, L, S): A(M - e_l), inf where c_l = 0
        moved += delta[:, k, :, None]  # request k at level l
        np.minimum(filled, moved.min(axis=1), out=filled)
    return filled


def _pass_work(opts: SlotOptions, space: _Space) -> int:
    """Element operations of one pass of :func:`_fill_values` over this slot."""
    return space.size * opts.n_levels * int(opts.has_edge.sum())


def _pass_rows(opts: SlotOptions, work: int, max_multisets: int) -> int:
    """The most multisets for which a pass over this slot stays within ``work`` (and ``max_multisets``)."""
    return min(max_multisets, work // max(opts.n_levels * int(opts.has_edge.sum()), 1))


@dataclass(frozen=True, eq=False)
class _Passes:
    """What the dynamic programme of :func:`_dp_search` needs about one slot over a :class:`_Space`."""

    base: np.ndarray  # (S,) sum of the fallbacks' costs + w Q(M)^2
    useful: np.ndarray  # (K', L) delta of the options with delta < 0 (inf elsewhere), requests with one
    limits: np.ndarray  # (K', L) their max_sqrt_steps_sum
    group: np.ndarray | None  # (S,) deadline group of each multiset; None: a single group, every option feasible
    upper: np.ndarray  # (G,) within group g, an option is feasible iff max_sqrt_steps_sum >= upper[g]


def _passes(opts: SlotOptions, space: _Space) -> _Passes:
    """The slot's :class:`_Passes` (docs/solver.md, section 9).

    Options with ``delta >= 0`` are left out: moving such an option's request to its fallback
    lowers the cost and ``Q``, so some optimum uses none of them.
    """
    local_best = _local_best(opts)
    delta = opts.penalised_edge_cost - local_best[:, None]
    limits = _edge_limits(opts)
    finite_limits = limits[np.isfinite(delta)]
    group: np.ndarray | None = None
    upper = np.array([-np.inf])
    if finite_limits.size and finite_limits.min() < space.largest_sqrt_steps_sum:
        thresholds = np.unique(finite_limits)
        present, group = np.unique(np.searchsorted(thresholds, space.sqrt_steps_sum, side="left"), return_inverse=True)
        upper = np.append(thresholds, np.inf)[present]
    useful = np.where(delta < 0.0, delta, np.inf)
    keep = np.isfinite(useful).any(axis=1)
    return _Passes(base=local_best.sum() + opts.congestion_weight * space.sqrt_steps_sum**2,
                   useful=useful[keep], limits=limits[keep], group=group, upper=upper)


def _allowed(passes: _Passes, g: int, most: int) -> np.ndarray:
    """``(K', L)`` the options of a pass for group ``g``: feasible there, and among the ``most`` cheapest
    of their level (with ``|M| <= most``, a request beyond them at level ``l`` can be swapped for a
    cheaper one left out, so the assignment values are the same)."""
    allowed = passes.useful
    if passes.group is not None:
        allowed = np.where(passes.limits >= passes.upper[g], allowed, np.inf)
    if allowed.shape[0] > most:
        allowed = np.where(allowed <= np.partition(allowed, most - 1, axis=0)[most - 1], allowed, np.inf)
    return allowed


def _dp_search(opts: SlotOptions, space: _Space, deadline: float) -> tuple[_Incumbent, float, int]:
    """Every multiset's ``V(M)`` by dynamic programming (docs/solver.md, section 9):
    ``(best choice, certified bound on the penalised optimum, assignments solved)``.

    Edge options are feasible at ``Q(M)`` (deadlines), so the multisets fall into groups of
    equal feasibility (the intervals between ``max_sqrt_steps_sum`` values).  One pass of
    :func:`_fill_values` with the feasibility of group ``g`` gives ``V(M)`` for the multisets
    of group ``g`` and a lower bound for those of the later groups (their options are a subset).
    The first group is passed; then, best first by bound, a multiset still open is solved by an
    assignment problem, or its whole group by a pass when more than :data:`GROUP_PASS_MIN` of
    its multisets are open.  The optimum's choice is its multiset's assignment (:func:`_assign`).
    """
    passes = _passes(opts, space)
    most = space.most_requests
    if passes.group is None:  # one pass solves every multiset
        value = passes.base + _fill_values(_allowed(passes, 0, most)[None], space.minus)[0]
        index = int(np.argmin(value))
        incumbent = _assign(opts, space.counts[index], float(space.sqrt_steps_sum[index]))
        return incumbent, incumbent[0], 1
    group = passes.group
    lower = _bound_multisets(opts, space.counts).bound.copy()  # certified: V(M) >= lower
    value = np.full(space.size, np.inf)  # reached by a decision
    open_ = np.ones(space.size, dtype=bool)
    choices: dict[int, np.ndarray] = {}

    def run_pass(g: int) -> None:
        bound = passes.base + _fill_values(_allowed(passes, g, most)[None], space.minus)[0]
        np.maximum(lower, np.where(group >= g, bound, -np.inf), out=lower)
        members = group == g
        value[members] = bound[members]
        open_[members] = False

    run_pass(0)
    solved = 0
    certified = None
    while True:
        best = float(value.min())
        pending = open_ & (lower < best - _tolerance(best))
        if not pending.any():
            break
        index = int(np.argmin(np.where(pending, lower, np.inf)))
        if time.perf_counter() > deadline:
            certified = min(best, float(lower[index]))
            break
        g = int(group[index])
        if np.count_nonzero(pending & (group == g)) > GROUP_PASS_MIN:
            run_pass(g)
        else:
            value[index], choices[index] = _assign(opts, space.counts[index], float(space.sqrt_steps_sum[index]))
            open_[index] = False
            solved += 1
    index = int(np.argmin(value))
    if index in choices:
        incumbent = (float(value[index]), choices[index])
    else:
        incumbent = _assign(opts, space.counts[index], float(space.sqrt_steps_sum[index]))
        solved += 1
    return incumbent, incumbent[0] if certified is None else min(certified, incumbent[0]), solved


def _optimise(problem: SlotProblem, opts: SlotOptions, seed_decisions: Sequence[Decision], deadline: float,
              max_multisets: int, use_bound: bool) -> tuple[_Incumbent, float, int, float]:
    """The penalised optimum over ``opts``: ``(best choice, certified bound, assignments solved,
    Lagrangian bound of the problem or -inf where not computed)``.

    Dynamic programming (:func:`_dp_search`) where a pass is cheap enough; else the best-first
    search seeded by the heuristics and ``seed_decisions`` (and, with ``use_bound``, skipped when
    the Lagrangian bound of :mod:`.bound` already meets the seed)."""
    space = _slot_space(opts, _pass_rows(opts, DP_WORK_LIMIT, max_multisets))
    if space is not None:
        incumbent, bound, solved = _dp_search(opts, space, deadline)
        return incumbent, bound, solved, -np.inf
    incumbent = _seed(opts, seed_decisions)
    lagrangian = lower_bound(problem) if use_bound else -np.inf
    forced_drop_cost = float((problem.has_request.sum() - opts.n_candidates) * cast(float, problem.config.drop_cost))
    if incumbent[0] - (lagrangian - forced_drop_cost) <= _tolerance(incumbent[0]):
        return incumbent, lagrangian - forced_drop_cost, 0, lagrangian  # bounds the penalised optimum too
    space = _slot_space(opts, max_multisets)
    if space is None:
        return incumbent, -np.inf, 0, lagrangian
    incumbent, bound, solved = _search(opts, space.counts, incumbent, deadline)
    return incumbent, bound, solved, lagrangian


@dataclass(frozen=True, eq=False)
class _Realised:
    """The best decision the drop classes of :func:`_drop_classes` found, with its bound."""

    decision: Decision
    objective: float  # of the decision (env cost + energy prices), the forced drops included
    bound: float  # certified lower bound on the objective of every decision (forced drops included)


def _phantom_requests(problem: SlotProblem, opts: SlotOptions) -> np.ndarray:
    """``(N,)`` requests that could be offloaded, admitted and then dropped at some level: by their
    battery, or by their deadline at the admitted ``Q``.  The admitted requests' steps add up to at
    most ``S^E_max``, each at least ``S_min``, so (``sqrt`` is concave) ``Q <= sqrt(n S^E_max)`` with
    ``n = min(requests, S^E_max / S_min)``."""
    capacity = opts.edge_step_capacity
    admitted = min(float(problem.has_request.sum()), capacity / float(opts.levels[0]))
    return problem.has_request & (opts.table.max_sqrt_steps_sum.min(axis=1) < np.sqrt(admitted * capacity))


def _class_view(opts: SlotOptions, clean: SlotOptions, phantom: np.ndarray, first: int) -> SlotOptions:
    """The view of class ``first`` (:func:`_drop_classes`): candidates before request ``first`` keep the
    drops they can make alone (``clean``, plus drops of ``phantom`` candidates), request ``first`` is
    dropped, the later candidates have no edge and may drop."""
    n_levels = opts.n_levels
    before, at_first = opts.users < first, opts.users == first
    device = np.where((before & ~phantom)[:, None], clean.cost[:, :n_levels], opts.cost[:, :n_levels])
    dropped = np.where((before & ~phantom)[:, None], clean.dropped_on_device, opts.dropped_on_device)
    device[at_first] = float(cast(float, opts.table.problem.config.drop_cost))
    dropped = dropped | at_first[:, None]
    edge = np.where(before[:, None], opts.cost[:, n_levels:], np.inf)
    feasible = opts.feasible.copy()
    feasible[:, n_levels:] &= before[:, None]
    return dataclasses.replace(opts, cost=np.hstack([device, edge]), feasible=feasible, dropped_on_device=dropped)


def _realise_class(problem: SlotProblem, view: SlotOptions, choice: np.ndarray, first: int, phantom: np.ndarray
                   ) -> Decision | None:
    """The env decision of a class-``first`` choice (:func:`_drop_classes`), or ``None`` where none is
    found that the env serves as chosen.  Drops after ``first`` are offloaded (past the edge-capacity
    prefix), request ``first`` is offloaded at the largest level; a drop before it is made at a
    device level the device cannot run or, for the ``phantom`` requests (``(N,)``), by offloading it
    (admitted, then dropped): every combination of their ways is served and checked, for up to
    :data:`MAX_EDGE_DROPS` such requests (those with no device level to drop at first)."""
    n_levels = view.n_levels
    rows = np.arange(choice.size)
    offloaded, level = view.offloaded(choice), choice % n_levels
    dropped = ~offloaded & view.dropped_on_device[rows, level]
    clean = dropped & (view.drop_level >= 0)
    level = np.where(clean, view.drop_level, level)
    by_prefix = dropped & ~clean & (view.users > first)
    offloaded = offloaded | by_prefix
    level = np.where(by_prefix, 0, level)
    decision = view.decision_arrays(offloaded, level)
    if first < problem.n_users:
        decision.offload[first], decision.steps[first] = True, view.levels[-1]
    wanted = np.zeros(problem.n_users, dtype=bool)
    wanted[view.users[~dropped]] = True
    must = view.users[dropped & ~clean & (view.users < first)]  # no other way to drop them
    may = np.flatnonzero(phantom[:first] & ~wanted[:first])  # dropped either way: offloading adds load
    may = np.setdiff1d(may, must)
    if must.size > MAX_EDGE_DROPS:
        return None
    may = may[: MAX_EDGE_DROPS - must.size]
    ways = [range(1, n_levels + 1)] * must.size + [range(n_levels + 1)] * may.size  # 0: as decided, l: level l - 1
    product = list(itertools.product(*ways))
    combos = np.array(product, dtype=np.int64).reshape(len(product), must.size + may.size)
    who = np.concatenate([must, may])
    offload = np.repeat(decision.offload[None], combos.shape[0], axis=0)
    steps = np.repeat(decision.steps[None], combos.shape[0], axis=0)
    offload[:, who] |= combos > 0
    steps[:, who] = np.where(combos > 0, view.levels[np.maximum(combos - 1, 0)], steps[:, who])
    served = serve(option_rows(problem, offload, np.where(problem.has_request, steps, view.levels[0])),
                   problem.battery_j, problem.config).served
    exact = np.flatnonzero((served == wanted).all(axis=1))
    if exact.size == 0:
        return None
    return Decision(offload=offload[exact[0]], steps=steps[exact[0]])


def _drop_classes(problem: SlotProblem, opts: SlotOptions, max_multisets: int, *, phantoms: bool = True
                  ) -> tuple[Decision | None, float, float] | None:
    """The optimum over the decisions the env realises, when the drops-as-options view ``opts``
    (:mod:`.options`) drops a request it cannot (docs/solver.md, section 9): ``(best realised
    decision or None, its penalised value, certified bound on the penalised value of every
    decision)``; ``None`` where the multisets are too many.

    Every decision's outcome falls in one *class*: the first request ``p`` the edge-capacity
    prefix drops (or none, ``p = N``).  Then the requests served at the edge are before ``p``, the
    requests after ``p`` are served on their device or dropped (offloaded past the prefix), ``p``
    is dropped, a candidate before ``p`` whose device runs every level is dropped only if it can be
    admitted and dropped (a *phantom*: its deadline or battery), and the load before ``p`` plus
    ``S_max`` exceeds ``S^E_max`` (less ``S_max`` per phantom request before ``p``).  With
    ``phantoms=False`` no phantom is allowed, and every class optimum is realised.  One dynamic
    programme over the candidates in user order gives every class optimum: class ``p`` reads the
    multiset values after the candidates before ``p``, under its load condition.
    """
    space = _slot_space(opts, _pass_rows(opts, CLASS_WORK_LIMIT, max_multisets))
    if space is None:
        return None
    clean = slot_options(problem, drops_as_options=True, clean_drops_only=True, table=opts.table)
    n_users = problem.n_users
    phantom_requests = _phantom_requests(problem, opts) if phantoms else np.zeros(n_users, dtype=bool)
    phantom = phantom_requests[opts.users]
    free = opts.penalised_local_cost.min(axis=1)  # a candidate after p: its device or a drop
    kept = np.where(phantom, free, clean.penalised_local_cost.min(axis=1))  # a candidate before p
    delta = opts.penalised_edge_cost - kept[:, None]
    limits = _edge_limits(opts)
    finite_limits = limits[np.isfinite(delta)]
    group = np.zeros(space.size, dtype=np.int64)
    upper = np.array([-np.inf])
    if finite_limits.size and finite_limits.min() < space.largest_sqrt_steps_sum:
        thresholds = np.unique(finite_limits)
        present, group = np.unique(np.searchsorted(thresholds, space.sqrt_steps_sum, side="left"), return_inverse=True)
        upper = np.append(thresholds, np.inf)[present]
    if upper.size * _pass_work(opts, space) > CLASS_WORK_LIMIT:
        return None
    grouped = np.where(limits[None] >= upper[:, None, None], delta[None], np.inf)  # (G, K, L)
    congestion = opts.congestion_weight * space.sqrt_steps_sum**2
    drop_cost = float(cast(float, problem.config.drop_cost))
    largest, capacity = int(opts.levels[-1]), opts.edge_step_capacity
    phantom_load = largest * np.concatenate([[0], np.cumsum(phantom_requests)])  # before each user
    kept_before = np.concatenate([[0.0], np.cumsum(kept)])  # over the first k candidates
    free_after = np.concatenate([np.cumsum(free[::-1])[::-1], [0.0]])  # over candidates k ...
    requests = np.append(np.flatnonzero(problem.has_request), n_users)  # the classes; n_users: no prefix drop
    candidate_of = np.full(n_users + 1, -1)
    candidate_of[opts.users] = np.arange(opts.n_candidates)
    values = np.full((upper.size, space.size + 1), np.inf)
    values[:, 0] = 0.0
    columns = np.arange(space.size)
    best = (np.inf, -1, -1)  # (penalised value, class, multiset)
    done = 0  # candidates in the programme
    for first in requests:
        while done < opts.n_candidates and opts.users[done] < first:
            if np.isfinite(grouped[:, done]).any():
                moved = values.take(space.minus, axis=1)
                moved += grouped[:, done, :, None]
                np.minimum(values[:, :space.size], moved.min(axis=1), out=values[:, :space.size])
            done += 1
        total = congestion + values[group, columns]
        if first < n_users:
            total = np.where(space.steps > capacity - largest - phantom_load[first], total, np.inf)
        index = int(np.argmin(total))
        own = candidate_of[first]
        value = (float(total[index]) + float(kept_before[done])
                 + float(free_after[done + 1 if own >= 0 else done]) + (drop_cost if own >= 0 else 0.0))
        if value < best[0]:
            best = (value, int(first), index)
    value, first, index = best
    view = _class_view(opts, clean, phantom, first)
    _, choice = _assign(view, space.counts[index], float(space.sqrt_steps_sum[index]))
    decision = _realise_class(problem, view, choice, first, phantom_requests)
    if decision is None and phantoms:
        realised = _drop_classes(problem, opts, max_multisets, phantoms=False)
        return None if realised is None else (realised[0], realised[1], value)
    return decision, value, value


@dataclass(eq=False)
class _Slot:
    """One slot on its way through :func:`solve_exact` / :func:`solve_many`."""

    problem: SlotProblem
    opts: SlotOptions
    start: float
    seeds: Sequence[Decision] = ()
    deadline: float | None = None  # perf_counter time after which the searches stop (time_budget_s after its own start)
    incumbent: _Incumbent | None = None
    bound_penalised: float = -np.inf  # certified on the penalised optimum over opts
    solved: int = 0
    lagrangian: float = -np.inf  # the Lagrangian bound, where computed
    class_bound: float = -np.inf  # the drop classes' bound on the penalised value of every decision
    decision: Decision | None = None

    @property
    def forced_drop_cost(self) -> float:
        """``C_drop`` per request that no option serves alone (dropped in every decision)."""
        problem = self.problem
        return float((problem.has_request.sum() - self.opts.n_candidates) * cast(float, problem.config.drop_cost))


def _deadline(slot: _Slot, time_budget_s: float) -> float:
    if slot.deadline is None:
        slot.deadline = time.perf_counter() + time_budget_s
    return slot.deadline


def _optimise_slot(slot: _Slot, time_budget_s: float, max_multisets: int) -> None:
    slot.incumbent, slot.bound_penalised, slot.solved, slot.lagrangian = _optimise(
        slot.problem, slot.opts, slot.seeds, _deadline(slot, time_budget_s), max_multisets, use_bound=True)


def _decide(slot: _Slot, time_budget_s: float, max_multisets: int) -> None:
    """The slot's decision from its incumbent: realised as it is, or through the drop classes
    (case (3) of the module docstring)."""
    assert slot.incumbent is not None
    problem, opts = slot.problem, slot.opts
    value, choice = slot.incumbent
    if not opts.drop_is_realised(choice):
        classes = _drop_classes(problem, opts, max_multisets)
        if classes is not None and classes[0] is not None:
            slot.decision, _, slot.class_bound = classes
            return
        # too many multisets: the search without the drops the env cannot make alone
        unrealised = opts.decision(choice)
        slot.opts = slot_options(problem, drops_as_options=True, clean_drops_only=True, table=opts.table)
        slot.incumbent, _, more, _ = _optimise(problem, slot.opts, [*slot.seeds, unrealised],
                                               _deadline(slot, time_budget_s), max_multisets, use_bound=False)
        slot.solved += more
        choice = slot.incumbent[1]
    slot.decision = slot.opts.decision(choice)


def _certify(slot: _Slot, cost: float, energy_j: np.ndarray, n_dropped: int) -> ExactResult:
    """The :class:`ExactResult` of a decided slot, from its decision's evaluation (env cost, device
    energy per user, dropped requests)."""
    assert slot.incumbent is not None and slot.decision is not None
    problem, opts = slot.problem, slot.opts
    forced_drop_cost = slot.forced_drop_cost
    lagrangian = slot.lagrangian
    if opts.drops_are_options:
        objective = cost
        if problem.has_energy_prices:
            objective += float(problem.energy_price_per_j @ energy_j)
        certified = max(slot.bound_penalised, slot.class_bound) + forced_drop_cost
        if objective - certified > _tolerance(objective) and lagrangian == -np.inf:
            lagrangian = lower_bound(problem)
        bound = min(objective, max(lagrangian, certified))
        proven = objective - bound <= _tolerance(objective)
    else:
        value = slot.incumbent[0]
        drops = n_dropped - (int(problem.has_request.sum()) - opts.n_candidates)
        certified = slot.bound_penalised - drops * opts.drop_penalty + forced_drop_cost
        proven = value - slot.bound_penalised <= _tolerance(value)
        if not proven and lagrangian == -np.inf:
            lagrangian = lower_bound(problem)
        objective, bound = cost, min(cost, max(lagrangian, certified))
    return ExactResult(
        decision=slot.decision,
        cost=cost,
        lower_bound=bound,
        proven_optimal=proven,
        n_assignments=slot.solved,
        elapsed_s=time.perf_counter() - slot.start,
        objective=objective,
        energy_j=np.asarray(energy_j),
    )


def _check_options(time_budget_s: float, max_multisets: int, drops_as_options: bool) -> None:
    positive_option("time_budget_s", time_budget_s, "seconds")
    count_option("max_multisets", max_multisets, 1)
    bool_option("drops_as_options", drops_as_options)


def _require_slot_problem(problem: Any) -> None:
    if not isinstance(problem, SlotProblem):
        raise ValueError(f"problem must be a SlotProblem (env.unwrapped.current_problem()), got "
                         f"{type(problem).__name__}")


def _check_seeds(problem: SlotProblem, seed_decisions: Sequence[Decision]) -> None:
    """``ValueError`` unless ``problem`` is a :class:`SlotProblem` and every seed decision a :class:`Decision` of
    its shape ``(N,)``."""
    _require_slot_problem(problem)
    if isinstance(seed_decisions, Decision) or not isinstance(seed_decisions, Sequence):
        raise ValueError(f"seed_decisions must be a sequence of Decisions (a list, or () for none), got "
                         f"{type(seed_decisions).__name__}")
    shape = problem.has_request.shape
    bad = [d for d in seed_decisions if not isinstance(d, Decision) or d.offload.shape != shape]
    if bad:
        raise ValueError(f"seed_decisions must be Decisions of shape {shape} (the slot's users), got {bad[0]!r}")


def solve_exact(
    problem: SlotProblem,
    time_budget_s: float = 2.0,
    max_multisets: int = 2_000_000,
    seed_decisions: Sequence[Decision] = (),
    drops_as_options: bool = False,
) -> ExactResult:
    """The optimal decision of one slot, or the best found with a certified bound.

    Stops at ``time_budget_s`` (seconds, checked between assignment problems and dynamic
    programming passes) or when the edge multisets exceed ``max_multisets``; ``proven_optimal``
    says whether it finished.  ``seed_decisions`` (e.g. other solvers' decisions a caller
    already has, over the step levels) join the incumbent's seeds of the best-first search
    (used where a dynamic-programming pass would be too large); they never change the result's
    objective.  With energy prices, or ``drops_as_options``, drops are options and the bound
    holds for every decision (module docstring); otherwise the fewest drops come first.
    """
    _check_options(time_budget_s, max_multisets, drops_as_options)
    _check_seeds(problem, seed_decisions)
    start = time.perf_counter()
    slot = _Slot(problem, slot_options(problem, drops_as_options=drops_as_options), start, seed_decisions,
                 deadline=start + time_budget_s)
    _optimise_slot(slot, time_budget_s, max_multisets)
    _decide(slot, time_budget_s, max_multisets)
    assert slot.decision is not None
    evaluation = evaluate_decision(problem, slot.decision)
    return _certify(slot, float(evaluation.total_cost), evaluation.energy_j, int(evaluation.dropped.sum()))


#: Most elements (slots x levels x multisets) of one batched dynamic-programming step of :func:`solve_many`.
BATCH_ELEMENTS = 2_000_000


def _expand(problems: SlotProblem | Sequence[SlotProblem], prices: np.ndarray | None
            ) -> tuple[list[SlotProblem], list[int]]:
    """The slots to solve and, for each, the index of the slot it is a priced copy of."""
    sources = [problems] if isinstance(problems, SlotProblem) else list(problems)
    for problem in sources:
        _require_slot_problem(problem)
    if prices is None:
        return sources, list(range(len(sources)))
    rows = np.asarray(prices, dtype=np.float64)
    if isinstance(problems, SlotProblem):
        if rows.ndim != 2 or rows.shape[1] != problems.n_users:
            raise ValueError(f"prices for one slot must have shape (K, {problems.n_users}), got {rows.shape}")
        return [dataclasses.replace(problems, energy_price_per_j=row) for row in rows], [0] * rows.shape[0]
    if rows.ndim != 2 or rows.shape[0] != len(sources) or any(p.n_users != rows.shape[1] for p in sources):
        raise ValueError(f"prices for {len(sources)} slots must have shape ({len(sources)}, N), got {rows.shape}")
    return [dataclasses.replace(p, energy_price_per_j=row) for p, row in zip(sources, rows, strict=True)], \
        list(range(len(sources)))


def _stack(problems: Sequence[SlotProblem]) -> SlotProblem:
    """The slots (one config, one size) as one batch problem (no energy prices)."""
    arrays = {name: np.stack([getattr(problem, name) for problem in problems]) for name in PROBLEM_ARRAY_FIELDS}
    return SlotProblem(config=problems[0].config, **arrays)


def _shape_groups(problems: Sequence[SlotProblem]) -> list[list[int]]:
    """Indices of the slots grouped by config and size."""
    groups: dict[tuple[AIGCEdgeConfig, int], list[int]] = {}
    for index, problem in enumerate(problems):
        groups.setdefault((problem.config, problem.n_users), []).append(index)
    return list(groups.values())


def _tables(problems: Sequence[SlotProblem]) -> list[OptionTable]:
    """Each slot's option table; the slots of one config and size in one batched computation."""
    tables: list[OptionTable | None] = [None] * len(problems)
    for members in _shape_groups(problems):
        if len(members) == 1:
            tables[members[0]] = option_table(problems[members[0]])
            continue
        batch = option_table(_stack([problems[i] for i in members]))
        for row, index in enumerate(members):
            tables[index] = OptionTable(
                problem=problems[index], levels=batch.levels, local_cost=batch.local_cost[row],
                local_feasible=batch.local_feasible[row], edge_base_cost=batch.edge_base_cost[row],
                max_sqrt_steps_sum=batch.max_sqrt_steps_sum[row], edge_feasible_alone=batch.edge_feasible_alone[row],
                congestion_weight=batch.congestion_weight, local_energy_j=batch.local_energy_j[row],
                edge_energy_j=batch.edge_energy_j[row])
    return [table for table in tables if table is not None]


def _optimise_many(slots: Sequence[_Slot], time_budget_s: float, max_multisets: int) -> None:
    """:func:`_optimise` of every slot: one dynamic programme over the slots of one step-level set and
    capacity whose options are feasible at every multiset (over the union of their multisets: a
    multiset beyond a slot's own cannot be filled there, its value is ``inf``), the others one by one."""
    by_shape: dict[tuple[tuple[int, ...], int], list[_Slot]] = {}
    for slot in slots:
        opts = slot.opts
        space = _slot_space(opts, _pass_rows(opts, DP_WORK_LIMIT, max_multisets))
        if space is None:
            _optimise_slot(slot, time_budget_s, max_multisets)
        else:
            key = (tuple(int(s) for s in opts.levels), int(opts.edge_step_capacity))
            by_shape.setdefault(key, []).append(slot)
    for (levels, capacity), members in by_shape.items():
        union = None
        if len(members) > 1:
            per_level = np.max([np.minimum(m.opts.edge_feasible_alone.sum(axis=0), capacity // m.opts.levels)
                                for m in members], axis=0)
            union = _space(levels, capacity, tuple(int(c) for c in per_level),
                           max(int(m.opts.has_edge.sum()) for m in members), max_multisets)
        if union is None:
            for slot in members:
                _optimise_slot(slot, time_budget_s, max_multisets)
            continue
        batch: list[tuple[_Slot, _Passes]] = []
        for slot in members:
            passes = _passes(slot.opts, union)
            if passes.group is not None or _pass_work(slot.opts, union) > DP_WORK_LIMIT:
                _optimise_slot(slot, time_budget_s, max_multisets)
            else:
                batch.append((slot, passes))
        if not batch:
            continue
        most = union.most_requests
        chunk = max(1, BATCH_ELEMENTS // (len(levels) * union.size))
        for first in range(0, len(batch), chunk):
            part = batch[first:first + chunk]
            width = max(passes.useful.shape[0] for _, passes in part)
            allowed = np.full((len(part), width, len(levels)), np.inf)
            for row, (_, passes) in enumerate(part):
                options = _allowed(passes, 0, most)
                allowed[row, :options.shape[0]] = options
            values = np.stack([passes.base for _, passes in part]) + _fill_values(allowed, union.minus)
            for (slot, _), index in zip(part, np.argmin(values, axis=1), strict=True):
                slot.incumbent = _assign(slot.opts, union.counts[index], float(union.sqrt_steps_sum[index]))
                slot.bound_penalised, slot.solved = slot.incumbent[0], 1


def _evaluate_many(slots: Sequence[_Slot]) -> list[tuple[float, np.ndarray, int]]:
    """``(env cost, device energy per user, dropped requests)`` of each slot's decision; the slots of
    one config and size in one :func:`~aigc_edge_env.model.evaluate_decision` call."""
    problems = [slot.problem for slot in slots]
    out: list[tuple[float, np.ndarray, int]] = [(0.0, np.zeros(0), 0)] * len(slots)
    for members in _shape_groups(problems):
        decisions = [slots[i].decision for i in members]
        assert all(decision is not None for decision in decisions)
        if len(members) == 1:
            evaluation = evaluate_decision(problems[members[0]], cast(Decision, decisions[0]))
            out[members[0]] = (float(evaluation.total_cost), evaluation.energy_j, int(evaluation.dropped.sum()))
            continue
        stacked = Decision(offload=np.stack([cast(Decision, d).offload for d in decisions]),
                           steps=np.stack([cast(Decision, d).steps for d in decisions]))
        evaluation = evaluate_decision(_stack([problems[i] for i in members]), stacked)
        costs, energy, dropped = evaluation.total_cost, evaluation.energy_j, evaluation.dropped.sum(axis=1)
        for row, index in enumerate(members):
            out[index] = (float(costs[row]), energy[row], int(dropped[row]))
    return out


def solve_many(
    problems: SlotProblem | Sequence[SlotProblem],
    prices: np.ndarray | None = None,
    *,
    time_budget_s: float = 2.0,
    max_multisets: int = 2_000_000,
    seed_decisions: Sequence[Sequence[Decision]] | None = None,
    drops_as_options: bool = False,
) -> list[ExactResult]:
    """:func:`solve_exact` of many slots at once: the same results (decisions, costs, objectives,
    bounds, proofs), in order.

    * ``solve_many(problems)``: each slot of a sequence, with its own energy prices;
    * ``solve_many(problem, prices)``: one slot under each row of ``prices`` (shape ``(K, N)``,
      cost per J): its ``K`` priced copies;
    * ``solve_many(problems, prices)``: slot ``i`` under ``prices[i]`` (shape ``(len(problems), N)``).

    ``seed_decisions``: one sequence of decisions per slot solved (as for :func:`solve_exact`), or
    ``None``; ``time_budget_s`` holds for each slot, as for :func:`solve_exact`.  What is shared:
    the option tables (one computation for the slots of one config and size; one table for the
    priced copies of a slot), the multisets, the dynamic programme of the slots whose edge options
    are feasible at every multiset (the default deadlines), and the evaluation of the decisions.
    ``elapsed_s`` of a result is the time from the call to that result.
    """
    _check_options(time_budget_s, max_multisets, drops_as_options)
    start = time.perf_counter()
    batch, source = _expand(problems, prices)
    if seed_decisions is not None:
        if len(seed_decisions) != len(batch):
            raise ValueError(f"seed_decisions must hold one sequence per slot ({len(batch)}), "
                             f"got {len(seed_decisions)}")
        for problem, seeds in zip(batch, seed_decisions, strict=True):
            _check_seeds(problem, seeds)
    sources = sorted(set(source))
    source_tables = dict(zip(sources, _tables([batch[source.index(i)] for i in sources]), strict=True))
    slots = [_Slot(problem, slot_options(problem, drops_as_options=drops_as_options, table=source_tables[source[i]]),
                   start, () if seed_decisions is None else seed_decisions[i])
             for i, problem in enumerate(batch)]
    _optimise_many(slots, time_budget_s, max_multisets)
    for slot in slots:
        _decide(slot, time_budget_s, max_multisets)
    return [_certify(slot, *evaluated) for slot, evaluated in zip(slots, _evaluate_many(slots), strict=True)]


def solve(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """The ``exact`` solver of the registry (default time budget; ``rng`` is unused; honours energy prices)."""
    return solve_exact(problem).decision
