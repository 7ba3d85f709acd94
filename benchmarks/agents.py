#!/usr/bin/env python
"""Benchmark the learned agents: train PPO, MaskablePPO and DQN with several seeds, then evaluate.

Example (the full run, also the defaults; a quick check is ``--timesteps 2000 --seeds 0 --episodes 2
--horizon 20``)::

    python benchmarks/agents.py --timesteps 200000 --seeds 0 1 2 --episodes 10 --out results/bench_agents

Each (algo, seed) trains in its own ``train.py`` process (so its wall time and peak memory,
``getrusage`` of that process, are its own) into ``OUT/runs/<algo>_s<seed>``.  The final
models are then evaluated by the evaluation engine (:mod:`aigc_edge_env.evaluation`) against
``exact`` and ``random`` on common seeds (normalised score with bootstrap CIs).  Training speed
is the whole run's: steps of experience per second of wall time (slots for PPO/MaskablePPO)
and per second of the training process's CPU time (on a core shared with other jobs the wall
time runs longer; the CPU time is what an idle core would take), and the training time to a
score of ``--target`` (0.95): the first periodic evaluation (every ``--eval-freq`` steps, on the
training's own evaluation seeds, scored against ``exact`` and ``random`` there) at or above it,
its wall time counted without the evaluations' own time.
``benchmark.md`` starts with the checkout's commit, so tables of two checkouts (before and
after a change) can be told apart.  Writes to ``OUT``: ``benchmark.md`` and
``benchmark.csv`` (per run: wall time, steps/s, time to target, peak memory, score), evaluate.py's
``summary.md``/``summary.csv``/``results.json`` and plots, and ``learning_curves.png``.
Timesteps are training-env steps: slots for PPO/MaskablePPO, per-user decisions for DQN.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.environments import check_env_id, make_env
from aigc_edge_env.agents.plots import write_plots
from aigc_edge_env.agents.policies import load_model_policy
from aigc_edge_env.agents.runs import TENSORBOARD_DIR, package_versions, read_record, read_scalars
from aigc_edge_env.config import ConfigError
from aigc_edge_env.evaluation import (
    EVAL_SEED,
    SCORE_REFERENCES,
    Policy,
    evaluate_all,
    format_number,
    make_policy,
    summarize,
    write_csv,
    write_outputs,
)

ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmarks/agents.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=list(ALGORITHMS), choices=sorted(ALGORITHMS))
    parser.add_argument("--env", default="AIGCEdge-v0")
    parser.add_argument("--timesteps", type=int, default=200_000, help="training timesteps per run (default 2e5)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per policy")
    parser.add_argument("--eval-seed", type=int, default=EVAL_SEED, help="first evaluation episode seed")
    parser.add_argument("--horizon", type=int, default=None, help="evaluation slots per episode (default the env's)")
    parser.add_argument("--eval-freq", type=int, default=10_000, help="periodic evaluation during training")
    parser.add_argument("--target", type=float, default=0.95, help="score whose training time is reported")
    parser.add_argument("--out", type=Path, default=Path("results/bench_agents"))
    parser.add_argument("--no-progress", action="store_true")
    return parser


def train_run(algo: str, seed: int, args: argparse.Namespace) -> Path:
    """Train one (algo, seed) in a fresh ``train.py`` process; its run directory."""
    run_dir = args.out / "runs" / f"{algo}_s{seed}"
    command = [sys.executable, str(ROOT / "train.py"), "--algo", algo, "--env", args.env, "--timesteps",
               str(args.timesteps), "--seed", str(seed), "--out", str(run_dir), "--eval-freq", str(args.eval_freq),
               "--checkpoint-freq", "0"] + (["--no-progress"] if args.no_progress else [])
    print(f"training {algo} seed {seed}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return run_dir


def time_to_target(run_dir: Path, references: dict[str, float], target: float) -> tuple[int, float] | None:
    """Step and training time (s) of the first periodic evaluation scoring ``target`` or more; ``None`` if none.

    ``references``: mean rewards of ``exact`` and ``random`` on the periodic evaluation's seeds.
    """
    steps, rewards = read_scalars(run_dir / TENSORBOARD_DIR, "eval/reward")
    _, times = read_scalars(run_dir / TENSORBOARD_DIR, "eval/train_time_s")
    scores = (rewards - references["random"]) / (references["exact"] - references["random"])
    reached = np.flatnonzero(scores >= target)
    if len(reached) == 0 or len(times) != len(steps):
        return None
    return int(steps[reached[0]]), float(times[reached[0]])


def periodic_references(run_dir: Path) -> dict[str, float]:
    """Mean episode rewards of ``exact`` and ``random`` on the run's periodic evaluation seeds and env."""
    record = read_record(run_dir)
    policies: dict[str, Policy] = {name: make_policy(name) for name in SCORE_REFERENCES}
    results = evaluate_all(policies, lambda: make_env(record["env_id"], record["env_config_overrides"]),
                           record["evaluation"]["seeds"], progress=False)
    return {result.name: float(result.episodes["reward"].mean()) for result in results}


