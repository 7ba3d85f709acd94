"""Fast checks of the experiments package: a tiny sweep writes its files and its numbers are right."""

from __future__ import annotations

import numpy as np
import pytest

# experiments/ is a top-level folder of the repository, not part of the installed package
from aigc_edge_env import AIGCEdgeEnv, evaluate_decision, make_config
from aigc_edge_env.baselines import SOLVERS
from aigc_edge_env.evaluation.writers import read_csv
from aigc_edge_env.experiments.sweep import replot, run_sweep
from aigc_edge_env.experiments.tradeoff import per_request
from aigc_edge_env.policies.pricing import priced_problem

SOLVER_NAMES = ["exact", "greedy", "all_local"]


def _independent_slots(n_users: int, seed: int, n_slots: int) -> list:
    """The sweep's slots drawn independently: reset(seed) and steps with another fixed action."""
    env = AIGCEdgeEnv(config={"n_users": n_users})
    env.reset(seed=seed)
    problems = []
    for _ in range(n_slots):
        problems.append(env.current_problem())
        env.step(np.ones(env.action_space.shape, dtype=np.int64))
    return problems


@pytest.mark.slow
def test_tiny_sweep_writes_csv_and_png_matching_direct_evaluation(tmp_path):
    seeds, n_slots, values = [7], 3, [4, 6]
    paths = run_sweep("n_users", values, SOLVER_NAMES, seeds, n_slots, tmp_path, workers=1, progress=False)
    for key in ("csv", "slots_csv", "png"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(paths["csv"])
    assert len(rows) == len(values) * len(SOLVER_NAMES)
    for n_users in values:
        problems = _independent_slots(n_users, seeds[0], n_slots)
        for name in SOLVER_NAMES:
            evaluations = [evaluate_decision(p, SOLVERS[name](p, rng=np.random.default_rng([seeds[0], t])))
                           for t, p in enumerate(problems)]
            served = sum(float(e.served.sum()) for e in evaluations)
            (row,) = [r for r in rows if r["value"] == n_users and r["solver"] == name]
            assert row["n_slots"] == n_slots and row["n_seeds"] == 1
            assert row["cost"] == pytest.approx(np.mean([e.total_cost for e in evaluations]), rel=1e-12)
            assert row["energy_j"] == pytest.approx(np.mean([e.energy_j.sum() for e in evaluations]), rel=1e-12)
            # the engine's definitions: per served request, and of all requests
            assert row["mean_error"] == pytest.approx(sum(float(e.error.sum()) for e in evaluations) / served)
            requests = sum(float(p.has_request.sum()) for p in problems)
            offloaded = sum(float(e.offloaded.sum()) for e in evaluations)
            assert row["offload_share"] == pytest.approx(offloaded / requests)
    exact_rows = [r for r in rows if r["solver"] == "exact"]
    assert all(r["gap_pct"] == 0 for r in exact_rows)
    assert all(r["gap_pct"] >= -1e-9 for r in rows)  # nothing beats the optimum

    paths["csv"].unlink()
    replot(paths["slots_csv"])  # the summary again, from the per-slot CSV
    np.testing.assert_equal(read_csv(paths["csv"]), rows)  # nan intervals (one seed) compare equal


def test_sweep_gap_is_the_gap_of_mean_costs_over_seeds(tmp_path):
    paths = run_sweep("n_users", [4], ["exact", "greedy"], [1, 2, 3], 2, tmp_path, workers=1, progress=False)
    slots = read_csv(paths["slots_csv"])
    rows = {r["solver"]: r for r in read_csv(paths["csv"])}

    def mean_cost(solver: str) -> float:
        return float(np.mean([r["cost"] for r in slots if r["solver"] == solver]))

    gap = 100 * (mean_cost("greedy") - mean_cost("exact")) / abs(mean_cost("exact"))
    assert rows["greedy"]["gap_pct"] == pytest.approx(gap)
    assert rows["greedy"]["gap_pct_low"] <= rows["greedy"]["gap_pct"] <= rows["greedy"]["gap_pct_high"]
    assert rows["greedy"]["slot_gap_pct"] == pytest.approx(np.mean([r["gap_pct"] for r in slots
                                                                     if r["solver"] == "greedy"]))


def test_tradeoff_pools_slots_with_the_engine_definitions():
    rows = [
        {"point": (0.1, 0.2), "solver": "exact", "cost": 2.0, "time_s": 3.0, "energy_j": 4.0, "utility": 1.0,
         "mean_error": 10.0, "n_dropped": 0.0, "n_requests": 2.0, "n_served": 2.0, "n_offloaded": 1.0},
        {"point": (0.1, 0.2), "solver": "exact", "cost": 4.0, "time_s": 5.0, "energy_j": 2.0, "utility": 1.0,
         "mean_error": 4.0, "n_dropped": 1.0, "n_requests": 4.0, "n_served": 3.0, "n_offloaded": 0.0},
    ]
    (row,) = per_request(rows)
    assert row["mean_error"] == pytest.approx((2 * 10.0 + 3 * 4.0) / 5)
    assert row["offload_share"] == pytest.approx(1 / 6)
    assert row["time_s_per_request"] == pytest.approx(8 / 6) and row["energy_j_per_request"] == pytest.approx(1.0)
    assert row["cost"] == pytest.approx(3.0) and row["drops"] == 1.0


def test_shadow_price_zero_is_the_base_solver_and_a_price_cuts_local_energy():
    env = AIGCEdgeEnv(config=make_config("AIGCEdge-Battery-v0"))
    env.reset(seed=3)
    problem = env.current_problem()
    base = SOLVERS["exact"](problem)
    same = SOLVERS["exact"](priced_problem(problem, 0.0))
    assert np.array_equal(base.offload, same.offload) and np.array_equal(base.steps, same.steps)
    priced = SOLVERS["exact"](priced_problem(problem, 5.0))
    e_base = evaluate_decision(problem, base)
    e_priced = evaluate_decision(problem, priced)
    assert float(e_priced.energy_j.sum()) <= float(e_base.energy_j.sum()) + 1e-9
    assert float(e_priced.total_cost) >= float(e_base.total_cost) - 1e-9  # the true cost: exact is the optimum


def test_tiny_battery_study_writes_its_files(tmp_path):
    from aigc_edge_env.experiments.battery import run_battery

    overrides = {"horizon_slots": 4}  # 3 slots: the bound equals exact's return to rounding, G undefined
    paths = run_battery(["exact", "greedy"], [], 2, tmp_path, prices=[0.3], overrides=overrides, workers=1,
                        progress=False, decaying_prices=[0.8], lyapunov=[(100.0, 90.0)], policies=["exact+price0.3"],
                        hindsight_cache=tmp_path / "cache", compare_to=["greedy"])
    rows = {r["policy"]: r for r in read_csv(paths["csv"])}
    assert set(rows) == {"exact", "greedy", "exact+price0.3", "exact+price0.8(1-t/H)", "lyapunov(V=100,theta=90)",
                         "clairvoyant plan"}
    assert rows["exact"]["diff_vs_exact"] == 0 and rows["exact"]["n"] == 2
    assert rows["exact"]["gap_closed"] == 0 and all(row["gap_closed"] <= 1 + 1e-9 for row in rows.values())
    assert 0 < rows["clairvoyant plan"]["gap_closed"] <= 1
    bounds = read_csv(paths["hindsight_csv"])
    assert [b["seed"] for b in bounds] == [10_000, 10_001]
    plan = [e["cost"] for e in read_csv(paths["episodes_csv"]) if e["policy"] == "clairvoyant plan"]
    assert plan == pytest.approx([b["plan_cost"] for b in bounds])  # the replayed plan costs what the bound says
    episodes = read_csv(paths["episodes_csv"])
    assert [e["seed"] for e in episodes if e["policy"] == "exact"] == [10_000, 10_001]
    exact_rewards = [e["reward"] for e in episodes if e["policy"] == "exact"]
    greedy_rewards = [e["reward"] for e in episodes if e["policy"] == "greedy"]
    assert rows["exact"]["reward"] == pytest.approx(np.mean(exact_rewards))
    assert rows["greedy"]["diff_vs_exact"] == pytest.approx(np.mean(greedy_rewards) - np.mean(exact_rewards))
    assert rows["exact"]["diff_vs[greedy]"] == pytest.approx(-rows["greedy"]["diff_vs_exact"])
    assert rows["greedy"]["diff_vs[greedy]"] == 0
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"compare_to = \['not evaluated'\]: \['not evaluated'\] not among"):
        run_battery(["exact"], [], 2, tmp_path / "refused", overrides=overrides, workers=1, progress=False,
                    compare_to=["not evaluated"])
    assert not (tmp_path / "refused").exists()  # refused before any work


