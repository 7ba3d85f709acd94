"""``aigc-edge``: the package's one command (also ``python -m aigc_edge_env``).

Subcommands (``aigc-edge COMMAND --help`` for each; docs/cli.md for the shared vocabulary):

* ``train``: train PPO, MaskablePPO, DQN, the battery's price network or the per-user network for every N
  (``ppo_mixture``, ``imitation_mixture``) into a run directory (the ``agents`` extra);
* ``evaluate``: solvers, planning policies and trained runs on the same seeded episodes;
* ``record``: episodes of named policies and trained runs as Minari datasets (``datasets`` extra);
* ``experiments``: the sweeps, the trade-off, the battery study, the battery rules' grid and the scale study;
* ``tune``: the hyperparameter search of an algorithm (Ray Tune + Optuna; ``distributed`` extra);
* ``calibrate``: measure the error curve of a diffusers sampler (``calibrate`` extra);
* ``bench``: the benchmarks (env speed, solvers, agents, ...).

A subcommand's module (``aigc_edge_env.cli.<name>``) has ``configure(parser)`` (its options, no
heavy import) and ``run(args) -> int``; bad arguments exit with status 2 and one line
(:mod:`aigc_edge_env.cli.common`).  A Ray cluster address (``--address``, ``RAY_ADDRESS``) is
checked before any work: one that answers nothing exits with status 2 and one line naming it
(:func:`aigc_edge_env.distributed.check_address`); a task that fails on a Ray worker ends the
command with status 1 and one line, the worker's error.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from aigc_edge_env.cli.common import (
    ArgumentParser,
    UsageError,
    fail,
    interruption,
    raise_terminated,
)
from aigc_edge_env.config import ConfigError
from aigc_edge_env.distributed import ClusterUnreachable, TaskFailed, check_address

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommand -> one-line description.
SUBCOMMANDS = {
    "train": "train PPO, MaskablePPO, DQN, a price network (price_network) or one network for every N (ppo_mixture, "
             "imitation_mixture)",
    "evaluate": "evaluate solvers, planning policies and trained runs on the same seeded episodes",
    "record": "record episodes of policies and trained runs as Minari datasets (offline RL, imitation)",
    "experiments": "sweeps, trade-off, battery study, battery rules and the scale study (docs/results.md)",
    "tune": "hyperparameter search of an algorithm on Ray Tune with Optuna",
    "calibrate": "measure the steps-versus-error curve of a diffusers sampler",
    "bench": "benchmarks that print numbers: env speed, solvers, agents",
}


def build_parser() -> ArgumentParser:
    """The ``aigc-edge`` parser with every subcommand's options."""
    from aigc_edge_env import __version__

    parser = ArgumentParser(prog="aigc-edge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"aigc-edge-env {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    for name, help_text in SUBCOMMANDS.items():
        module = importlib.import_module(f"aigc_edge_env.cli.{name}")
        doc = module.__doc__ or help_text
        module.configure(sub.add_parser(name, help=help_text, description=doc.split("\n\n")[0],
                                        epilog="\n\n".join(doc.split("\n\n")[1:]) or None,
                                        formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


#: Top-level module of an optional dependency -> the extra that installs it.
EXTRAS = {"torch": "agents", "stable_baselines3": "agents", "sb3_contrib": "agents", "tensorboard": "agents",
          "matplotlib": "experiments", "tqdm": "experiments", "ray": "distributed", "optuna": "distributed",
          "diffusers": "calibrate", "sklearn": "calibrate", "pettingzoo": "multiagent",
          "minari": "datasets", "h5py": "datasets"}


def main(argv: list[str] | None = None) -> int:
    """Run ``aigc-edge`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Ctrl-C and SIGTERM end any command with one line on stderr and status 130 or 143 (``train``
    saves its run first); what each command keeps of its finished work is in docs/cli.md."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = ["aigc-edge", *argv]
    prog = " ".join(["aigc-edge", args.command, *([args.study] if getattr(args, "study", None) else [])])
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    previous = signal.signal(signal.SIGTERM, raise_terminated) if in_main_thread else None
    try:
        if hasattr(args, "address"):
            check_address(args.address)
        return int(importlib.import_module(f"aigc_edge_env.cli.{args.command}").run(args))
    except KeyboardInterrupt as exc:
        name, status = interruption(exc)
        print(f"{prog}: interrupted by {name}; what is kept and how to go on: docs/cli.md, "
              "Interruptions and recovery", file=sys.stderr, flush=True)
        return status
    except (UsageError, ConfigError, ClusterUnreachable) as exc:
        fail(prog, str(exc))
    except TaskFailed as exc:
        fail(prog, str(exc), status=1)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRAS:
            raise
        fail(prog, f"this needs {top}, which is not installed: pip install 'aigc-edge-env[{EXTRAS[top]}]'")
    finally:
        if previous is not None:  # None: a handler not set from Python (or not the main thread)
            signal.signal(signal.SIGTERM, previous)