def benchmark_rows(run_dirs: dict[str, Path], summary: dict[str, dict[str, Any]],
                   references: dict[str, float] | None = None, target: float = 0.95) -> list[dict[str, Any]]:
    """Per run: algo, seed, training cost (from run.yml), time to ``target`` (when ``references`` are given)
    and normalised score with its interval."""
    rows = []
    for label, run_dir in run_dirs.items():
        record = read_record(run_dir)
        session = record["sessions"][-1]
        row = summary[label]
        reached = time_to_target(run_dir, references, target) if references is not None else None
        rows.append({
            "run": label, "algo": record["algo"], "seed": record["seed"], "timesteps": session["total_timesteps"],
            "wall_time_s": session["wall_time_s"], "steps_per_s": session["steps_per_s"],
            "steps_per_cpu_s": session["timesteps"] / session["cpu_time_s"] if "cpu_time_s" in session else None,
            "target_steps": reached[0] if reached else None, "target_time_s": reached[1] if reached else None,
            "peak_rss_mib": session["peak_rss_mib"], "reward": row["reward"],
            "score": row["score"], "score_low": row["score_low"], "score_high": row["score_high"],
        })
    return rows


def benchmark_markdown(rows: list[dict[str, Any]], target: float = 0.95, code: str = "") -> str:
    header = (f"| run | algo | seed | timesteps | wall time (s) | steps/s | steps/CPU-s | to {target:g}: steps | "
              f"to {target:g}: training s | peak RSS (MiB) | reward | score [95% CI] |")
    lines = ([f"code: {code}", ""] if code else []) + [header, "|" + "---|" * 12]
    for r in rows:
        score = f"{format_number(r['score'])} [{format_number(r['score_low'])}, {format_number(r['score_high'])}]"
        steps = "not reached" if r["target_steps"] is None else str(r["target_steps"])
        seconds = "-" if r["target_time_s"] is None else f"{r['target_time_s']:.1f}"
        per_cpu_s = "-" if r["steps_per_cpu_s"] is None else f"{r['steps_per_cpu_s']:.0f}"
        lines.append(f"| {r['run']} | {r['algo']} | {r['seed']} | {r['timesteps']} | {r['wall_time_s']:.1f} | "
                     f"{r['steps_per_s']:.0f} | {per_cpu_s} | {steps} | {seconds} | {r['peak_rss_mib']:.0f} | "
                     f"{format_number(r['reward'])} | {score} |")
    lines.append("")
    for algo in dict.fromkeys(r["algo"] for r in rows):
        scores = [r["score"] for r in rows if r["algo"] == algo]
        lines.append(f"- {algo}: mean score {format_number(sum(scores) / len(scores))} over {len(scores)} seed(s) "
                     f"(min {format_number(min(scores))}, max {format_number(max(scores))})")
    lines.append("\nscore = (R - R_random) / (R_exact - R_random) on the evaluation episodes; "
                 "timesteps and steps/s: slots for PPO/MaskablePPO, per-user decisions for DQN; steps/s over the "
                 "training's wall time, steps/CPU-s over its CPU time (the same on an idle core; on a shared one the "
                 "wall time is longer); "
                 f"to {target:g}: first periodic evaluation scoring {target:g} or more (on the training's evaluation "
                 "seeds), its training wall time without the evaluations' own time.")
    return "\n".join(lines) + "\n"


def code_version() -> str:
    """The checkout's commit (``git describe --always --dirty``), so tables of two checkouts can be told apart."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = {"horizon_slots": args.horizon} if args.horizon is not None else {}
    try:
        check_env_id(args.env, config)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.timesteps < 1 or args.episodes < 1 or args.eval_freq < 0:
        parser.error("--timesteps and --episodes must be positive, --eval-freq not negative")
    run_dirs = {f"{algo}_s{seed}": train_run(algo, seed, args) for algo in args.algos for seed in args.seeds}
    policies: dict[str, Policy] = {name: make_policy(name) for name in reversed(SCORE_REFERENCES)}  # exact, random
    for label, run_dir in run_dirs.items():
        policies[label] = load_model_policy(run_dir, args.env, config)
    torch.set_num_threads(1)  # as in train.py and evaluate.py: fastest for these small networks
    seeds = list(range(args.eval_seed, args.eval_seed + args.episodes))
    results = evaluate_all(policies, lambda: make_env(args.env, config), seeds,
                           progress=not args.no_progress)
    summary_rows = summarize(results)
    metadata = {"env_id": args.env, "config_overrides": config, "seeds": seeds, "command": sys.argv,
                "code": code_version(),
                "runs": {label: str(path) for label, path in run_dirs.items()}, "versions": package_versions()}
    write_outputs(args.out, summary_rows, results, metadata)
    write_plots(args.out, summary_rows, run_dirs)
    references = periodic_references(next(iter(run_dirs.values()))) if args.eval_freq > 0 else None
    rows = benchmark_rows(run_dirs, {row["policy"]: row for row in summary_rows}, references, args.target)
    write_csv(args.out / "benchmark.csv", rows)
    table = benchmark_markdown(rows, args.target, code_version())
    (args.out / "benchmark.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
