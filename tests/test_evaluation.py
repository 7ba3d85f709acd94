"""The evaluation engine (aigc_edge_env.evaluation): runner, policies, metrics, intervals, slots, writers."""

from __future__ import annotations

import csv
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from aigc_edge_env import PROBLEM_ARRAY_FIELDS, AIGCEdgeEnv
from aigc_edge_env.baselines import SOLVERS
from aigc_edge_env.evaluation.runner import (
    EPISODE_METRICS,
    EpisodeAccumulator,
    PolicyResult,
    evaluate_all,
    evaluate_policy,
    run_episode,
)
from aigc_edge_env.evaluation.slots import collect_slots
from aigc_edge_env.evaluation.statistics import confidence_interval, mean_interval, normalised, summarize
from aigc_edge_env.evaluation.writers import write_csv
from aigc_edge_env.policies.base import SOLVER_STREAM, SolverPolicy, policy_rng
from aigc_edge_env.policies.pricing import LYAPUNOV_DEFAULTS, LyapunovPolicy, ShadowPricePolicy
from aigc_edge_env.policies.registry import lyapunov_policy_name, make_policy, price_policy_name

SMALL = {"n_users": 4, "horizon_slots": 5}


def _slot_info(mean_error: float, n_served: float, **rest: float) -> dict[str, float]:
    info = dict.fromkeys(("cost", "time_s", "energy_j", "utility", "n_dropped", "n_requests", "n_offloaded"), 0.0)
    return {**info, **rest, "mean_error": mean_error, "n_served": n_served}


def test_runner_gives_the_totals_of_stepping_by_hand() -> None:
    env = gym.make("AIGCEdge-v0", config=SMALL)
    episode = run_episode(env, make_policy("random"), seed=4)

    env.reset(seed=4)
    rng = policy_rng(4, SOLVER_STREAM)  # the random solver's generator, seeded by reset(4)
    reward, infos, done = 0.0, [], False
    while not done:
        base = env.unwrapped
        action = base.decision_to_action(SOLVERS["random"](base.current_problem(), rng=rng))
        _, r, terminated, truncated, info = env.step(action)
        reward += r
        infos.append(info)
        done = terminated or truncated

    def total(key: str) -> float:
        return sum(i[key] for i in infos)

    metrics = episode.metrics
    assert metrics["reward"] == pytest.approx(reward, rel=1e-12)
    for key in ("cost", "time_s", "energy_j", "utility", "n_dropped"):
        assert metrics[key] == pytest.approx(total(key), rel=1e-12), key
    assert metrics["offload_share"] == pytest.approx(total("n_offloaded") / total("n_requests"))
    assert episode.per_slot["cost"] == pytest.approx([i["cost"] for i in infos])
    assert metrics["decision_s"] >= 0 and set(EPISODE_METRICS) < set(metrics)


def test_mean_error_is_per_served_request_over_the_episode() -> None:
    """Slot means weighted by n_served: (1 * 10 + 3 * 4 + 0) / 4 = 5.5, not the slot average 14 / 3."""
    accumulator = EpisodeAccumulator()
    for info in (_slot_info(10.0, 1.0), _slot_info(4.0, 3.0), _slot_info(0.0, 0.0)):
        accumulator.add(info)
    assert accumulator.result()["mean_error"] == pytest.approx(5.5)
    assert EpisodeAccumulator().result()["mean_error"] == 0.0  # nothing served
    assert set(accumulator.result(reward=-1.0)) == set(EPISODE_METRICS)


def test_mean_error_of_an_episode_from_its_slot_infos() -> None:
    env = gym.make("AIGCEdge-v0", config={"n_users": 3, "horizon_slots": 8, "task_probability": 0.5})
    episode = run_episode(env, make_policy("greedy"), seed=2)
    observation, _ = env.reset(seed=2)
    infos, done = [], False
    while not done:
        base = env.unwrapped
        observation, _, _, done, info = env.step(base.decision_to_action(SOLVERS["greedy"](base.current_problem())))
        infos.append(info)
    served = sum(i["n_served"] for i in infos)
    assert len({i["n_served"] for i in infos}) > 1  # unequal slots: the weighting matters
    expected = sum(i["mean_error"] * i["n_served"] for i in infos) / served
    assert episode.metrics["mean_error"] == pytest.approx(expected, rel=1e-12)