def test_curves_comparison_writes_its_files_and_uses_each_curve(tmp_path):
    from aigc_edge_env.experiments.curves import run_curves

    paths = run_curves("weight_error", [0.2], [3], 2, tmp_path, workers=1, progress=False)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    slots = read_csv(paths["slots_csv"])
    assert {r["curve"] for r in slots} == {"ddim-cifar10", "digits-ddim"} and len(slots) == 4
    for curve in ("ddim-cifar10", "digits-ddim"):
        config = make_config(overrides={"weight_error": 0.2, "edge_error_curve": curve,
                                        "device_error_curve": f"{curve}-device"})
        env = AIGCEdgeEnv(config=config)
        env.reset(seed=3)
        problem = env.current_problem()
        evaluation = evaluate_decision(problem, SOLVERS["exact"](problem, rng=np.random.default_rng([3, 0])))
        first = next(r for r in slots if r["curve"] == curve and int(r["slot"]) == 0)
        assert float(first["offload_share"]) == pytest.approx(evaluation.summary()["offload_share"])
        assert float(first["mean_error"]) == pytest.approx(evaluation.summary()["mean_error"])


def test_tune_plays_only_the_families_asked_and_keeps_the_best(tmp_path):
    import json

    from aigc_edge_env.experiments.rules import run_rules

    grid = {"decaying": [0.8], "mpc": [(2, 3), (3, 3)]}
    paths = run_rules(2, tmp_path, grid=grid, overrides={"n_users": 3, "horizon_slots": 4}, workers=1,
                     progress=False, families=["mpc"])
    rows = {r["policy"]: r for r in read_csv(paths["csv"])}
    assert set(rows) == {"exact", "mpc(every=2,slots=3)", "mpc(every=3,slots=3)"}
    best = json.loads(paths["best"].read_text())
    assert best["seeds"] == [0, 1] and set(best["best"]) == {"mpc"}
    top = max(("mpc(every=2,slots=3)", "mpc(every=3,slots=3)"), key=lambda name: rows[name]["reward"])
    assert best["best"]["mpc"]["policy"] == top and best["best"]["mpc"]["every"] == rows[top]["every"]
    decaying = run_rules(2, tmp_path, grid=grid, overrides={"n_users": 3, "horizon_slots": 4}, workers=1,
                        progress=False, families=["decaying"])  # the same folder: mpc's results are kept
    assert set(json.loads(decaying["best"].read_text())["best"]) == {"mpc", "decaying"}
    rows_after = [r["policy"] for r in read_csv(decaying["csv"])]
    assert sorted(rows_after) == sorted([*rows, "exact+price0.8(1-t/H)"])
    with pytest.raises(ValueError, match="unknown families"):
        run_rules(2, tmp_path, grid=grid, workers=1, progress=False, families=["nope"])


