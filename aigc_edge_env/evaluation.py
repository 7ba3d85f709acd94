"""The evaluation engine: policies, the episode runner, episode metrics, intervals, scores, slots, writers.

Everything in the repository that plays or scores policies goes through this module:
``evaluate.py``, training's periodic evaluation, the experiments (``python -m experiments``)
and the benchmarks.  It needs only the core's dependencies (gymnasium, numpy, scipy);
progress bars use tqdm when it is installed.

**Policies.**  A :class:`Policy` has ``reset(seed)``, called by :func:`run_episode` at the
start of every episode with its seed, and ``act(env, observation) -> action``: ``env`` is
the (possibly wrapped) env whose ``unwrapped`` holds the slot (``current_problem()``),
``observation`` its latest observation, and the action is the env's ``MultiDiscrete`` slot
action.  ``reset`` lets a randomised policy seed its generator per episode (each episode's
result then depends on its seed alone) and a stateful one start afresh.  :func:`make_policy`
builds the named policies:

* ``<solver>``: a slot solver of :data:`~aigc_edge_env.baselines.SOLVERS` (:class:`SolverPolicy`);
* ``<solver>+price<λ>``: the solver with a shadow price ``λ`` per joule of device energy for
  every user (:class:`ShadowPricePolicy`), a per-user energy price of the slot problem
  (:attr:`~aigc_edge_env.model.SlotProblem.energy_price_per_j`) that the solver adds to what it
  minimises; scored with the true costs (the env's weights and drop cost are unchanged);
* ``<solver>+price<λ>(1-t/H)``: the same with a price ``λ (1 - t/H)`` that decays to 0 at the horizon;
* ``lyapunov``, ``lyapunov(V=<V>,theta=<θ>)``, ``<solver>+lyapunov(...)``: drift-plus-penalty
  with a perturbed virtual battery queue (:class:`LyapunovPolicy`), per-user prices
  ``max(θ - battery, 0) / V``; bare ``lyapunov`` takes :data:`LYAPUNOV_DEFAULTS` (tuned on
  training seeds) and ``exact``;
* ``mpc``, ``mpc(every=<k>,slots=<m>)``: ``exact`` under the prices of the hindsight dual of one
  sampled future, re-planned every ``k`` slots on ``m`` sampled slots (:mod:`aigc_edge_env.planning`);
  bare ``mpc`` takes its tuned defaults.

:class:`PricedPolicy` is the base of the priced rules; :class:`SlotPricesPolicy` plays given
prices per slot and user (the hindsight plan of :func:`~aigc_edge_env.baselines.hindsight_bound`).

Trained SB3 models implement the same protocol in :mod:`aigc_edge_env.agents.policies` (torch).

**Common slots.**  Episode ``i`` of an evaluation starts from ``reset(seed=seeds[i])``, by
default ``EVAL_SEED + i``.  Decisions never change the env's random draws (requests, sizes,
fading, harvests), so every policy meets the same slots (batteries, in the battery scenario,
follow the policy's own energy use).  :func:`collect_slots` gives those slots as
:class:`~aigc_edge_env.model.SlotProblem` objects, for solvers scored without an env.

**Episode metrics** (:data:`EPISODE_METRICS`), one definition each, from the slots' ``info``
(:class:`EpisodeAccumulator`):

* ``reward``: the sum of the env's rewards, ``-reward_scale * cost``;
* ``cost``, ``time_s`` (s), ``energy_j`` (J), ``utility``, ``n_dropped``: sums over the slots;
* ``mean_error``: the error summed over the requests served in the episode divided by the
  number of requests served (slot means weighted by the slot's ``n_served``; 0 when none);
* ``offload_share``: requests served at the edge over all requests of the episode (0 when none).

A summary over episodes (:func:`summarize`) gives each metric's mean over the episodes.

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
``exact``, 0 = ``random``), when both reference policies were evaluated on the same seeds.

**Share of the gap closed** (sequential scenarios, batteries): ``G = (R - R_myopic) /
(R_hindsight - R_myopic)`` of mean episode rewards, ``R_myopic`` the per-slot ``exact``
policy's and ``R_hindsight = -reward_scale * lower_bound`` of
:func:`~aigc_edge_env.baselines.hindsight_bound` on the same episodes (0 = myopic, 1 = the
certified bound, which no policy passes), with a paired interval (the three resampled
together by seed); :func:`summarize` computes it when given the hindsight returns.

**Writers**: :func:`markdown_table`, :func:`write_csv` (the one CSV writer), :func:`write_json`
and :func:`write_outputs` (``summary.md``, ``summary.csv``, ``results.json``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import gymnasium as gym
import numpy as np
from scipy import stats

from aigc_edge_env.baselines import SOLVERS, Solver
from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.model import Decision, DropReason, SlotProblem, evaluate_decision

__all__ = [
    "COMPONENTS", "EPISODE_METRICS", "EVAL_SEED", "GAP_REFERENCE", "LYAPUNOV_DEFAULTS", "SCORE_REFERENCES", "SUMMED",
    "Episode", "EpisodeAccumulator", "LyapunovPolicy", "Policy", "PolicyResult", "PricedPolicy", "ShadowPricePolicy",
    "SlotPricesPolicy", "SolverPolicy", "collect_slots", "confidence_interval", "evaluate_all", "evaluate_policy",
    "format_number", "gap_closed", "lyapunov_policy_name", "make_policy", "markdown_table", "mean_interval",
    "normalised_score", "price_policy_name", "priced_problem", "progress_bar", "run_episode", "summarize", "write_csv",
    "write_json", "write_outputs",
]

#: First evaluation episode seed: apart from training seeds (0...) and periodic evaluation's (1e6...).
EVAL_SEED = 10_000

#: The (worst, best) reference policies of the normalised score.
SCORE_REFERENCES = ("random", "exact")
#: The myopic reference of the share of the gap closed (``G = 0``; the hindsight bound is ``G = 1``).
GAP_REFERENCE = "exact"

#: Slot-info entries that add up over an episode.
SUMMED = ("cost", "time_s", "energy_j", "utility", "n_dropped", "n_requests", "n_served", "n_offloaded")
#: Cost components reported per episode (all but the reward).
COMPONENTS = ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped", "offload_share")
#: Everything reported per episode, reward first.
EPISODE_METRICS = ("reward",) + COMPONENTS


# --- policies ---------------------------------------------------------------------------
class Policy(Protocol):
    """A policy of the engine (see the module docstring)."""

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
        self.rng = np.random.default_rng(seed)

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        """The decision for ``problem`` (the slot whose observation is ``observation``)."""
        return self.solve(problem, rng=self.rng)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        base: Any = env.unwrapped  # an AIGCEdgeEnv
        return base.decision_to_action(self.decide(base.current_problem(), observation))


def priced_problem(problem: SlotProblem, price_per_j: float | np.ndarray) -> SlotProblem:
    """``problem`` with per-user energy prices ``price_per_j`` (cost per J, a number or one per user).

    The solvers add ``price_n * E_n`` to what they minimise
    (:attr:`~aigc_edge_env.model.SlotProblem.energy_price_per_j`); the env's costs, the drop
    cost included, are unchanged.
    """
    return dataclasses.replace(problem, energy_price_per_j=np.asarray(price_per_j, dtype=np.float64))


class PricedPolicy(SolverPolicy):
    """A solver deciding each slot under per-user energy prices set by :meth:`prices_per_j`; scored
    with the true costs (the prices never enter the env).

    ``slot_index`` counts the slots of the episode (0 at ``reset``), for rules that depend on time.
    """

    def __init__(self, solve: Solver, name: str | None = None) -> None:
        super().__init__(solve, name)
        self.slot_index = 0

    def reset(self, seed: int | None) -> None:
        super().reset(seed)
        self.slot_index = 0

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> float | np.ndarray:
        """Energy prices (cost per J, a number or one per user) for the slot ``problem``."""
        raise NotImplementedError

    def observe(self, env: Any) -> None:
        """Read what the policy needs of the env (an :class:`AIGCEdgeEnv`) beyond the slot; called by
        :meth:`act` before each decision.  The rules here need nothing."""

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        self.observe(env.unwrapped)
        return super().act(env, observation)

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        price = self.prices_per_j(problem, observation)
        self.slot_index += 1
        return self.solve(priced_problem(problem, price), rng=self.rng)


class ShadowPricePolicy(PricedPolicy):
    """A solver deciding each slot under one shadow price on energy, ``price`` or ``price (1 - t/H)``
    per J, the same for every user.

    The decaying price reads ``t / H`` from the observation's last entry (the env's documented
    time-in-episode feature): a joule kept is worth less as the episode ends.
    """

    def __init__(self, solve: Solver, price: float, decaying: bool = False, name: str | None = None) -> None:
        super().__init__(solve, name)
        self.price = price
        self.decaying = decaying

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> float:
        return self.price * (1.0 - float(observation[-1])) if self.decaying else self.price


class LyapunovPolicy(PricedPolicy):
    """Drift-plus-penalty with a perturbed virtual battery queue (Mao, Zhang, Letaief, IEEE JSAC 2016;
    LyDROO, Bi et al., IEEE TWC 2021): each slot, the solver with the energy price

        price_n = max(perturbation_j - battery_n, 0) / v_j2_per_cost     (cost per J)

    ``perturbation_j`` (theta, J) is the battery level below which energy gets a price and
    ``v_j2_per_cost`` (V, J^2 per cost unit) weighs the slot cost against the drift of the
    virtual queue ``battery - theta``: minimising ``V cost - (battery - theta) E`` is minimising
    ``cost + (theta - battery) / V * E``.  The price grows linearly as a battery falls below
    theta.  Departure from the papers: the negative part (a reward for spending a battery above
    theta) is dropped, since with scarce harvesting the battery never overflows and spending
    early buys nothing.  State across slots is the env's battery itself (read from the slot).
    """

    def __init__(self, solve: Solver, v_j2_per_cost: float, perturbation_j: float, name: str | None = None) -> None:
        if not (v_j2_per_cost > 0 and math.isfinite(v_j2_per_cost)) or not math.isfinite(perturbation_j):
            raise ValueError(f"lyapunov needs V > 0 and a finite theta, got V={v_j2_per_cost}, theta={perturbation_j}")
        super().__init__(solve, name)
        self.v_j2_per_cost = v_j2_per_cost
        self.perturbation_j = perturbation_j

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        battery_j = np.where(np.isfinite(problem.battery_j), problem.battery_j, self.perturbation_j)
        return np.maximum(self.perturbation_j - battery_j, 0.0) / self.v_j2_per_cost


class SlotPricesPolicy(PricedPolicy):
    """A plan: the solver under given prices per slot and user, ``prices_per_j[t, n]`` (cost per J).

    ``planned[t]``, when given and not ``None``, is a decision made for slot ``t`` in advance
    (by :func:`~aigc_edge_env.baselines.hindsight_bound`); it is played as it is unless the
    battery would make the env drop one of its requests, and then the solver decides.
    """

    def __init__(self, solve: Solver, prices_per_j: np.ndarray, name: str | None = None,
                 planned: Sequence[Decision | None] | None = None) -> None:
        super().__init__(solve, name)
        self.plan_prices_per_j = np.asarray(prices_per_j, dtype=np.float64)
        self.planned = planned

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        return self.plan_prices_per_j[self.slot_index]

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        decision = self.planned[self.slot_index] if self.planned is not None else None
        if decision is not None and not np.any(evaluate_decision(problem, decision).drop_reason == DropReason.BATTERY):
            self.slot_index += 1
            return decision
        return super().decide(problem, observation)


#: ``lyapunov``'s parameters, tuned on training seeds (``python -m experiments tune``; docs/results.md).
LYAPUNOV_DEFAULTS = {"V": 200.0, "theta": 130.0}

_PRICED = re.compile(r"^(?P<solver>\w+)\+price(?P<price>[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(?P<decaying>\(1-t/H\))?$")
_NUMBER = r"[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?"
_LYAPUNOV = re.compile(rf"^(?:(?P<solver>\w+)\+)?lyapunov(?:\(V=(?P<v>{_NUMBER}),theta=(?P<theta>{_NUMBER})\))?$")
_MPC = re.compile(r"^mpc(?:\(every=(?P<every>[0-9]+),slots=(?P<slots>[0-9]+)\))?$")


def price_policy_name(solver: str, price: float, decaying: bool = False) -> str:
    """The :func:`make_policy` name of ``solver`` under a (decaying) shadow price (``price`` written
    as ``{price:g}`` where that reads back as the same float, else in full)."""
    return f"{solver}+price{_number(price)}" + ("(1-t/H)" if decaying else "")


def lyapunov_policy_name(v_j2_per_cost: float, perturbation_j: float, solver: str = "exact") -> str:
    """The :func:`make_policy` name of ``lyapunov`` with the given ``V`` and ``theta``."""
    prefix = "" if solver == "exact" else f"{solver}+"
    return f"{prefix}lyapunov(V={_number(v_j2_per_cost)},theta={_number(perturbation_j)})"


def _number(value: float) -> str:
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def make_policy(name: str) -> Policy:
    """The policy called ``name``: a solver of ``SOLVERS`` or a priced solver (module docstring).

    Raises ``ValueError`` naming the accepted forms for any other name.
    """
    if name in SOLVERS:
        return SolverPolicy(SOLVERS[name], name)
    match = _PRICED.match(name)
    if match and match["solver"] in SOLVERS:
        return ShadowPricePolicy(SOLVERS[match["solver"]], float(match["price"]), bool(match["decaying"]), name)
    match = _LYAPUNOV.match(name)
    if match and (match["solver"] or "exact") in SOLVERS:
        v = float(match["v"]) if match["v"] else LYAPUNOV_DEFAULTS["V"]
        theta = float(match["theta"]) if match["theta"] else LYAPUNOV_DEFAULTS["theta"]
        return LyapunovPolicy(SOLVERS[match["solver"] or "exact"], v, theta, name)
    match = _MPC.match(name)
    if match:
        from aigc_edge_env.planning import MPC_DEFAULTS, MPCPolicy  # planning builds on this module

        every = int(match["every"]) if match["every"] else MPC_DEFAULTS["every"]
        slots = int(match["slots"]) if match["slots"] else MPC_DEFAULTS["slots"]
        return MPCPolicy(every, slots, name=name)
    raise ValueError(f"unknown policy {name!r}: accepted a solver of {list(SOLVERS)}, "
                     "'<solver>+price<λ>', '<solver>+price<λ>(1-t/H)', 'lyapunov', 'lyapunov(V=<V>,theta=<θ>)', "
                     "'mpc' or 'mpc(every=<k>,slots=<m>)'")


# --- episodes ---------------------------------------------------------------------------
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
    and per-slot series (``cost``, and whatever the probe reported before each slot's action)."""

    seed: int | None
    metrics: dict[str, float]
    per_slot: dict[str, list[float]] = field(default_factory=dict)


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
    total_reward = 0.0
    decision_time_s = 0.0
    while True:
        for name, value in (probe(env) if probe is not None else {}).items():
            per_slot.setdefault(name, []).append(float(value))
        start = time.perf_counter()
        action = policy.act(env, observation)
        decision_time_s += time.perf_counter() - start
        observation, reward, terminated, truncated, info = env.step(action)
        total_reward += float(reward)
        accumulator.add(info)
        per_slot["cost"].append(float(info["cost"]))
        if terminated or truncated:
            break
    metrics = {**accumulator.result(total_reward), "decision_s": decision_time_s / accumulator.n_slots}
    return Episode(seed, metrics, per_slot)


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
    config: Mapping[str, Any] | AIGCEdgeConfig | None, seed: int, n_slots: int, scenario: str = "AIGCEdge-v0"
) -> list[SlotProblem]:
    """The first ``n_slots`` slots from ``reset(seed=seed)``, the env stepped with a fixed action.

    The action is all local at the smallest level; an episode that ends continues with
    ``reset(seed + 1)``, then ``seed + 2``, ...  Without batteries the env's draws do not
    depend on the actions, so these are the slots every policy meets; battery configs raise
    ``ValueError``.
    """
    env = AIGCEdgeEnv(config=config, scenario=scenario)
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


