"""Tests of the slot solvers (aigc_edge_env.baselines) against an independent brute force."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

import aigc_edge_env
from aigc_edge_env import Decision, SlotProblem, evaluate_decision
from aigc_edge_env.baselines import (
    SOLVERS,
    bound as bound_module,
    exact as exact_module,
    fixed_steps,
    lagrangian_bound,
    lower_bound,
    solve_exact,
    solve_many,
)

SMALL_LEVELS = (5, 10, 20, 40)

#: Slot scenarios for the brute-force checks: config overrides with a binding constraint each.
SCENARIOS = {
    "plain": {"n_users": 5, "step_levels": SMALL_LEVELS},
    "all_levels": {"n_users": 4},
    "edge_capacity": {"n_users": 5, "step_levels": SMALL_LEVELS, "edge_step_capacity": 30},
    "deadline": {"n_users": 5, "step_levels": SMALL_LEVELS, "deadline_s_range": (1.0, 8.0)},
    "battery": {"n_users": 5, "step_levels": SMALL_LEVELS, "battery_enabled": True,
                "battery_initial_j_range": (0.0, 3.0)},
    "scarce": {"n_users": 5, "step_levels": SMALL_LEVELS, "battery_enabled": True,
               "battery_initial_j_range": (0.0, 1.0), "deadline_s_range": (1.0, 6.0), "edge_step_capacity": 20},
}
SEEDS = range(20)


def make_problem(overrides: dict, seed: int) -> SlotProblem:
    env = aigc_edge_env.AIGCEdgeEnv(config=overrides)
    env.reset(seed=seed)
    return env.current_problem()


@dataclasses.dataclass(frozen=True)
class BruteForce:
    """Every (mode, level) per requesting user, served by evaluate_decision."""

    best_cost: float  # least cost among the decisions with the fewest drops
    best_drops: int
    min_cost: float  # least cost over all decisions, drops or not
    min_drops: int


def brute_force(problem: SlotProblem) -> BruteForce:
    """Costs are the objective the solvers minimise: the env's cost plus the problem's energy prices times energy."""
    levels = np.asarray(problem.config.step_levels)
    n_levels, n_users = levels.size, problem.n_users
    users = np.flatnonzero(problem.has_request)
    choices = np.array(list(itertools.product(range(2 * n_levels), repeat=users.size)), dtype=np.int64)
    choices = choices.reshape(-1, users.size)
    batch = choices.shape[0]
    offload = np.zeros((batch, n_users), dtype=bool)
    steps = np.full((batch, n_users), levels[0])
    offload[:, users] = choices >= n_levels
    steps[:, users] = levels[choices % n_levels]
    arrays = {f.name: np.broadcast_to(getattr(problem, f.name), (batch, n_users))
              for f in dataclasses.fields(problem) if f.name != "config"}
    evaluation = evaluate_decision(dataclasses.replace(problem, **arrays), Decision(offload, steps))
    cost = evaluation.total_cost + evaluation.energy_j @ problem.energy_price_per_j
    drops = evaluation.dropped.sum(axis=1)
    best = np.lexsort((cost, drops))[0]
    return BruteForce(float(cost[best]), int(drops[best]), float(cost.min()), int(drops.min()))


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@pytest.fixture(scope="module")
def instances() -> list[tuple[str, int, SlotProblem, BruteForce]]:
    cases = []
    for name, overrides in SCENARIOS.items():
        for seed in SEEDS:
            problem = make_problem(overrides, seed)
            cases.append((name, seed, problem, brute_force(problem)))
    return cases


def test_scenarios_exercise_constraints(instances) -> None:
    drops = {name: 0 for name in SCENARIOS}
    for name, _, _, truth in instances:
        drops[name] += truth.best_drops > 0
    assert drops["scarce"] > 0  # some slots cannot serve everyone
    assert drops["plain"] == 0


def test_exact_matches_brute_force(instances) -> None:
    for name, seed, problem, truth in instances:
        result = solve_exact(problem)
        evaluation = evaluate_decision(problem, result.decision)
        assert result.proven_optimal, (name, seed)
        assert close(result.cost, truth.best_cost), (name, seed, result.cost, truth.best_cost)
        assert close(float(evaluation.total_cost), result.cost)
        assert int(evaluation.dropped.sum()) == truth.best_drops, (name, seed)
        assert result.lower_bound <= result.cost + 1e-9


@pytest.mark.parametrize("limits", [{"DP_WORK_LIMIT": 0}, {"GROUP_PASS_MIN": 0}, {"GROUP_PASS_MIN": 10**9},
                                    {"CLASS_WORK_LIMIT": 0}])
def test_exact_matches_brute_force_on_every_path(instances, priced_instances, monkeypatch, limits) -> None:
    """The best-first search without passes (DP_WORK_LIMIT 0), a pass for every deadline group or
    none, and the search without the drop classes: the same optimum (the last one is only proven,
    and then optimal, where the env realises the drops)."""
    for name, value in limits.items():
        monkeypatch.setattr(exact_module, name, value)
    for name, seed, problem, truth in instances[::2]:
        result = solve_exact(problem)
        assert result.proven_optimal and close(result.cost, truth.best_cost), (name, seed, limits)
    for name, scale, priced, truth, _ in priced_instances[::2]:
        result = solve_exact(priced)
        assert result.lower_bound <= truth.min_cost + 1e-9 <= result.objective + 2e-9, (name, scale, limits)
        assert close(result.objective, truth.min_cost) or not result.proven_optimal, (name, scale, limits)


def test_lower_bound_is_below_every_decision(instances) -> None:
    rng = np.random.default_rng(0)
    for name, seed, problem, truth in instances:
        assert lower_bound(problem) <= truth.min_cost + 1e-9, (name, seed)
        multipliers = rng.uniform(0.0, 30.0, size=8)
        assert np.all(lagrangian_bound(problem, multipliers) <= truth.min_cost + 1e-9), (name, seed)


def test_lower_bound_with_a_coarse_capacity_unit_stays_below_every_decision(instances, monkeypatch) -> None:
    """Beyond MAX_CAPACITY_UNITS the knapsack rounds weights down (a relaxation): still a valid bound."""
    monkeypatch.setattr(bound_module, "MAX_CAPACITY_UNITS", 3)
    for name, seed, problem, truth in instances:
        assert lower_bound(problem) <= truth.min_cost + 1e-9, (name, seed)


def test_lower_bound_is_tight_on_easy_slots(instances) -> None:
    gaps = [truth.best_cost - lower_bound(problem) for name, _, problem, truth in instances if name == "plain"]
    assert np.median(gaps) < 0.5


@pytest.mark.parametrize("solver_name", sorted(SOLVERS))
def test_solvers_serve_everyone_when_possible(instances, solver_name: str) -> None:
    solve = SOLVERS[solver_name]
    for name, seed, problem, truth in instances:
        decision = solve(problem, rng=np.random.default_rng(seed))
        evaluation = evaluate_decision(problem, decision)
        assert np.all(np.isin(decision.steps, problem.config.step_levels)), (name, seed)
        idle = ~problem.has_request
        assert not decision.offload[idle].any() and np.all(decision.steps[idle] == problem.config.min_steps)
        if truth.best_drops == 0:
            assert not evaluation.dropped.any(), (solver_name, name, seed)
        assert float(evaluation.total_cost) >= truth.best_cost - 1e-9 or evaluation.dropped.sum() > truth.best_drops


def test_registry_names() -> None:
    assert {"exact", "greedy", "all_local", "all_edge", "random", "fixed_steps_10", "fixed_steps_20"} <= set(SOLVERS)


def test_exact_proves_optimality_at_default_sizes() -> None:
    for n_users in (8, 10):
        for seed in range(3):
            assert solve_exact(make_problem({"n_users": n_users}, seed)).proven_optimal


def test_exact_certificate_when_stopped_early() -> None:
    problem = make_problem(SCENARIOS["edge_capacity"], 3)
    truth = brute_force(problem)
    for kwargs in ({"max_multisets": 1}, {"time_budget_s": 1e-9}):
        result = solve_exact(problem, **kwargs)
        assert result.lower_bound <= truth.best_cost + 1e-9
        assert result.cost >= truth.best_cost - 1e-9
        assert result.gap >= 0.0


def test_exact_uses_seed_decisions() -> None:
    problem = make_problem({"n_users": 6, "step_levels": SMALL_LEVELS}, 1)
    seeded = solve_exact(problem, seed_decisions=[SOLVERS["greedy"](problem)])
    assert close(seeded.cost, solve_exact(problem).cost)
    bad_options = [{"time_budget_s": value} for value in (0.0, math.nan, "2", None)] + [
        {"max_multisets": value} for value in (0, -5, math.nan)] + [
        {"seed_decisions": [Decision(np.zeros(3, dtype=bool), np.full(3, 5))]},  # 3 users, not the slot's 6
        {"seed_decisions": [(np.zeros(6, dtype=bool), np.full(6, 5))]}]  # not a Decision
    for options in bad_options:  # each refused by name, before any work
        with pytest.raises(ValueError, match=next(iter(options))):
            solve_exact(problem, **options)
        with pytest.raises(ValueError, match=next(iter(options))):
            solve_many([problem], **{k: [v] if k == "seed_decisions" else v for k, v in options.items()})


def test_decision_refuses_what_is_not_bits_and_step_counts() -> None:
    for offload in (np.full(3, 2), np.full(3, -1), np.array(["no"] * 3), np.full(3, np.nan)):
        with pytest.raises(ValueError, match=r"Decision.offload must be booleans \(or 0 and 1\)"):
            Decision(offload, np.full(3, 5))
    for steps in (np.full(3, 1e30), np.full(3, -1e30), np.full(3, 2**63, dtype=np.uint64), np.array(["a"] * 3), None,
                  np.full(3, 5.5)):
        with pytest.raises(ValueError, match="Decision.steps must be integers"):
            Decision(np.zeros(3, dtype=bool), steps)
    decision = Decision(np.array([0, 1, 1]), np.array([5.0, 10.0, 15.0]))
    assert decision.offload.tolist() == [False, True, True] and decision.steps.tolist() == [5, 10, 15]
    problem = make_problem(SCENARIOS["plain"], 0)
    with pytest.raises(ValueError, match=r"decision must be a Decision\(offload, steps\), got tuple"):
        evaluate_decision(problem, (np.zeros(5, dtype=bool), np.full(5, 5)))  # type: ignore[arg-type]


def test_random_solver_is_reproducible() -> None:
    problem = make_problem({"n_users": 10}, 0)
    first, second = SOLVERS["random"](problem), SOLVERS["random"](problem)
    assert np.array_equal(first.steps, second.steps) and np.array_equal(first.offload, second.offload)
    draws = {tuple(SOLVERS["random"](problem, rng=np.random.default_rng(s)).steps) for s in range(5)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="rng must be a numpy Generator"):
        SOLVERS["random"](problem, rng=3)


def test_lower_bound_options_are_checked() -> None:
    problem = make_problem({"n_users": 5, "step_levels": SMALL_LEVELS}, 0)
    for options, message in (({"grid_points": 3.5}, "grid_points must be an integer >= 3"),
                             ({"grid_points": 2}, "grid_points must be an integer >= 3"),
                             ({"zooms": 0}, "zooms must be an integer >= 1")):
        with pytest.raises(ValueError, match=message):
            lower_bound(problem, **options)


def test_fixed_steps_use_the_nearest_level() -> None:
    problem = make_problem({"n_users": 6, "step_levels": SMALL_LEVELS}, 2)
    decision = fixed_steps(12)(problem)  # nearest level: 10
    assert np.all(decision.steps[problem.has_request] == 10)
    for bad in (0, "10", 2.5):
        with pytest.raises(ValueError, match="fixed_steps's steps must be an integer >= 1"):
            fixed_steps(bad)  # type: ignore[arg-type]


def test_solvers_reject_batched_problems() -> None:
    problem = make_problem({"n_users": 3}, 0)
    batched = dataclasses.replace(problem, **{f.name: np.stack([getattr(problem, f.name)] * 2)
                                              for f in dataclasses.fields(problem) if f.name != "config"})
    with pytest.raises(ValueError, match="one slot"):
        SOLVERS["greedy"](batched)


# --- per-user energy prices ---------------------------------------------------------------
#: Price scales (cost per J): battery-like prices, prices that send requests to the edge, prices
#: at which dropping beats serving.
PRICE_SCALES = (0.3, 30.0, 1000.0)
PRICED_SCENARIOS = ("plain", "edge_capacity", "battery", "scarce")


def objective(problem: SlotProblem, decision: Decision) -> float:
    evaluation = evaluate_decision(problem, decision)
    return float(evaluation.total_cost + evaluation.energy_j @ problem.energy_price_per_j)


@pytest.fixture(scope="module")
def priced_instances() -> list[tuple[str, float, SlotProblem, BruteForce, SlotProblem]]:
    """(scenario, scale, priced slot, its brute force, the same slot without prices)."""
    rng = np.random.default_rng(11)
    cases = []
    for name in PRICED_SCENARIOS:
        for seed in range(10):
            problem = make_problem(SCENARIOS[name], seed)
            for scale in PRICE_SCALES:
                priced = dataclasses.replace(problem, energy_price_per_j=rng.uniform(0.0, scale, problem.n_users))
                cases.append((name, scale, priced, brute_force(priced), problem))
    return cases


def test_exact_with_energy_prices_matches_brute_force(priced_instances) -> None:
    more_drops = more_edge = proven = 0
    for name, scale, priced, truth, plain in priced_instances:
        result = solve_exact(priced)
        proven += result.proven_optimal
        if result.proven_optimal:  # else: see test_extreme_prices_keep_the_certificate
            assert close(result.objective, truth.min_cost), (name, scale, result.objective, truth.min_cost)
        assert result.objective >= truth.min_cost - 1e-9
        assert close(objective(priced, result.decision), result.objective)
        assert close(result.cost, float(evaluate_decision(plain, result.decision).total_cost))  # the env's cost
        assert result.lower_bound <= truth.min_cost + 1e-9
        assert lower_bound(priced) <= truth.min_cost + 1e-9
        unpriced = evaluate_decision(plain, solve_exact(plain).decision)
        evaluation = evaluate_decision(priced, result.decision)
        more_drops += int(evaluation.dropped.sum()) > int(unpriced.dropped.sum())
        more_edge += bool(np.any(evaluation.offloaded & ~unpriced.offloaded))
    assert more_drops >= 5 and more_edge >= 20  # dropping, and serving at the edge, became the cheapest choice
    assert proven >= len(priced_instances) - 2


@pytest.mark.parametrize("solver_name", sorted(SOLVERS))
def test_every_solver_minimises_the_priced_objective(priced_instances, solver_name: str) -> None:
    """No solver beats the brute-force optimum of the priced objective, and each lowers the priced
    objective below its own unpriced decision's on most slots (it optimises the priced objective)."""
    hits = 0
    for name, scale, priced, truth, plain in priced_instances:
        rng = np.random.default_rng(0)
        value = objective(priced, SOLVERS[solver_name](priced, rng=rng))
        assert value >= truth.min_cost - 1e-9, (solver_name, name, scale)
        hits += value <= objective(priced, SOLVERS[solver_name](plain, rng=np.random.default_rng(0))) + 1e-9
    assert hits >= 0.9 * len(priced_instances), (solver_name, hits)


