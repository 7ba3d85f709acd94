"""Hyperparameter search of an algorithm on an env: Ray Tune's trials, Optuna's sampler, ASHA's stopping.

Examples::

    aigc-edge tune --algo ppo --env AIGCEdge-v0 --trials 32 --timesteps 60000
    aigc-edge tune --algo dqn --trials 8 --timesteps 20000 --eval-freq 5000 --workers 2 --out results/tune/dqn

The search space is ``agents/hyperparams/<algo>.search.yml``; the best trial's entry is written
as ``<out>/<algo>.yml`` (the format of ``agents/hyperparams/<algo>.yml``), every trial to
``trials.csv`` and ``trials.md`` (:mod:`aigc_edge_env.agents.tune`; the ``agents`` and
``distributed`` extras).  The same command run again after an interruption resumes the search.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aigc_edge_env.cli.common import UsageError, add_env, add_out, add_workers, count, seed
from aigc_edge_env.cli.train import ALGORITHM_NAMES

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", required=True, choices=ALGORITHM_NAMES)
    add_env(parser)
    parser.add_argument("--trials", type=count, default=32, help="trials sampled (default 32)")
    parser.add_argument("--timesteps", type=count, default=60_000, help="training timesteps of a full trial")
    parser.add_argument("--seed", type=seed, default=0, help="training seed of every trial, and the sampler's")
    parser.add_argument("--eval-freq", type=count, default=10_000, help="timesteps between evaluations (reports)")
    parser.add_argument("--eval-episodes", type=count, default=5, help="episodes per evaluation")
    parser.add_argument("--grace-timesteps", type=count, default=None,
                        help="ASHA's first rung: no trial is stopped before (default timesteps / 4)")
    add_out(parser, None, default_help="results/tune/<algo>_<env>")
    add_workers(parser, always_ray=True)


def run(args: argparse.Namespace) -> int:
    from aigc_edge_env.agents.hyperparameters import HyperparamError, load_hyperparams
    from aigc_edge_env.agents.tune import load_search_space, run_search
    from aigc_edge_env.cli.common import check_output_dir
    from aigc_edge_env.config import make_config

    try:
        load_search_space(args.algo)
        load_hyperparams(args.algo, args.env)
        make_config(args.env, args.config)
    except (HyperparamError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.timesteps % args.eval_freq:
        raise UsageError(f"--timesteps ({args.timesteps}) must be a multiple of --eval-freq ({args.eval_freq}): a "
                         "trial reports at each evaluation, and its last one at --timesteps is its final score")
    if args.grace_timesteps is None:
        args.grace_timesteps = max(1, args.timesteps // 4)
    if args.grace_timesteps > args.timesteps:
        raise UsageError(f"--grace-timesteps must be in [1, --timesteps {args.timesteps}], got {args.grace_timesteps}")
    if args.out is None:
        args.out = Path("results/tune") / f"{args.algo}_{args.env}"
    check_output_dir(args.out)
    run_search(args)
    return 0
