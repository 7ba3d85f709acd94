"""Statistics of evaluations: bootstrap intervals, the normalised score, the share of the gap closed, gaps.

**Intervals** (:func:`confidence_interval`): one method, the bootstrap over episodes
(:func:`scipy.stats.bootstrap`, 2000 resamples, BCa, or the percentile interval where BCa is
undefined).  A statistic of several policies (the normalised score, a difference or gap
to a reference) resamples their episodes together, paired by seed.  Why the bootstrap and
not a t-interval: the reported statistics include ratios of paired means (the score
``(R - R_random) / (R_exact - R_random)``, gaps to ``exact`` in percent), which the
bootstrap handles like a mean, with no delta-method formula per statistic and no normality
assumption.  Its price: with few episodes (under about 10) its intervals are narrower than
nominal (no small-sample widening); read intervals over 5 seeds as indicative.

**Normalised score**: ``(R - R_random) / (R_exact - R_random)`` of mean episode rewards (1 =
``exact``, 0 = the ``random`` feasible solver), when both reference policies were evaluated on
the same seeds.

**Share of the gap closed** (sequential scenarios, batteries): ``G = (R - R_myopic) /
(R_hindsight - R_myopic)`` of mean episode rewards, ``R_myopic`` the per-slot ``exact``
policy's and ``R_hindsight = -reward_scale * lower_bound`` of
:func:`~aigc_edge_env.baselines.hindsight_bound` on the same episodes (0 = myopic, 1 = the
certified bound, which no policy passes), with a paired interval (the three resampled
together by seed).  Both are :func:`normalised` with other references.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from aigc_edge_env.evaluation.runner import EPISODE_METRICS, PolicyResult

__all__ = [
    "GAP_REFERENCE", "SAME_MEAN_RTOL", "SCORE_REFERENCES", "confidence_interval", "mean_interval", "normalised",
    "normalised_interval", "paired_by_seed", "relative_gap_pct", "rewards_by_seed", "summarize",
]

#: The (worst, best) reference policies of the normalised score.
SCORE_REFERENCES = ("random", "exact")
#: The myopic reference of the share of the gap closed (``G = 0``; the hindsight bound is ``G = 1``).
GAP_REFERENCE = "exact"
#: Relative difference of two references' means under which :func:`normalised` is undefined.
SAME_MEAN_RTOL = 1e-9


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def confidence_interval(
    samples: Sequence[Iterable[float]],
    statistic: Callable[..., np.ndarray] = _mean,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of ``statistic(*samples, axis=-1)``, resampling the episodes (paired across samples).

    BCa when it is defined, else the percentile interval; ``(v, v)`` when every sample is
    constant (value ``v``); ``(nan, nan)`` with fewer than two episodes.
    """
    arrays = [np.asarray(list(s), dtype=float) for s in samples]
    if arrays[0].size < 2:
        return math.nan, math.nan
    if all(np.ptp(a) == 0 for a in arrays):
        value = float(statistic(*arrays, axis=-1))
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples: handled by the fallbacks
        for method in ("BCa", "percentile"):
            result = stats.bootstrap(
                arrays, statistic, paired=True, vectorized=True, confidence_level=confidence,
                method=method, n_resamples=2000, rng=np.random.default_rng(seed),
            )
            low, high = result.confidence_interval
            if np.isfinite(low) and np.isfinite(high):
                return float(low), float(high)
    return math.nan, math.nan


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """The mean of the finite ``values`` and its :func:`confidence_interval` (``nan`` for none)."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    low, high = confidence_interval([x], _mean, confidence)
    return float(x.mean()) if x.size else math.nan, low, high


def normalised(reward: np.ndarray, zero: np.ndarray, one: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(mean(reward) - mean(zero)) / (mean(one) - mean(zero))`` along ``axis``: the normalised score
    (``zero`` = random, ``one`` = exact) and the share of the gap closed ``G`` (``zero`` = the myopic
    exact, ``one`` = the hindsight bound); ``nan`` (undefined) where the means of ``one`` and ``zero`` are
    equal to :data:`SAME_MEAN_RTOL` (a bound equal to ``exact``'s return up to rounding: dividing by the
    rounding error would give a meaningless ``G`` of any size)."""
    r, lo, hi = (np.mean(x, axis=axis) for x in (reward, zero, one))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(hi - lo) > SAME_MEAN_RTOL * np.maximum(np.abs(hi), np.abs(lo)),
                        (r - lo) / (hi - lo), np.nan)


