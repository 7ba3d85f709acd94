"""Tests of the hindsight bound (aigc_edge_env.baselines.hindsight).

* the episode it bounds is the env's (slots, initial batteries, harvests);
* the bound is below every policy's episode cost, and below the optimum found by exhaustive
  search over every action sequence of tiny episodes where the battery binds; so is the dual
  value at any admissible prices; the plan is at least the optimum;
* the clairvoyant plan is feasible under the real dynamics (its actions replay to its cost);
* without batteries the bound is the sum of the slots' optima and the plan is per-slot exact;
  zero prices reproduce per-slot exact;
* the cache returns the stored bound and keys on the config.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from aigc_edge_env import AIGCEdgeEnv
from aigc_edge_env.baselines import SOLVERS, cached_hindsight_bound, hindsight_bound, solve_exact
from aigc_edge_env.baselines.hindsight import dual_bound, episode_slots
from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.policies.base import SolverPolicy
from aigc_edge_env.policies.pricing import SlotPricesPolicy
from aigc_edge_env.policies.registry import make_policy

#: Scarce batteries and a slow edge on a short episode: the battery binds.
SMALL = {"n_users": 3, "horizon_slots": 8, "battery_enabled": True, "battery_initial_j_range": (5.0, 20.0),
         "harvest_j_range": (0.0, 2.0), "edge_steps_per_s": 6.0, "device_clock_ghz_range": (1.5, 3.0)}
#: Two users, three slots, two step levels, every user asking, local computing attractive (slow
#: edge, far users) and batteries of a few local generations: 16 joint actions per slot.
TINY = {"n_users": 2, "horizon_slots": 3, "step_levels": (5, 20), "battery_enabled": True,
        "battery_initial_j_range": (5.0, 30.0), "harvest_j_range": (0.0, 5.0), "device_clock_ghz_range": (1.5, 3.0),
        "task_probability": 1.0, "edge_steps_per_s": 4.0, "distance_m_range": (150.0, 300.0)}


def episode_cost(config: dict, policy, seed: int) -> float:
    return run_episode(AIGCEdgeEnv(config=config), policy, seed).metrics["cost"]


def exhaustive_optimum(config: dict, seed: int) -> float:
    """The least episode cost over every sequence of actions, each played through the env."""
    env = AIGCEdgeEnv(config=config)
    nvec = env.action_space.nvec
    actions = [np.array(a) for a in itertools.product(*(range(k) for k in nvec))]
    best = np.inf
    for sequence in itertools.product(actions, repeat=env.config.horizon_slots):
        env.reset(seed=seed)
        best = min(best, sum(env.step(action)[4]["cost"] for action in sequence))
    return best


def test_the_episode_is_the_envs() -> None:
    episode = episode_slots("AIGCEdge-Battery-v0", 7, {"n_users": 4, "horizon_slots": 12})
    env = AIGCEdgeEnv(config={"n_users": 4, "horizon_slots": 12}, env_id="AIGCEdge-Battery-v0")
    env.reset(seed=7)
    policy = make_policy("greedy")
    policy.reset(7)
    observation = None
    battery_j = episode.available_j[0]
    np.testing.assert_array_equal(battery_j, episode.initial_battery_j)
    for t, problem in enumerate(episode.problems):
        real = env.current_problem()
        for name in ("has_request", "upload_bits", "download_bits", "utility_weight", "deadline_s", "uplink_rate_bps",
                     "downlink_rate_bps", "device_clock_hz"):
            np.testing.assert_array_equal(getattr(problem, name), getattr(real, name), err_msg=f"{name} at slot {t}")
        assert np.all(np.isinf(problem.battery_j))
        np.testing.assert_allclose(real.battery_j, battery_j, rtol=0, atol=1e-12)
        observation = env.step(policy.act(env, observation))[0]
        if t + 1 < len(episode.problems):
            used = env._last_evaluation.energy_j
            battery_j = np.minimum(env.config.battery_capacity_j, battery_j - used + episode.available_j[t + 1])


@pytest.mark.slow
def test_bound_is_below_every_policy_and_the_plan_replays() -> None:
    for seed in (0, 1):
        result = hindsight_bound("AIGCEdge-v0", seed, SMALL)
        assert np.any(result.prices_per_j > 0)  # the batteries bind
        for name in ("exact", "greedy", "random", "lyapunov", "lyapunov(V=20,theta=15)", "exact+price0.3"):
            assert result.lower_bound <= episode_cost(SMALL, make_policy(name), seed) + 1e-9, (seed, name)
        assert result.lower_bound <= result.plan_cost + 1e-9 and result.gap >= -1e-9
        assert result.plan_cost <= episode_cost(SMALL, make_policy("exact"), seed) + 1e-9  # here it plans better
        env = AIGCEdgeEnv(config=SMALL)  # the plan under the real dynamics: replay its actions
        env.reset(seed=seed)
        replayed = sum(env.step(action)[4]["cost"] for action in result.plan_actions)
        assert replayed == pytest.approx(result.plan_cost, rel=1e-12)
        # the variants are played in lockstep (one solve_many per slot): as the plan policy plays them
        assert result.plan_cost <= episode_cost(SMALL, SlotPricesPolicy(SOLVERS["exact"], result.prices_per_j), seed)
        assert result.dual_upper >= result.lower_bound - 1e-6 * abs(result.lower_bound)
        assert result.slot_bounds.sum() - np.sum(result.prices_per_j * episode_slots(
            "AIGCEdge-v0", seed, SMALL).available_j) == pytest.approx(result.lower_bound)


@pytest.mark.slow
def test_bound_and_plan_against_exhaustive_search_on_tiny_episodes() -> None:
    plan_optimal = 0
    for seed in (1, 3, 4):
        optimum = exhaustive_optimum(TINY, seed)
        result = hindsight_bound("AIGCEdge-v0", seed, TINY)
        assert np.any(result.prices_per_j > 0), seed  # the battery binds
        assert result.lower_bound <= optimum + 1e-9 <= result.plan_cost + 2e-9, (seed, result.lower_bound, optimum)
        plan_optimal += result.plan_cost == pytest.approx(optimum, rel=1e-12)
        episode = episode_slots("AIGCEdge-v0", seed, TINY)
        rng = np.random.default_rng(seed)
        for _ in range(3):  # any admissible prices give a valid bound, not only the optimiser's
            prices = np.sort(rng.uniform(0.0, 1.0, (3, 2)), axis=0)[::-1]
            assert dual_bound(episode, prices) <= optimum + 1e-9
    assert plan_optimal >= 2


def test_without_batteries_the_bound_is_the_sum_of_slot_optima() -> None:
    config = {"n_users": 4, "horizon_slots": 5}
    result = hindsight_bound("AIGCEdge-v0", 3, config)
    episode = episode_slots("AIGCEdge-v0", 3, config)
    slot_optima = [solve_exact(problem, drops_as_options=True) for problem in episode.problems]
    assert all(r.proven_optimal for r in slot_optima)
    assert result.lower_bound == pytest.approx(sum(r.lower_bound for r in slot_optima), rel=1e-12)
    assert not np.any(result.prices_per_j)
    exact_cost = episode_cost(config, make_policy("exact"), 3)
    assert result.plan_cost == exact_cost
    assert result.lower_bound == pytest.approx(exact_cost, rel=1e-9)  # no drop pays here: the optima agree
    assert dual_bound(episode, np.zeros((5, 4))) == pytest.approx(result.lower_bound, rel=1e-12)
    with pytest.raises(ValueError, match="non-increasing"):
        dual_bound(episode_slots("AIGCEdge-v0", 3, SMALL), np.arange(24.0).reshape(8, 3))


def test_zero_prices_reproduce_per_slot_exact() -> None:
    def actions(policy) -> list[np.ndarray]:
        env = AIGCEdgeEnv(config=SMALL)
        observation, _ = env.reset(seed=5)
        policy.reset(5)
        played = []
        for _ in range(SMALL["horizon_slots"]):
            played.append(policy.act(env, observation))
            observation = env.step(played[-1])[0]
        return played

    from aigc_edge_env.baselines import SOLVERS

    zero = actions(SlotPricesPolicy(SOLVERS["exact"], np.zeros((8, 3))))
    plain = actions(SolverPolicy(SOLVERS["exact"]))
    assert all(np.array_equal(a, b) for a, b in zip(zero, plain, strict=True))


def test_cache_returns_the_stored_bound(tmp_path, monkeypatch) -> None:
    config = {"n_users": 3, "horizon_slots": 3}
    first = cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached bound")

    import aigc_edge_env.baselines.hindsight as hindsight

    monkeypatch.setattr(hindsight, "hindsight_bound", fail)
    again = cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path)
    assert again.lower_bound == first.lower_bound and again.plan_cost == first.plan_cost
    np.testing.assert_array_equal(again.plan_actions, first.plan_actions)
    with pytest.raises(AssertionError, match="recomputed"):
        cached_hindsight_bound("AIGCEdge-v0", 1, {**config, "edge_step_capacity": 50}, tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):  # other options of the method: another entry
        cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path, max_rounds=2)
    defaults = cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path, max_rounds=60, time_budget_s=None)
    assert defaults.lower_bound == first.lower_bound  # the defaults given explicitly: the same entry
    for seed in (1.7, True, "1", np.float64(1.0)):  # not seed 1: refused before the cache is read
        with pytest.raises(ValueError, match=re.escape(f"seed must be an integer >= 0, got {seed!r}")):
            cached_hindsight_bound("AIGCEdge-v0", seed, config, tmp_path)
    monkeypatch.setattr("aigc_edge_env.__version__", "0.0.0-other")
    with pytest.raises(AssertionError, match="recomputed"):  # another release: another entry
        cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path)


def test_a_damaged_cache_entry_is_computed_again(tmp_path, capsys) -> None:
    config = {"n_users": 3, "horizon_slots": 3}
    first = cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path)
    (entry,) = tmp_path.iterdir()
    content = entry.read_text()
    for damaged in (content[:100], "[]"):  # as a write cut short would have left it; not a bound at all
        entry.write_text(damaged)
        again = cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path)
        assert again.lower_bound == first.lower_bound
        assert "unreadable" in capsys.readouterr().err
    assert cached_hindsight_bound("AIGCEdge-v0", 1, config, tmp_path).lower_bound == first.lower_bound  # rewritten
    assert [path.name for path in tmp_path.iterdir()] == [entry.name]  # no temporary file left


def test_rounds_stop_without_a_clock_and_bad_budgets_are_refused() -> None:
    config = {"n_users": 3, "horizon_slots": 4, "battery_enabled": True, "harvest_j_range": (0.0, 1.0)}
    capped = hindsight_bound("AIGCEdge-Battery-v0", 2, config, max_rounds=1)
    assert capped.rounds <= 1
    assert capped.lower_bound <= hindsight_bound("AIGCEdge-Battery-v0", 2, config).lower_bound + 1e-9
    bad_options = [{"time_budget_s": budget} for budget in (0.0, -1.0, math.nan, "2")] + [
        {"tolerance": math.nan}, {"tolerance": -1.0}, {"max_rounds": 2.5}, {"max_rounds": -1},
        {"plan_scales": [-1.0]}, {"plan_scales": [math.nan]}, {"plan_scales": ["a"]}, {"plan_scales": 5},
        {"plan_scales": []}]
    for options in bad_options:  # each refused by name, before any work
        with pytest.raises(ValueError, match=next(iter(options))):
            hindsight_bound("AIGCEdge-Battery-v0", 2, config, **options)
    assert hindsight_bound("AIGCEdge-Battery-v0", 2, config, plan_scales=np.array([1.0, 0.98])).plan_cost > 0
    for seed in (1.5, "1", True, None, -1):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            hindsight_bound("AIGCEdge-Battery-v0", seed, config)


@pytest.mark.slow
def test_gap_within_one_percent_on_a_battery_episode() -> None:
    result = hindsight_bound("AIGCEdge-Battery-v0", 10005)
    assert 0.0 <= result.relative_gap <= 0.01
    exact = run_episode(AIGCEdgeEnv(env_id="AIGCEdge-Battery-v0"), make_policy("exact"), 10005).metrics["cost"]
    assert result.lower_bound < result.plan_cost < exact  # the clairvoyant plan beats the myopic optimum


def test_an_interruption_keeps_every_bound_finished_before_it(tmp_path, monkeypatch) -> None:
    import aigc_edge_env.baselines.hindsight as hindsight

    config = {"n_users": 3, "horizon_slots": 3}
    original, finished = hindsight._hindsight_task, []

    def interrupted_second(task):
        if finished:
            raise KeyboardInterrupt
        finished.append(task[1])
        return original(task)

    monkeypatch.setattr(hindsight, "_hindsight_task", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        hindsight.hindsight_bounds("AIGCEdge-v0", [1, 2], config, tmp_path, workers=1, progress=False)
    assert finished == [1]
    assert hindsight.read_hindsight_cache(hindsight.hindsight_cache_path("AIGCEdge-v0", 1, config, tmp_path))