def test_zero_prices_change_nothing(instances) -> None:
    for name, seed, problem, _ in instances[::4]:
        zero = dataclasses.replace(problem, energy_price_per_j=np.zeros(problem.n_users))
        for solver_name, solve in SOLVERS.items():
            a, b = solve(problem, rng=np.random.default_rng(1)), solve(zero, rng=np.random.default_rng(1))
            assert np.array_equal(a.offload, b.offload) and np.array_equal(a.steps, b.steps), (solver_name, name, seed)
        assert lower_bound(zero) == lower_bound(problem)
        assert solve_exact(zero).lower_bound == solve_exact(problem).lower_bound


def test_drops_as_options_bound_every_decision(instances) -> None:
    """At zero prices, drops as options: the optimum over every decision, drops included."""
    for name, seed, problem, truth in instances:
        result = solve_exact(problem, drops_as_options=True)
        assert result.lower_bound <= truth.min_cost + 1e-9, (name, seed)
        assert result.proven_optimal and close(result.objective, truth.min_cost), (name, seed)


def test_extreme_prices_keep_the_certificate() -> None:
    """Prices at which the optimum over outcomes would drop requests the env cannot drop alone: the
    bound stays below every decision, the decision is the optimum over every decision (the drop
    classes of docs/solver.md, section 9), proven except where a drop by deadline could matter."""
    rng = np.random.default_rng(5)
    proven = cases = 0
    for name in ("plain", "edge_capacity", "deadline", "battery", "scarce"):
        for seed in range(8):
            problem = make_problem(SCENARIOS[name], seed)
            for scale in (30.0, 1e4):
                priced = dataclasses.replace(problem, energy_price_per_j=rng.uniform(0.0, scale, problem.n_users))
                truth, result = brute_force(priced), solve_exact(priced)
                assert result.lower_bound <= truth.min_cost + 1e-9, (name, seed, scale)
                assert close(result.objective, truth.min_cost), (name, seed, scale, result.objective, truth.min_cost)
                assert close(objective(priced, result.decision), result.objective)
                proven += result.proven_optimal
                cases += 1
                if name != "deadline":
                    assert result.proven_optimal, (name, seed, scale)
    assert proven >= cases - 4


