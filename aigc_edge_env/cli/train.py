"""Train PPO, MaskablePPO, DQN or one of the own trainers (``price_network``, ``ppo_mixture``,
``imitation_mixture``) into a run directory.

Examples::

    aigc-edge train --algo ppo --env AIGCEdge-v0 --timesteps 200000 --seed 0 --out runs/ppo_s0
    aigc-edge train --algo maskable_ppo --env AIGCEdge-v0 --config '{"horizon_slots": 50}' \\
        --hyperparams learning_rate:1e-4 n_steps:128
    aigc-edge train --algo dqn --env AIGCEdge-Battery-v0 --config battery.yml --n-envs 2
    aigc-edge train --algo ppo --env AIGCEdge-Battery-v0 --wrapper priced --timesteps 40000 --out runs/priced_s0
    aigc-edge train --resume runs/ppo_s0 --timesteps 100000
    aigc-edge train --algo price_network --env AIGCEdge-Battery-v0 --seed 0 --out runs/price_network_s0
    aigc-edge train --algo ppo_mixture --env AIGCEdge-Large-v0 --seed 0 --out runs/mixture_s0
    aigc-edge train --algo imitation_mixture --env AIGCEdge-Large-v0 --seed 0 --out runs/imitation_s0

Hyperparameters come from ``agents/hyperparams/<algo>.yml`` (entry of the env id), updated by
``--hyperparams key:value ...``; with ``--wrapper priced`` from ``agents/hyperparams/<algo>_priced.yml``
(the agent sets per-user energy prices and ``exact`` solves each slot under them,
:mod:`aigc_edge_env.priced`).  The run directory (layout in
``agents/runs.py``) keeps the model, its VecNormalize statistics, checkpoints,
the best model of the periodic evaluation, TensorBoard logs (``tensorboard --logdir DIR/tb``)
and ``run.yml`` (resolved config, command lines, package versions, wall time, peak memory).
A bad request exits with status 2 and a one-line reason, before any work.

Three algorithms have trainers of their own instead of SB3's; they take ``--env``, ``--config``, ``--seed``,
``--out``, ``--hyperparams`` and ``--threads``, read ``agents/hyperparams/<algo>.yml`` and refuse the
SB3-only options:

* ``--algo price_network``: the amortised planner of the battery scenario, a per-user price network
  fitted to ``mpc``'s planned prices, then DAgger, played with ``exact``
  (:mod:`aigc_edge_env.agents.price_imitation`);
* ``--algo ppo_mixture``: the per-user network trained by PPO on a mixture of user counts, one policy for
  every ``N`` (:mod:`aigc_edge_env.agents.mixture`); ``--hyperparams n_users:[50]`` trains one count;
* ``--algo imitation_mixture``: the same network trained on a mixture of user counts by imitation of
  ``exact``'s decisions (the per-slot optimum), in the same module.

Ctrl-C (SIGINT) or SIGTERM stops training at the next step: the model, its normaliser and
the training state are saved, ``run.yml`` marks the session interrupted with the step
reached, and the command exits with one line and status 128 + the signal's number (130, 143).
A second signal waits until that save is done.  After a ``kill -9``, ``--resume DIR`` continues
from the newest complete checkpoint and says which (docs/cli.md, "Interruptions and recovery").
``--resume DIR`` without ``--timesteps`` then trains what the interrupted session had left,
exactly as if it had not been interrupted.  One training at a time writes a run directory: a
second one given the same ``--out`` is refused at once.  A ``ppo_mixture`` or ``imitation_mixture`` run
resumes from the state of its last tenth (:func:`aigc_edge_env.agents.mixture.resume_mixture`), a ``price_network``
run after its last finished step (:func:`aigc_edge_env.agents.price_imitation.resume_price_network`).
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
from pathlib import Path

from aigc_edge_env.cli.common import (
    UsageError,
    add_env,
    add_out,
    add_progress,
    count,
    interruption,
    non_negative_int,
    seed,
)

__all__ = ["ALGORITHM_NAMES", "configure", "run"]

#: The algorithms of ``aigc_edge_env.agents.algorithms.ALGORITHMS`` (named here so that ``--help`` imports no torch).
ALGORITHM_NAMES = ("dqn", "maskable_ppo", "ppo")
#: Trainers of their own (not SB3), by ``--algo``: the module and function of each, called as
#: ``function(out, env_id, env_config, seed, hyperparam_overrides, command, progress=...)``.
OWN_TRAINERS = {"price_network": ("aigc_edge_env.agents.price_imitation", "train_price_network"),
                "ppo_mixture": ("aigc_edge_env.agents.mixture", "train_mixture"),
                "imitation_mixture": ("aigc_edge_env.agents.mixture", "train_imitation_mixture")}
#: Their ``--resume``: the module, ``function(run_dir, command, progress=...)`` and what the run needs to resume.
OWN_RESUMERS = {"price_network": ("aigc_edge_env.agents.price_imitation", "resume_price_network", "its first step"),
                "ppo_mixture": ("aigc_edge_env.agents.mixture", "resume_mixture", "its first tenth"),
                "imitation_mixture": ("aigc_edge_env.agents.mixture", "resume_mixture", "its first tenth")}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", choices=(*ALGORITHM_NAMES, *OWN_TRAINERS),
                        help="algorithm (required unless --resume)")
    add_env(parser, default=None, default_help="AIGCEdge-v0; on --resume, the run's")
    parser.add_argument("--timesteps", type=non_negative_int, default=None,
                        help="training env steps (default: n_timesteps of the hyperparameters; on --resume of an "
                             "interrupted run, what it had left; 0 only with behaviour_cloning: the cloned policy)")
    parser.add_argument("--seed", type=seed, default=None, help="training seed (default 0; on --resume, the run's)")
    parser.add_argument("--n-envs", type=count, default=None,
                        help="parallel envs (default: n_envs of the hyperparameters)")
    add_out(parser, None, default_help="runs/<algo>_<env>_s<seed>_<date>-<time>; runs/<algo>_<env>_s<seed> for "
            "the own trainers")
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="KEY:VALUE",
                        help="hyperparameter overrides, e.g. learning_rate:3e-4 n_steps:256")
    parser.add_argument("--wrapper", choices=["priced"], default=None,
                        help="train through an env wrapper with its own hyperparameter file <algo>_<wrapper>.yml: "
                             "priced = per-user energy prices solved by exact (aigc_edge_env.priced)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR for --timesteps more steps (runs of the own trainers: to "
                             "the end of their budget, from their last tenth or step)")
    # SB3-only options default to None so that the own trainers (OWN_TRAINERS) can tell them given (SB3_DEFAULTS)
    parser.add_argument("--eval-freq", type=int, default=None, help="timesteps between evaluations (0: none; "
                                                                     "default 10000)")
    parser.add_argument("--eval-episodes", type=count, default=None,
                        help="episodes per periodic evaluation (>= 1; default 5)")
    parser.add_argument("--checkpoint-freq", type=int, default=None,
                        help="timesteps between checkpoints (0: none; default 50000)")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--threads", type=count, default=1, help="torch CPU threads (default 1)")
    add_progress(parser)


#: Options a resumed run takes from its run directory (``--resume`` refuses them given).
RUN_SETTINGS = ("out", "seed", "n_envs", "eval_freq", "eval_episodes", "checkpoint_freq")
#: Defaults of the options only SB3 runs take (the own trainers refuse them when given).
SB3_DEFAULTS = {"timesteps": None, "n_envs": None, "wrapper": None, "resume": None, "eval_freq": 10_000,
                "eval_episodes": 5, "checkpoint_freq": 50_000, "device": "cpu"}


def run(args: argparse.Namespace) -> int:
    from aigc_edge_env.agents.hyperparameters import HyperparamError, parse_overrides
    from aigc_edge_env.agents.training import TrainingError, TrainingInterrupted, TrainRequest, train

    if args.resume is None and args.algo is None:
        raise UsageError("--algo is required (unless --resume)")
    if args.resume is not None:  # the run's own settings hold; a different one given would be ignored
        given = [option for option in RUN_SETTINGS if getattr(args, option) is not None]
        if given:
            raise UsageError(f"--resume continues the run in {args.resume} with its own settings; it takes no "
                             + ", ".join(f"--{option.replace('_', '-')}" for option in given))
    resumed_algo = _run_algo(args.resume) if args.resume is not None else None
    if resumed_algo in OWN_RESUMERS:
        return _resume_own(args, str(resumed_algo))
    if args.seed is None:
        args.seed = 0
    env_id = args.env if args.env is not None or args.resume is not None else "AIGCEdge-v0"
    if args.algo in OWN_TRAINERS:
        return _train_own(args, env_id)
    for option, default in SB3_DEFAULTS.items():
        if getattr(args, option) is None:
            setattr(args, option, default)
    for option in ("eval_freq", "checkpoint_freq"):
        if getattr(args, option) < 0:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 0 (0: none), got {getattr(args, option)}")
    out = args.resume if args.resume is not None else args.out
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{args.algo}_{env_id}_s{args.seed}_{stamp}"
    try:
        request = TrainRequest(
            out=out, algo=args.algo, env_id=env_id, timesteps=args.timesteps, seed=args.seed, n_envs=args.n_envs,
            env_config=args.config, hyperparams=parse_overrides(args.hyperparams), wrapper=args.wrapper,
            resume=args.resume is not None, eval_every=args.eval_freq, eval_episodes=args.eval_episodes,
            checkpoint_every=args.checkpoint_freq, progress_bar=not args.no_progress, device=args.device,
            threads=args.threads, command=args.argv,
        )
        run_dir = train(request)
    except (TrainingError, HyperparamError) as exc:  # a bad request, refused before any work
        raise UsageError(str(exc)) from None
    except TrainingInterrupted as stopped:
        print(f"aigc-edge train: {stopped}; continue with: aigc-edge train --resume {stopped.run_dir}",
              file=sys.stderr)
        return 128 + signal.Signals[stopped.signal_name].value
    print(f"run saved in {run_dir}")
    return 0


def _train_own(args: argparse.Namespace, env_id: str) -> int:
    """``--algo price_network``, ``ppo_mixture`` or ``imitation_mixture``: a trainer of its own (its own options
    only)."""
    import importlib

    import torch

    from aigc_edge_env.agents.hyperparameters import HyperparamError, parse_overrides
    from aigc_edge_env.agents.training import TrainingError

    given = ["--" + option.replace("_", "-") for option in SB3_DEFAULTS if getattr(args, option) is not None]
    if given:
        raise UsageError(f"--algo {args.algo} takes no {', '.join(given)} (SB3 options; its budget is in "
                         f"agents/hyperparams/{args.algo}.yml)")
    out = args.out if args.out is not None else Path("runs") / f"{args.algo}_{env_id}_s{args.seed}"
    torch.set_num_threads(args.threads)
    module, function = OWN_TRAINERS[args.algo]
    trainer = getattr(importlib.import_module(module), function)
    try:
        run_dir = trainer(out, env_id, args.config, args.seed, parse_overrides(args.hyperparams), args.argv,
                          progress=not args.no_progress)
    except (TrainingError, HyperparamError) as exc:  # a bad request, refused before any work
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt as exc:
        return _interrupted(exc, args.algo, out)
    print(f"run saved in {run_dir}")
    return 0


def _run_algo(run_dir: Path) -> str | None:
    """The ``algo`` of the run in ``run_dir``; None when its record cannot be read (the SB3 path says why)."""
    from aigc_edge_env.agents.runs import RunError, read_record

    try:
        return str(read_record(run_dir)["algo"])
    except RunError:
        return None


def _resume_own(args: argparse.Namespace, algo: str) -> int:
    """``--resume`` of a run of an own trainer: as it was configured, from where it stopped."""
    import importlib

    import torch

    from aigc_edge_env.agents.training import TrainingError

    given = [f"--{option.replace('_', '-')}" for option in (*SB3_DEFAULTS, "env", "hyperparams", "config")
             if option != "resume" and getattr(args, option) not in (None, [], {})]
    if args.algo not in (None, algo):
        given.insert(0, f"--algo {args.algo}")
    if given:
        raise UsageError(f"--resume of the {algo} run in {args.resume} continues it as it was configured; it "
                         f"takes no {', '.join(given)}")
    torch.set_num_threads(args.threads)
    module, function, _ = OWN_RESUMERS[algo]
    try:
        run_dir = getattr(importlib.import_module(module), function)(args.resume, args.argv,
                                                                       progress=not args.no_progress)
    except TrainingError as exc:  # nothing to resume, refused before any work
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt as exc:
        return _interrupted(exc, algo, args.resume)
    print(f"run saved in {run_dir}")
    return 0


def _interrupted(exc: KeyboardInterrupt, algo: str, out: Path) -> int:
    """One line saying how an interrupted run of an own trainer goes on; the exit status of the signal."""
    import importlib

    module, _, needs = OWN_RESUMERS[algo]
    name, status = interruption(exc)
    if importlib.import_module(module).resumable(out):
        print(f"aigc-edge train: interrupted by {name}; continue with: aigc-edge train --resume {out}",
              file=sys.stderr)
    else:
        print(f"aigc-edge train: interrupted by {name} before the run saved what a resume needs ({needs}): train "
              "again into a new --out", file=sys.stderr)
    return status
