"""Fast checks of the experiments package: a tiny sweep writes its files and its numbers are right."""

from __future__ import annotations


import numpy as np
import pytest

# experiments/ is a top-level folder of the repository, not part of the installed package

from aigc_edge_env import AIGCEdgeEnv, evaluate_decision, make_config
from aigc_edge_env.baselines import SOLVERS
from experiments.battery import shadow_price_solver
from experiments.common import read_csv, slot_problems, t_interval
from experiments.sweep import run_sweep

SOLVER_NAMES = ["exact", "greedy", "all_local"]


def test_tiny_sweep_writes_csv_and_png_matching_direct_evaluation(tmp_path):
    seeds, n_slots, values = [7], 3, [4, 6]
    paths = run_sweep("n_users", values, SOLVER_NAMES, seeds, n_slots, tmp_path, workers=1, progress=False)
    for key in ("csv", "slots_csv", "png"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(paths["csv"])
    assert len(rows) == len(values) * len(SOLVER_NAMES)
    for n_users in values:
        # the same slots drawn independently: reset(seed) and steps with any fixed action
        env = AIGCEdgeEnv(config={"n_users": n_users})
        env.reset(seed=seeds[0])
        problems = []
        for _ in range(n_slots):
            problems.append(env.current_problem())
            env.step(env.action_space.sample() * 0 + 1)  # a different fixed action than the sweep's
        for name in SOLVER_NAMES:
            costs, energies, shares = [], [], []
            for t, problem in enumerate(problems):
                decision = SOLVERS[name](problem, rng=np.random.default_rng([seeds[0], t]))
                summary = evaluate_decision(problem, decision).summary()
                costs.append(float(summary["cost"]))
                energies.append(float(summary["energy_j"]))
                shares.append(float(summary["offload_share"]))
            (row,) = [r for r in rows if r["value"] == n_users and r["solver"] == name]
            assert row["n_slots"] == n_slots and row["n_seeds"] == 1
            assert row["cost"] == pytest.approx(np.mean(costs), rel=1e-12)
            assert row["energy_j"] == pytest.approx(np.mean(energies), rel=1e-12)
            assert row["offload_share"] == pytest.approx(np.mean(shares), rel=1e-12)
    exact_rows = [r for r in rows if r["solver"] == "exact"]
    assert all(r["gap_pct"] == 0 for r in exact_rows)
    assert all(r["gap_pct"] >= -1e-9 for r in rows)  # nothing beats the optimum


def test_slot_problems_refuse_batteries():
    with pytest.raises(ValueError):
        slot_problems({"battery_enabled": True}, 0, 2)


def test_t_interval():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low < 2.0 < high
    assert high - mean == pytest.approx(4.302652729749464 * 1.0 / np.sqrt(3))
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)


def test_shadow_price_zero_is_the_base_solver_and_a_price_cuts_local_energy():
    env = AIGCEdgeEnv(config=make_config("AIGCEdge-Battery-v0"))
    env.reset(seed=3)
    problem = env.current_problem()
    base = SOLVERS["exact"](problem)
    same = shadow_price_solver(SOLVERS["exact"], 0.0)(problem)
    assert np.array_equal(base.offload, same.offload) and np.array_equal(base.steps, same.steps)
    priced = shadow_price_solver(SOLVERS["exact"], 5.0)(problem)
    e_base = evaluate_decision(problem, base)
    e_priced = evaluate_decision(problem, priced)
    assert float(e_priced.energy_j.sum()) <= float(e_base.energy_j.sum()) + 1e-9
    assert float(e_priced.total_cost) >= float(e_base.total_cost) - 1e-9  # the true cost: exact is the optimum


def test_tiny_battery_study_writes_its_files(tmp_path):
    from experiments.battery import run_battery

    overrides = {"horizon_slots": 3}
    paths = run_battery(["exact", "greedy"], [], 2, tmp_path, prices=[0.3], overrides=overrides, workers=1,
                        progress=False)
    rows = {r["policy"]: r for r in read_csv(paths["csv"])}
    assert set(rows) == {"exact", "greedy", "exact+price0.3"}
    assert rows["exact"]["diff_vs_exact"] == 0 and rows["exact"]["n"] == 2
    episodes = read_csv(paths["episodes_csv"])
    exact_returns = [e["return"] for e in episodes if e["policy"] == "exact"]
    assert rows["exact"]["return"] == pytest.approx(np.mean(exact_returns))
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
