"""The episode runner and its metrics: every policy plays the same seeded episodes.

Everything in the package that plays or scores policies goes through this module: the
``evaluate`` command, training's periodic evaluation, the experiments and the benchmarks.  It
needs only the core's dependencies (gymnasium, numpy, scipy).

**Common slots.**  Episode ``i`` of an evaluation starts from ``reset(seed=seeds[i])``, by
default ``EVAL_SEED + i``.  Decisions never change the env's random draws (requests, sizes,
fading, harvests), so every policy meets the same slots (batteries, in the battery scenario,
follow the policy's own energy use).  :func:`collect_slots` gives those slots as
:class:`~aigc_edge_env.model.SlotProblem` objects, for solvers scored without an env, and
:func:`solve_slots` plays every named solver on them.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.model import Decision, SlotEvaluation, SlotProblem, evaluate_decision
from aigc_edge_env.policies.base import Policy
from aigc_edge_env.progress import progress_bar

if TYPE_CHECKING:
    from aigc_edge_env.baselines import HindsightBound

__all__ = [
    "COMPONENTS", "EPISODE_METRICS", "EVAL_SEED", "SUMMED", "Episode", "EpisodeAccumulator", "PolicyResult",
    "SlotResult", "collect_slots", "evaluate_all", "evaluate_policy", "hindsight_bounds", "run_episode",
    "solve_slots",
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


def collect_slots(
    config: Mapping[str, Any] | AIGCEdgeConfig | None, seed: int, n_slots: int, env_id: str = "AIGCEdge-v0"
) -> list[SlotProblem]:
    """The first ``n_slots`` slots from ``reset(seed=seed)``, the env stepped with a fixed action.

    The action is all local at the smallest level; an episode that ends continues with
    ``reset(seed + 1)``, then ``seed + 2``, ...  Without batteries the env's draws do not
    depend on the actions, so these are the slots every policy meets; battery configs raise
    ``ValueError``.
    """
    env = AIGCEdgeEnv(config=config, scenario=env_id)
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
    :class:`SlotResult`.  Solver ``s`` on slot ``t`` draws from ``default_rng([seed, t])`` (the same
    generator for every solver)."""
    from aigc_edge_env.baselines import SOLVERS

    unknown = [name for name in solvers if name not in SOLVERS]
    if unknown:
        raise ValueError(f"unknown solver(s) {unknown}: accepted {list(SOLVERS)}")
    results = []
    for t, problem in enumerate(problems):
        slot = {}
        for name in solvers:
            rng = np.random.default_rng([int(seed), t])
            start = time.perf_counter()
            decision = SOLVERS[name](problem, rng=rng)
            solve_s = time.perf_counter() - start
            slot[name] = SlotResult(decision, evaluate_decision(problem, decision), solve_s)
        results.append(slot)
    return results


def hindsight_bounds(env_id: str, seeds: Sequence[int], config: Mapping[str, Any] | None,
                     cache_dir: Path | None, workers: int | None = 1, address: str | None = None,
                     progress: bool = True) -> dict[int, HindsightBound]:
    """The hindsight bound of every seed's episode: read from ``cache_dir`` where it is, the others
    computed as tasks (:func:`aigc_edge_env.distributed.parallel_map`; ``workers=1`` and no address:
    here, without Ray) and stored there by this process (so the cache stays where the command runs,
    whichever node computed)."""
    from aigc_edge_env.baselines.hindsight import cached_hindsight_bound, hindsight_cache_path, write_hindsight_cache
    from aigc_edge_env.distributed import parallel_map

    overrides = dict(config or {})
    paths = {s: hindsight_cache_path(env_id, s, overrides, cache_dir) for s in seeds} if cache_dir else {}
    bounds = {s: cached_hindsight_bound(env_id, s, overrides, cache_dir) for s, p in paths.items() if p.exists()}
    missing = [s for s in seeds if s not in bounds]
    tasks = [(env_id, s, overrides) for s in missing]
    for bound in parallel_map(_hindsight_task, tasks, workers, address, progress, desc="hindsight bounds",
                              unit="episode"):
        bounds[bound.seed] = bound
        if cache_dir:
            write_hindsight_cache(paths[bound.seed], bound)
    return {s: bounds[s] for s in seeds}


def _hindsight_task(args: tuple[str, int, dict[str, Any]]) -> HindsightBound:
    from aigc_edge_env.baselines.hindsight import hindsight_bound

    env_id, seed, overrides = args
    return hindsight_bound(env_id, seed, overrides)
