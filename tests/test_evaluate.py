"""The evaluate and train subcommands: numbers against a direct computation, outputs, errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from aigc_edge_env import __version__, evaluate_decision
from aigc_edge_env.agents.runs import read_scalars
from aigc_edge_env.baselines import SOLVERS
from aigc_edge_env.cli import main as cli_main
from aigc_edge_env.evaluation.runner import EVAL_SEED, PolicyResult, run_episode
from aigc_edge_env.evaluation.statistics import summarize
from aigc_edge_env.evaluation.writers import format_number, markdown_table
from aigc_edge_env.policies.registry import make_policy

ROOT = Path(__file__).resolve().parents[1]
EPISODES, HORIZON, FIRST_SEED = 3, 4, 50


class _Subcommand:
    """``aigc-edge <name> ...`` as a function of its arguments."""

    def __init__(self, name: str) -> None:
        self.name = name

    def main(self, argv: list[str]) -> int:
        return cli_main([self.name, *argv])


evaluate_cli = _Subcommand("evaluate")
train_cli = _Subcommand("train")


def _direct(solver: str, seed: int) -> dict[str, float]:
    """One episode's metrics computed slot by slot with evaluate_decision (no agents code)."""
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": HORIZON})
    env.reset(seed=seed)
    totals = dict.fromkeys(["cost", "time_s", "energy_j", "utility", "error", "served", "dropped", "edge", "req"], 0.0)
    for _ in range(HORIZON):
        base = env.unwrapped
        problem = base.current_problem()
        decision = SOLVERS[solver](problem, rng=np.random.default_rng(seed))
        evaluation = evaluate_decision(problem, decision)
        for key, value in (("cost", evaluation.cost), ("time_s", evaluation.time_s), ("energy_j", evaluation.energy_j),
                           ("utility", evaluation.utility), ("error", evaluation.error), ("served", evaluation.served),
                           ("dropped", evaluation.dropped), ("edge", evaluation.offloaded),
                           ("req", problem.has_request)):
            totals[key] += float(np.sum(value))
        env.step(base.decision_to_action(decision))
    return {"reward": -totals["cost"], "cost": totals["cost"], "time_s": totals["time_s"],
            "energy_j": totals["energy_j"], "utility": totals["utility"], "n_dropped": totals["dropped"],
            "mean_error": totals["error"] / totals["served"], "offload_share": totals["edge"] / totals["req"]}