def test_exact_keeps_the_drops_the_env_makes_under_extreme_prices() -> None:
    """Five requests, an edge of 20 steps, prices of hundreds per J: dropping request 3 instead of 4 is
    cheaper on paper but the env cannot do it (3 is dropped only past the edge-capacity prefix,
    which would drop 4 too); the optimum offloads all five at 5 steps, and the prefix drops 4."""
    env = aigc_edge_env.AIGCEdgeEnv(config={"n_users": 5, "task_probability": 0.9, "edge_step_capacity": 20})
    env.reset(seed=5014)
    env.action_space.seed(5014)
    for _ in range(4):
        env.step(env.action_space.sample())
    problem = dataclasses.replace(env.current_problem(),
                                  energy_price_per_j=np.array([718.3, 672.4, 769.8, 752.4, 410.3]))
    result = solve_exact(problem)
    truth = brute_force(problem)
    assert result.proven_optimal and close(result.objective, truth.min_cost)
    assert result.objective == pytest.approx(125.7502007, rel=1e-9)  # 0.5.0: 613.87, unproven
    evaluation = evaluate_decision(problem, result.decision)
    assert evaluation.dropped.tolist() == [False, False, False, False, True]
    assert evaluation.offloaded.tolist() == [True, True, True, True, False]
    for solver_name, solve in SOLVERS.items():
        assert result.objective <= objective(problem, solve(problem)) + 1e-9, solver_name