def _counting(module, name: str, monkeypatch, fail_on: int | None = None) -> list[int]:
    """Replace the task function ``module.name`` by one counting its calls (the same name, so the same keys);
    with ``fail_on``, that call raises KeyboardInterrupt (a Ctrl-C while the tasks run)."""
    import functools

    original = getattr(module, name)
    calls: list[int] = []

    @functools.wraps(original)
    def counted(task):
        calls.append(1)
        if len(calls) == fail_on:
            raise KeyboardInterrupt
        return original(task)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_an_interrupted_sweep_resumes_its_finished_tasks(tmp_path, monkeypatch):
    from aigc_edge_env.experiments import common

    settings = ("n_users", [3, 4], ["exact", "greedy"], [1, 2], 2)  # 4 tasks: 2 values x 2 seeds
    with monkeypatch.context() as patch:
        calls = _counting(common, "_point_task", patch, fail_on=3)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(*settings, tmp_path / "run", workers=1, progress=False)
    assert len(list((tmp_path / "run" / ".tasks" / "_point_task").glob("*.pkl"))) == 2
    calls = _counting(common, "_point_task", monkeypatch)
    resumed = run_sweep(*settings, tmp_path / "run", workers=1, progress=False)
    assert len(calls) == 2  # only the two unfinished tasks ran again
    straight = run_sweep(*settings, tmp_path / "straight", workers=1, progress=False)
    for kind in ("csv", "slots_csv"):  # the same numbers as an uninterrupted sweep (but the solve times)
        assert [_untimed(r) for r in read_csv(resumed[kind])] == [_untimed(r) for r in read_csv(straight[kind])]
    assert len(calls) == 2 + 4
    run_sweep(*settings[:3], [1, 3], 2, tmp_path / "run", workers=1, progress=False)
    assert len(calls) == 2 + 4 + 2  # seeds 1 and 3: seed 1's tasks found, seed 3's run


