"""Slot solvers (installed as ``aigc_edge_env.baselines``).

:data:`SOLVERS` maps a name to ``solve(problem, rng=None) -> Decision`` for one
:class:`~aigc_edge_env.model.SlotProblem`; every solver decides over the config's step
levels and serves every request it can (no avoidable drop).  :func:`lower_bound` is a
certified lower bound on a slot's optimal cost and :func:`solve_exact` returns the exact
solver's decision with its cost, bound and optimality proof; :func:`solve_many` does the same
for many slots, or one slot under many energy prices, at once.

* ``exact`` (:mod:`.exact`): the optimum, by a dynamic programme over the edge's step multisets.
* ``sca_kkt`` (:mod:`.sca_kkt`): the paper's SCA + KKT method.
* ``greedy``, ``all_local``, ``all_edge``, ``random``, ``local_search``,
  ``fixed_steps_10``, ``fixed_steps_20`` (:mod:`.heuristics`).

Every solver honours per-user energy prices (``SlotProblem.energy_price_per_j``, :mod:`.options`).
:func:`hindsight_bound` (:mod:`.hindsight`) bounds a whole episode's cost, batteries included,
below every policy, with a clairvoyant plan that nearly meets the bound.
"""

from __future__ import annotations

if __name__ != "aigc_edge_env.baselines":  # the repository's top-level folder, imported by its own name
    raise ImportError(f"the baselines/ folder is installed as aigc_edge_env.baselines: import "
                      f"aigc_edge_env.baselines, not {__name__} (it would load a second copy of every module)")


from aigc_edge_env.baselines import exact, sca_kkt
from aigc_edge_env.baselines.bound import lagrangian_bound, lower_bound
from aigc_edge_env.baselines.exact import ExactResult, solve_exact, solve_many
from aigc_edge_env.baselines.heuristics import (
    Solver,
    all_edge,
    all_local,
    fixed_steps,
    greedy,
    local_search_solver,
    random_solver,
)
from aigc_edge_env.baselines.hindsight import HindsightBound, cached_hindsight_bound, hindsight_bound
from aigc_edge_env.baselines.information_relaxation import OnlineBound, online_bound

__all__ = [
    "ExactResult", "HindsightBound", "OnlineBound", "SOLVERS", "Solver", "cached_hindsight_bound", "fixed_steps",
    "hindsight_bound", "lagrangian_bound", "lower_bound", "online_bound", "solve_exact", "solve_many",
]

#: Registered slot solvers: name -> ``solve(problem, rng=None) -> Decision``.
SOLVERS: dict[str, Solver] = {
    "exact": exact.solve,
    "sca_kkt": sca_kkt.solve,
    "greedy": greedy,
    "all_local": all_local,
    "all_edge": all_edge,
    "random": random_solver,
    "local_search": local_search_solver,
    "fixed_steps_10": fixed_steps(10),
    "fixed_steps_20": fixed_steps(20),
}