def test_evaluate_two_heuristics_matches_direct_computation(tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    code = evaluate_cli.main(["--policies", "all_local", "all_edge", "--episodes", str(EPISODES), "--horizon",
                              str(HORIZON), "--seed", str(FIRST_SEED), "--out", str(out), "--no-progress"])
    assert code == 0
    table = capsys.readouterr().out
    with (out / "summary.csv").open() as handle:
        rows = {row["policy"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"all_local", "all_edge"}
    for solver, row in rows.items():
        direct = [_direct(solver, FIRST_SEED + i) for i in range(EPISODES)]
        for metric in direct[0]:
            expected = np.mean([d[metric] for d in direct])
            assert float(row[metric]) == pytest.approx(expected, rel=1e-9, abs=1e-9), (solver, metric)
            assert float(row[f"{metric}_low"]) <= float(row[metric]) + 1e-9 <= float(row[f"{metric}_high"]) + 2e-9
        line = next(line for line in table.splitlines() if line.startswith(f"| {solver} |"))
        assert format_number(float(row["reward"])) in line
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == list(range(FIRST_SEED, FIRST_SEED + EPISODES))
    assert len(results["episodes"]["all_edge"]["reward"]) == EPISODES
    assert (out / "components.png").stat().st_size > 0 and not (out / "score.png").exists()  # no exact/random


def test_evaluate_plays_priced_policies_and_reports_the_gap_closed(tmp_path, capsys) -> None:
    priced = ["exact+price0.3", "exact+price0.8(1-t/H)", "lyapunov"]
    out, cache = tmp_path / "eval", tmp_path / "hindsight"
    scarce = {"horizon_slots": HORIZON, "battery_initial_j_range": [2.0, 8.0]}  # the batteries bind in every episode
    command = ["--env", "AIGCEdge-Battery-v0", "--policies", *priced, "--episodes", "3", "--config", json.dumps(scarce),
               "--out", str(out), "--no-plots", "--no-progress", "--hindsight-cache", str(cache)]
    evaluate_cli.main(command)
    assert "| exact+price0.3 |" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [row["policy"] for row in results["summary"]] == ["exact"] + priced  # exact: the myopic reference
    env = gym.make("AIGCEdge-Battery-v0", config=scarce)
    hindsight = [-results["hindsight"][str(EVAL_SEED + i)]["lower_bound"] for i in range(3)]
    exact = results["episodes"]["exact"]["reward"]
    for name in priced:
        rewards = [run_episode(env, make_policy(name), EVAL_SEED + i).metrics["reward"] for i in range(3)]
        assert results["episodes"][name]["reward"] == rewards
        row = next(row for row in results["summary"] if row["policy"] == name)
        expected = (np.mean(rewards) - np.mean(exact)) / (np.mean(hindsight) - np.mean(exact))
        assert row["gap_closed"] == pytest.approx(expected) and row["gap_closed"] < 1.0
        assert row["gap_closed_low"] <= row["gap_closed"] <= row["gap_closed_high"]
    assert results["summary"][0]["gap_closed"] == 0.0
    assert all(h >= r for h, r in zip(hindsight, exact, strict=True))  # the bound: no policy returns more
    assert len(list(cache.iterdir())) == 3
    evaluate_cli.main(command + ["--no-hindsight"])
    assert "gap_closed" not in json.loads((out / "results.json").read_text())["summary"][0]


def test_normalised_score_and_intervals() -> None:
    seeds = [1, 2, 3, 4]

    def result(name: str, rewards: list[float]) -> PolicyResult:
        episodes = {m: np.zeros(4) for m in ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped",
                                             "offload_share", "decision_s")}
        return PolicyResult(name, seeds, {**episodes, "reward": np.array(rewards)})

    rows = {r["policy"]: r for r in summarize([
        result("random", [-10, -12, -11, -9]), result("exact", [-2, -4, -3, -1]), result("half", [-6, -8, -7, -5]),
    ])}
    assert rows["exact"]["score"] == pytest.approx(1.0) and rows["random"]["score"] == pytest.approx(0.0)
    assert rows["half"]["score"] == pytest.approx(0.5)
    assert rows["half"]["score_low"] == pytest.approx(0.5) and rows["half"]["score_high"] == pytest.approx(0.5)
    assert rows["half"]["reward_low"] < rows["half"]["reward"] < rows["half"]["reward_high"]
    assert rows["half"]["cost_low"] == rows["half"]["cost_high"] == 0.0
    rows = {r["policy"]: r for r in summarize([result("exact", [-2, -4, -3, -1]), result("half", [-1, -3, -2, 0])],
                                              hindsight_rewards={1: 0.0, 2: -2.0, 3: -1.0, 4: 1.0, 9: 5.0})}
    assert rows["exact"]["gap_closed"] == 0.0 and rows["half"]["gap_closed"] == pytest.approx(0.5)
    assert rows["half"]["gap_closed_low"] == pytest.approx(0.5) == rows["half"]["gap_closed_high"]
    assert "n/a where R_hindsight = R_exact" not in markdown_table(list(rows.values()))
    # the bound equals exact's return on every episode: G is undefined, printed n/a with the reason
    rows = {r["policy"]: r for r in summarize([result("exact", [-2, -4, -3, -1]), result("worse", [-3, -5, -4, -2])],
                                              hindsight_rewards={1: -2.0, 2: -4.0, 3: -3.0, 4: -1.0})}
    assert math.isnan(rows["exact"]["gap_closed"]) and math.isnan(rows["worse"]["gap_closed"])
    assert "| n/a [n/a, n/a] |" in markdown_table(list(rows.values()))
    assert "n/a where R_hindsight = R_exact" in markdown_table(list(rows.values()))
    # random as good as exact: the score is undefined, printed n/a with the reason
    rows = {r["policy"]: r for r in summarize([result("random", [-2, -4, -3, -1]), result("exact", [-2, -4, -3, -1]),
                                               result("worse", [-3, -5, -4, -2])])}
    assert math.isnan(rows["worse"]["score"])
    assert "score or its interval is n/a where R_exact = R_random" in markdown_table(list(rows.values()))
    with pytest.raises(ValueError, match="has no episode of seed"):
        summarize([result("exact", [-2, -4, -3, -1])], hindsight_rewards={1: 0.0})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ppo_tiny"
    train_cli.main(["--algo", "ppo", "--timesteps", "128", "--n-envs", "2", "--out", str(out), "--config",
                    f"horizon_slots: {HORIZON}", "--hyperparams", "n_steps:32", "batch_size:32", "n_epochs:1",
                    "--eval-freq", "64", "--eval-episodes", "1", "--checkpoint-freq", "0", "--no-progress"])
    return out


def test_evaluate_with_exact_random_and_a_run(tiny_run: Path, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    evaluate_cli.main(["--policies", "exact", "random", "--runs", str(tiny_run), str(tiny_run / "best_model.zip"),
                       "--episodes", "2", "--horizon", str(HORIZON), "--out", str(out), "--no-progress"])
    table = capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())["summary"]
    assert [r["policy"] for r in rows] == ["exact", "random", "ppo_tiny", "ppo_tiny/best_model"]
    assert rows[0]["score"] == pytest.approx(1.0) and rows[1]["score"] == pytest.approx(0.0)
    assert "| ppo_tiny/best_model |" in table
    for name in ("score.png", "components.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 0


def _error(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--algo", "a2c"], "invalid choice: 'a2c'"),
    (["--algo", "ppo", "--env", "CartPole-v9"], "unknown env id 'CartPole-v9'"),
    (["--algo", "ppo", "--timesteps", "-5"], "argument --timesteps: expected an integer >= 0, got -5"),
    (["--algo", "dqn", "--hyperparams", "env_wrapper:none"],
     "unknown wrapper_kwargs ['user_order'] for env_wrapper 'none'"),
    (["--algo", "dqn", "--hyperparams", "env_wrapper:none", "wrapper_kwargs:{}"], "dqn needs a Discrete action space"),
    (["--algo", "maskable_ppo", "--hyperparams", "env_wrapper:per_user", "vec_env:dummy"], "does not provide"),
    (["--algo", "ppo", "--hyperparams", "env_wrapper:per_user", "vec_env:dummy"],
     "PerUserPolicy needs the env's MultiDiscrete"),
    (["--algo", "ppo", "--hyperparams", "env_wrapper:per_user", "vec_env:vector"], "cannot apply env_wrapper"),
    (["--algo", "dqn", "--hyperparams", "policy:PerUserPolicy"], "dqn has no policy 'PerUserPolicy'"),
    (["--algo", "ppo", "--hyperparams", "n_stepz:3"], "unknown hyperparameter(s) ['n_stepz']"),
    (["--algo", "ppo", "--config", "{horizon_slots: -1}"], "horizon_slots"),
    (["--timesteps", "10"], "--algo is required"),
    (["--algo", "ppo", "--hyperparams", "learning_rate:abc"],
     "hyperparameter learning_rate must be a number > 0 or a schedule lin_<number>, got 'abc'"),
    (["--algo", "ppo", "--hyperparams", "learning_rate:lin_x"], "learning_rate: bad linear schedule 'lin_x'"),
    (["--algo", "ppo", "--hyperparams", "n_steps:-5"], "hyperparameter n_steps must be an integer >= 1, got -5"),
    (["--algo", "ppo", "--hyperparams", "n_steps:1.5"], "hyperparameter n_steps must be an integer >= 1, got 1.5"),
    (["--algo", "ppo", "--hyperparams", "n_steps:true"], "hyperparameter n_steps must be an integer >= 1, got True"),
    (["--algo", "ppo", "--hyperparams", "batch_size:0"], "hyperparameter batch_size must be an integer >= 1, got 0"),
    (["--algo", "ppo", "--hyperparams", "batch_size:4096"], "batch_size 4096 exceeds the rollout"),
    (["--algo", "ppo", "--hyperparams", "gamma:2.0"],
     "hyperparameter gamma must be a number >= 0 and <= 1, got 2.0"),
    (["--algo", "ppo", "--hyperparams", "policy_kwargs:{foo: 1}"], "unknown policy_kwargs ['foo'] for PerUserPolicy"),
    (["--algo", "dqn", "--hyperparams", "policy_kwargs:{foo: 1}"], "unknown policy_kwargs ['foo'] for DQNPolicy"),
    (["--algo", "ppo", "--hyperparams", "n_timesteps:abc"],
     "hyperparameter n_timesteps must be an integer >= 1, got 'abc'"),
    (["--algo", "dqn", "--hyperparams", "exploration_final_eps:-0.1"], "hyperparameter exploration_final_eps"),
    (["--algo", "ppo", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["--algo", "ppo", "--device", "bogus"], "--device 'bogus' is not a torch device"),
    (["--algo", "ppo", "--eval-freq", "-1"], "--eval-freq must be >= 0"),
    (["--algo", "ppo", "--checkpoint-freq", "-1"], "--checkpoint-freq must be >= 0"),
    (["--algo", "ppo", "--eval-episodes", "0"], "argument --eval-episodes: expected an integer >= 1"),
    (["--algo", "ppo", "--config", "missing.yml"], "no such file 'missing.yml'"),
    (["--resume", "nowhere"], "with its own settings; it takes no --out"),  # the run's own folder
])
def test_train_cli_rejects_bad_arguments(argv: list[str], message: str, tmp_path, capsys) -> None:
    err = _error(train_cli.main, argv + ["--out", str(tmp_path / "run")], capsys)
    assert message in err.splitlines()[-1] and "Traceback" not in err  # the reason on one line
    assert not (tmp_path / "run").exists()


def test_train_cli_refuses_a_resume_of_no_run(tmp_path, capsys) -> None:
    err = _error(train_cli.main, ["--resume", str(tmp_path / "nowhere")], capsys)
    assert "nowhere is not a run directory" in err.splitlines()[-1] and "Traceback" not in err


def test_train_cli_refuses_cuda_without_cuda_and_bad_out(tmp_path, capsys) -> None:
    if not torch.cuda.is_available():
        err = _error(train_cli.main, ["--algo", "ppo", "--device", "cuda", "--out", str(tmp_path / "run")], capsys)
        assert "--device 'cuda': cuda is not available" in err
    a_file = tmp_path / "file"
    a_file.write_text("")
    err = _error(train_cli.main, ["--algo", "ppo", "--out", str(a_file)], capsys)
    assert f"--out {a_file} exists and is not a directory" in err
    err = _error(train_cli.main, ["--algo", "ppo", "--out", str(a_file / "run")], capsys)
    assert f"--out {a_file / 'run'} is not writable" in err
    err = _error(train_cli.main, ["--algo", "ppo", "--eval-freq", "0", "--timesteps", "-1",
                                  "--out", str(tmp_path / "run")], capsys)
    assert "argument --timesteps: expected an integer >= 0" in err
    err = _error(train_cli.main, ["--algo", "ppo", "--eval-freq", "0", "--eval-episodes", "0",
                                  "--out", str(tmp_path / "run")], capsys)
    assert "argument --eval-episodes: expected an integer >= 1" in err  # refused even without evaluation


def test_train_cli_refuses_a_corrupt_normaliser_on_resume(tiny_run: Path, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.vecnormalize.pkl").write_bytes(b"not a pickle")
    before = (run / "run.yml").read_text()
    err = _error(train_cli.main, ["--resume", str(run), "--timesteps", "64", "--no-progress"], capsys)
    assert f"cannot load VecNormalize statistics {run / 'model.vecnormalize.pkl'}" in err
    assert (run / "run.yml").read_text() == before
    (run / "model.vecnormalize.pkl").unlink()
    (run / "model.resume.pkl").write_bytes(b"\x80\x04 truncated")
    err = _error(train_cli.main, ["--resume", str(run), "--timesteps", "64", "--no-progress"], capsys)
    assert f"cannot load training state {run / 'model.resume.pkl'}" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--seed", "-1"], "argument --seed: expected an integer seed in [0, 2**63), got -1"),
    (["--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["--config", "missing.yml"], "no such file 'missing.yml'"),
])
def test_evaluate_cli_rejects_bad_arguments(argv: list[str], message: str, tmp_path, capsys) -> None:
    err = _error(evaluate_cli.main, argv + ["--policies", "greedy", "--out", str(tmp_path / "eval")], capsys)
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "eval").exists()


def test_evaluate_cli_checks_out_before_evaluating(tiny_run: Path, tmp_path, capsys, monkeypatch) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    monkeypatch.setattr("aigc_edge_env.evaluation.runner.evaluate_all",
                        lambda *args, **kwargs: pytest.fail("evaluated"))
    for out, message in ((a_file, "exists and is not a directory"), (a_file / "eval", "is not writable")):
        err = _error(evaluate_cli.main, ["--policies", "greedy", "--out", str(out)], capsys)
        assert f"--out {out} {message}" in err
    levels = "{step_levels: [5, 10, 20, 25, 30, 35, 40, 50]}"
    err = _error(evaluate_cli.main, ["--runs", str(tiny_run), "--config", levels, "--out", str(tmp_path / "eval")],
                 capsys)
    assert "was trained with step levels [5, 10, 15, 20, 25, 30, 40, 50]" in err
    assert "has [5, 10, 20, 25, 30, 35, 40, 50]" in err


def test_evaluate_cli_rejects_missing_and_corrupt_models(tiny_run: Path, tmp_path, capsys) -> None:
    missing = tmp_path / "nowhere" / "model.zip"
    assert f"no model file at {missing}" in _error(evaluate_cli.main, ["--runs", str(missing)], capsys)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.yml").write_text((tiny_run / "run.yml").read_text())
    (corrupt / "model.zip").write_bytes(b"not a zip file")
    assert f"cannot load model {corrupt / 'model.zip'}: " in _error(evaluate_cli.main, ["--runs", str(corrupt)], capsys)
    record = yaml.safe_load((tiny_run / "run.yml").read_text())
    assert record["versions"]["aigc-edge-env"] == __version__  # the code's, not install metadata
    record["versions"]["aigc-edge-env"] = "9.9.0"  # a run of another release: the error says so
    (corrupt / "run.yml").write_text(yaml.safe_dump(record))
    assert "(trained with aigc-edge-env 9.9.0, whose networks this version" in _error(
        evaluate_cli.main, ["--runs", str(corrupt)], capsys)
    assert "unknown policy 'best'" in _error(evaluate_cli.main, ["--policies", "best"], capsys)
    old_head = tmp_path / "old_head"  # PerUserPolicy of 0.3.0: its head's logits mean something else, refused
    shutil.copytree(tiny_run, old_head)  # before loading (its weights would load at L = 2, where 2 + L = 2L)
    record["versions"]["aigc-edge-env"] = "0.3.0"
    (old_head / "run.yml").write_text(yaml.safe_dump(record))
    assert "its PerUserPolicy was trained with aigc-edge-env 0.3.0, whose head has independent offload" in _error(
        evaluate_cli.main, ["--runs", str(old_head)], capsys)
    wrong_env = _error(evaluate_cli.main, ["--runs", str(tiny_run), "--env", "AIGCEdge-Large-v0"], capsys)
    assert "observation_space" in wrong_env


@pytest.mark.slow
def test_train_cli_bad_argument_exit_status_in_a_subprocess(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--algo", "ppo", "--timesteps", "-1", "--out",
                             str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "aigc-edge train: error: argument --timesteps: expected an integer >= 0, got -1\n"
    assert "Traceback" not in result.stderr


def test_benchmark_time_to_target_from_periodic_evaluations(tiny_run: Path) -> None:
    from aigc_edge_env.benchmarks import agents as bench

    steps, rewards = read_scalars(tiny_run / "tb", "eval/reward")
    _, times = read_scalars(tiny_run / "tb", "eval/train_time_s")
    assert list(steps) == [64, 128] and np.all(np.diff(times) > 0) and times[0] > 0
    best = int(np.argmax(rewards))  # the first evaluation with the highest reward scores exactly 1
    references = {"exact": float(rewards[best]), "random": float(rewards[best]) - 1000.0}
    assert bench.time_to_target(tiny_run, references, 1.0) == (int(steps[best]), pytest.approx(float(times[best])))
    assert bench.time_to_target(tiny_run, references, 1.01) is None
    assert bench.time_to_target(tiny_run, {"exact": float(rewards.min()), "random": float(rewards.min()) - 1},
                                0.95) == (64, pytest.approx(float(times[0])))


def test_benchmark_finds_a_finished_run_and_refuses_another(tiny_run: Path, tmp_path) -> None:
    """What an interrupted benchmark does on its second start: a finished run of the same settings
    is not trained again; a run directory of other settings (or none yet) is refused, not overwritten."""
    from aigc_edge_env.benchmarks import agents as bench

    job = {"algo": "ppo", "env": "AIGCEdge-v0", "seed": 0, "timesteps": 128}
    assert bench.finished_run(tiny_run, job)
    assert not bench.finished_run(tmp_path / "missing", job)
    for other in ({"seed": 1}, {"timesteps": 256}, {"algo": "dqn"}):
        with pytest.raises(SystemExit, match="holds another run"):
            bench.finished_run(tiny_run, {**job, **other})
    (tmp_path / "partial").mkdir()
    with pytest.raises(SystemExit, match="holds no finished run"):
        bench.finished_run(tmp_path / "partial", job)


def test_benchmark_reports_a_finished_run_end_to_end(tiny_run: Path, tmp_path, capsys) -> None:
    """The whole benchmark after its training: a finished run in ``OUT/runs`` is evaluated beside
    exact and random and ``benchmark.md`` names the checkout's commit (no training, so no Ray)."""
    from aigc_edge_env.benchmarks import agents as bench

    out = tmp_path / "bench"
    shutil.copytree(tiny_run, out / "runs" / "ppo_s0")
    assert bench.main(["--algos", "ppo", "--train-seeds", "0", "--timesteps", "128", "--episodes", "1", "--horizon",
                       str(HORIZON), "--eval-freq", "64", "--out", str(out), "--no-progress"]) == 0
    table = (out / "benchmark.md").read_text()
    assert bench.code_version() in table and "| ppo |" in table
    assert "not trained again" in capsys.readouterr().out
