"""Benchmarks that print numbers (``aigc_edge_env.benchmarks``); ``aigc-edge bench NAME --help`` for each.

Examples::

    aigc-edge bench env                               # env steps per second: single, vector, Gymnasium's
    aigc-edge bench solvers --slots 20 --n-users 5 10 50
    aigc-edge bench sca-kkt --n-users 10 20 --seed 100 --episodes 20
    aigc-edge bench agents --algos ppo --timesteps 200000 --train-seeds 0 1 2 --episodes 10
    aigc-edge bench ceiling --env AIGCEdge-v0 --episodes 10

Measured figures and the commands behind them are in docs/results.md and docs/agents_benchmark.md.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["BENCHMARKS", "configure", "run"]

#: Benchmark name -> (module of ``aigc_edge_env.benchmarks``, what it measures).
BENCHMARKS = {
    "env": ("env_speed", "env steps per second of the single, vector and Gymnasium vector envs"),
    "solvers": ("solvers", "per-slot time, cost and gap of every slot solver against N"),
    "sca-kkt": ("sca_kkt_quality", "how close sca_kkt comes to exact and to the heuristics"),
    "agents": ("agents", "score, time to a target and throughput of trained agents (agents extra)"),
    "ceiling": ("per_user_ceiling", "the per-user formulation's gamma-0 optimum and coordinate descent"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BENCHMARKS), metavar="NAME",
                        help="; ".join(f"{name}: {what}" for name, (_, what) in BENCHMARKS.items()))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options (NAME --help)")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"aigc_edge_env.benchmarks.{BENCHMARKS[args.name][0]}")
    return int(module.main(args.options, prog=f"aigc-edge bench {args.name}") or 0)