def test_energy_prices_are_validated_and_ignored_by_the_env_cost() -> None:
    problem = make_problem(SCENARIOS["plain"], 0)
    decision = SOLVERS["greedy"](problem)
    priced = dataclasses.replace(problem, energy_price_per_j=3.0)
    assert priced.energy_price_per_j.shape == (problem.n_users,) and not priced.energy_price_per_j.flags.writeable
    assert evaluate_decision(priced, decision).summary() == evaluate_decision(problem, decision).summary()
    with pytest.raises(ValueError, match="finite"):
        SOLVERS["exact"](dataclasses.replace(problem, energy_price_per_j=np.inf))


# --- solve_many: the batch API -------------------------------------------------------------
def same_result(a, b) -> bool:
    """Equal in every field but the time (bit for bit)."""
    return (np.array_equal(a.decision.offload, b.decision.offload)
            and np.array_equal(a.decision.steps, b.decision.steps)
            and (a.cost, a.objective, a.lower_bound, a.proven_optimal, a.n_assignments)
            == (b.cost, b.objective, b.lower_bound, b.proven_optimal, b.n_assignments)
            and np.array_equal(a.energy_j, b.energy_j))


def test_solve_many_equals_solve_exact_on_each_slot(instances, priced_instances) -> None:
    """Slots of several configs and sizes in one call (with and without prices, drops forced, a
    capacity-bound edge, tight deadlines), in order."""
    problems = [problem for _, _, problem, _ in instances] + [priced for _, _, priced, _, _ in priced_instances]
    problems += [make_problem({"n_users": n_users}, seed) for n_users in (30, 60) for seed in range(3)]
    results = solve_many(problems)
    assert len(results) == len(problems)
    for problem, result in zip(problems, results, strict=True):
        assert same_result(result, solve_exact(problem))
        evaluation = evaluate_decision(problem, result.decision)  # the env's cost and energy, prices or not
        assert result.cost == float(evaluation.total_cost) and np.array_equal(result.energy_j, evaluation.energy_j)
    drops = [solve_exact(problem, drops_as_options=True) for problem in problems[:40]]
    assert all(same_result(a, b) for a, b in zip(solve_many(problems[:40], drops_as_options=True), drops, strict=True))


