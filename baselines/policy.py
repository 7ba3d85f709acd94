"""Run a slot solver as a Gymnasium policy.

:class:`SolverPolicy` turns a solver into ``act(env) -> action``: it reads the slot the
env holds (``env.unwrapped.current_problem()``), solves it and encodes the decision as the
env's MultiDiscrete action.  :func:`run_episode` plays one episode and sums the reward
and every ``info`` component, for evaluation scripts and tests.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

import gymnasium as gym
import numpy as np

from aigc_edge_env.baselines.heuristics import Solver

__all__ = ["Policy", "SolverPolicy", "run_episode"]


class Policy(Protocol):
    """Anything that maps the env's current state to an action."""

    def act(self, env: gym.Env) -> np.ndarray: ...


class SolverPolicy:
    """A policy that solves each slot with a registered solver (by name) or any solver.

    ``seed`` seeds the ``numpy.random.Generator`` passed to the solver (the ``random``
    solver uses it; ``None`` draws fresh OS entropy).
    """

    def __init__(self, name_or_solve: str | Solver, seed: int | None = None) -> None:
        if isinstance(name_or_solve, str):
            from aigc_edge_env.baselines import SOLVERS

            if name_or_solve not in SOLVERS:
                raise ValueError(f"unknown solver {name_or_solve!r}: registered {sorted(SOLVERS)}")
            self.name, self.solve = name_or_solve, SOLVERS[name_or_solve]
        elif callable(name_or_solve):
            self.name, self.solve = getattr(name_or_solve, "__name__", repr(name_or_solve)), name_or_solve
        else:
            raise TypeError(f"name_or_solve must be a solver name or a callable, got {name_or_solve!r}")
        self.rng = np.random.default_rng(seed)

    def act(self, env: gym.Env) -> np.ndarray:
        """The action of the solver's decision for the slot ``env`` holds now."""
        base = env.unwrapped
        return base.decision_to_action(self.solve(base.current_problem(), rng=self.rng))

    def __repr__(self) -> str:
        return f"SolverPolicy({self.name!r})"


def run_episode(env: gym.Env, policy: Policy, seed: int | None) -> dict[str, float]:
    """Play one episode from ``env.reset(seed=seed)`` with ``policy.act(env)``.

    Returns the episode totals: ``reward``, ``slots`` and the sum of every numeric
    ``info`` component over the slots (e.g. ``cost``, ``energy_j``, ``n_dropped``).
    """
    env.reset(seed=seed)
    totals: dict[str, float] = defaultdict(float)
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(policy.act(env))
        totals["reward"] += float(reward)
        totals["slots"] += 1.0
        for name, value in info.items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                totals[name] += float(value)
        done = terminated or truncated
    return dict(totals)