# --- intervals and scores ------------------------------------------------------------------
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


def normalised_score(reward: np.ndarray, random: np.ndarray, exact: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(mean(reward) - mean(random)) / (mean(exact) - mean(random))`` along ``axis``."""
    r, lo, hi = (np.mean(x, axis=axis) for x in (reward, random, exact))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (r - lo) / (hi - lo)


def gap_closed(reward: np.ndarray, myopic: np.ndarray, hindsight: np.ndarray, axis: int = -1) -> np.ndarray:
    """``G = (mean(reward) - mean(myopic)) / (mean(hindsight) - mean(myopic))`` along ``axis``."""
    r, lo, hi = (np.mean(x, axis=axis) for x in (reward, myopic, hindsight))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (r - lo) / (hi - lo)


def summarize(results: Iterable[PolicyResult], confidence: float = 0.95,
              hindsight_rewards: Mapping[int, float] | None = None) -> list[dict[str, Any]]:
    """One row per policy: ``<metric>``, ``<metric>_low``, ``<metric>_high`` for every episode metric,
    ``decision_ms``, (when exact and random are among the results) ``score`` with its interval,
    and (when ``hindsight_rewards`` maps every seed to its hindsight return and exact is among
    the results) ``gap_closed`` (``G``) with its interval.
    """
    results = list(results)
    by_name = {r.name: r for r in results}
    references = [by_name[name] for name in SCORE_REFERENCES if name in by_name]
    rows = []
    for result in results:
        row: dict[str, Any] = {"policy": result.name, "episodes": len(result.seeds)}
        for metric in EPISODE_METRICS:
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = mean_interval(result.episodes[metric],
                                                                                      confidence)
        row["decision_ms"] = 1e3 * float(result.episodes["decision_s"].mean())
        if len(references) == len(SCORE_REFERENCES):
            if any(ref.seeds != result.seeds for ref in references):
                raise ValueError(f"policy {result.name!r} was not evaluated on the reference policies' seeds")
            samples = [result.episodes["reward"]] + [ref.episodes["reward"] for ref in references]
            row["score"] = float(normalised_score(samples[0], samples[1], samples[2]))
            row["score_low"], row["score_high"] = confidence_interval(samples, normalised_score, confidence)
        myopic = by_name.get(GAP_REFERENCE)
        if hindsight_rewards is not None and myopic is not None:
            if myopic.seeds != result.seeds or any(seed not in hindsight_rewards for seed in result.seeds):
                raise ValueError(f"policy {result.name!r}: gap_closed needs {GAP_REFERENCE} and a hindsight return "
                                 "on every seed it was evaluated on")
            samples = [result.episodes["reward"], myopic.episodes["reward"],
                       np.array([hindsight_rewards[seed] for seed in result.seeds])]
            row["gap_closed"] = float(gap_closed(samples[0], samples[1], samples[2]))
            row["gap_closed_low"], row["gap_closed_high"] = confidence_interval(samples, gap_closed, confidence)
        rows.append(row)
    return rows


# --- progress -------------------------------------------------------------------------------
class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def set_description(self, desc: str) -> None:
        return None


def progress_bar(total: int, desc: str = "", unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar (context manager with ``update`` and ``set_description``); a silent one when
    ``enabled`` is false or tqdm is not installed."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit)
    return _NoProgress()


# --- writers --------------------------------------------------------------------------------
def format_number(value: float | None) -> str:
    """Compact fixed-point text: 1 decimal from 100, 3 from 1, else 4 (``None``/``nan`` as ``n/a``)."""
    if value is None or math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    decimals = 1 if magnitude >= 100 else 3 if magnitude >= 1 else 4
    return f"{value:.{decimals}f}"


def _with_interval(row: Mapping[str, Any], key: str) -> str:
    return f"{format_number(row[key])} [{format_number(row[key + '_low'])}, {format_number(row[key + '_high'])}]"


def markdown_table(rows: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> str:
    """One line per policy: score (if computed), every episode metric with its interval, ms per decision."""
    with_score = bool(rows) and all("score" in row for row in rows)
    with_gap = bool(rows) and all("gap_closed" in row for row in rows)
    keys = (["score"] if with_score else []) + (["gap_closed"] if with_gap else []) + list(EPISODE_METRICS)
    header = ["policy"] + keys + ["ms/decision"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["policy"])] + [_with_interval(row, key) for key in keys] + [format_number(row["decision_ms"])]
        lines.append("| " + " | ".join(cells) + " |")
    n_episodes = rows[0]["episodes"] if rows else 0
    note = (f"Mean over {n_episodes} episodes [{confidence:.0%} bootstrap CI]; per-episode sums except "
            "mean_error (per served request) and offload_share (of requests); ms/decision is per slot.")
    if with_score:
        note += " score = (R - R_random) / (R_exact - R_random)."
    if with_gap:
        note += (" gap_closed = G = (R - R_exact) / (R_hindsight - R_exact), R_hindsight = -reward_scale * the "
                 "certified hindsight bound (no policy reaches G > 1).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """The rows as CSV, columns in the rows' order (the union of their keys)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, allow_nan=True))


def write_outputs(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    results: Sequence[PolicyResult],
    metadata: Mapping[str, Any],
    confidence: float = 0.95,
) -> dict[str, Path]:
    """``summary.md``, ``summary.csv`` and ``results.json`` (metadata, summary rows and every
    episode's metrics per policy) in ``out_dir``; returns their paths by kind.
    """
    paths = {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv", "json": out_dir / "results.json"}
    paths["markdown"].parent.mkdir(parents=True, exist_ok=True)
    paths["markdown"].write_text(markdown_table(rows, confidence))
    write_csv(paths["csv"], rows)
    episodes = {r.name: {"seeds": r.seeds, **{m: v.tolist() for m, v in r.episodes.items()}} for r in results}
    write_json(paths["json"], {**metadata, "confidence": confidence, "summary": list(rows), "episodes": episodes})
    return paths