def test_solve_many_prices_one_slot_many_ways() -> None:
    """``prices`` of shape (K, N): the K priced copies of one slot; of shape (len, N): one row per slot."""
    problem = make_problem({"n_users": 12, "battery_enabled": True, "battery_initial_j_range": (0.0, 5.0)}, 4)
    prices = np.random.default_rng(3).uniform(0.0, 50.0, (24, 12)) * np.logspace(-3, 0, 24)[:, None]
    results = solve_many(problem, prices)
    for row, result in zip(prices, results, strict=True):
        assert same_result(result, solve_exact(dataclasses.replace(problem, energy_price_per_j=row)))
    assert len({tuple(r.decision.steps * (1 + r.decision.offload)) for r in results}) > 3  # the prices matter
    others = [make_problem({"n_users": 12}, seed) for seed in range(3)]
    paired = solve_many(others, prices[:3], drops_as_options=True)
    for other, row, result in zip(others, prices[:3], paired, strict=True):
        priced = dataclasses.replace(other, energy_price_per_j=row)
        assert same_result(result, solve_exact(priced, drops_as_options=True))
    for bad in (prices[:, :5], prices[0]):
        with pytest.raises(ValueError, match="prices"):
            solve_many(problem, bad)
    with pytest.raises(ValueError, match="prices"):
        solve_many(others, prices[:2])
    with pytest.raises(ValueError, match="seed_decisions"):
        solve_many(others, seed_decisions=[[]])
    assert solve_many([]) == []


