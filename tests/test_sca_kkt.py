"""Tests of the SCA-KKT slot solver (``aigc_edge_env.baselines.sca_kkt``, docs/solver.md).

* the continuous costs of the relaxation equal the model's option table at the levels;
* the per-user 1-D searches and the surrogate's KKT point satisfy their conditions
  (checked against dense-grid minimisation of the same convex functions);
* the SCA iterations decrease the relaxed objective (majorisation-minimisation);
* the decisions are drop-free whenever a brute force finds a drop-free decision, and
  drop no more requests than necessary otherwise;
* the cost is never above the deterministic heuristics' on seeded slots, and within 1% of
  the exact optimum at N = 8;
* when drops are unavoidable, the requests served are chosen by cost (a regression slot).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import aigc_edge_env
from aigc_edge_env import Decision, SlotProblem, evaluate_decision, option_table
from aigc_edge_env.baselines import SOLVERS, sca_kkt, solve_exact
from aigc_edge_env.baselines.options import slot_options

TABULATED = {
    "edge_error_curve": {"steps": [5, 10, 20, 50], "errors": [30.0, 13.36, 6.84, 4.67]},
    "device_error_curve": {"steps": [5, 10, 20, 50], "errors": [32.0, 15.0, 8.5, 6.6]},
}


def slot(overrides: dict, seed: int, steps_before: int = 0) -> SlotProblem:
    """A slot of ``AIGCEdge-v0`` (with ``overrides``) after ``steps_before`` all-local slots."""
    env = aigc_edge_env.AIGCEdgeEnv(config=overrides)
    env.reset(seed=seed)
    for _ in range(steps_before):
        env.step(np.zeros(env.action_space.shape, dtype=np.int64))
    return env.current_problem()


def relaxation(problem: SlotProblem) -> sca_kkt.Relaxation:
    return sca_kkt.build_relaxation(slot_options(problem))


def edge_lagrangian(costs: sca_kkt.ContinuousCosts, user: int, marginal: float):
    """``s -> E_n(s) + marginal s`` of one user (vectorised over ``s``)."""
    one = costs.take(np.array([user]))
    return lambda steps: one.edge(steps) + marginal * steps


@pytest.fixture
def tight_searches(monkeypatch) -> None:
    """Multiplier searches to near machine precision, so KKT residuals reflect the method."""
    monkeypatch.setattr(sca_kkt, "PRICE_TOLERANCE", 1e-9)
    monkeypatch.setattr(sca_kkt, "CAPACITY_TOLERANCE", 1e-7)


# --- continuous costs ------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [{"n_users": 12}, {"n_users": 12, **TABULATED},
                                       {"n_users": 12, "battery_enabled": True}], ids=["power", "tabulated", "battery"])
def test_continuous_costs_equal_the_model_at_the_levels(overrides: dict) -> None:
    for seed in range(3):
        problem = slot(overrides, seed, steps_before=2)
        table = option_table(problem)
        costs = sca_kkt.ContinuousCosts.from_problem(problem)
        levels = table.levels.astype(np.float64)[:, None]  # (L, 1) against (N,) users
        np.testing.assert_allclose(costs.device(levels).T, table.local_cost, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(costs.edge(levels).T, table.edge_base_cost, rtol=1e-12, atol=1e-12)
        price = np.random.default_rng(seed).uniform(0.0, 2.0, problem.n_users)  # per-user energy prices
        priced = sca_kkt.ContinuousCosts.from_problem(dataclasses.replace(problem, energy_price_per_j=price))
        np.testing.assert_allclose(priced.device(levels).T, table.local_cost + price[:, None] * table.local_energy_j,
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(priced.edge(levels).T, table.edge_base_cost + price[:, None] * table.edge_energy_j,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("overrides", [{"n_users": 6}, {"n_users": 6, **TABULATED}], ids=["power", "tabulated"])
def test_slopes_are_the_derivatives_of_the_costs(overrides: dict) -> None:
    costs = sca_kkt.ContinuousCosts.from_problem(slot(overrides, 0))
    steps = np.array([5.3, 7.7, 12.5, 17.2, 33.3, 44.4])[:, None]  # off the table's breakpoints
    h = 1e-5
    for value, slope in ((costs.device, costs.device_slope), (costs.edge, costs.edge_slope)):
        numeric = (value(steps + h) - value(steps - h)) / (2 * h)
        np.testing.assert_allclose(slope(steps), numeric, rtol=1e-6, atol=1e-7)


# --- per-user 1-D searches -------------------------------------------------------------
def dense_argmin(function, low: float, high: float, points: int = 200_001) -> float:
    grid = np.linspace(low, high, points)
    return float(grid[np.argmin(function(grid))])


@pytest.mark.parametrize("overrides", [{"n_users": 8}, {"n_users": 8, **TABULATED}], ids=["power", "tabulated"])
def test_edge_stationary_steps_minimise_the_per_user_lagrangian(overrides: dict) -> None:
    relax = relaxation(slot(overrides, 1))
    table, costs = relax.edge_table, relax.costs
    rng = np.random.default_rng(0)
    marginal = rng.uniform(0.0, 0.5, size=costs.edge_fixed.size)
    steps, cost = table.stationary(marginal, table.offsets, table.row_starts)
    for n in range(marginal.size):
        lagrangian = edge_lagrangian(costs, n, marginal[n])
        best = dense_argmin(lagrangian, relax.min_steps, relax.max_steps)
        assert lagrangian(steps[n])[0] <= lagrangian(np.array([best]))[0] + 1e-5, n
        assert abs(steps[n] - best) < 0.05, (n, steps[n], best)
    np.testing.assert_allclose(cost, costs.edge(steps), rtol=1e-5, atol=1e-5)  # trapezoid rule


def test_device_steps_minimise_the_device_cost() -> None:
    relax = relaxation(slot({"n_users": 8}, 2))
    for n, steps in enumerate(relax.device_steps):
        user = relax.costs.take(np.array([n]))
        best = dense_argmin(user.device, relax.min_steps, relax.max_steps)
        assert abs(steps - best) < 1e-3, (n, steps, best)


# --- the surrogate's KKT point and the SCA -------------------------------------------------
def assert_kkt(relax: sca_kkt.Relaxation, solution: sca_kkt.RelaxedSolution) -> None:
    """Stationarity, the mode sign test, the congestion condition and capacity complementarity."""
    x, steps = solution.point.offload, solution.point.edge_steps
    root_t = np.sqrt(solution.tangent)
    marginal = solution.congestion_price / (2 * root_t) + solution.capacity_price
    scale = 1.0 + np.abs(relax.costs.edge(steps)).max()
    for n in range(x.size):
        if not relax.edge_ok[n]:
            assert x[n] == 0.0
            continue
        lagrangian = edge_lagrangian(relax.costs, n, marginal[n])
        best = dense_argmin(lagrangian, relax.min_steps, solution.edge_high[n], 20_001)
        edge_value = lagrangian(np.array([best]))[0] + solution.congestion_price * root_t[n] / 2
        reduced = edge_value - relax.device_value[n]
        if 0.0 < x[n] < 1.0:  # indifferent between the modes (up to the price tolerance)
            assert abs(reduced) < 1e-5 * scale, (n, reduced)
        else:
            assert abs(steps[n] - best) < 0.05, (n, steps[n], best)  # stationary step count
            assert reduced <= 1e-6 * scale if x[n] == 1.0 else reduced >= -1e-6 * scale, (n, x[n], reduced)
    surrogate_sqrt_steps_sum = float(x @ (root_t / 2 + steps / (2 * root_t)))
    assert surrogate_sqrt_steps_sum >= float(x @ np.sqrt(steps)) - 1e-12  # the tangent majorises sqrt
    assert solution.congestion_price == pytest.approx(2 * relax.congestion_weight * surrogate_sqrt_steps_sum, rel=1e-6)
    load = float(x @ steps)
    assert load <= relax.edge_step_capacity * (1 + 1e-9)
    if solution.capacity_price > 0:
        assert load == pytest.approx(relax.edge_step_capacity, rel=1e-6)


@pytest.mark.parametrize(("n_users", "seed"), [(8, 0), (8, 3), (50, 0), (50, 2)])
def test_surrogate_solution_satisfies_the_kkt_conditions(tight_searches, n_users: int, seed: int) -> None:
    relax = relaxation(slot({"n_users": n_users}, seed))
    table = relax.edge_table
    tangent = table.stationary(np.zeros(relax.edge_ok.shape), table.offsets, table.row_starts)[0]
    edge_high = np.full(tangent.shape, relax.max_steps)
    first = sca_kkt.solve_surrogate(relax, tangent, edge_high)
    assert_kkt(relax, first)
    second = sca_kkt.solve_surrogate(relax, first.point.edge_steps, edge_high)
    assert_kkt(relax, second)


def test_capacity_binds_in_the_checked_slots(tight_searches) -> None:
    """The KKT test above covers both branches: some slots have mu > 0, some mu = 0."""
    prices = [sca_kkt.solve_relaxation(relaxation(slot({"n_users": n}, seed))).capacity_price
              for n, seed in [(8, 0), (8, 3), (50, 0), (50, 2)]]
    assert min(prices) == 0.0 < max(prices)


@pytest.mark.parametrize("n_users", [8, 50])
def test_sca_iterations_decrease_the_relaxed_objective(tight_searches, n_users: int) -> None:
    for seed in range(3):
        relax = relaxation(slot({"n_users": n_users}, seed))
        table = relax.edge_table
        tangent = table.stationary(np.zeros(relax.edge_ok.shape), table.offsets, table.row_starts)[0]
        edge_high = np.full(tangent.shape, relax.max_steps)  # the default deadlines never bind here
        values = []
        for _ in range(5):
            solution = sca_kkt.solve_surrogate(relax, tangent, edge_high)
            values.append(sca_kkt.relaxed_objective(relax, solution.point))
            tangent = solution.point.edge_steps
        assert np.all(np.diff(values) <= 1e-7 * abs(values[0])), values
        assert sca_kkt.solve_relaxation(relax).objective <= values[0] + 1e-9


# --- feasibility against a brute force -----------------------------------------------------
FEASIBILITY_SCENARIOS = {
    "plain": {},
    "deadline": {"deadline_s_range": (0.8, 6.0)},
    "capacity": {"edge_step_capacity": 15},
    "device": {"device_step_capacity": 5, "deadline_s_range": (0.5, 4.0)},
    "battery": {"battery_enabled": True, "battery_initial_j_range": (0.0, 1.0), "deadline_s_range": (1.0, 6.0),
                "edge_step_capacity": 20},
    "scarce": {"deadline_s_range": (0.3, 2.0), "edge_step_capacity": 10},  # some requests cannot be served
}


def brute_force(problem: SlotProblem) -> tuple[int, float]:
    """Fewest drops over every decision, and the least cost among those (evaluate_decision)."""
    levels = np.asarray(problem.config.step_levels)
    users = np.flatnonzero(problem.has_request)
    choices = np.array(list(itertools.product(range(2 * levels.size), repeat=users.size))).reshape(-1, users.size)
    batch, n = choices.shape[0], problem.n_users
    offload, steps = np.zeros((batch, n), dtype=bool), np.full((batch, n), levels[0])
    offload[:, users], steps[:, users] = choices >= levels.size, levels[choices % levels.size]
    arrays = {f.name: np.broadcast_to(getattr(problem, f.name), (batch, n))
              for f in dataclasses.fields(problem) if f.name != "config"}
    evaluation = evaluate_decision(dataclasses.replace(problem, **arrays), Decision(offload, steps))
    drops = evaluation.dropped.sum(axis=1)
    return int(drops.min()), float(evaluation.total_cost[drops == drops.min()].min())


@pytest.mark.parametrize("scenario", sorted(FEASIBILITY_SCENARIOS))
def test_drop_free_whenever_a_brute_force_finds_it(scenario: str) -> None:
    """Drop-free when possible, else the fewest drops; the cost is checked too (within 5%)."""
    overrides = {"n_users": 4, "task_probability": 1.0, "step_levels": (5, 10, 20, 40),
                 **FEASIBILITY_SCENARIOS[scenario]}
    unavoidable = 0
    for seed in range(6):
        problem = slot(overrides, seed, steps_before=1)
        fewest_drops, least_cost = brute_force(problem)
        unavoidable += fewest_drops > 0
        evaluation = evaluate_decision(problem, sca_kkt.solve(problem))
        assert int(evaluation.dropped.sum()) == fewest_drops, (scenario, seed)
        assert float(evaluation.total_cost) >= least_cost - 1e-9
        assert float(evaluation.total_cost) <= least_cost + 0.05 * abs(least_cost) + 1e-9, (scenario, seed)
    assert (unavoidable > 0) == (scenario == "scarce")  # the scenarios cover both cases


def test_unservable_users_get_the_device_at_the_smallest_level(hand_problem) -> None:
    config = aigc_edge_env.make_config(None, {"n_users": 7, "edge_step_capacity": 10})
    problem = hand_problem(
        config,
        device_clock_hz=[1e9, 1e6, 1e6, 1e6, 1e6, 1e9, 1e9],  # users 1-4: the device takes 300 s per step
        deadline_s=[30.0, 30.0, 30.0, 30.0, 30.0, 0.05, 30.0],  # user 5: below its transfer time and 5 steps
        has_request=[True] * 6 + [False],
    )
    decision = sca_kkt.solve(problem)
    evaluation = evaluate_decision(problem, decision)
    # Only two edge-only users fit S^E_max = 10 (at 5 steps each); user 5 has no option at all.
    assert decision.offload[1:5].sum() == 2 and np.all(decision.steps[1:5][decision.offload[1:5]] == 5)
    assert not decision.offload[5] and decision.steps[5] == 5
    assert not decision.offload[6] and decision.steps[6] == 5  # no request
    assert int(evaluation.dropped.sum()) == 3 and not evaluation.dropped[0]


def test_unavoidable_drops_serve_the_cheaper_edge_only_request() -> None:
    """Two edge-only requests, room for one: the cheaper one is served, as the exact optimum does
    (this slot once cost 18.1480 against the optimum's 18.0656: chosen by deadline room)."""
    problem = slot({"n_users": 3, "task_probability": 0.9, "deadline_s_range": [0.2, 3.0], "edge_steps_per_s": 3.0,
                    "edge_step_capacity": 20, "device_clock_ghz_range": [0.5, 1.0]}, 5000)
    evaluation = evaluate_decision(problem, sca_kkt.solve(problem))
    result = solve_exact(problem)
    assert result.proven_optimal and int(evaluation.dropped.sum()) == 1
    assert float(evaluation.total_cost) == pytest.approx(result.cost, rel=1e-12)
    assert result.cost == pytest.approx(18.0656, abs=1e-4)


# --- quality against the heuristics and the exact optimum ----------------------------------
@pytest.mark.parametrize("n_users", [5, 10, 20])
def test_never_worse_than_the_deterministic_heuristics(n_users: int) -> None:
    heuristics = ["greedy", "all_local", "all_edge", "fixed_steps_10", "fixed_steps_20"]
    for seed in range(5):
        problem = slot({"n_users": n_users}, seed, steps_before=seed)
        cost = float(evaluate_decision(problem, sca_kkt.solve(problem)).total_cost)
        for name in heuristics:
            other = float(evaluate_decision(problem, SOLVERS[name](problem)).total_cost)
            assert cost <= other + 1e-9 * (1 + abs(other)), (n_users, seed, name, cost, other)


def test_within_one_percent_of_the_exact_optimum_at_eight_users() -> None:
    gaps = []
    for seed in range(8):
        problem = slot({"n_users": 8}, seed, steps_before=3)
        cost = float(evaluate_decision(problem, sca_kkt.solve(problem)).total_cost)
        result = solve_exact(problem)
        assert result.proven_optimal
        gaps.append((cost - result.cost) / abs(result.cost))
    assert min(gaps) >= -1e-9 and max(gaps) <= 0.01, gaps


def test_the_local_search_only_improves_the_repaired_rounding() -> None:
    for seed in range(4):
        problem = slot({"n_users": 8}, seed)
        rounded = evaluate_decision(problem, sca_kkt.solve(problem, search=False))
        final = evaluate_decision(problem, sca_kkt.solve(problem))
        assert not rounded.dropped.any() and not final.dropped.any()
        assert float(final.total_cost) <= float(rounded.total_cost) + 1e-9


# --- interface -----------------------------------------------------------------------------
def test_interface_and_determinism() -> None:
    problem = slot({"n_users": 10, "task_probability": 0.5}, 4)
    first = sca_kkt.solve(problem, rng=np.random.default_rng(1))
    second = sca_kkt.solve(problem, rng=np.random.default_rng(2))
    assert np.array_equal(first.offload, second.offload) and np.array_equal(first.steps, second.steps)
    assert first.offload.shape == first.steps.shape == (10,)
    assert np.all(np.isin(first.steps, problem.config.step_levels))
    idle = ~problem.has_request
    assert idle.any() and not first.offload[idle].any() and np.all(first.steps[idle] == problem.config.min_steps)
    assert SOLVERS["sca_kkt"] is sca_kkt.solve


def test_rejects_batched_problems() -> None:
    problem = slot({"n_users": 3}, 0)
    batched = dataclasses.replace(problem, **{f.name: np.stack([getattr(problem, f.name)] * 2)
                                              for f in dataclasses.fields(problem) if f.name != "config"})
    with pytest.raises(ValueError, match="one slot"):
        sca_kkt.solve(batched)


def test_no_requests_and_no_congestion_cost() -> None:
    empty = slot({"n_users": 4, "task_probability": 0.0}, 0)
    decision = sca_kkt.solve(empty)
    assert not decision.offload.any() and np.all(decision.steps == empty.config.min_steps)
    free = slot({"n_users": 6, "weight_time_per_s": 0.0}, 0)  # congestion_weight = 0: the congestion price stays 0
    evaluation = evaluate_decision(free, sca_kkt.solve(free))
    assert not evaluation.dropped.any()
    assert float(evaluation.total_cost) == pytest.approx(solve_exact(free).cost, rel=1e-9)