def _untimed(row: dict) -> dict:
    return {key: repr(value) for key, value in row.items() if not key.startswith("solve_ms")}  # nan == nan


def test_tradeoff_and_battery_resume_their_finished_tasks(tmp_path, monkeypatch):
    from aigc_edge_env.experiments import battery, common
    from aigc_edge_env.experiments.tradeoff import run_tradeoff

    points = _counting(common, "_point_task", monkeypatch)
    policies = _counting(battery, "policy_task", monkeypatch)
    for _ in range(2):
        first = run_tradeoff(["exact", "greedy"], [1], 2, tmp_path, energy_weights=[0.1], error_weights=[0.2],
                             workers=1, progress=False)
        battery.run_battery(["greedy"], [], 2, tmp_path, prices=[0.3], overrides={"horizon_slots": 3}, workers=1,
                            progress=False, hindsight=False)
    assert len(points) == 2 and len(policies) == 2  # the second time, every task was found finished
    assert read_csv(first["csv"])[0]["solver"] in ("exact", "greedy")


def test_rules_refuse_no_episodes_and_non_finite_returns_keeping_the_valid_file(tmp_path, monkeypatch):
    from aigc_edge_env.experiments import rules

    grid = {"constant": [0.3]}
    overrides = {"n_users": 3, "horizon_slots": 4}
    paths = rules.run_rules(2, tmp_path, grid=grid, overrides=overrides, workers=1, progress=False)
    valid = paths["best"].read_bytes()
    with pytest.raises(ValueError, match="episodes must be an integer >= 1, got 0"):
        rules.run_rules(0, tmp_path, grid=grid, overrides=overrides, workers=1, progress=False)
    original = rules.policy_task

    def nan_returns(task):
        result = original(task)
        result.episodes["reward"][:] = np.nan
        return result

    monkeypatch.setattr(rules, "policy_task", nan_returns)
    with pytest.raises(ValueError, match="returns that are not finite numbers"):
        rules.run_rules(2, tmp_path, seed=5, grid=grid, overrides=overrides, workers=1, progress=False)
    assert paths["best"].read_bytes() == valid
    paths["best"].write_text('{"best": {"constant": {"policy": "exact+price0.3", "reward": NaN}}}')
    with pytest.raises(ValueError, match=f"{paths['best']} is not a valid rules_best.json"):
        rules.tuned_policies(paths["best"])


def test_a_policy_whose_model_files_change_is_another_task(tmp_path):
    """The battery and scale studies key a task by its model files' bytes, not their modification times."""
    import os

    from aigc_edge_env.experiments.battery import policy_identity
    from aigc_edge_env.experiments.scale import _identity

    def rewrite(path, content):  # new bytes, the old modification time
        stat = path.stat()
        path.write_bytes(content)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    run = tmp_path / "pn_run"
    run.mkdir()
    (run / "run.yml").write_text("algo: price_network\n")
    (run / "price_network.npz").write_bytes(b"first")
    network = tmp_path / "net.pt"
    network.write_bytes(b"first")
    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "module").mkdir(parents=True)
    (checkpoint / "module" / "state.pkl").write_bytes(b"first")
    tasks = {
        "run": (lambda: policy_identity(("pn", str(run), {}, (1,))), run / "price_network.npz"),
        "torch": (lambda: policy_identity((f"torch:{network}", None, {}, (1,))), network),
        "rllib": (lambda: _identity(("net", f"rllib:{checkpoint}", 5, (1,), {})), checkpoint / "module" / "state.pkl"),
    }
    for kind, (identity, model) in tasks.items():
        before = identity()
        assert before[-1] is not None, kind
        assert identity() == before, kind
        rewrite(model, b"second")
        assert identity() != before, kind
    assert policy_identity(("greedy", None, {}, (1,)))[-1] is None  # a solver reads no file
