"""Heuristic slot solvers, and the solver view of a slot that every solver here shares.

The view
--------
:class:`SlotOptions` restates one slot's :class:`~aigc_edge_env.model.OptionTable` for
search.  It keeps the *candidate* users (a request and at least one option feasible on
its own; the rest are dropped whatever is decided) and, per candidate ``k`` and level ``l``:

* ``local_cost[k, l]``: the local cost, or ``C_drop + drop_penalty`` where running that
  level locally is infeasible (the env would drop the request);
* ``edge_cost[k, l]``: the congestion-free edge cost, ``+inf`` where the option is
  infeasible even alone (``max_sqrt_steps_sum < sqrt(s)``, battery, or ``s > S^E_max``).

A search state is an *assignment* ``(offload, level)`` over the candidates.  For one that
is edge-feasible (``sum of offloaded steps <= S^E_max`` and ``Q <= max_sqrt_steps_sum`` of
every offloaded option), the table's identity gives its *penalised cost*::

    sum_k (edge_cost or local_cost)[k, level_k] + congestion_weight * Q^2,
    Q = sum over offloaded of sqrt(s),

which is the env's slot cost over the candidates plus ``drop_penalty`` per dropped
candidate.  ``drop_penalty`` exceeds the spread of env costs over all decisions, so
minimising the penalised cost minimises the number of drops first and the cost second:
no solver drops a request when a drop-free decision exists.

The heuristics (each ``solve(problem, rng=None) -> Decision``)
--------------------------------------------------------------
* ``all_local``: every request on its device at its cheapest feasible level; a request
  no device level can serve (deadline, battery) is offloaded at its cheapest edge level.
* ``all_edge``: every request that can be offloaded is, starting at its smallest level;
  :func:`repair` restores feasibility, then coordinate descent on the levels minimises
  the congestion-aware cost (each user in turn takes its best level given the others).
* ``random``: each request takes an option drawn uniformly from those feasible alone,
  then :func:`repair`.  ``rng=None`` means ``numpy.random.default_rng(0)``, so a call
  without a generator is deterministic.
* ``greedy``: each request takes its cheapest option ignoring congestion; then
  :func:`repair` moves users to local while the decision is infeasible or an offloaded
  user would be cheaper locally under the actual congestion.
* ``fixed_steps(level)``: each request runs the fixed level (the configured level nearest
  to ``level``, ties to the lower) in its cheapest mode ignoring congestion, then the same
  congestion-aware repair.  A request with no feasible option at that level decides over
  all levels, so fixing the steps never causes an avoidable drop.
* ``local_search``: the best of ``greedy``, ``all_local`` and ``all_edge``, each improved
  by :func:`local_search` (best single-user move until none improves).

:func:`repair` ends with a drop only when none is avoidable: it first moves users that
have a local option to local, then lowers the levels of edge-only users, and drops an
edge-only user only when all of them sit at their smallest levels, which is the
configuration with the smallest ``Q`` and edge load any drop-free decision could have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from aigc_edge_env.model import Decision, OptionTable, SlotProblem, option_table

__all__ = [
    "SlotOptions",
    "Solver",
    "all_edge",
    "all_local",
    "assignment_from_decision",
    "best_heuristic",
    "edge_feasible",
    "edge_load",
    "fixed_steps",
    "greedy",
    "local_search",
    "local_search_solver",
    "penalised_cost",
    "random_solver",
    "repair",
    "slot_options",
    "to_decision",
]

#: A slot solver: ``solve(problem, rng=None) -> Decision``.
Solver = Callable[..., Decision]

#: Relative tolerance under which a cost change does not count as an improvement.
IMPROVEMENT_TOL = 1e-12


@dataclass(frozen=True, eq=False)
class SlotOptions:
    """The candidates' options of one slot (module docstring); arrays are ``(K,)`` or ``(K, L)``."""

    table: OptionTable
    users: np.ndarray  # (K,) indices of candidate users in the slot
    local_cost: np.ndarray  # (K, L) local cost, C_drop + drop_penalty where infeasible
    local_feasible: np.ndarray  # (K, L) the local option is feasible
    edge_cost: np.ndarray  # (K, L) congestion-free edge cost, +inf where infeasible alone
    max_sqrt_sum: np.ndarray  # (K, L) largest Q (sqrt-steps) meeting the deadline
    drop_penalty: float  # added per dropped candidate, larger than any spread of env costs

    @property
    def levels(self) -> np.ndarray:
        """Step levels (steps), shape ``(L,)``."""
        return self.table.steps

    @property
    def roots(self) -> np.ndarray:
        """``sqrt`` of the step levels, shape ``(L,)``."""
        return np.sqrt(self.table.steps)

    @property
    def weight(self) -> float:
        """Congestion weight ``w_T / F_E`` (cost per sqrt-step squared)."""
        return self.table.congestion_weight

    @property
    def capacity(self) -> int:
        """Edge capacity ``S^E_max`` (steps per slot)."""
        return self.table.problem.config.edge_step_capacity

    @property
    def n_candidates(self) -> int:
        return int(self.users.size)

    @property
    def has_local(self) -> np.ndarray:
        """``(K,)``: some local level is feasible."""
        return self.local_feasible.any(axis=1)

    @property
    def has_edge(self) -> np.ndarray:
        """``(K,)``: some edge level is feasible alone."""
        return np.isfinite(self.edge_cost).any(axis=1)

    @property
    def fallback_level(self) -> np.ndarray:
        """``(K,)`` cheapest local level index (0, the smallest level, where none is feasible)."""
        return np.argmin(self.local_cost, axis=1)

    @property
    def smallest_edge_level(self) -> np.ndarray:
        """``(K,)`` smallest level index feasible alone at the edge (0 where none)."""
        return np.argmax(np.isfinite(self.edge_cost), axis=1)


