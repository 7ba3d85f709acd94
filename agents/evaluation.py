"""Evaluating policies on common seeds, with bootstrap confidence intervals and normalised scores.

Every policy plays the same episodes: episode ``i`` resets a fresh single env with seed
``seeds[i]``.  Decisions never change the env's random draws (requests, sizes, fading,
harvests), so every policy faces the same slot sequence (batteries, in the battery scenario,
follow the policy's own energy use).

Per policy and metric (:data:`~aigc_edge_env.agents.episode_stats.EPISODE_METRICS`) the
summary gives the mean over episodes and a confidence interval from
:func:`scipy.stats.bootstrap` (BCa, resampling episodes).  The normalised score
``(R - R_random) / (R_exact - R_random)`` (mean episode rewards; 1 = exact, 0 = random) gets a
paired bootstrap interval: the three policies' rewards are resampled episode by episode.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import gymnasium as gym
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from aigc_edge_env.agents.episode_stats import EPISODE_METRICS, EpisodeAccumulator
from aigc_edge_env.agents.policies import Policy

__all__ = [
    "PolicyResult", "SCORE_REFERENCES", "confidence_interval", "evaluate_all", "evaluate_policy", "normalised_score",
    "run_episode", "summarize",
]

#: The (worst, best) reference policies of the normalised score.
SCORE_REFERENCES = ("random", "exact")


def run_episode(env: gym.Env, policy: Policy, seed: int) -> dict[str, float]:
    """Play one episode from ``env.reset(seed=seed)``; its metrics plus ``decision_s`` (s per slot)."""
    observation, _ = env.reset(seed=seed)
    accumulator = EpisodeAccumulator()
    total_reward = 0.0
    decision_time_s = 0.0
    while True:
        start = time.perf_counter()
        action = policy.act(env, observation)
        decision_time_s += time.perf_counter() - start
        observation, reward, terminated, truncated, info = env.step(action)
        total_reward += float(reward)
        accumulator.add(info)
        if terminated or truncated:
            break
    return {**accumulator.result(total_reward), "decision_s": decision_time_s / accumulator.n_slots}


@dataclass
class PolicyResult:
    """Per-episode metrics of one policy: ``episodes[metric]`` has one value per seed."""

    name: str
    seeds: list[int]
    episodes: dict[str, np.ndarray]


def evaluate_policy(
    name: str,
    make_env: Callable[[], gym.Env],
    make_policy: Callable[[int], Policy],
    seeds: Sequence[int],
    on_episode: Callable[[], None] | None = None,
) -> PolicyResult:
    """Play one episode per seed, with the policy ``make_policy(seed)``, in one env.

    Building the policy per episode lets randomised policies (the ``random`` solver) seed
    their generator with the episode's seed, so each episode's result depends on its seed
    alone.  ``on_episode`` is called after each episode (progress bars).
    """
    rows = []
    env = make_env()
    try:
        for seed in seeds:
            rows.append(run_episode(env, make_policy(int(seed)), int(seed)))
            if on_episode is not None:
                on_episode()
    finally:
        env.close()
    metrics = EPISODE_METRICS + ("decision_s",)
    return PolicyResult(name, [int(s) for s in seeds], {m: np.array([row[m] for row in rows]) for m in metrics})


def evaluate_all(
    policies: Mapping[str, Callable[[int], Policy]],
    make_env: Callable[[], gym.Env],
    seeds: Sequence[int],
    progress: bool = True,
) -> list[PolicyResult]:
    """:func:`evaluate_policy` for every named policy factory on the same seeds, with a progress bar."""
    results = []
    with tqdm(total=len(policies) * len(seeds), disable=not progress, unit="episode") as bar:
        for name, make_policy in policies.items():
            bar.set_description(name)
            results.append(evaluate_policy(name, make_env, make_policy, seeds, on_episode=lambda: bar.update()))
    return results


def confidence_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of ``statistic(*samples, axis=-1)`` over paired resamples of the episodes.

    BCa when it is defined, else the percentile interval; ``(v, v)`` when every resample gives
    the same value ``v``; ``(nan, nan)`` with fewer than two episodes.
    """
    samples = [np.asarray(s, dtype=float) for s in samples]
    if samples[0].size < 2:
        return float("nan"), float("nan")
    if all(np.ptp(s) == 0 for s in samples):
        value = float(statistic(*samples, axis=-1))
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples: handled by the fallbacks
        for method in ("BCa", "percentile"):
            result = stats.bootstrap(
                samples, statistic, paired=True, vectorized=True, confidence_level=confidence,
                method=method, n_resamples=2000, rng=np.random.default_rng(seed),
            )
            low, high = result.confidence_interval
            if np.isfinite(low) and np.isfinite(high):
                return float(low), float(high)
    return float("nan"), float("nan")


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def normalised_score(reward: np.ndarray, random: np.ndarray, exact: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(mean(reward) - mean(random)) / (mean(exact) - mean(random))`` along ``axis``."""
    r, lo, hi = (np.mean(x, axis=axis) for x in (reward, random, exact))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (r - lo) / (hi - lo)


def summarize(results: Iterable[PolicyResult], confidence: float = 0.95) -> list[dict[str, float | str]]:
    """One row per policy: ``<metric>``, ``<metric>_low``, ``<metric>_high`` for every episode metric,
    ``decision_ms``, and (when exact and random are among the results) ``score`` with its interval.
    """
    results = list(results)
    by_name = {r.name: r for r in results}
    references = [by_name.get(name) for name in SCORE_REFERENCES]
    rows = []
    for result in results:
        row: dict[str, float | str] = {"policy": result.name, "episodes": len(result.seeds)}
        for metric in EPISODE_METRICS:
            values = result.episodes[metric]
            row[metric] = float(values.mean())
            row[f"{metric}_low"], row[f"{metric}_high"] = confidence_interval([values], _mean, confidence)
        row["decision_ms"] = 1e3 * float(result.episodes["decision_s"].mean())
        if all(ref is not None for ref in references):
            if any(ref.seeds != result.seeds for ref in references):
                raise ValueError(f"policy {result.name!r} was not evaluated on the reference policies' seeds")
            samples = [result.episodes["reward"]] + [ref.episodes["reward"] for ref in references]
            row["score"] = float(normalised_score(*samples))
            row["score_low"], row["score_high"] = confidence_interval(samples, normalised_score, confidence)
        rows.append(row)
    return rows
