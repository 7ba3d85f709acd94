"""The policy protocol of the package, the slot-solver policy and the replay of stored actions.

A :class:`Policy` has ``reset(seed)``, called by the episode runner
(:func:`aigc_edge_env.evaluation.runner.run_episode`) at the start of every episode with its
seed, and ``act(env, observation) -> action``: ``env`` is the (possibly wrapped) env whose
``unwrapped`` holds the slot (``current_problem()``), ``observation`` its latest observation,
and the action is the env's ``MultiDiscrete`` slot action.  ``reset`` lets a randomised policy
seed its generator per episode (each episode's result then depends on its seed alone) and a
stateful one start afresh.

Trained SB3 models implement the same protocol in :mod:`aigc_edge_env.agents.policies` (torch);
the names every command accepts are built by :func:`aigc_edge_env.policies.registry.make_policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import gymnasium as gym
import numpy as np

from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.model import Decision, SlotProblem

if TYPE_CHECKING:
    from aigc_edge_env.baselines import Solver

__all__ = ["SOLVER_STREAM", "Policy", "ReplayPolicy", "SolverPolicy", "policy_rng"]

#: Tag of a solver policy's random stream (:func:`policy_rng`).
SOLVER_STREAM = 0x736F6C


def policy_rng(seed: int | None, stream: int) -> np.random.Generator:
    """A policy's generator for the episode of ``env.reset(seed=seed)``: ``default_rng([seed, stream])``,
    a stream apart from the env's own ``default_rng(seed)`` (with the same seed, a policy's draws would be
    the env's: the ``random`` solver's choices would follow the users' distances); fresh entropy for
    ``seed=None``."""
    return np.random.default_rng(None if seed is None else [int(seed), stream])


class Policy(Protocol):
    """A policy of the engine (module docstring)."""

    def reset(self, seed: int | None) -> None:
        """Start an episode that begins with ``env.reset(seed=seed)``."""

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        """The env action for the env's current slot."""


class SolverPolicy:
    """Solves every slot with ``solve(problem, rng=...)``; ``reset(seed)`` seeds the generator it passes."""

    def __init__(self, solve: Solver, name: str | None = None) -> None:
        self.solve = solve
        self.name = name or getattr(solve, "__name__", repr(solve))
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None) -> None:
        self.rng = policy_rng(seed, SOLVER_STREAM)

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        """The decision for ``problem`` (the slot whose observation is ``observation``)."""
        return self.solve(problem, rng=self.rng)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        base = unwrapped_env(env)
        return base.decision_to_action(self.decide(base.current_problem(), observation))




class ReplayPolicy:
    """Plays stored actions: ``actions[seed]`` is the episode's action per slot (e.g. a clairvoyant plan's,
    recorded by :func:`~aigc_edge_env.evaluation.runner.run_episode`)."""

    def __init__(self, actions: Mapping[int, np.ndarray]) -> None:
        self.actions, self.episode, self.slot = actions, np.zeros((0, 0), dtype=np.int64), 0

    def reset(self, seed: int | None) -> None:
        self.episode, self.slot = self.actions[int(seed or 0)], 0

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        self.slot += 1
        return self.episode[self.slot - 1]