class CountingPolicy:
    """A stateful policy: counts its slots, which ``reset`` must clear; all local at the smallest level."""

    def __init__(self) -> None:
        self.resets: list[int | None] = []
        self.slots_per_episode: list[int] = []

    def reset(self, seed: int | None) -> None:
        self.resets.append(seed)
        self.slots_per_episode.append(0)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        self.slots_per_episode[-1] += 1
        return np.zeros(env.action_space.shape, dtype=np.int64)


def test_a_stateful_policy_is_reset_at_every_episode() -> None:
    policy = CountingPolicy()
    result = evaluate_policy("counting", lambda: gym.make("AIGCEdge-v0", config=SMALL), policy, [7, 8, 9])
    assert policy.resets == [7, 8, 9]
    assert policy.slots_per_episode == [SMALL["horizon_slots"]] * 3
    assert result.seeds == [7, 8, 9] and result.per_slot["cost"].shape == (3, SMALL["horizon_slots"])


def test_a_randomised_policy_repeats_its_episode_for_the_same_seed() -> None:
    result = evaluate_policy("random", lambda: gym.make("AIGCEdge-v0", config=SMALL), make_policy("random"), [3, 3])
    assert result.episodes["reward"][0] == result.episodes["reward"][1]


def test_decaying_shadow_price_follows_the_time_in_episode() -> None:
    prices, configs = [], []

    def solve(problem, rng=None):
        prices.append(problem.energy_price_per_j.copy())
        configs.append(problem.config)
        return SOLVERS["all_local"](problem, rng=rng)

    env = gym.make("AIGCEdge-Battery-v0", config={"n_users": 3, "horizon_slots": 4})
    run_episode(env, ShadowPricePolicy(solve, 0.8, decaying=True), seed=0)
    assert np.array(prices) == pytest.approx(np.array([[0.8 * (1 - t / 4)] * 3 for t in range(4)]), rel=1e-6)
    assert all(c is env.unwrapped.config for c in configs)  # a per-user price, not a new energy weight or drop cost
    prices.clear()
    run_episode(env, ShadowPricePolicy(solve, 0.8), seed=0)
    assert np.array(prices) == pytest.approx(np.full((4, 3), 0.8))


def test_lyapunov_prices_grow_as_the_battery_falls_below_theta() -> None:
    env = gym.make("AIGCEdge-Battery-v0", config={"n_users": 3, "horizon_slots": 6})
    policy = LyapunovPolicy(SOLVERS["exact"], v_j2_per_cost=50.0, perturbation_j=80.0)
    seen = []

    def probe(env):
        problem = env.unwrapped.current_problem()
        seen.append((problem.battery_j.copy(), policy.prices_per_j(problem, np.zeros(1))))
        return {}

    run_episode(env, policy, seed=2, probe=probe)
    for battery_j, price in seen:
        np.testing.assert_allclose(price, np.maximum(80.0 - battery_j, 0.0) / 50.0)
    assert any(np.any(price > 0) for _, price in seen) and any(np.any(price == 0) for _, price in seen)
    named = make_policy(lyapunov_policy_name(50.0, 80.0))
    assert isinstance(named, LyapunovPolicy) and (named.v_j2_per_cost, named.perturbation_j) == (50.0, 80.0)
    default = make_policy("lyapunov")
    assert (default.v_j2_per_cost, default.perturbation_j) == (LYAPUNOV_DEFAULTS["V"], LYAPUNOV_DEFAULTS["theta"])
    assert make_policy("greedy+lyapunov(V=2,theta=5)").solve is SOLVERS["greedy"]
    with pytest.raises(ValueError, match="V > 0"):
        make_policy("lyapunov(V=0,theta=5)")