def test_exact_refuses_bad_arguments_naming_them() -> None:
    problem = make_problem(SCENARIOS["plain"], 0)
    decision = SOLVERS["greedy"](problem)
    for call, message in [
        (lambda: solve_exact(problem, time_budget_s=0), "time_budget_s must be a finite number > 0"),
        (lambda: solve_exact(problem, max_multisets=0), "max_multisets must be an integer >= 1"),
        (lambda: solve_exact(problem, drops_as_options="no"), "drops_as_options must be True or False, got 'no'"),
        (lambda: solve_exact(None), "problem must be a SlotProblem"),  # type: ignore[arg-type]
        (lambda: solve_exact(problem, seed_decisions=decision), "seed_decisions must be a sequence of Decisions"),
        (lambda: solve_many([problem, None]), "problem must be a SlotProblem"),  # type: ignore[list-item]
        (lambda: solve_many([problem, None], np.zeros((2, 5))), "problem must be a SlotProblem"),  # type: ignore
    ]:
        with pytest.raises(ValueError, match=message):
            call()


def test_a_shadow_price_policy_refuses_a_price_or_flag_of_another_type() -> None:
    from aigc_edge_env.policies.pricing import ShadowPricePolicy

    for price in (True, float("nan"), -1.0):
        with pytest.raises(ValueError, match="a shadow price must be a finite number >= 0"):
            ShadowPricePolicy(SOLVERS["exact"], price)
    with pytest.raises(ValueError, match="decaying must be True or False, got 'no'"):
        ShadowPricePolicy(SOLVERS["exact"], 1.0, decaying="no")  # type: ignore[arg-type]
    from aigc_edge_env.policies.pricing import LyapunovPolicy

    for v, theta in ((True, 1.0), ("1", 1.0), (0.0, 1.0), (1.0, float("inf"))):
        with pytest.raises(ValueError, match="lyapunov needs V > 0 and a finite theta"):
            LyapunovPolicy(SOLVERS["exact"], v, theta)  # type: ignore[arg-type]