def normalised_interval(samples: Sequence[np.ndarray], confidence: float = 0.95) -> tuple[float, float, float]:
    """:func:`normalised` of ``[reward, zero, one]`` (paired by episode) and its bootstrap interval."""
    reward, zero, one = samples
    if reward.size == 0:
        return math.nan, math.nan, math.nan
    return (float(normalised(reward, zero, one)), *confidence_interval(samples, normalised, confidence))


def relative_gap_pct(cost: np.ndarray | float, reference: np.ndarray | float) -> np.ndarray:
    """``100 (cost - reference) / |reference|``, element by element (0 where the reference is 0): the gap of
    a solver's cost to a reference cost (``exact``'s optimum, or its certified lower bound)."""
    cost, reference = np.asarray(cost, dtype=float), np.asarray(reference, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference != 0, 100.0 * (cost - reference) / np.abs(reference), 0.0)


def paired_by_seed(name: str, seeds: Sequence[int], rewards: np.ndarray,
                   references: Mapping[str, Mapping[int, float]]) -> list[np.ndarray]:
    """``[rewards, *references' rewards]`` on the policy's seeds, paired by seed; ``ValueError`` naming the
    policy and the reference when a reference lacks one of the seeds (the statistic would not be paired)."""
    samples = [np.asarray(rewards, dtype=float)]
    for ref_name, by_seed in references.items():
        missing = [seed for seed in seeds if seed not in by_seed]
        if missing:
            raise ValueError(f"policy {name!r}: {ref_name} has no episode of seed(s) {missing}, so the paired "
                             "statistic is undefined; evaluate both on the same seeds")
        samples.append(np.array([by_seed[seed] for seed in seeds], dtype=float))
    return samples


def rewards_by_seed(result: PolicyResult) -> dict[int, float]:
    """``seed -> episode reward`` of one policy's result."""
    return dict(zip(result.seeds, (float(r) for r in result.episodes["reward"]), strict=True))


def summarize(results: Iterable[PolicyResult], confidence: float = 0.95,
              hindsight_rewards: Mapping[int, float] | None = None) -> list[dict[str, Any]]:
    """One row per policy: ``<metric>``, ``<metric>_low``, ``<metric>_high`` for every episode metric,
    ``decision_ms``, (when exact and random are among the results) ``score`` with its interval,
    and (when ``hindsight_rewards`` maps every seed to its hindsight return and exact is among
    the results) ``gap_closed`` (``G``) with its interval.
    """
    results = list(results)
    by_name = {r.name: r for r in results}
    score_references = {name: rewards_by_seed(by_name[name]) for name in SCORE_REFERENCES if name in by_name}
    rows = []
    for result in results:
        row: dict[str, Any] = {"policy": result.name, "episodes": len(result.seeds)}
        for metric in EPISODE_METRICS:
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = mean_interval(result.episodes[metric],
                                                                                      confidence)
        row["decision_ms"] = 1e3 * float(result.episodes["decision_s"].mean())
        rewards = result.episodes["reward"]
        if len(score_references) == len(SCORE_REFERENCES):
            samples = paired_by_seed(result.name, result.seeds, rewards, score_references)
            row["score"], row["score_low"], row["score_high"] = normalised_interval(samples, confidence)
        if hindsight_rewards is not None and GAP_REFERENCE in by_name:
            samples = paired_by_seed(result.name, result.seeds, rewards, {
                GAP_REFERENCE: rewards_by_seed(by_name[GAP_REFERENCE]), "the hindsight bound": hindsight_rewards})
            row["gap_closed"], row["gap_closed_low"], row["gap_closed_high"] = normalised_interval(samples,
                                                                                                  confidence)
        rows.append(row)
    return rows