def test_named_policies() -> None:
    assert isinstance(make_policy("exact"), SolverPolicy) and make_policy("exact").solve is SOLVERS["exact"]
    for price, decaying in ((0.3, False), (0.8, True), (1.0, False), (0.1234567, True)):
        policy = make_policy(price_policy_name("exact", price, decaying))
        assert isinstance(policy, ShadowPricePolicy) and (policy.price, policy.decaying) == (price, decaying)
    assert price_policy_name("exact", 0.8, decaying=True) == "exact+price0.8(1-t/H)"
    for bad in ("best", "exact+price", "exact+price-1", "nosolver+price0.3", "exact+price0.3(1-t)", "lyapunov(V=1)",
                "nosolver+lyapunov"):
        with pytest.raises(ValueError, match="unknown policy"):
            make_policy(bad)
    with pytest.raises(ValueError, match="a shadow price must be a finite number >= 0"):  # 1e999 reads as inf
        make_policy("exact+price1e999")
    with pytest.raises(ValueError, match="a policy name must be a string"):
        make_policy(None)  # type: ignore[arg-type]


def test_solver_policies_play_an_episode() -> None:
    env = AIGCEdgeEnv(config=SMALL)
    exact = run_episode(env, make_policy("exact"), seed=0).metrics
    assert exact["reward"] == pytest.approx(-exact["cost"]) and exact["n_dropped"] == 0
    assert run_episode(env, make_policy("greedy"), seed=0).metrics["cost"] >= exact["cost"] - 1e-9


def test_collected_slots_are_the_slots_of_stepping_the_env() -> None:
    config = {"n_users": 3, "horizon_slots": 3}
    slots = collect_slots(config, seed=11, n_slots=5)
    env = AIGCEdgeEnv(config=config)
    expected = []
    for seed in (11, 12):  # an episode that ends continues from the next seed
        env.reset(seed=seed)
        for _ in range(3):
            expected.append(env.current_problem())
            env.step(np.ones(env.action_space.shape, dtype=np.int64))  # another action: the same slots
    assert len(slots) == 5
    for got, want in zip(slots, expected[:5], strict=True):
        for name in PROBLEM_ARRAY_FIELDS:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    with pytest.raises(ValueError, match="battery"):
        collect_slots({"battery_enabled": True}, 0, 2)


def test_interval_known_cases() -> None:
    assert confidence_interval([[2.0, 2.0, 2.0]]) == (2.0, 2.0)
    assert all(np.isnan(confidence_interval([[1.0]])))
    # a paired difference that is the same in every episode: no uncertainty left
    a = np.array([1.0, 5.0, 2.0, 8.0, 3.0])
    low, high = confidence_interval([a, a + 3.0], lambda x, y, axis=-1: np.mean(x - y, axis=axis))
    assert (low, high) == pytest.approx((-3.0, -3.0))
    # many normal episodes: the bootstrap interval of the mean is the normal one, mean +- 1.96 s / sqrt(n)
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    mean, low, high = mean_interval(x)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
    assert mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx((mean - half, mean + half), abs=0.1 * half)
    assert mean_interval([np.nan, 1.0, 1.0]) == (1.0, 1.0, 1.0)  # finite values only


def test_score_and_summary_rows() -> None:
    seeds = [1, 2, 3, 4]

    def result(name: str, rewards: list[float]) -> PolicyResult:
        episodes = {m: np.zeros(4) for m in EPISODE_METRICS + ("decision_s",)}
        return PolicyResult(name, seeds, {**episodes, "reward": np.array(rewards, dtype=float)})

    rows = {r["policy"]: r for r in summarize([
        result("random", [-10, -12, -11, -9]), result("exact", [-2, -4, -3, -1]), result("half", [-6, -8, -7, -5]),
    ])}
    assert rows["exact"]["score"] == pytest.approx(1.0) and rows["random"]["score"] == pytest.approx(0.0)
    assert (rows["half"]["score"], rows["half"]["score_low"], rows["half"]["score_high"]) == pytest.approx((0.5,) * 3)
    assert rows["half"]["reward_low"] < rows["half"]["reward"] < rows["half"]["reward_high"]
    assert normalised(np.array([0.0]), np.array([-1.0]), np.array([1.0])) == pytest.approx(0.5)
    # references equal up to rounding (a hindsight bound equal to exact's return): undefined, not 1e15
    assert np.isnan(normalised(np.array([-120.0]), np.array([-100.0]), np.array([-100.0 + 7e-15])))
    assert normalised(np.array([-99.99]), np.array([-100.0]), np.array([-99.98])) == pytest.approx(0.5)
    late = PolicyResult("late", [5, 6, 7, 8], result("x", [0, 0, 0, 0]).episodes)
    with pytest.raises(ValueError, match="has no episode of seed"):
        summarize([result("random", [0, 1, 2, 3]), result("exact", [4, 5, 6, 7]), late])


