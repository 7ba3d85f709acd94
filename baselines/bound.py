"""A certified lower bound on a slot's optimal cost: Lagrangian relaxation of the congestion.

Derivation
----------
Take any decision over the step levels and let ``Q`` be the sum of ``sqrt(s)`` over the
requests served at the edge.  Its env cost is ``sum_n C_n + w Q^2`` (``w`` = congestion
weight ``w_T / F_E``), where ``C_n`` is the congestion-free cost of the option request
``n`` is served with (local or edge base cost) and ``C_drop`` for a dropped request.
Every served request satisfies necessary conditions that ignore the other users:

* a local option is feasible (``local_feasible``: device capacity, deadline, battery);
* an edge option is feasible *alone* (``edge_feasible_alone``): ``Q >= sqrt(s_n)``, so the
  deadline condition ``Q <= max_sqrt_steps_sum`` implies ``max_sqrt_steps_sum >= sqrt(s_n)``;
  and ``s_n <= S^E_max``;
* the served edge steps add up to at most ``S^E_max``.

Both flags are the option table's, read through the solver view of :mod:`.options`.
With energy prices (``SlotProblem.energy_price_per_j``) every ``C_n`` above is the option's
priced cost ``C_n + pi_n E_n`` (the view's), a drop still costs ``C_drop`` (no energy), and
the bound holds for the objective ``slot cost + sum_n pi_n E_n`` of every decision.
For any multiplier ``lambda >= 0`` (``multiplier`` in the code),
``Q^2 >= 2 lambda Q - lambda^2`` (as ``(Q - lambda)^2 >= 0``), so::

    cost >= -w lambda^2 + sum_n [ C_n + 2 w lambda sqrt(s_n) * (n offloaded) ] >= g(lambda),

    g(lambda) = -w lambda^2 + min over per-request choices of
                sum_n min(a_n, edge options of n at cost base + 2 w lambda sqrt(s))
                subject to sum of edge steps <= S^E_max,

with ``a_n`` the cheapest of the request's feasible local options and ``C_drop`` (a
request with nothing feasible contributes ``C_drop``; dropping is allowed in the
relaxation, so the bound holds whatever the solvers' drop policy).  The inner minimum is
a multiple-choice knapsack: items are users, each picks "local/drop" (weight 0) or one
edge level (weight ``s``), capacity ``S^E_max``.  It is solved exactly by dynamic
programming over the capacity in units of ``gcd(levels)``, the capacity first cut to the
most steps the edge users can offload together (a larger one never binds).  When that
leaves more than :data:`MAX_CAPACITY_UNITS` units (extreme step levels), the unit grows
and each weight is rounded down: every decision within the capacity stays within it
(``sum floor(s / u) <= floor(S / u)``), so the DP still minimises over a relaxation and
the bound stays valid, only weaker.

``g`` is concave: the inner minimum is a minimum of functions affine in ``lambda``.  Its
supergradient at ``lambda`` is ``2 w (Q(x_lambda) - lambda)``, negative beyond any
achievable ``Q``, so the maximiser lies in ``[0, Q_max]`` with ``Q_max`` a bound on ``Q``
(Cauchy-Schwarz: ``Q <= sqrt(n_edge * S^E_max)``).  :func:`lower_bound` maximises ``g``
by a zooming grid search: evaluate a grid (all grid points share one DP pass, vectorised
over ``lambda`` and the capacity), keep the two cells around the best point (the maximum
of a concave function lies there), repeat.  Every evaluated ``g(lambda)`` is a valid
bound, so the result is too, whatever the search's accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import cast

import numpy as np

from aigc_edge_env.baselines.options import slot_options
from aigc_edge_env.checks import count_option
from aigc_edge_env.model import SlotProblem

__all__ = ["MAX_CAPACITY_UNITS", "lagrangian_bound", "lower_bound"]

#: Most capacity units of the knapsack DP (module docstring).
MAX_CAPACITY_UNITS = 10_000


@dataclass(frozen=True)
class _Relaxation:
    """The separable relaxation of one slot, over the ``E`` requests with an edge option."""

    constant: float  # sum of a_n over the requests without an edge option (cost)
    fallback: np.ndarray  # (E,) a_n: cheapest feasible local option or C_drop (cost)
    edge_cost: np.ndarray  # (E, L) congestion-free edge cost, +inf where infeasible alone
    levels: np.ndarray  # (L,) step levels
    unit: int  # steps per capacity unit: gcd of the levels, or coarser (module docstring)
    capacity_steps: int  # min(S^E_max, the most steps the edge users can offload together)
    congestion_weight: float  # w = w_T / F_E

    @property
    def sqrt_steps_sum_bound(self) -> float:
        """A bound on any decision's ``Q``: Cauchy-Schwarz, ``Q <= sqrt(n S^E_max)``."""
        n_max = min(self.fallback.size, self.capacity_steps // int(self.levels[0]))
        per_user = np.where(np.isfinite(self.edge_cost), np.sqrt(self.levels), 0.0).max(axis=1, initial=0.0)
        return float(min(np.sqrt(n_max * self.capacity_steps), per_user.sum()))


def _relaxation(problem: SlotProblem) -> _Relaxation:
    opts = slot_options(problem)
    drop_cost = cast(float, problem.config.drop_cost)
    # a_n per user in user order: C_drop for a request with no option feasible alone
    fallback = np.full(problem.n_users, drop_cost)
    # a drop's penalised cost exceeds C_drop
    fallback[opts.users] = np.minimum(opts.penalised_local_cost.min(axis=1), drop_cost)
    with_edge = np.zeros(problem.n_users, dtype=bool)
    with_edge[opts.users] = opts.has_edge
    capacity_steps = min(opts.edge_step_capacity, int(opts.has_edge.sum()) * int(opts.levels[-1]))
    unit = max(reduce(math.gcd, (int(s) for s in opts.levels)), -(-capacity_steps // MAX_CAPACITY_UNITS))
    return _Relaxation(
        constant=float(fallback[problem.has_request & ~with_edge].sum()),
        fallback=fallback[with_edge],
        edge_cost=opts.penalised_edge_cost[opts.has_edge],
        levels=opts.levels,
        unit=unit,
        capacity_steps=capacity_steps,
        congestion_weight=opts.congestion_weight,
    )


def _check_multipliers(multipliers: np.ndarray) -> np.ndarray:
    checked = np.asarray(multipliers, dtype=np.float64)
    if checked.ndim != 1 or not np.all(np.isfinite(checked)) or np.any(checked < 0):
        raise ValueError(f"multipliers must be a 1-D array of finite numbers >= 0, got {multipliers!r}")
    return checked


def _evaluate(relax: _Relaxation, multipliers: np.ndarray) -> np.ndarray:
    """``g(lambda)`` for a 1-D array of multipliers, by one DP pass over the users."""
    capacity = relax.capacity_steps // relax.unit
    weights = relax.levels // relax.unit  # rounded down when the unit is coarser than their gcd
    # best[g, c]: cheapest choice of the users so far with edge steps <= c capacity units.
    best = np.zeros((multipliers.size, capacity + 1))
    source = np.arange(capacity + 1)[None, :] - weights[:, None]  # (L, C+1) capacity before the item
    source = np.where(source >= 0, source, capacity + 1)  # out of range -> the +inf pad column
    slope = 2.0 * relax.congestion_weight * multipliers[:, None] * np.sqrt(relax.levels)[None, :]  # (G, L)
    pad = np.full((multipliers.size, 1), np.inf)
    for a, cost in zip(relax.fallback, relax.edge_cost, strict=True):
        with_item = np.concatenate([best, pad], axis=1)[:, source] + (cost[None, :] + slope)[:, :, None]
        best = np.minimum(best + a, with_item.min(axis=1))
    return relax.constant + best[:, capacity] - relax.congestion_weight * multipliers**2


def lagrangian_bound(problem: SlotProblem, multipliers: np.ndarray) -> np.ndarray:
    """``g(lambda)`` (cost) for each multiplier ``lambda >= 0`` (sqrt-steps) of a 1-D array.

    Each value is a lower bound on the slot's optimal cost (module docstring).
    """
    return _evaluate(_relaxation(problem), _check_multipliers(multipliers))


def lower_bound(problem: SlotProblem, grid_points: int = 17, zooms: int = 5) -> float:
    """The best ``g(lambda)`` found by a zooming grid search on ``[0, Q_max]`` (cost).

    Each zoom evaluates ``grid_points`` multipliers in one DP pass and narrows the search
    to the two grid cells around the best one, where the concave ``g`` peaks.
    """
    count_option("grid_points", grid_points, 3)
    count_option("zooms", zooms, 1)
    relax = _relaxation(problem)
    low, high = 0.0, relax.sqrt_steps_sum_bound
    best = -np.inf
    for _ in range(zooms):
        grid = np.linspace(low, high, grid_points)
        values = _evaluate(relax, grid)
        k = int(np.argmax(values))
        best = max(best, float(values[k]))
        low, high = grid[max(k - 1, 0)], grid[min(k + 1, grid_points - 1)]
        if high <= low:
            break
    return best