def slot_options(problem: SlotProblem) -> SlotOptions:
    """Build the solver view of a single slot (per-user arrays of shape ``(N,)``)."""
    if problem.has_request.ndim != 1:
        raise ValueError(f"solvers take one slot (arrays of shape (N,)), got shape {problem.has_request.shape}")
    table = option_table(problem)
    c = problem.config
    edge_alone = table.edge_feasible_alone & problem.has_request[:, None]
    local_ok = table.local_feasible & problem.has_request[:, None]
    users = np.flatnonzero(local_ok.any(axis=1) | edge_alone.any(axis=1))
    local_ok, edge_alone = local_ok[users], edge_alone[users]
    local = table.local_cost[users]
    edge = table.edge_base_cost[users]
    lowest = np.minimum(np.where(local_ok, local, np.inf).min(axis=1), np.where(edge_alone, edge, np.inf).min(axis=1))
    # Any decision's env cost over the candidates lies in [sum(lowest), K * C_drop): a
    # served request costs less than C_drop (config guarantee), congestion only adds.
    drop_penalty = float(users.size * c.drop_cost - lowest.sum() + 1.0)
    return SlotOptions(
        table=table,
        users=users,
        local_cost=np.where(local_ok, local, c.drop_cost + drop_penalty),
        local_feasible=local_ok,
        edge_cost=np.where(edge_alone, edge, np.inf),
        max_sqrt_sum=table.max_sqrt_steps_sum[users],
        drop_penalty=drop_penalty,
    )


# --- assignments -------------------------------------------------------------------------
def edge_load(opts: SlotOptions, offload: np.ndarray, level: np.ndarray) -> tuple[float, int]:
    """``(Q, S)``: sum of ``sqrt(steps)`` and of steps over the offloaded candidates."""
    return float(opts.roots[level][offload].sum()), int(opts.levels[level][offload].sum())


def edge_feasible(opts: SlotOptions, offload: np.ndarray, level: np.ndarray) -> bool:
    """Capacity and every offloaded deadline hold (each offloaded option feasible alone)."""
    q, s = edge_load(opts, offload, level)
    k = np.flatnonzero(offload)
    return bool(s <= opts.capacity and np.all(np.isfinite(opts.edge_cost[k, level[k]]))
                and np.all(opts.max_sqrt_sum[k, level[k]] >= q))


