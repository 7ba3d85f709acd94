#!/usr/bin/env python
"""Benchmark the learned agents: train PPO, MaskablePPO and DQN with several seeds, then evaluate.

Example (the full run, also the defaults; a quick check is ``--timesteps 2000 --train-seeds 0 --episodes 2
--horizon 20``)::

    aigc-edge bench agents --timesteps 200000 --train-seeds 0 1 2 --episodes 10 --out results/bench_agents

Each (algo, seed) is a Ray task (:mod:`aigc_edge_env.distributed`: a local instance on every
core by default, ``--workers N`` runs at once, ``--address auto`` or ``ray://HOST:PORT`` a
cluster) holding one CPU and one torch thread, in a fresh worker process (so its wall time and
peak memory, ``getrusage`` of that process, are its own), and training as ``aigc-edge train`` does; the
run directory comes back to ``OUT/runs/<algo>_s<seed>`` on this machine as each run finishes.  A
run found there finished (same algo, seed, env and timesteps) is not trained again, so an
interrupted benchmark resumes where it stopped; a worker that dies has its run trained again.
Training is seeded and single-threaded, so the runs are the same whatever ``--workers``.  The final
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
``benchmark.csv`` (per run: wall time, steps/s, time to target, peak memory, score), ``aigc-edge evaluate``'s
``summary.md``/``summary.csv``/``results.json`` and plots, and ``learning_curves.png``.
Timesteps are training-env steps: slots for PPO/MaskablePPO, per-user decisions for DQN.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.callbacks import reference_rewards
from aigc_edge_env.agents.environments import check_env_id, make_env
from aigc_edge_env.agents.plots import write_plots
from aigc_edge_env.agents.policies import load_model_policy
from aigc_edge_env.agents.runs import TENSORBOARD_DIR, RunError, read_record, read_scalars
from aigc_edge_env.cli.common import (
    ArgumentParser,
    add_env,
    add_out,
    add_progress,
    add_seed_episodes,
    add_workers,
    check_output_dir,
    count,
    finite_float,
    seed,
)
from aigc_edge_env.config import ConfigError
from aigc_edge_env.distributed import as_completed, check_workers
from aigc_edge_env.evaluation.runner import EVAL_SEED, evaluate_all
from aigc_edge_env.evaluation.statistics import SCORE_REFERENCES, normalised, summarize
from aigc_edge_env.evaluation.writers import format_number, write_csv, write_outputs
from aigc_edge_env.files import write_atomic
from aigc_edge_env.policies.base import Policy
from aigc_edge_env.policies.registry import make_policy
from aigc_edge_env.versions import package_versions

ROOT = Path(__file__).resolve().parents[1]


def build_parser(prog: str = "aigc-edge bench agents") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=list(ALGORITHMS), choices=sorted(ALGORITHMS))
    add_env(parser, config=False)
    parser.add_argument("--timesteps", type=count, default=200_000, help="training timesteps per run (default 2e5)")
    parser.add_argument("--train-seeds", nargs="+", type=seed, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    add_seed_episodes(parser, EVAL_SEED, 10)
    parser.add_argument("--horizon", type=count, default=None, help="evaluation slots per episode (default the env's)")
    parser.add_argument("--eval-freq", type=int, default=10_000, help="periodic evaluation during training")
    parser.add_argument("--target", type=finite_float, default=0.95, help="score whose training time is reported")
    add_out(parser, Path("results/bench_agents"))
    add_progress(parser)
    add_workers(parser, always_ray=True)
    return parser


def train_task(job: dict[str, Any]) -> bytes:
    """Train one run as ``aigc-edge train --algo A --env E --timesteps T --seed S --eval-freq F
    --checkpoint-freq 0`` would, in a temporary directory of this worker; that run directory as a
    gzipped tar archive (``job``: algo, env, timesteps, seed, eval_freq, name)."""
    from aigc_edge_env.agents.training import TrainRequest, train

    command = ["train.py", "--algo", job["algo"], "--env", job["env"], "--timesteps", str(job["timesteps"]),
               "--seed", str(job["seed"]), "--out", job["name"], "--eval-freq", str(job["eval_freq"]),
               "--checkpoint-freq", "0", "--no-progress"]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / job["name"]
        train(TrainRequest(out=run_dir, algo=job["algo"], env_id=job["env"], timesteps=job["timesteps"],
                           seed=job["seed"], eval_every=job["eval_freq"], checkpoint_every=0, progress_bar=False,
                           threads=1, command=command))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(run_dir, arcname=job["name"])
        return buffer.getvalue()


def finished_run(run_dir: Path, job: dict[str, Any]) -> bool:
    """True when ``run_dir`` holds the finished run of ``job``; ``False`` when there is none.

    Raises ``SystemExit`` when it holds another run (other settings, or unfinished), which the
    benchmark would otherwise overwrite."""
    if not run_dir.exists():
        return False
    try:
        record = read_record(run_dir)
    except RunError:
        raise SystemExit(f"{run_dir} exists but holds no finished run: remove it to train it again") from None
    last = record["sessions"][-1] if record["sessions"] else {}
    same = (record["algo"], record["env_id"], record["seed"], last.get("timesteps")) == (
        job["algo"], job["env"], job["seed"], job["timesteps"])
    if not same or "total_timesteps" not in last or last.get("interrupted") or len(record["sessions"]) != 1:
        raise SystemExit(f"{run_dir} holds another run (algo {record['algo']}, env {record['env_id']}, seed "
                         f"{record['seed']}, {last.get('timesteps')} timesteps) or an unfinished one: remove it or "
                         "choose another --out")
    return True


def train_runs(args: argparse.Namespace) -> dict[str, Path]:
    """Every (algo, seed) run directory under ``OUT/runs``: the finished ones found there, the others trained
    as Ray tasks and unpacked there as each finishes."""
    runs = args.out / "runs"
    jobs = [{"algo": algo, "env": args.env, "timesteps": args.timesteps, "seed": seed, "eval_freq": args.eval_freq,
             "name": f"{algo}_s{seed}"} for algo in args.algos for seed in args.train_seeds]
    todo = [job for job in jobs if not finished_run(runs / job["name"], job)]
    if len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} runs found finished in {runs}, not trained again", flush=True)
    for i, archive in as_completed(train_task, todo, args.workers, args.address, not args.no_progress,
                                   desc="training runs", unit="run", own_process=True):
        name = todo[i]["name"]
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=runs) as tmp:  # unpacked whole, then moved: never a partial run
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
            shutil.move(Path(tmp) / name, runs / name)
        print(f"trained {name}", flush=True)
    return {job["name"]: runs / job["name"] for job in jobs}


def time_to_target(run_dir: Path, references: dict[str, float], target: float) -> tuple[int, float] | None:
    """Step and training time (s) of the first periodic evaluation scoring ``target`` or more; ``None`` if none.

    ``references``: mean rewards of ``exact`` and ``random`` on the periodic evaluation's seeds.
    """
    steps, rewards = read_scalars(run_dir / TENSORBOARD_DIR, "eval/reward")
    _, times = read_scalars(run_dir / TENSORBOARD_DIR, "eval/train_time_s")
    scores = normalised(np.asarray(rewards)[:, None], np.array([references["random"]]), np.array([references["exact"]]))
    reached = np.flatnonzero(scores >= target)
    if len(reached) == 0 or len(times) != len(steps):
        return None
    return int(steps[reached[0]]), float(times[reached[0]])


def read_periodic_references(run_dir: Path) -> dict[str, float]:
    """:func:`reference_rewards` on the run's periodic evaluation seeds and env."""
    record = read_record(run_dir)
    return reference_rewards(lambda: make_env(record["env_id"], record["env_config_overrides"]),
                             record["evaluation"]["seeds"])


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
            "steps_per_cpu_s": session.get("steps_per_cpu_s"),
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


