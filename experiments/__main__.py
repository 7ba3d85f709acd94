"""Command line of the experiments (see docs/results.md).

Examples::

    python -m experiments sweep --param n_users --values 5 10 20 50
    python -m experiments sweep --param weight_energy_per_j --seeds 5 --slots 20
    python -m experiments tradeoff
    python -m experiments curves --param weight_error  # the optimum under the CIFAR-10 and the measured curve
    python -m experiments tune           # the battery rules on training seeds 0-19 (--families mpc: one family)
    python -m experiments battery --runs results/experiments/battery/runs/mppo_s0 ...
    python -m experiments all            # every sweep, the trade-off and the battery study

Outputs go to ``--out`` (default ``results/experiments``); ``--figures DIR`` also copies
each PNG there (``docs/figures`` for the committed ones).  Every command prints its wall time.
The tasks (points x seeds, policies, hindsight bounds) run on Ray (:mod:`aigc_edge_env.distributed`):
a local instance on every core by default, ``--workers N`` at once, ``--address auto`` or
``--address ray://HOST:PORT`` on a cluster (docs/cluster.md); ``--workers 1`` runs them here in turn.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from aigc_edge_env.distributed import add_arguments, check_workers
from experiments.sweep import PARAMS
from experiments.tune import GRID


def _solvers(names):
    from aigc_edge_env.baselines import SOLVERS

    names = list(SOLVERS) if not names else names
    unknown = [n for n in names if n not in SOLVERS]
    if unknown:
        raise SystemExit(f"unknown solver(s) {unknown}: registered {list(SOLVERS)}")
    return names


def _copy_figures(paths: dict, figures: Path | None) -> None:
    if figures is None:
        return
    figures.mkdir(parents=True, exist_ok=True)
    for path in paths.values():
        if str(path).endswith(".png"):
            shutil.copy(path, figures / Path(path).name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, seeds: int, slots: int | None):
        p.add_argument("--out", type=Path, default=Path("results/experiments"))
        p.add_argument("--figures", type=Path, default=None, help="also copy the PNGs into this folder")
        add_arguments(p)
        p.add_argument("--seeds", type=int, default=seeds, help="number of seeds (episodes)")
        p.add_argument("--first-seed", type=int, default=1000)
        if slots is not None:
            p.add_argument("--slots", type=int, default=slots, help="slots per seed")
        p.add_argument("--solvers", nargs="*", default=None, help="solvers (default all registered)")
        p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("sweep", help="one-parameter sweep of every solver")
    p.add_argument("--param", required=True, choices=sorted(PARAMS))
    p.add_argument("--values", nargs="*", type=float, default=None, help="values (default: the preset)")
    p.add_argument("--config", default=None, help="JSON overrides of AIGCEdge-v0 for every point")
    common(p, seeds=5, slots=20)
    p = sub.add_parser("curves", help="exact optimum's offload share and steps under each named error curve")
    p.add_argument("--param", default="weight_error", choices=sorted(PARAMS))
    p.add_argument("--values", nargs="*", type=float, default=None, help="values (default: the preset)")
    p.add_argument("--curves", nargs="*", default=None, help="curve pairs (default: all of experiments.curves.CURVES)")
    common(p, seeds=5, slots=20)
    p = sub.add_parser("tradeoff", help="latency-energy-quality front of exact over a (w_E, w_Q) grid")
    common(p, seeds=3, slots=10)
    p = sub.add_parser("battery", help="myopic solvers vs shadow price vs trained agents on the battery scenario")
    p.add_argument("--runs", nargs="*", type=Path, default=[], help="trained run directories")
    p.add_argument("--prices", nargs="*", type=float, default=[0.3], help="shadow prices (1/J) for exact+price")
    p.add_argument("--decaying-prices", nargs="*", type=float, default=[],
                   help="initial shadow prices (1/J) for exact+price(1-t/H), decaying to 0 at the horizon")
    p.add_argument("--lyapunov", nargs="*", default=[], metavar="V,THETA",
                   help="lyapunov parameters, e.g. 100,100 (V in J^2 per cost unit, theta in J)")
    p.add_argument("--policies", nargs="*", default=[], help="further policy names (evaluation.make_policy)")
    p.add_argument("--compare-to", nargs="*", default=[], metavar="POLICY",
                   help="policies every row is also compared with (paired difference of returns), e.g. "
                        "'exact+price1.1(1-t/H)' lyapunov")
    p.add_argument("--tuned", type=Path, default=None,
                   help="tune_best.json of `python -m experiments tune` (default <out>/tune_best.json if present)")
    p.add_argument("--hindsight-cache", type=Path, default=Path("results/hindsight"),
                   help="cache of the hindsight bounds (default results/hindsight)")
    p.add_argument("--no-hindsight", action="store_true", help="skip the hindsight bounds and G")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--config", default=None, help="JSON overrides (default: the recommended scenario)")
    common(p, seeds=0, slots=None)
    p = sub.add_parser("tune", help="tune the battery rules (constant, decaying, lyapunov, mpc) on training seeds")
    p.add_argument("--episodes", type=int, default=20, help="training episodes: seeds --first-seed ... (default 0-19)")
    p.add_argument("--families", nargs="+", default=None, choices=sorted(GRID),
                   help="the families to tune (default all)")
    p.add_argument("--config", default=None, help="JSON overrides (default: the registered scenario)")
    p.add_argument("--out", type=Path, default=Path("results/experiments"))
    p.add_argument("--first-seed", type=int, default=0)
    add_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("replot", help="redraw sweep PNGs from their CSVs")
    p.add_argument("csv", nargs="+", type=Path)
    p.add_argument("--figures", type=Path, default=None, help="also copy the PNGs into this folder")
    p = sub.add_parser("all", help="every sweep with its preset values, the trade-off and the battery study")
    p.add_argument("--runs", nargs="*", type=Path, default=[], help="trained run directories for the battery study")
    p.add_argument("--episodes", type=int, default=10)
    common(p, seeds=5, slots=20)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_workers(getattr(args, "workers", None))
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "replot":
        from experiments.sweep import replot

        for path in args.csv:
            _copy_figures({"png": replot(path)}, args.figures)
        return 0
    if args.command == "tune":
        from experiments.tune import run_tune

        start = time.perf_counter()
        paths = run_tune(args.episodes, args.out, args.first_seed,
                         overrides=json.loads(args.config) if args.config else None, workers=args.workers,
                         progress=not args.no_progress, address=args.address, families=args.families)
        print(f"tune: {time.perf_counter() - start:.1f} s, wrote {', '.join(map(str, paths.values()))}")
        return 0
    if args.command == "curves":
        from experiments.curves import CURVES, run_curves

        start = time.perf_counter()
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        paths = run_curves(args.param, args.values, seeds, args.slots, args.out, curves=args.curves or list(CURVES),
                           workers=args.workers, progress=not args.no_progress, address=args.address)
        _copy_figures(paths, args.figures)
        print(f"curves {args.param}: {time.perf_counter() - start:.1f} s, wrote {', '.join(map(str, paths.values()))}")
        return 0
    solvers = _solvers(args.solvers)
    progress = not args.no_progress
    start = time.perf_counter()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    timings = {}
    if args.command in ("sweep", "all"):
        from experiments.sweep import run_sweep

        params = [args.param] if args.command == "sweep" else list(PARAMS)
        base = json.loads(args.config) if getattr(args, "config", None) else None
        for param in params:
            t0 = time.perf_counter()
            values = args.values if args.command == "sweep" else None
            paths = run_sweep(param, values, solvers, seeds, args.slots, args.out, base=base, workers=args.workers,
                              progress=progress, address=args.address)
            _copy_figures(paths, args.figures)
            timings[f"sweep {param}"] = time.perf_counter() - t0
            print(f"sweep {param}: {time.perf_counter() - t0:.1f} s, wrote {', '.join(map(str, paths.values()))}")
    if args.command in ("tradeoff", "all"):
        from experiments.tradeoff import run_tradeoff

        t0 = time.perf_counter()
        tseeds = seeds if args.command == "tradeoff" else seeds[:3]
        slots = args.slots if args.command == "tradeoff" else 10
        paths = run_tradeoff(solvers, tseeds, slots, args.out, workers=args.workers, progress=progress,
                             address=args.address)
        _copy_figures(paths, args.figures)
        timings["tradeoff"] = time.perf_counter() - t0
        print(f"tradeoff: {timings['tradeoff']:.1f} s, wrote {', '.join(map(str, paths.values()))}")
    if args.command in ("battery", "all"):
        from experiments.battery import run_battery

        t0 = time.perf_counter()
        from experiments.tune import tuned_policies

        battery_solvers = [s for s in solvers if s in ("exact", "sca_kkt", "greedy", "all_edge", "local_search")]
        overrides = json.loads(args.config) if getattr(args, "config", None) else None
        tuned = getattr(args, "tuned", None) or args.out / "tune_best.json"
        policies = list(getattr(args, "policies", [])) + (tuned_policies(tuned) if tuned.exists() else [])
        lyapunov = [tuple(float(x) for x in pair.split(",")) for pair in getattr(args, "lyapunov", [])]
        paths = run_battery(battery_solvers, args.runs, args.episodes, args.out,
                            prices=getattr(args, "prices", [0.3]), overrides=overrides, workers=args.workers,
                            progress=progress, decaying_prices=getattr(args, "decaying_prices", [0.8]),
                            lyapunov=lyapunov, policies=policies, compare_to=getattr(args, "compare_to", []),
                            hindsight_cache=getattr(args, "hindsight_cache", Path("results/hindsight")),
                            hindsight=not getattr(args, "no_hindsight", False), address=args.address)
        _copy_figures(paths, args.figures)
        timings["battery"] = time.perf_counter() - t0
        print(f"battery: {timings['battery']:.1f} s, wrote {', '.join(map(str, paths.values()))}")
    print(f"total wall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
