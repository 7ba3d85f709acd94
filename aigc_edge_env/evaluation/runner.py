"""The episode runner and its metrics: every policy plays the same seeded episodes.

Everything in the package that plays or scores policies goes through this module: the
``evaluate`` command, training's periodic evaluation, the experiments and the benchmarks.  It
needs only the core's dependencies (gymnasium, numpy, scipy).

**Common slots.**  Episode ``i`` of an evaluation starts from ``reset(seed=seeds[i])``, by
default ``EVAL_SEED + i``.  Decisions never change the env's random draws (requests, sizes,
fading, harvests), so every policy meets the same slots (batteries, in the battery scenario,
follow the policy's own energy use).  :mod:`aigc_edge_env.evaluation.slots` gives those slots
as optimisation problems, for solvers scored without an env.

**Episode metrics** (:data:`EPISODE_METRICS`), one definition each, from the slots' ``info``
(:class:`EpisodeAccumulator`):

* ``reward``: the sum of the env's rewards, ``-reward_scale * cost``;
* ``cost``, ``time_s`` (s), ``energy_j`` (J), ``utility``, ``n_dropped``: sums over the slots;
* ``mean_error``: the error summed over the requests served in the episode divided by the
  number of requests served (slot means weighted by the slot's ``n_served``; 0 when none);
* ``offload_share``: requests served at the edge over all requests of the episode (0 when none).

Intervals, the normalised score and the share of the gap closed are in
:mod:`aigc_edge_env.evaluation.statistics`; tables and files in :mod:`aigc_edge_env.evaluation.writers`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from aigc_edge_env.policies.base import Policy
from aigc_edge_env.progress import progress_bar

__all__ = [
    "COMPONENTS", "EPISODE_METRICS", "EVAL_SEED", "SUMMED", "Episode", "EpisodeAccumulator", "PolicyResult",
    "evaluate_all", "evaluate_policy", "run_episode",
]

#: First evaluation episode seed: apart from training seeds (0...) and periodic evaluation's (1e6...).
EVAL_SEED = 10_000

#: Slot-info entries that add up over an episode.
SUMMED = ("cost", "time_s", "energy_j", "utility", "n_dropped", "n_requests", "n_served", "n_offloaded")
#: Cost components reported per episode (all but the reward).
COMPONENTS = ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped", "offload_share")
#: Everything reported per episode, reward first.
EPISODE_METRICS = ("reward",) + COMPONENTS


class EpisodeAccumulator:
    """Adds up slot infos of one episode; :meth:`result` gives the episode's metrics."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(SUMMED, 0.0)
        self.error_sum = 0.0  # summed over served requests
        self.n_slots = 0

    def add(self, info: Mapping[str, float]) -> None:
        """Add one slot's ``info`` (the env's per-slot components, or a slot's ``SlotEvaluation.summary()``)."""
        for name in SUMMED:
            self.sums[name] += float(info[name])
        self.error_sum += float(info["mean_error"]) * float(info["n_served"])
        self.n_slots += 1

    def result(self, reward: float | None = None) -> dict[str, float]:
        """The episode's :data:`COMPONENTS`, and its ``reward`` first when given (the module docstring defines each)."""
        s = self.sums
        components = {
            "cost": s["cost"],
            "time_s": s["time_s"],
            "energy_j": s["energy_j"],
            "mean_error": self.error_sum / s["n_served"] if s["n_served"] else 0.0,
            "utility": s["utility"],
            "n_dropped": s["n_dropped"],
            "offload_share": s["n_offloaded"] / s["n_requests"] if s["n_requests"] else 0.0,
        }
        return components if reward is None else {"reward": float(reward), **components}


@dataclass
class Episode:
    """One played episode: its :data:`EPISODE_METRICS` plus ``decision_s`` (policy time per slot, s),
    per-slot series (``cost``, and whatever the probe reported before each slot's action) and the
    actions played, one per slot."""

    seed: int | None
    metrics: dict[str, float]
    per_slot: dict[str, list[float]] = field(default_factory=dict)
    actions: list[np.ndarray] = field(default_factory=list)


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int | None,
    probe: Callable[[gym.Env], Mapping[str, float]] | None = None,
) -> Episode:
    """Play one episode from ``env.reset(seed=seed)`` after ``policy.reset(seed)``.

    ``probe(env)``, when given, is read before every action; its values join ``per_slot``.
    """
    policy.reset(seed)
    observation, _ = env.reset(seed=seed)
    accumulator = EpisodeAccumulator()
    per_slot: dict[str, list[float]] = {"cost": []}
    actions: list[np.ndarray] = []
    total_reward = 0.0
    decision_time_s = 0.0
    while True:
        for name, value in (probe(env) if probe is not None else {}).items():
            per_slot.setdefault(name, []).append(float(value))
        start = time.perf_counter()
        action = policy.act(env, observation)
        decision_time_s += time.perf_counter() - start
        actions.append(np.asarray(action))
        observation, reward, terminated, truncated, info = env.step(action)
        total_reward += float(reward)
        accumulator.add(info)
        per_slot["cost"].append(float(info["cost"]))
        if terminated or truncated:
            break
    metrics = {**accumulator.result(total_reward), "decision_s": decision_time_s / accumulator.n_slots}
    return Episode(seed, metrics, per_slot, actions)


@dataclass
class PolicyResult:
    """Per-episode metrics of one policy: ``episodes[metric]`` has one value per seed;
    ``per_slot[name]`` one row per seed (the episodes' :attr:`Episode.per_slot`)."""

    name: str
    seeds: list[int]
    episodes: dict[str, np.ndarray]
    per_slot: dict[str, np.ndarray] = field(default_factory=dict)


def evaluate_policy(
    name: str,
    make_env: Callable[[], gym.Env],
    policy: Policy,
    seeds: Sequence[int],
    on_episode: Callable[[], None] | None = None,
    probe: Callable[[gym.Env], Mapping[str, float]] | None = None,
) -> PolicyResult:
    """Play one episode per seed with ``policy`` in one env (:func:`run_episode`).

    ``on_episode`` is called after each episode (progress bars).
    """
    episodes = []
    env = make_env()
    try:
        for seed in seeds:
            episodes.append(run_episode(env, policy, int(seed), probe))
            if on_episode is not None:
                on_episode()
    finally:
        env.close()
    metrics = EPISODE_METRICS + ("decision_s",)
    return PolicyResult(
        name, [int(s) for s in seeds], {m: np.array([e.metrics[m] for e in episodes]) for m in metrics},
        {k: np.array([e.per_slot[k] for e in episodes]) for k in (episodes[0].per_slot if episodes else ())},
    )


def evaluate_all(
    policies: Mapping[str, Policy],
    make_env: Callable[[], gym.Env],
    seeds: Sequence[int],
    progress: bool = True,
) -> list[PolicyResult]:
    """:func:`evaluate_policy` for every named policy on the same seeds, with a progress bar."""
    results = []
    with progress_bar(len(policies) * len(seeds), unit="episode", enabled=progress) as bar:
        for name, policy in policies.items():
            bar.set_description(name)
            results.append(evaluate_policy(name, make_env, policy, seeds, on_episode=bar.update))
    return results