def main(argv: list[str] | None = None, prog: str = "aigc-edge bench agents") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    config = {"horizon_slots": args.horizon} if args.horizon is not None else {}
    try:
        check_env_id(args.env, config)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.timesteps < 1 or args.episodes < 1 or args.eval_freq < 0:
        parser.error("--timesteps and --episodes must be positive, --eval-freq not negative")
    for option, values in (("--algos", args.algos), ("--train-seeds", args.train_seeds)):
        if len(set(values)) < len(values):  # a run would be trained twice into one folder
            parser.error(f"{option} names a value twice: {values}")
    try:
        check_workers(args.workers)
        check_output_dir(args.out)
    except ValueError as exc:
        parser.error(str(exc))
    run_dirs = train_runs(args)
    policies: dict[str, Policy] = {name: make_policy(name) for name in reversed(SCORE_REFERENCES)}  # exact, random
    for label, run_dir in run_dirs.items():
        policies[label] = load_model_policy(run_dir, args.env, config)
    torch.set_num_threads(1)  # as in aigc-edge train and evaluate: fastest for these small networks
    seeds = list(range(args.seed, args.seed + args.episodes))
    results = evaluate_all(policies, lambda: make_env(args.env, config), seeds,
                           progress=not args.no_progress)
    summary_rows = summarize(results)
    metadata = {"env_id": args.env, "config_overrides": config, "seeds": seeds, "command": sys.argv,
                "code": code_version(),
                "runs": {label: str(path) for label, path in run_dirs.items()}, "versions": package_versions()}
    write_outputs(args.out, summary_rows, results, metadata)
    write_plots(args.out, summary_rows, run_dirs)
    references = read_periodic_references(next(iter(run_dirs.values()))) if args.eval_freq > 0 else None
    rows = benchmark_rows(run_dirs, {row["policy"]: row for row in summary_rows}, references, args.target)
    write_csv(args.out / "benchmark.csv", rows)
    table = benchmark_markdown(rows, args.target, code_version())
    write_atomic(args.out / "benchmark.md", table)
    print(table)
    return 0


if __name__ == "__main__":  # run as a script by its old name
    raise SystemExit("this module runs as `aigc-edge bench agents` (see `aigc-edge bench agents --help`)")
