#!/usr/bin/env python
"""Train PPO, MaskablePPO or DQN on an AIGC edge env into a run directory.

Examples::

    python train.py --algo ppo --env AIGCEdge-v0 --timesteps 200000 --seed 0 --out runs/ppo_s0
    python train.py --algo maskable_ppo --env AIGCEdge-v0 --config '{"horizon_slots": 50}' \\
        --hyperparams learning_rate:1e-4 n_steps:128
    python train.py --algo dqn --env AIGCEdge-Battery-v0 --config battery.yml --n-envs 2
    python train.py --algo ppo --env AIGCEdge-Battery-v0 --wrapper priced --timesteps 40000 --out runs/priced_s0
    python train.py --resume runs/ppo_s0 --timesteps 100000

Hyperparameters come from ``agents/hyperparams/<algo>.yml`` (entry of the env id), updated by
``--hyperparams key:value ...``; with ``--wrapper priced`` from ``agents/hyperparams/<algo>_priced.yml``
(the agent sets per-user energy prices and ``exact`` solves each slot under them,
:mod:`aigc_edge_env.priced`).  The run directory (layout in
``agents/runs.py``) keeps the model, its VecNormalize statistics, checkpoints,
the best model of the periodic evaluation, TensorBoard logs (``tensorboard --logdir DIR/tb``)
and ``run.yml`` (resolved config, command lines, package versions, wall time, peak memory).
A bad request exits with status 2 and a one-line reason, before any work.

Ctrl-C (SIGINT) or SIGTERM stops training at the next step: the model, its normaliser and
the training state are saved, ``run.yml`` marks the session interrupted with the step
reached, and train.py exits with one line and status 128 + the signal's number (130, 143).
``--resume DIR`` without ``--timesteps`` then trains what the interrupted session had left,
exactly as if it had not been interrupted.  One train.py at a time writes a run directory: a
second one given the same ``--out`` is refused at once.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
from pathlib import Path

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.cli import parse_mapping
from aigc_edge_env.agents.hyperparameters import HyperparamError, parse_overrides
from aigc_edge_env.agents.training import TrainingError, TrainingInterrupted, TrainRequest, train
from aigc_edge_env.config import SCENARIOS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), help="algorithm (required unless --resume)")
    parser.add_argument("--env", default=None, help=f"env id, one of {sorted(SCENARIOS)} (default AIGCEdge-v0)")
    parser.add_argument("--timesteps", type=int, default=None,
                        help="training env steps (default: n_timesteps of the hyperparameters; on --resume of an "
                             "interrupted run, what it had left)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-envs", type=int, default=None,
                        help="parallel envs (default: n_envs of the hyperparameters)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default runs/<algo>_<env>_s<seed>_<time>)")
    parser.add_argument("--config", default=None,
                        help="env config overrides: a JSON/YAML file or inline JSON/YAML mapping")
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="KEY:VALUE",
                        help="hyperparameter overrides, e.g. learning_rate:3e-4 n_steps:256")
    parser.add_argument("--wrapper", choices=["priced"], default=None,
                        help="train through an env wrapper with its own hyperparameter file <algo>_<wrapper>.yml: "
                             "priced = per-user energy prices solved by exact (aigc_edge_env.priced)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR for --timesteps more steps")
    parser.add_argument("--eval-freq", type=int, default=10_000, help="timesteps between evaluations (0: none)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per periodic evaluation")
    parser.add_argument("--checkpoint-freq", type=int, default=50_000, help="timesteps between checkpoints (0: none)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def request_from_args(args: argparse.Namespace, argv: list[str]) -> TrainRequest:
    """The :class:`TrainRequest` of parsed arguments; ``ValueError`` for a bad --config or --hyperparams."""
    if args.resume is None and args.algo is None:
        raise ValueError("--algo is required (unless --resume)")
    env_id = args.env if args.env is not None or args.resume is not None else "AIGCEdge-v0"
    out = args.resume if args.resume is not None else args.out
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{args.algo}_{env_id}_s{args.seed}_{stamp}"
    return TrainRequest(
        out=out, algo=args.algo, env_id=env_id, timesteps=args.timesteps, seed=args.seed, n_envs=args.n_envs,
        env_config=parse_mapping(args.config) if args.config else {},
        hyperparams=parse_overrides(args.hyperparams), wrapper=args.wrapper, resume=args.resume is not None,
        eval_every=args.eval_freq, eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_freq,
        progress_bar=not args.no_progress, device=args.device, threads=args.threads,
        command=["train.py"] + argv,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run_dir = train(request_from_args(args, argv))
    except (TrainingError, HyperparamError, ValueError) as exc:
        parser.exit(2, f"train.py: error: {exc}\n")
    except TrainingInterrupted as stopped:
        print(f"train.py: {stopped}; continue with: python train.py --resume {stopped.run_dir}", file=sys.stderr)
        return 128 + signal.Signals[stopped.signal_name].value
    print(f"run saved in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
