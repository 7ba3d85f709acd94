"""Heuristic slot solvers (each ``solve(problem, rng=None) -> Decision``).

They work on the solver view of :mod:`.options` (candidates, penalised option costs, a
choice of one option per candidate), with the one repair of :mod:`.repair` and the one
local search of :mod:`.local_search`.

* ``all_local``: every request on its device at its cheapest feasible level; a request
  no device level can serve (deadline, battery) is offloaded at its cheapest edge level.
* ``all_edge``: every request that can be offloaded is, starting at its smallest level;
  :func:`~.repair.repair` restores feasibility, then coordinate descent on the levels
  minimises the congestion-aware cost (each user in turn takes its best level given the others).
* ``random``: each request takes an option drawn uniformly from those feasible alone,
  then the repair.  ``rng=None`` means ``numpy.random.default_rng(0)``, so a call
  without a generator is deterministic.
* ``greedy``: each request takes its cheapest option ignoring congestion; then the
  repair moves users to local while the decision is infeasible or an offloaded user
  would be cheaper locally under the actual congestion.
* ``fixed_steps(level)``: each request runs the fixed level (the configured level nearest
  to ``level``, ties to the lower) in its cheapest mode ignoring congestion, then the same
  congestion-aware repair.  A request with no feasible option at that level decides over
  all levels, so fixing the steps never causes an avoidable drop.
* ``local_search``: the best of ``greedy``, ``all_local`` and ``all_edge``, each improved
  by the local search's single-user moves until none improves.

The repair ends with a drop only when none is avoidable, so no heuristic drops a request
when a drop-free decision exists.  With energy prices every heuristic works on the priced
option costs, where a drop is an option at ``C_drop`` (:mod:`.options`): it may then drop a
request whose every way of being served costs more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aigc_edge_env.baselines.local_search import descend_edge_levels, local_search
from aigc_edge_env.baselines.options import SlotOptions, slot_options
from aigc_edge_env.baselines.repair import repair
from aigc_edge_env.checks import count_option
from aigc_edge_env.model import Decision, SlotProblem

__all__ = [
    "Solver",
    "all_edge",
    "all_local",
    "best_heuristic",
    "fixed_steps",
    "greedy",
    "local_search_solver",
    "random_solver",
]

#: A slot solver: ``solve(problem, rng=None) -> Decision``.
Solver = Callable[..., Decision]


# --- the heuristics (choices) ---------------------------------------------------------------
def _cheapest_option(opts: SlotOptions, allowed: np.ndarray) -> np.ndarray:
    """Each candidate's cheapest allowed option ignoring congestion (the device on a tie)."""
    local = np.where(allowed, opts.penalised_local_cost, np.inf)
    edge = np.where(allowed, opts.penalised_edge_cost, np.inf)
    offload = edge.min(axis=1) < local.min(axis=1)
    return np.where(offload, opts.n_levels + np.argmin(edge, axis=1), np.argmin(local, axis=1))


def _greedy_choice(opts: SlotOptions) -> np.ndarray:
    return repair(opts, _cheapest_option(opts, np.ones(opts.penalised_local_cost.shape, dtype=bool)), improve=True)


def _all_local_choice(opts: SlotOptions) -> np.ndarray:
    offload = ~opts.has_local & opts.has_edge
    return repair(opts, np.where(offload, opts.n_levels + np.argmin(opts.penalised_edge_cost, axis=1), opts.fallback))


def _all_edge_choice(opts: SlotOptions) -> np.ndarray:
    return descend_edge_levels(opts, repair(opts, np.where(opts.has_edge, opts.smallest_edge, opts.fallback)))


def _fixed_steps_choice(opts: SlotOptions, steps: int) -> np.ndarray:
    fixed = int(np.argmin(np.abs(opts.levels - steps)))  # nearest level, ties to the lower
    at_fixed = np.zeros(opts.penalised_local_cost.shape, dtype=bool)
    at_fixed[:, fixed] = True
    usable = (at_fixed & (opts.local_feasible | opts.edge_feasible_alone)).any(axis=1, keepdims=True)
    allowed = at_fixed | ~usable  # users with nothing feasible at the fixed level choose freely
    fallback = np.where(opts.local_feasible[:, fixed], fixed, opts.fallback)
    return repair(opts, _cheapest_option(opts, allowed), fallback=fallback, improve=True)


def _random_choice(opts: SlotOptions, rng: np.random.Generator) -> np.ndarray:
    return repair(opts, np.argmax(np.where(opts.feasible, rng.random(opts.feasible.shape), -1.0), axis=1))


def best_heuristic(opts: SlotOptions) -> np.ndarray:
    """The cheapest of greedy, all-local and all-edge, each improved by the single-move local search."""
    starts = (_greedy_choice(opts), _all_local_choice(opts), _all_edge_choice(opts))
    return local_search(opts, starts)


# --- the solvers ---------------------------------------------------------------------------
def _solve_with(problem: SlotProblem, build: Callable[[SlotOptions], np.ndarray]) -> Decision:
    opts = slot_options(problem)
    return opts.decision(build(opts))


def all_local(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Every request local at its cheapest feasible level (edge only where local cannot serve)."""
    return _solve_with(problem, _all_local_choice)


def all_edge(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Every request offloaded where possible, levels by congestion-aware coordinate descent."""
    return _solve_with(problem, _all_edge_choice)


def greedy(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Cheapest option per request ignoring congestion, then the congestion-aware repair."""
    return _solve_with(problem, _greedy_choice)


def random_solver(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Uniform choice among each request's options feasible alone, then repair.

    ``rng=None`` uses ``numpy.random.default_rng(0)`` (deterministic).
    """
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (numpy.random.default_rng(seed)) or None, got {rng!r}")
    generator = np.random.default_rng(0) if rng is None else rng
    return _solve_with(problem, lambda opts: _random_choice(opts, generator))


def local_search_solver(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """Best of greedy / all-local / all-edge after single-user local search."""
    return _solve_with(problem, best_heuristic)


def fixed_steps(steps: int) -> Solver:
    """A solver running every request at the level nearest ``steps`` (module docstring)."""
    count_option("fixed_steps's steps", steps, 1)

    def solve(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
        return _solve_with(problem, lambda opts: _fixed_steps_choice(opts, steps))

    solve.__name__ = f"fixed_steps_{steps}"
    solve.__doc__ = f"Every request at the level nearest {steps} steps, best mode, congestion-aware repair."
    return solve
