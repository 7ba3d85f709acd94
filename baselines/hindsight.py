"""A certified hindsight bound on an episode's cost, and a clairvoyant plan that nearly meets it.

:func:`hindsight_bound` takes the episode that ``env.reset(seed)`` draws and returns a lower
bound on its total cost that no policy can beat, not even one that knows the future, with
the cost of a feasible plan played through the env, so the gap between them is stated.

The episode
-----------
Channels, requests and harvests do not depend on the actions, so the whole episode is
known in hindsight: :func:`episode_slots` draws it exactly as the env does (the env's
generator from ``reset(seed)``, :func:`~aigc_edge_env.dynamics.reset_state`, then
:func:`~aigc_edge_env.dynamics.draw_slots` for the horizon; tested against stepping the
env).  Only the batteries depend on the decisions.

The bound (Lagrangian relaxation of the batteries)
--------------------------------------------------
Write ``b_n`` for the battery (J), ``E_{n,t}`` for user ``n``'s device energy in slot ``t``
and ``h_{n,t}`` for the energy harvested on entering slot ``t``.  The env serves a request
only if its energy fits the battery, and ``b_{n,t+1} = min(cap, b_{n,t} - E_{n,t} + h_{n,t+1})``.

1. *Relaxation.*  Drop the cap: by induction ``b_{n,t} <= b_{n,0} + sum_{1<=k<=t} h_{n,k} -
   sum_{tau<t} E_{n,tau}``, so every real trajectory (drops included, capped, repaired)
   satisfies the prefix constraints ``sum_{tau<=t} E_{n,tau} <= B_{n,t} := b_{n,0} +
   sum_{1<=k<=t} h_{n,k}`` with the same cost.  The relaxed episode is the slot problems
   *without* batteries plus these constraints.
2. *Dual.*  Price them with ``lambda_{n,t} >= 0``.  For fixed multipliers the episode
   separates into slot problems with per-user energy prices
   ``pi_{n,t} = sum_{t'>=t} lambda_{n,t'}`` (so ``pi`` is non-increasing in ``t`` and ``>= 0``,
   and every such ``pi`` comes from some ``lambda >= 0``)::

       L(pi) = sum_t LB_t(pi_t) - sum_{n,t} pi_{n,t} (B_{n,t} - B_{n,t-1}),     B_{n,-1} = 0,

   where ``LB_t(pi_t)`` is a certified lower bound on the priced slot problem
   ``min over all decisions of slot cost + sum_n pi_{n,t} E_{n,t}`` (drops included, at
   ``C_drop`` and no energy): :func:`~.exact.solve_exact` with drops as options, whose bound
   holds for every decision.  ``L(pi) <= cost of every real trajectory`` for every such ``pi``:
   the bound is valid whatever the optimiser below reaches.
3. *Maximising L* (column generation with dual smoothing).  The master LP chooses, per
   slot, a convex combination of known decisions (columns: cost, energy per user) under the
   prefix constraints (written with cumulative-energy variables ``S_{n,t}``, bounds
   ``S_{n,t} <= B_{n,t}``); its equality duals are prices ``pi`` (non-increasing, ``>= 0``) and
   its value is at least ``max L``.  Each round prices every slot out exactly at the
   smoothed point ``alpha pi_best + (1 - alpha) pi_master`` (Wentges' smoothing), adds the
   decisions as columns, and keeps the ``pi`` with the best ``L``.  It stops when the master
   value and the best bound meet within ``tolerance`` (relative), at ``max_rounds``, or, only if
   one is given, when a wall-clock budget is spent (off by default: a budget makes the bound
   depend on the machine's load; the episodes of docs/results.md converge in 9-12 rounds).
   Initial columns: each slot's optimum at a few uniform prices, and dropping every request
   (energy 0, so the master is always feasible).

The plan
--------
The real env (real dynamics, batteries capped, the repair rule) is played by ``exact``
under clairvoyant prices, in :data:`PLAN_VARIANTS` ways, and ``plan_cost`` is the cheapest
episode, a feasible clairvoyant plan (its actions are kept; replaying them gives the same
cost): the prices ``pi`` of the best bound scaled by each of ``plan_scales``; the master's
last prices and the mean of the two; and the master's own plan, which plays each slot's
decision where the master LP picks one column alone (unless the battery would make the env
drop one of its requests), else ``exact`` under ``pi``.  Prices at the dual optimum leave
users indifferent between options that the LP mixes, so which variant wins varies by
episode (measured in ``docs/results.md``); the cap's losses were negligible.
``gap = plan_cost - lower_bound``.  The variants are played in lockstep, each slot's ``exact``
solves in one :func:`~.exact.solve_many` call (the same decisions as one by one).

Without batteries the constraints vanish: ``pi = 0``, the bound is the sum of the slots'
certified optima and the plan is the per-slot ``exact`` policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sparse
from gymnasium.utils import seeding
from scipy.optimize import linprog

from aigc_edge_env import dynamics
from aigc_edge_env.baselines.exact import solve_exact, solve_many
from aigc_edge_env.checks import count_option, is_finite_number, positive_option
from aigc_edge_env.config import AIGCEdgeConfig, make_config
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.evaluation.runner import EpisodeAccumulator
from aigc_edge_env.files import write_atomic
from aigc_edge_env.model import Decision, DropReason, SlotProblem, evaluate_decision
from aigc_edge_env.policies.pricing import priced_problem

__all__ = ["INITIAL_PRICES_PER_J", "DualResult", "EpisodeSlots", "HindsightBound", "cached_hindsight_bound",
           "dual_bound", "episode_slots", "hindsight_bound", "hindsight_bounds", "hindsight_cache_path",
           "maximise_dual", "relaxed_episode", "write_hindsight_cache"]

#: Uniform prices (cost per J) whose slot optima are the initial columns.
INITIAL_PRICES_PER_J = (0.0, 0.3, 1.0)
#: Weight of the best prices in the smoothed pricing point (Wentges).
SMOOTHING = 0.5
#: Scales of the clairvoyant prices tried by the plan.
PLAN_SCALES = (1.0, 0.98, 1.02)
#: Version of the method, part of the cache key (bump when the numbers may change).  2: no
#: wall-clock budget by default (bounds cached under version 1 may have stopped early on a loaded
#: machine).
METHOD_VERSION = 2


@dataclass(frozen=True, eq=False)
class EpisodeSlots:
    """An episode in hindsight: its slots without batteries and the energy that becomes available.

    ``problems[t]`` is slot ``t`` with ``battery_j = inf``; ``available_j[t, n]`` is
    ``B_{n,t} - B_{n,t-1}``: the initial battery for ``t = 0``, the harvest on entering
    slot ``t`` after (J); ``None`` without batteries.
    """

    config: AIGCEdgeConfig
    problems: list[SlotProblem]
    available_j: np.ndarray | None
    initial_battery_j: np.ndarray | None


def episode_slots(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None = None) -> EpisodeSlots:
    """The slots and harvests of the episode ``AIGCEdgeEnv(config, env_id=env_id).reset(seed=seed)`` draws."""
    c = make_config(env_id, config)
    rng, _ = seeding.np_random(int(seed))  # the env's generator after reset(seed)
    state = dynamics.reset_state(c, rng, n_systems=None)
    battery_j = state.battery_j.copy()
    slots, harvest_j = dynamics.draw_slots(c, state, rng, c.horizon_slots, first_is_current=True)
    return relaxed_episode([slots.select(t) for t in range(c.horizon_slots)],
                           None if harvest_j is None else harvest_j[1:], battery_j if c.battery_enabled else None)


def relaxed_episode(problems: Sequence[SlotProblem], harvest_j: np.ndarray | None,
                    battery_j: np.ndarray | None) -> EpisodeSlots:
    """The :class:`EpisodeSlots` of slots ``problems`` (their batteries removed) that start with
    ``battery_j`` (J, per user) and harvest ``harvest_j[k - 1]`` on entering slot ``k`` (shape
    ``(len(problems) - 1, N)``); both ``None`` without batteries."""
    config = problems[0].config
    no_battery = np.full(config.n_users, np.inf)
    relaxed = [dataclasses.replace(problem, battery_j=no_battery) for problem in problems]
    if battery_j is None or harvest_j is None:
        return EpisodeSlots(config, relaxed, None, None)
    battery = np.array(battery_j, dtype=np.float64)
    available = np.concatenate([battery[None], np.asarray(harvest_j, dtype=np.float64).reshape(-1, len(battery))])
    return EpisodeSlots(config, relaxed, available, battery)


@dataclass(frozen=True, eq=False)
class HindsightBound:
    """Result of :func:`hindsight_bound` (costs in the env's cost units, per episode).

    ``lower_bound`` is certified: no policy's episode cost is lower.  ``plan_cost`` is the
    episode cost of a feasible clairvoyant plan (``plan_actions``, one env action per slot;
    ``plan`` names its variant).  ``prices_per_j[t, n]`` are the prices of the best bound;
    ``slot_bounds[t]`` their ``LB_t``; ``dual_upper`` the final master value (``>= max L``: the
    bound method's own gap); ``rounds`` the pricing rounds after the initial ones; ``bound_s``
    the seconds spent on the bound, ``elapsed_s`` in all (plan included).
    """

    env_id: str
    seed: int
    lower_bound: float
    plan_cost: float
    prices_per_j: np.ndarray
    slot_bounds: np.ndarray
    dual_upper: float
    rounds: int
    plan: str  # the winning variant of the plan (module docstring)
    plan_actions: np.ndarray
    bound_s: float
    elapsed_s: float

    @property
    def gap(self) -> float:
        """``plan_cost - lower_bound`` (>= 0, cost units)."""
        return self.plan_cost - self.lower_bound

    @property
    def relative_gap(self) -> float:
        """``gap`` as a share of the plan's cost."""
        return self.gap / abs(self.plan_cost) if self.plan_cost else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (arrays as nested lists), with ``gap`` and ``relative_gap``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(gap=self.gap, relative_gap=self.relative_gap)
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HindsightBound:
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: np.asarray(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**values)


@dataclass
class _Columns:
    """The master's columns: per column its slot, cost, energy per user (J) and decision (None: drop all)."""

    slot: list[int] = dataclasses.field(default_factory=list)
    cost: list[float] = dataclasses.field(default_factory=list)
    energy_j: list[np.ndarray] = dataclasses.field(default_factory=list)
    decisions: list[Decision | None] = dataclasses.field(default_factory=list)
    seen: set[tuple[int, bytes]] = dataclasses.field(default_factory=set)

    def add(self, slot: int, cost: float, energy_j: np.ndarray, decision: Decision | None) -> None:
        key = (slot, np.round(energy_j, 12).tobytes() + np.float64(round(cost, 9)).tobytes())
        if key not in self.seen:
            self.seen.add(key)
            self.slot.append(slot)
            self.cost.append(cost)
            self.energy_j.append(energy_j)
            self.decisions.append(decision)


@dataclass(frozen=True, eq=False)
class _Master:
    """A master LP solution: its value, its prices ``(T, N)`` and the columns' weights."""

    value: float
    prices_per_j: np.ndarray
    weights: np.ndarray


def _solve_master(columns: _Columns, cumulative_j: np.ndarray) -> _Master:
    """The master LP over ``columns`` with ``S_{n,t} <= cumulative_j[t, n]`` (module docstring, step 3)."""
    n_slots, n_users = cumulative_j.shape
    n_columns = len(columns.slot)
    slot = np.asarray(columns.slot)
    energy = np.asarray(columns.energy_j)  # (M, N)
    n_rows = n_slots + n_slots * n_users
    # rows: convexity of slot t at t; energy of (t, n) at T + t N + n:  S_{n,t} - S_{n,t-1} - sum_d E_{n,d} w_d = 0
    w_rows = np.concatenate([slot, (n_slots + slot[:, None] * n_users + np.arange(n_users)[None, :]).ravel()])
    w_cols = np.concatenate([np.arange(n_columns), np.repeat(np.arange(n_columns), n_users)])
    w_vals = np.concatenate([np.ones(n_columns), -energy.ravel()])
    s_index = np.arange(n_slots * n_users)  # S_{n,t}, variable n_columns + t N + n
    later = s_index[n_users:]
    rows = np.concatenate([w_rows, n_slots + s_index, n_slots + later])
    cols = np.concatenate([w_cols, n_columns + s_index, n_columns + later - n_users])
    vals = np.concatenate([w_vals, np.ones(s_index.size), -np.ones(later.size)])
    a_eq = sparse.csr_array((vals, (rows, cols)), shape=(n_rows, n_columns + s_index.size))
    b_eq = np.concatenate([np.ones(n_slots), np.zeros(n_slots * n_users)])
    # S is free below (cumulative energy is >= 0 anyway): then the duals are non-increasing in t
    bounds = np.column_stack([np.concatenate([np.zeros(n_columns), np.full(s_index.size, -np.inf)]),
                              np.concatenate([np.full(n_columns, np.inf), cumulative_j.ravel()])])
    cost = np.concatenate([np.asarray(columns.cost), np.zeros(s_index.size)])
    result = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if result.status != 0:
        raise RuntimeError(f"the hindsight master LP failed: {result.message}")
    prices = np.asarray(result.eqlin.marginals[n_slots:]).reshape(n_slots, n_users)
    # valid dual prices are >= 0 and non-increasing; this only removes the solver's rounding noise
    prices = np.minimum.accumulate(np.maximum(prices, 0.0), axis=0)
    return _Master(float(result.fun), prices, np.asarray(result.x[:n_columns]))


def _price_out(problem: SlotProblem, prices_per_j: np.ndarray, seeds: Sequence[Decision]
               ) -> tuple[float, Decision, float, np.ndarray]:
    """``(LB_t, decision, its cost, its energy per user)`` of the priced slot (a battery-free one in the bound)."""
    result = solve_exact(dataclasses.replace(problem, energy_price_per_j=prices_per_j), seed_decisions=seeds,
                         drops_as_options=True)
    evaluation = evaluate_decision(problem, result.decision)
    return result.lower_bound, result.decision, float(evaluation.total_cost), np.asarray(evaluation.energy_j)


def _dual_value(slot_bounds: np.ndarray, prices_per_j: np.ndarray, available_j: np.ndarray) -> float:
    """``L(pi) = sum_t LB_t(pi_t) - sum_{n,t} pi_{n,t} (B_{n,t} - B_{n,t-1})`` (module docstring, step 2)."""
    return float(slot_bounds.sum() - np.sum(prices_per_j * available_j))


def dual_bound(episode: EpisodeSlots, prices_per_j: np.ndarray) -> float:
    """``L(pi)`` for prices ``pi[t, n] >= 0`` (cost per J) non-increasing in ``t``: a certified lower bound
    on the cost of every trajectory of ``episode`` (module docstring, step 2).  ``ValueError`` for other prices."""
    prices = np.asarray(prices_per_j, dtype=np.float64)
    if prices.shape != (len(episode.problems), episode.config.n_users) or not np.all(np.isfinite(prices)):
        raise ValueError(f"prices must be finite, of shape (slots, users), got shape {prices.shape}")
    if np.any(prices < 0) or np.any(np.diff(prices, axis=0) > 0):
        raise ValueError("prices must be >= 0 and non-increasing over the slots (they sum multipliers >= 0)")
    available = episode.available_j if episode.available_j is not None else np.zeros(prices.shape)
    if episode.available_j is None and np.any(prices):
        raise ValueError("an episode without batteries has no battery prices: pass zeros")
    bounds = [_price_out(problem, prices[t], ())[0] for t, problem in enumerate(episode.problems)]
    return _dual_value(np.array(bounds), prices, available)


@dataclass(frozen=True, eq=False)
class DualResult:
    """What :func:`maximise_dual` found: the best prices and bound, and the final master."""

    prices_per_j: np.ndarray  # (T, N) of the best bound
    slot_bounds: np.ndarray  # (T,) LB_t at those prices
    lower_bound: float
    master: _Master | None  # None without batteries
    columns: _Columns
    rounds: int


def hindsight_bound(
    env_id: str,
    seed: int,
    config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
    *,
    time_budget_s: float | None = None,
    max_rounds: int = 60,
    tolerance: float = 1e-4,
    plan_scales: Sequence[float] = PLAN_SCALES,
) -> HindsightBound:
    """The certified hindsight bound and a clairvoyant plan for episode ``seed`` of ``env_id`` (module docstring).

    ``config``: overrides of the scenario (as for ``gym.make``).  The rounds stop at ``max_rounds``
    or when the master LP and the best bound meet within ``tolerance`` (relative), so the result
    depends only on the episode and these arguments; ``time_budget_s`` (s, default none) also stops
    them once that much wall time is spent (the plan's episodes come after it), at the price of a
    result that depends on the machine and its load (still a valid bound).
    """
    count_option("seed", seed, 0)
    count_option("max_rounds", max_rounds, 0)
    positive_option("tolerance", tolerance, "relative")
    if time_budget_s is not None:
        positive_option("time_budget_s", time_budget_s, "seconds, or None")
    if isinstance(plan_scales, np.ndarray) and plan_scales.ndim == 1:
        plan_scales = plan_scales.tolist()
    if isinstance(plan_scales, str | bytes) or not isinstance(plan_scales, Sequence) or not plan_scales or not all(
            is_finite_number(x) and float(x) > 0 for x in plan_scales):
        raise ValueError(f"plan_scales must be a non-empty sequence of finite numbers > 0 (scales of the "
                         f"clairvoyant prices), got {plan_scales!r}")
    start = time.perf_counter()
    episode = episode_slots(env_id, seed, config)
    dual = maximise_dual(episode, deadline=None if time_budget_s is None else start + time_budget_s,
                         max_rounds=max_rounds, tolerance=tolerance)
    bound_s = time.perf_counter() - start
    plan_cost, plan_name, plan_actions = _plan(env_id, seed, config, dual, plan_scales)
    return HindsightBound(
        env_id=env_id, seed=int(seed), lower_bound=dual.lower_bound, plan_cost=plan_cost,
        prices_per_j=dual.prices_per_j, slot_bounds=dual.slot_bounds,
        dual_upper=dual.master.value if dual.master else dual.lower_bound, rounds=dual.rounds, plan=plan_name,
        plan_actions=plan_actions, bound_s=bound_s, elapsed_s=time.perf_counter() - start,
    )


#: :func:`hindsight_bound`'s keyword options and their defaults (left out of the cache key).
_OPTION_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(hindsight_bound).parameters.items()
                    if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


def maximise_dual(episode: EpisodeSlots, *, max_rounds: int, tolerance: float, deadline: float | None = None,
                  initial_prices_per_j: Sequence[np.ndarray | float] = INITIAL_PRICES_PER_J,
                  final_master: bool = True, energy_offset_per_j: np.ndarray | None = None) -> DualResult:
    """Column generation with smoothing (module docstring, step 3); without batteries, ``pi = 0``.

    ``initial_prices_per_j``: the first pricing points (at least one), each a number, a row ``(N,)``
    or an array ``(T, N)`` (cost per J, broadcast to ``(T, N)``: a warm start), each ``>= 0`` and
    non-increasing over the slots, so that every dual value is a bound (``ValueError`` otherwise);
    ``deadline``: a :func:`time.perf_counter` value after which no new round starts;
    ``final_master=False``: stop after round ``max_rounds`` without solving the master LP over its
    columns (the best prices and bound are the same; the result's ``master`` is then the one before
    that round), for callers that use only the prices (``mpc``);
    ``energy_offset_per_j``: fixed prices ``(T, N)`` of any sign added to the energy of every slot
    (an information-relaxation penalty, :mod:`.information_relaxation`): each slot is priced at ``pi_t +
    offset_t`` and each column costs its cost plus ``offset_t`` times its energy, so ``L(pi)`` bounds
    ``cost + sum offset E`` of every trajectory (default: none).
    """
    if not initial_prices_per_j:
        raise ValueError("initial_prices_per_j must hold at least one pricing point")
    problems, available = episode.problems, episode.available_j
    n_slots, n_users = len(problems), episode.config.n_users
    columns = _Columns()
    last: list[list[Decision]] = [[] for _ in range(n_slots)]
    offset = np.zeros((n_slots, n_users)) if energy_offset_per_j is None else np.asarray(energy_offset_per_j)
    if offset.shape != (n_slots, n_users) or not np.all(np.isfinite(offset)):
        raise ValueError(f"energy_offset_per_j must be finite, of shape ({n_slots}, {n_users}), got {offset.shape}")

    def price_all(prices: np.ndarray) -> np.ndarray:
        bounds = np.empty(n_slots)
        results = solve_many(problems, prices + offset, seed_decisions=last, drops_as_options=True)  # = _price_out
        for t, result in enumerate(results):  # cost and energy: the env's, which prices never enter
            bounds[t] = result.lower_bound
            last[t] = [result.decision]
            columns.add(t, result.cost + float(offset[t] @ result.energy_j), result.energy_j, result.decision)
        return bounds

    if available is None:
        prices = np.zeros((n_slots, n_users))
        bounds = price_all(prices)
        return DualResult(prices, bounds, float(bounds.sum()), None, columns, 0)
    cumulative = np.cumsum(available, axis=0)
    for t, problem in enumerate(problems):  # dropping every request: energy 0, so the master is feasible
        columns.add(t, float(problem.has_request.sum()) * cast(float, problem.config.drop_cost), np.zeros(n_users),
                    None)
    best: tuple[float, np.ndarray, np.ndarray] = (-np.inf, np.zeros((n_slots, n_users)), np.zeros(n_slots))
    candidates = [np.broadcast_to(np.asarray(price, dtype=np.float64), (n_slots, n_users)).copy()
                  for price in initial_prices_per_j]
    for candidate in candidates:
        if not np.all(np.isfinite(candidate)) or np.any(candidate < 0) or np.any(np.diff(candidate, axis=0) > 0):
            raise ValueError("initial_prices_per_j must be finite, >= 0 and non-increasing over the slots")
    rounds = -len(candidates)
    master = None
    while True:
        if candidates:
            prices = candidates.pop(0)
        else:
            if not final_master and rounds >= max_rounds and master is not None:
                break  # the master would only say to stop
            master = _solve_master(columns, cumulative)
            if master.value - best[0] <= tolerance * abs(best[0]) or rounds >= max_rounds:
                break
            if deadline is not None and time.perf_counter() > deadline:
                break
            prices = SMOOTHING * best[1] + (1.0 - SMOOTHING) * master.prices_per_j
        bounds = price_all(prices)
        rounds += 1
        value = _dual_value(bounds, prices, available)
        if value > best[0]:
            best = (value, prices, bounds)
    return DualResult(best[1], best[2], best[0], master, columns, max(rounds, 0))


#: The plan's variants (module docstring), by name.
PLAN_VARIANTS = ("prices x <scale>", "master prices", "mean prices", "master plan")


def _plan(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None, dual: DualResult,
          scales: Sequence[float]) -> tuple[float, str, np.ndarray]:
    """The cheapest clairvoyant episode over the variants: ``(cost, variant, actions)``."""
    prices = dual.prices_per_j
    variants: dict[str, tuple[np.ndarray, list[Decision | None] | None]] = {
        f"prices x {scale:g}": (scale * prices, None) for scale in (scales if dual.master else (1.0,))}
    if dual.master is not None:
        master = dual.master
        slot = np.asarray(dual.columns.slot)
        planned: list[Decision | None] = [None] * len(prices)
        for t in range(len(prices)):
            used = np.flatnonzero((slot == t) & (master.weights > 1e-9))
            if used.size == 1:
                planned[t] = dual.columns.decisions[used[0]]
        variants.update({"master prices": (master.prices_per_j, None),
                         "mean prices": (0.5 * (prices + master.prices_per_j), None),
                         "master plan": (prices, planned)})
    # the variants' episodes in lockstep, so that each slot's solves are one solve_many call
    names = list(variants)
    envs = [AIGCEdgeEnv(config=config, env_id=env_id) for _ in names]
    for env in envs:
        env.reset(seed=int(seed))
    accumulators = [EpisodeAccumulator() for _ in names]
    actions: list[list[np.ndarray]] = [[] for _ in names]
    running, t = list(range(len(names))), 0
    while running:
        decisions: dict[int, Decision] = {}
        todo: list[int] = []
        priced: list[SlotProblem] = []
        for i in running:  # SlotPricesPolicy.decide
            problem = envs[i].current_problem()
            plan_prices, advance = variants[names[i]]
            decision = advance[t] if advance is not None else None
            if decision is not None and not np.any(evaluate_decision(problem, decision).drop_reason
                                                   == DropReason.BATTERY):
                decisions[i] = decision
            else:
                todo.append(i)
                priced.append(priced_problem(problem, plan_prices[t]))
        for i, result in zip(todo, solve_many(priced) if priced else [], strict=True):
            decisions[i] = result.decision  # = exact's decision of each slot
        for i in list(running):
            action = envs[i].decision_to_action(decisions[i])
            actions[i].append(np.asarray(action))
            _, _, terminated, truncated, info = envs[i].step(action)
            accumulators[i].add(info)
            if terminated or truncated:
                running.remove(i)
        t += 1
    best: tuple[float, str, np.ndarray] | None = None
    for i, name in enumerate(names):
        cost = accumulators[i].result()["cost"]
        if best is None or cost < best[0]:
            best = (cost, name, np.array(actions[i]))
    assert best is not None
    return best


def _cache_key(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None,
               options: Mapping[str, Any]) -> str:
    from aigc_edge_env import __version__

    resolved = dataclasses.asdict(make_config(env_id, config))
    text = json.dumps({"env_id": env_id, "seed": int(seed), "config": resolved, "version": METHOD_VERSION,
                       "package": __version__, **({"options": dict(options)} if options else {})},
                      sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def hindsight_cache_path(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None,
                         cache_dir: str | Path, **options: Any) -> Path:
    """``<cache_dir>/<env id>_s<seed>_<key>.json``: where :func:`cached_hindsight_bound` keeps the bound.

    ``key`` hashes the env id, the resolved config, the seed, :data:`METHOD_VERSION`, the package
    version and the :func:`hindsight_bound` keyword ``options`` that differ from its defaults, so a
    changed config, method, release or option never reads a stale bound, and the same bound is stored
    once.
    """
    seed = count_option("seed", seed, 0)  # 1.7 or True must not read seed 1's bound
    options = {name: value for name, value in options.items()
               if name not in _OPTION_DEFAULTS or value != _OPTION_DEFAULTS[name]}
    return Path(cache_dir) / f"{env_id}_s{seed}_{_cache_key(env_id, seed, config, options)}.json"


def cached_hindsight_bound(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None,
                           cache_dir: str | Path | None, **kwargs: Any) -> HindsightBound:
    """:func:`hindsight_bound`, stored at :func:`hindsight_cache_path` and read back from there
    (``cache_dir=None``: no cache)."""
    if cache_dir is None:
        return hindsight_bound(env_id, seed, config, **kwargs)
    path = hindsight_cache_path(env_id, seed, config, cache_dir, **kwargs)
    cached = read_hindsight_cache(path)
    if cached is not None:
        return cached
    result = hindsight_bound(env_id, seed, config, **kwargs)
    write_hindsight_cache(path, result)
    return result


def read_hindsight_cache(path: Path) -> HindsightBound | None:
    """The bound stored at ``path``, or ``None`` when there is none or it cannot be read (it is then
    computed again and the file replaced)."""
    try:
        return HindsightBound.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"hindsight cache {path} is unreadable ({type(exc).__name__}: {exc}); computing the bound again",
              file=sys.stderr, flush=True)
        return None


def write_hindsight_cache(path: Path, bound: HindsightBound) -> None:
    """Store ``bound`` at ``path`` (a :func:`hindsight_cache_path`) atomically."""
    write_atomic(path, json.dumps(bound.as_dict()))


def hindsight_bounds(env_id: str, seeds: Sequence[int], config: Mapping[str, Any] | None,
                     cache_dir: Path | None, workers: int | None = 1, address: str | None = None,
                     progress: bool = True) -> dict[int, HindsightBound]:
    """The hindsight bound of every seed's episode: read from ``cache_dir`` where it is, the others
    computed as tasks (:func:`aigc_edge_env.distributed.as_completed`; ``workers=1`` and no address:
    here, without Ray) and stored there by this process as each finishes (so the cache stays where the
    command runs, whichever node computed, and an interruption keeps every bound finished before it)."""
    from aigc_edge_env.distributed import as_completed

    overrides = dict(config or {})
    paths = {s: hindsight_cache_path(env_id, s, overrides, cache_dir) for s in seeds} if cache_dir else {}
    bounds = {s: bound for s, path in paths.items() if (bound := read_hindsight_cache(path)) is not None}
    missing = [s for s in seeds if s not in bounds]
    tasks = [(env_id, s, overrides) for s in missing]
    for _, bound in as_completed(_hindsight_task, tasks, workers, address, progress, desc="hindsight bounds",
                                 unit="episode"):
        bounds[bound.seed] = bound
        if cache_dir:
            write_hindsight_cache(paths[bound.seed], bound)
    return {s: bounds[s] for s in seeds}


def _hindsight_task(args: tuple[str, int, dict[str, Any]]) -> HindsightBound:
    from aigc_edge_env.baselines.hindsight import hindsight_bound

    env_id, seed, overrides = args
    return hindsight_bound(env_id, seed, overrides)