def penalised_cost(opts: SlotOptions, offload: np.ndarray, level: np.ndarray) -> float:
    """Penalised cost of an assignment (module docstring); ``inf`` if not edge-feasible."""
    if not edge_feasible(opts, offload, level):
        return float("inf")
    k = np.arange(opts.n_candidates)
    chosen = np.where(offload, opts.edge_cost[k, level], opts.local_cost[k, level])
    q, _ = edge_load(opts, offload, level)
    return float(chosen.sum() + opts.weight * q * q)


def to_decision(opts: SlotOptions, offload: np.ndarray, level: np.ndarray) -> Decision:
    """The env decision of an assignment; non-candidates run locally at the smallest level."""
    n = opts.table.problem.n_users
    full_offload = np.zeros(n, dtype=bool)
    steps = np.full(n, opts.levels[0], dtype=np.int64)
    full_offload[opts.users] = offload
    steps[opts.users] = opts.levels[level]
    return Decision(offload=full_offload, steps=steps)


def assignment_from_decision(opts: SlotOptions, decision: Decision) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' ``(offload, level)`` of a decision whose steps are configured levels."""
    steps = decision.steps[opts.users]
    level = np.searchsorted(opts.levels, steps)
    if np.any(level >= opts.levels.size) or np.any(opts.levels[np.minimum(level, opts.levels.size - 1)] != steps):
        raise ValueError(f"decision steps {steps.tolist()} are not all step levels {opts.levels.tolist()}")
    return decision.offload[opts.users].copy(), level


# --- repair and improvement ------------------------------------------------------------
def _move_gain(opts: SlotOptions, offload: np.ndarray, level: np.ndarray, local_level: np.ndarray) -> np.ndarray:
    """Cost saved by moving each offloaded candidate to ``local_level`` (``-inf`` if local)."""
    q, _ = edge_load(opts, offload, level)
    k = np.arange(opts.n_candidates)
    root = opts.roots[level]
    at_edge = opts.edge_cost[k, level] + opts.weight * (q * q - (q - root) ** 2)
    gain = at_edge - opts.local_cost[k, local_level]
    return np.where(offload, gain, -np.inf)


def _next_lower_edge_level(opts: SlotOptions, k: int, level: int) -> int:
    """The largest level below ``level`` that user ``k`` can offload alone."""
    return int(np.flatnonzero(np.isfinite(opts.edge_cost[k, :level]))[-1])