def test_write_csv_takes_the_union_of_the_columns(tmp_path) -> None:
    path = tmp_path / "sub" / "rows.csv"
    write_csv(path, [{"a": 1, "b": 2}, {"b": 3, "c": 4}])
    with path.open() as handle:
        assert list(csv.reader(handle)) == [["a", "b", "c"], ["1", "2", ""], ["", "3", "4"]]


def test_the_engine_runs_without_the_optional_packages(tmp_path) -> None:
    blocked = ("torch", "stable_baselines3", "sb3_contrib", "matplotlib", "tqdm", "yaml", "tensorboard", "ray")
    code = (
        "import sys\n"
        "class Blocker:  # importing a blocked package raises ModuleNotFoundError\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "import gymnasium as gym\n"
        "from aigc_edge_env.evaluation.runner import evaluate_all\n"
        "from aigc_edge_env.evaluation.statistics import summarize\n"
        "from aigc_edge_env.policies.registry import make_policy\n"
        "results = evaluate_all({'exact': make_policy('exact'), 'random': make_policy('random')},\n"
        "                       lambda: gym.make('AIGCEdge-v0', config={'n_users': 3, 'horizon_slots': 2}),\n"
        "                       [0, 1], progress=True)  # no tqdm: a silent bar\n"
        f"assert not any(name.split('.')[0] in {blocked!r} for name in sys.modules)\n"
        "print(summarize(results)[0]['score'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # not the checkout: the installed package
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(1.0)


def test_evaluate_all_keeps_the_order_of_the_policies() -> None:
    results = evaluate_all({"greedy": make_policy("greedy"), "all_local": make_policy("all_local")},
                           lambda: gym.make("AIGCEdge-v0", config=SMALL), [0], progress=False)
    assert [r.name for r in results] == ["greedy", "all_local"]


def test_the_evaluate_command_compares_solvers_without_torch(tmp_path) -> None:
    """``aigc-edge evaluate`` of solvers and heuristics imports no optional package (the core install)."""
    blocked = ("torch", "stable_baselines3", "sb3_contrib", "matplotlib", "tqdm", "tensorboard", "ray")
    code = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from aigc_edge_env.cli import main\n"
        "status = main(['evaluate', '--env', 'AIGCEdge-v0', '--episodes', '1', '--horizon', '3',\n"
        f"               '--policies', 'exact', 'greedy', 'random', '--out', {str(tmp_path)!r}])\n"
        f"assert not any(name.split('.')[0] in {blocked!r} for name in sys.modules)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # not the checkout: the installed package
    assert done.returncode == 0, done.stderr
    assert "| exact | 1.000" in done.stdout and (tmp_path / "summary.csv").is_file()


def test_a_solver_policy_draws_apart_from_the_env_with_the_same_seed() -> None:
    from gymnasium.utils import seeding

    policy = SolverPolicy(SOLVERS["random"], "random")
    policy.reset(7)
    draws = policy.rng.random(5)
    env_rng, _ = seeding.np_random(7)  # the env's generator after reset(seed=7)
    assert not np.allclose(draws, env_rng.random(5))  # before, the random solver's draws were the env's
    policy.reset(7)
    np.testing.assert_array_equal(policy.rng.random(5), draws)  # still a function of the seed alone
