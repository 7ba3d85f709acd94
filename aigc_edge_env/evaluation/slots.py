"""Slots as optimisation problems: the slots every policy meets, and every named solver on them.

Without batteries the env's draws do not depend on the actions, so the first slots of
``reset(seed)`` (:func:`collect_slots`) are the slots any policy of the episode runner meets;
:func:`solve_slots` plays every named slot solver on them (the experiments' sweeps and the solver
benchmarks), each decision evaluated with :func:`~aigc_edge_env.model.evaluate_decision`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.model import Decision, SlotEvaluation, SlotProblem, evaluate_decision
from aigc_edge_env.policies.base import SOLVER_STREAM

__all__ = ["SlotResult", "collect_slots", "solve_slots"]


def collect_slots(
    config: Mapping[str, Any] | AIGCEdgeConfig | None, seed: int, n_slots: int, env_id: str = "AIGCEdge-v0"
) -> list[SlotProblem]:
    """The first ``n_slots`` slots from ``reset(seed=seed)``, the env stepped with a fixed action.

    The action is all local at the smallest level; an episode that ends continues with
    ``reset(seed + 1)``, then ``seed + 2``, ...  Without batteries the env's draws do not
    depend on the actions, so these are the slots every policy meets; battery configs raise
    ``ValueError``.
    """
    env = AIGCEdgeEnv(config=config, env_id=env_id)
    if env.config.battery_enabled:
        raise ValueError("collecting slots needs a battery-free config (decisions would change later slots)")
    env.reset(seed=int(seed))
    fixed = np.zeros(2 * env.config.n_users, dtype=np.int64)  # offload bits, then level indices
    problems: list[SlotProblem] = []
    episode = 0
    while len(problems) < n_slots:
        problems.append(env.current_problem())
        if env.step(fixed)[3]:
            episode += 1
            env.reset(seed=int(seed) + episode)
    return problems



@dataclass
class SlotResult:
    """One solver's decision of one slot, its evaluation and its solve time (s)."""

    decision: Decision
    evaluation: SlotEvaluation
    solve_s: float

    @property
    def cost(self) -> float:
        return float(self.evaluation.total_cost)


def solve_slots(problems: Sequence[SlotProblem], solvers: Sequence[str], seed: int = 0
                ) -> list[dict[str, SlotResult]]:
    """Every named solver of :data:`~aigc_edge_env.baselines.SOLVERS` on every slot: per slot, solver ->
    :class:`SlotResult`.  Solver ``s`` on slot ``t`` draws from ``default_rng([seed, SOLVER_STREAM, t])``
    (the same generator for every solver, apart from the env's ``default_rng(seed)``:
    :func:`~aigc_edge_env.policies.base.policy_rng`)."""
    from aigc_edge_env.baselines import SOLVERS

    unknown = [name for name in solvers if name not in SOLVERS]
    if unknown:
        raise ValueError(f"unknown solver(s) {unknown}: accepted {list(SOLVERS)}")
    results = []
    for t, problem in enumerate(problems):
        slot = {}
        for name in solvers:
            rng = np.random.default_rng([int(seed), SOLVER_STREAM, t])
            start = time.perf_counter()
            decision = SOLVERS[name](problem, rng=rng)
            solve_s = time.perf_counter() - start
            slot[name] = SlotResult(decision, evaluate_decision(problem, decision), solve_s)
        results.append(slot)
    return results