def repair(
    opts: SlotOptions,
    offload: np.ndarray,
    level: np.ndarray,
    local_level: np.ndarray | None = None,
    improve: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Make an assignment edge-feasible, dropping only when unavoidable (module docstring).

    While infeasible: move the offloaded user with a local option whose move saves most
    to ``local_level`` (default: its cheapest local level); when none is left, lower the
    level of the edge-only user with the most steps; when all sit at their smallest
    levels, drop the one whose move saves most.  With ``improve``, then keep moving the
    offloaded user that saves most while some move saves cost.  Every offloaded option
    must be feasible alone.
    """
    offload, level = offload.copy(), level.copy()
    local_level = opts.fallback_level if local_level is None else local_level
    while offload.any():
        gain = _move_gain(opts, offload, level, local_level)
        if edge_feasible(opts, offload, level):
            k = int(np.argmax(gain))
            if not (improve and gain[k] > 0.0):
                break
        elif np.any(offload & opts.has_local):
            k = int(np.argmax(np.where(opts.has_local, gain, -np.inf)))
        else:
            lowerable = offload & (level > opts.smallest_edge_level)
            if lowerable.any():
                k = int(np.argmax(np.where(lowerable, level, -1)))
                level[k] = _next_lower_edge_level(opts, k, level[k])
                continue
            k = int(np.argmax(gain))
        offload[k], level[k] = False, local_level[k]
    return offload, level


def _others_min_threshold(opts: SlotOptions, offload: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``(K,)``: smallest ``max_sqrt_steps_sum`` among the *other* offloaded candidates."""
    k = np.arange(opts.n_candidates)
    threshold = np.where(offload, opts.max_sqrt_sum[k, level], np.inf)
    if threshold.size < 2:
        return np.full(threshold.shape, np.inf)
    first, second = np.partition(threshold, 1)[:2]
    return np.where(k == np.argmin(threshold), second, first)


def local_search(
    opts: SlotOptions, offload: np.ndarray, level: np.ndarray, max_moves: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the best improving single-user move (any mode and level) until none improves.

    All ``K x 2L`` moves are scored at once: a move changes ``Q`` and the edge load, so it
    must keep the capacity, its own deadline and every other offloaded deadline.  The
    start must be edge-feasible; every state visited is.
    """
    offload, level = offload.copy(), level.copy()
    k = np.arange(opts.n_candidates)
    option_cost = np.concatenate([opts.local_cost, opts.edge_cost], axis=1)  # (K, 2L)
    option_root = np.concatenate([np.zeros(opts.levels.size), opts.roots])
    option_steps = np.concatenate([np.zeros(opts.levels.size, dtype=np.int64), opts.levels])
    option_max_q = np.concatenate([np.full(opts.local_cost.shape, np.inf), opts.max_sqrt_sum], axis=1)
    for _ in range(max_moves if max_moves is not None else 4 * opts.n_candidates * opts.levels.size):
        q, s = edge_load(opts, offload, level)
        current = np.where(offload, opts.edge_cost[k, level], opts.local_cost[k, level])
        new_q = q - np.where(offload, opts.roots[level], 0.0)[:, None] + option_root
        new_s = s - np.where(offload, opts.levels[level], 0)[:, None] + option_steps
        ok = ((new_s <= opts.capacity) & (new_q <= option_max_q)
              & (new_q <= _others_min_threshold(opts, offload, level)[:, None]))
        delta = np.where(ok, option_cost - current[:, None] + opts.weight * (new_q**2 - q * q), np.inf)
        user, option = np.unravel_index(np.argmin(delta), delta.shape)
        if not delta[user, option] < -IMPROVEMENT_TOL * (1.0 + abs(current.sum())):
            break
        offload[user], level[user] = option >= opts.levels.size, option % opts.levels.size
    return offload, level


def _descend_levels(
    opts: SlotOptions, offload: np.ndarray, level: np.ndarray, max_sweeps: int = 50
) -> np.ndarray:
    """Coordinate descent on the offloaded users' levels, keeping edge feasibility."""
    level = level.copy()
    for _ in range(max_sweeps):
        changed = False
        for k in np.flatnonzero(offload):
            q, s = edge_load(opts, offload, level)
            q_others = q - opts.roots[level[k]]
            new_q = q_others + opts.roots
            others = _others_min_threshold(opts, offload, level)[k]
            ok = ((s - opts.levels[level[k]] + opts.levels <= opts.capacity)
                  & (new_q <= opts.max_sqrt_sum[k]) & (new_q <= others))
            value = np.where(ok, opts.edge_cost[k] + opts.weight * new_q**2, np.inf)
            best = int(np.argmin(value))
            if value[best] < value[level[k]] - IMPROVEMENT_TOL * (1.0 + abs(value[level[k]])):
                level[k], changed = best, True
        if not changed:
            break
    return level


# --- the heuristics (assignments) ----------------------------------------------------------
def _cheapest_option(
    opts: SlotOptions, local_allowed: np.ndarray, edge_allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's cheapest allowed option ignoring congestion."""
    local = np.where(local_allowed, opts.local_cost, np.inf)
    edge = np.where(edge_allowed, opts.edge_cost, np.inf)
    offload = edge.min(axis=1) < local.min(axis=1)
    return offload, np.where(offload, np.argmin(edge, axis=1), np.argmin(local, axis=1))


def _greedy_assignment(opts: SlotOptions) -> tuple[np.ndarray, np.ndarray]:
    everything = np.ones(opts.local_cost.shape, dtype=bool)
    return repair(opts, *_cheapest_option(opts, everything, everything))


def _all_local_assignment(opts: SlotOptions) -> tuple[np.ndarray, np.ndarray]:
    offload = ~opts.has_local & opts.has_edge
    level = np.where(offload, np.argmin(opts.edge_cost, axis=1), opts.fallback_level)
    return repair(opts, offload, level, improve=False)


def _all_edge_assignment(opts: SlotOptions) -> tuple[np.ndarray, np.ndarray]:
    offload = opts.has_edge.copy()
    level = np.where(offload, opts.smallest_edge_level, opts.fallback_level)
    offload, level = repair(opts, offload, level, improve=False)
    return offload, _descend_levels(opts, offload, level)


def _fixed_steps_assignment(opts: SlotOptions, steps: int) -> tuple[np.ndarray, np.ndarray]:
    fixed = int(np.argmin(np.abs(opts.levels - steps)))  # nearest level, ties to the lower
    at_fixed = np.zeros(opts.local_cost.shape, dtype=bool)
    at_fixed[:, fixed] = True
    usable = (at_fixed & (opts.local_feasible | np.isfinite(opts.edge_cost))).any(axis=1, keepdims=True)
    allowed = at_fixed | ~usable  # users with nothing feasible at the fixed level choose freely
    local_level = np.where(opts.local_feasible[:, fixed], fixed, opts.fallback_level)
    return repair(opts, *_cheapest_option(opts, allowed, allowed), local_level=local_level)


def _random_assignment(opts: SlotOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    feasible = np.concatenate([opts.local_feasible, np.isfinite(opts.edge_cost)], axis=1)
    option = np.argmax(np.where(feasible, rng.random(feasible.shape), -1.0), axis=1)
    offload = option >= opts.levels.size
    return repair(opts, offload, option % opts.levels.size, improve=False)


def best_heuristic(opts: SlotOptions) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest of greedy, all-local and all-edge, each improved by :func:`local_search`."""
    starts = (_greedy_assignment(opts), _all_local_assignment(opts), _all_edge_assignment(opts))
    improved = [local_search(opts, *start) for start in starts]
    return min(improved, key=lambda assignment: penalised_cost(opts, *assignment))


# --- the solvers ---------------------------------------------------------------------------
def _solve_with(problem: SlotProblem, build: Callable[[SlotOptions], tuple[np.ndarray, np.ndarray]]) -> Decision:
    opts = slot_options(problem)
    return to_decision(opts, *build(opts))


def all_local(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Every request local at its cheapest feasible level (edge only where local cannot serve)."""
    return _solve_with(problem, _all_local_assignment)


def all_edge(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Every request offloaded where possible, levels by congestion-aware coordinate descent."""
    return _solve_with(problem, _all_edge_assignment)


def greedy(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Cheapest option per request ignoring congestion, then the congestion-aware repair."""
    return _solve_with(problem, _greedy_assignment)


def random_solver(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Uniform choice among each request's options feasible alone, then repair.

    ``rng=None`` uses ``numpy.random.default_rng(0)`` (deterministic).
    """
    generator = np.random.default_rng(0) if rng is None else rng
    return _solve_with(problem, lambda opts: _random_assignment(opts, generator))


def local_search_solver(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Best of greedy / all-local / all-edge after single-user local search."""
    return _solve_with(problem, best_heuristic)


def fixed_steps(steps: int) -> Solver:
    """A solver running every request at the level nearest ``steps`` (module docstring)."""
    if steps < 1:
        raise ValueError(f"fixed_steps needs steps >= 1, got {steps}")

    def solve(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
        return _solve_with(problem, lambda opts: _fixed_steps_assignment(opts, steps))

    solve.__name__ = f"fixed_steps_{steps}"
    solve.__doc__ = f"Every request at the level nearest {steps} steps, best mode, congestion-aware repair."
    return solve
