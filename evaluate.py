#!/usr/bin/env python
"""Evaluate slot solvers and trained agents on the same seeds and slots; tables and plots.

Examples::

    python evaluate.py --episodes 10                                # every solver
    python evaluate.py --policies exact random greedy --runs runs/ppo_s0 runs/dqn_s0/best_model.zip
    python evaluate.py --policies all_local all_edge --episodes 3 --horizon 10 --out results/quick
    python evaluate.py --env AIGCEdge-Battery-v0 --policies exact+price0.3 "exact+price1(1-t/H)" lyapunov mpc

Every policy plays episode ``i`` from ``reset(seed=SEED + i)``; decisions do not change the
env's random draws, so all policies see the same slots.  ``--policies`` takes the names of
:func:`aigc_edge_env.evaluation.make_policy`: the slot solvers, solvers under a (decaying)
shadow price on energy, ``lyapunov`` and ``mpc`` (re-planning on sampled futures).  Reported per policy: mean episode
reward and cost components with bootstrap confidence intervals over episodes, drops, time
per decision, and the normalised score ``(R - R_random) / (R_exact - R_random)`` when exact
and random are among the policies (they are by default).  In a battery scenario it also
reports the share of the gap closed ``G = (R - R_exact) / (R_hindsight - R_exact)`` with a
paired interval, ``R_hindsight = -reward_scale * lower_bound`` of the certified hindsight bound
(:func:`aigc_edge_env.baselines.hindsight_bound`) of the same episodes, ``exact`` being
evaluated as the myopic reference whatever ``--policies`` says.  A bound takes 10-30 s per
episode (100 slots, one core); bounds are cached per (env id, config, seed) as JSON in
``--hindsight-cache`` (default ``results/hindsight``, shared by every output directory), so a
rerun reads them back; ``--no-hindsight`` skips them.  Writes ``summary.md`` (also printed),
``summary.csv``, ``results.json`` and PNG plots to ``--out``.  A trained model is a run
directory (its final model) or a model ``.zip`` in one; missing or corrupt files exit with
status 2 naming the path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from aigc_edge_env.agents.cli import check_output_dir, check_threads, parse_mapping
from aigc_edge_env.agents.environments import check_env_id, make_env
from aigc_edge_env.agents.plots import write_plots
from aigc_edge_env.agents.policies import load_model_policy
from aigc_edge_env.agents.runs import RunError, package_versions
from aigc_edge_env.baselines import SOLVERS, HindsightBound, cached_hindsight_bound
from aigc_edge_env.config import SCENARIOS, ConfigError, make_config
from aigc_edge_env.evaluation import (
    EVAL_SEED,
    GAP_REFERENCE,
    Policy,
    evaluate_all,
    make_policy,
    markdown_table,
    progress_bar,
    summarize,
    write_outputs,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="AIGCEdge-v0", help=f"env id, one of {sorted(SCENARIOS)}")
    parser.add_argument("--config", default=None, help="env config overrides: JSON/YAML file or inline mapping")
    parser.add_argument("--horizon", type=int, default=None, help="slots per episode (config horizon_slots)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per policy (default 10)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help=f"first episode seed (default {EVAL_SEED})")
    parser.add_argument("--policies", nargs="*", default=None, metavar="POLICY",
                        help=f"policies to evaluate: solvers (default all: {' '.join(SOLVERS)}), a solver under a "
                             "shadow price, e.g. exact+price0.3 or 'exact+price1(1-t/H)', or lyapunov, "
                             "'lyapunov(V=100,theta=80)', mpc, 'mpc(every=10,slots=20)'; give none for runs only")
    parser.add_argument("--runs", nargs="*", default=[], type=Path, metavar="PATH",
                        help="trained run directories or model .zip files")
    parser.add_argument("--out", type=Path, default=Path("results/evaluate"), help="output directory")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: fastest for these small networks)")
    parser.add_argument("--hindsight-cache", type=Path, default=Path("results/hindsight"),
                        help="directory caching the hindsight bounds of battery episodes (default results/hindsight)")
    parser.add_argument("--no-hindsight", action="store_true", help="battery scenarios: skip the hindsight bound and G")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_labels(paths: list[Path]) -> dict[str, Path]:
    """Unique table labels for model paths: the run directory's name, plus the model's stem for a .zip."""
    labels: dict[str, Path] = {}
    for path in paths:
        label = path.name if path.is_dir() or path.suffix != ".zip" else f"{path.parent.name}/{path.stem}"
        unique, k = label, 2
        while unique in labels:
            unique, k = f"{label}#{k}", k + 1
        labels[unique] = path
    return labels


def resolve(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Policy], dict[str, Path]]:
    """Env config overrides, policies by label and run directories by label; ``ValueError`` if bad."""
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0 (numpy seeds are non-negative), got {args.seed}")
    check_threads(args.threads)
    check_output_dir(args.out)
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must lie in (0, 1), got {args.confidence}")
    config = parse_mapping(args.config) if args.config else {}
    if args.horizon is not None:
        config["horizon_slots"] = args.horizon
    check_env_id(args.env, config)
    names = list(SOLVERS) if args.policies is None else args.policies
    policies: dict[str, Policy] = {name: make_policy(name) for name in names}
    run_dirs = {}
    for label, path in run_labels(args.runs).items():
        policies[label] = load_model_policy(path, args.env, config)
        run_dirs[label] = path if path.is_dir() else path.parent
    if not policies:
        raise ValueError("nothing to evaluate: give --policies and/or --runs")
    return config, policies, run_dirs


#: Per-episode fields of the hindsight bound written to results.json.
HINDSIGHT_FIELDS = ("lower_bound", "plan_cost", "dual_upper", "rounds", "plan", "bound_s", "elapsed_s")


def hindsight_bounds(env_id: str, config: dict[str, Any], seeds: list[int], cache_dir: Path,
                     progress: bool = True) -> dict[int, HindsightBound]:
    """The hindsight bound of every episode, from the cache where it is (computed and stored otherwise)."""
    bounds = {}
    with progress_bar(len(seeds), desc="hindsight bounds", unit="episode", enabled=progress) as bar:
        for seed in seeds:
            bounds[seed] = cached_hindsight_bound(env_id, seed, config, cache_dir)
            bar.update()
    return bounds


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, policies, run_dirs = resolve(args)
    except (ConfigError, RunError, ValueError) as exc:
        parser.exit(2, f"evaluate.py: error: {exc}\n")
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seed, args.seed + args.episodes))
    bounds = None
    if make_config(args.env, config).battery_enabled and not args.no_hindsight:
        policies = {GAP_REFERENCE: make_policy(GAP_REFERENCE), **policies}  # the myopic reference of G
        bounds = hindsight_bounds(args.env, config, seeds, args.hindsight_cache, progress=not args.no_progress)
    results = evaluate_all(policies, lambda: make_env(args.env, config), seeds, progress=not args.no_progress)
    reward_scale = make_config(args.env, config).reward_scale
    rows = summarize(results, args.confidence,
                     {seed: -reward_scale * b.lower_bound for seed, b in bounds.items()} if bounds else None)
    metadata = {"env_id": args.env, "config_overrides": config, "seeds": seeds, "command": ["evaluate.py"] + argv,
                "runs": {label: str(path) for label, path in run_dirs.items()}, "versions": package_versions()}
    if bounds:
        metadata["hindsight"] = {str(seed): {key: getattr(b, key) for key in HINDSIGHT_FIELDS} | {
            "gap": b.gap, "relative_gap": b.relative_gap} for seed, b in bounds.items()}
    written = list(write_outputs(args.out, rows, results, metadata, args.confidence).values())
    if not args.no_plots:
        written += write_plots(args.out, rows, run_dirs)
    print(markdown_table(rows, args.confidence))
    print(f"written: {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
