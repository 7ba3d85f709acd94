"""The experiments of docs/results.md: sweeps, error curves, the trade-off, the battery study, its rules and the
scale study.

Examples::

    aigc-edge experiments sweep --param n_users --values 5 10 20 50
    aigc-edge experiments sweep --param weight_energy_per_j --seed 1000 --episodes 5 --slots 20
    aigc-edge experiments tradeoff
    aigc-edge experiments curves --param weight_error    # the optimum under the CIFAR-10 and the measured curve
    aigc-edge experiments rules        # the battery rules' grid on training seeds 0-19 (--families mpc: one family)
    aigc-edge experiments battery --runs results/experiments/battery/runs/mppo_s0 ...
    aigc-edge experiments scale --policies greedy one_for_all=torch:runs/scale/mixture_s0/policy.pt
    aigc-edge experiments all          # every sweep, the trade-off and the battery study, each at its defaults

Outputs go to ``--out`` (default ``results/experiments``); ``--figures DIR`` also copies
each PNG there (``docs/figures`` for the committed ones).  Every command prints its wall time.
``--seed`` is the first seed and ``--episodes`` the number of seeds (episodes; for the sweeps,
seeds whose first ``--slots`` slots are played).  The tasks (points x seeds, policies, hindsight
bounds) run on Ray (:mod:`aigc_edge_env.distributed`): a local instance on every core by default,
``--workers N`` at once, ``--address auto`` or ``--address ray://HOST:PORT`` on a cluster
(docs/cluster.md); ``--workers 1`` runs them here in turn.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from aigc_edge_env.cli.common import (
    ArgumentParser,
    UsageError,
    add_out,
    add_progress,
    add_seed_episodes,
    add_workers,
    check_output_dir,
    count,
    finite_float,
    mapping,
    non_negative_float,
)
from aigc_edge_env.config import ConfigError, make_config
from aigc_edge_env.evaluation.runner import EVAL_SEED
from aigc_edge_env.experiments.curves import CURVES
from aigc_edge_env.experiments.rules import GRID
from aigc_edge_env.experiments.sweep import PARAMS

__all__ = ["configure", "run"]

#: The studies ``all`` runs, each with its own defaults.
ALL = ("sweep", "tradeoff", "battery")


def _common(p: argparse.ArgumentParser, seed: int, episodes: int, slots: int | None, solvers: bool = True) -> None:
    add_out(p, Path("results/experiments"))
    p.add_argument("--figures", type=Path, default=None, help="also copy the PNGs into this folder")
    add_workers(p)
    add_seed_episodes(p, seed, episodes)
    if slots is not None:
        p.add_argument("--slots", type=count, default=slots, help=f"slots per seed (default {slots})")
    if solvers:
        p.add_argument("--solvers", nargs="+", default=None, help="slot solvers (default all registered)")
    p.add_argument("--config", type=mapping, default={}, help="env config overrides: JSON/YAML file or inline")
    add_progress(p)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="study", required=True, metavar="STUDY", parser_class=ArgumentParser)
    p = sub.add_parser("sweep", help="one-parameter sweep of every solver")
    p.add_argument("--param", required=True, choices=sorted(PARAMS))
    p.add_argument("--values", nargs="+", type=finite_float, default=None, help="values (default: the preset)")
    _common(p, seed=1000, episodes=5, slots=20)
    p = sub.add_parser("curves", help="exact optimum's offload share and steps under each named error curve")
    p.add_argument("--param", default="weight_error", choices=sorted(PARAMS))
    p.add_argument("--values", nargs="+", type=finite_float, default=None, help="values (default: the preset)")
    p.add_argument("--curves", nargs="+", default=None, choices=sorted(CURVES),
                   help="curve pairs (default: all of experiments.curves.CURVES)")
    _common(p, seed=1000, episodes=5, slots=20, solvers=False)
    p = sub.add_parser("tradeoff", help="latency-energy-quality front of exact over a (w_E, w_Q) grid")
    _common(p, seed=1000, episodes=3, slots=10)
    p = sub.add_parser("battery", help="myopic solvers vs planning rules vs trained agents on the battery scenario")
    p.add_argument("--runs", nargs="*", type=Path, default=[], help="trained run directories")
    p.add_argument("--prices", nargs="*", type=non_negative_float, default=[0.3],
                   help="shadow prices (1/J) for exact+price (default 0.3)")
    p.add_argument("--decaying-prices", nargs="*", type=non_negative_float, default=[],
                   help="initial shadow prices (1/J) for exact+price(1-t/H), decaying to 0 at the horizon")
    p.add_argument("--lyapunov", nargs="*", default=[], metavar="V,THETA",
                   help="lyapunov parameters, e.g. 100,100 (V in J^2 per cost unit, theta in J)")
    p.add_argument("--policies", nargs="*", default=[], help="further policy names (policies.registry.make_policy)")
    p.add_argument("--compare-to", nargs="*", default=[], metavar="POLICY",
                   help="policies every row is also compared with (paired difference of returns), e.g. "
                        "'exact+price1.1(1-t/H)' lyapunov")
    p.add_argument("--tuned", type=Path, default=None,
                   help="rules_best.json of `aigc-edge experiments rules` (default <out>/rules_best.json if present)")
    p.add_argument("--hindsight-cache", type=Path, default=Path("results/hindsight"),
                   help="cache of the hindsight bounds (default results/hindsight)")
    p.add_argument("--no-hindsight", action="store_true", help="skip the hindsight bounds and G")
    _common(p, seed=EVAL_SEED, episodes=10, slots=None)
    p = sub.add_parser("rules", help="the battery rules' grid (constant, decaying, lyapunov, mpc) on training seeds")
    p.add_argument("--families", nargs="+", default=None, choices=sorted(GRID), help="the families (default all)")
    _common(p, seed=0, episodes=20, slots=None, solvers=False)
    p = sub.add_parser("scale", help="score and ms per decision of solvers and learned policies against N")
    p.add_argument("--n-users", nargs="+", type=count, default=None,
                   help="user counts (default 5 10 20 30 50 100 200)")
    p.add_argument("--policies", nargs="+", default=["sca_kkt", "local_search", "greedy"], metavar="[LABEL=]NAME",
                   help="policy names ({n} is replaced by each count; exact and random always play), e.g. "
                        "one_for_all=torch:runs/scale/mixture_s0/policy.pt 'per_n=torch:runs/scale/n{n}_s0/policy.pt'")
    _common(p, seed=EVAL_SEED, episodes=10, slots=None, solvers=False)
    p = sub.add_parser("replot", help="redraw sweep PNGs from their CSVs")
    p.add_argument("csv", nargs="+", type=Path)
    p.add_argument("--figures", type=Path, default=None, help="also copy the PNGs into this folder")
    p = sub.add_parser("all", help="every sweep with its preset values, the trade-off and the battery study")
    p.add_argument("--runs", nargs="*", type=Path, default=[], help="trained run directories for the battery study")
    add_out(p, Path("results/experiments"))
    p.add_argument("--figures", type=Path, default=None, help="also copy the PNGs into this folder")
    add_workers(p)
    p.add_argument("--solvers", nargs="+", default=None, help="slot solvers (default all registered)")
    add_progress(p)


def _solvers(names: list[str] | None) -> list[str]:
    from aigc_edge_env.baselines import SOLVERS

    unknown = [n for n in names or [] if n not in SOLVERS]
    if unknown:
        raise UsageError(f"--solvers: unknown solver(s) {unknown}: accepted {list(SOLVERS)}")
    return list(names or SOLVERS)


def _copy_figures(paths: dict[str, Path], figures: Path | None) -> None:
    if figures is None:
        return
    figures.mkdir(parents=True, exist_ok=True)
    for path in paths.values():
        if str(path).endswith(".png"):
            shutil.copy(path, figures / Path(path).name)


def _seeds(args: argparse.Namespace) -> list[int]:
    return list(range(args.seed, args.seed + args.episodes))


def _battery_policies(args: argparse.Namespace) -> tuple[list[str], list[tuple[float, float]]]:
    """The policy names of the battery study (``--policies`` and the tuned rules) and the lyapunov pairs."""
    from aigc_edge_env.experiments.rules import tuned_policies

    tuned = args.tuned or args.out / "rules_best.json"
    if args.tuned is not None and not tuned.is_file():
        raise UsageError(f"--tuned {tuned} is not a file")
    try:
        policies = list(args.policies) + (tuned_policies(tuned) if tuned.is_file() else [])
    except ValueError as exc:
        raise UsageError(f"--tuned: {exc}") from None
    try:
        lyapunov = [(float(v), float(theta)) for v, theta in (pair.split(",") for pair in args.lyapunov)]
    except ValueError:
        raise UsageError(f"--lyapunov takes V,THETA pairs of numbers, got {args.lyapunov}") from None
    return policies, lyapunov


def _check_config(option: str, env: str, overrides: dict) -> None:
    try:
        make_config(env, overrides)
    except ConfigError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _check_runs(runs: list[Path]) -> None:
    """Each trained run directory (or model file) readable: its run.yml and its model file there."""
    if not runs:
        return  # (the agents extra is needed only to read runs)
    from aigc_edge_env.agents.runs import RunError, model_file, read_record

    for run in runs:
        if not run.exists():
            raise UsageError(f"--runs {run}: no such run directory or model file")
        try:
            read_record(run if run.is_dir() else run.parent)
            model = model_file(run)
        except RunError as exc:
            raise UsageError(f"--runs: {exc}") from None
        if not model.is_file():
            raise UsageError(f"--runs: no model file at {model}")


def _check_study(study: argparse.Namespace) -> None:
    """Every argument of one study (not ``all``/``replot``), before any work; :class:`UsageError` naming it."""
    from aigc_edge_env.experiments.battery import ENV_ID, PLAN, check_compare_to, policy_labels

    check_output_dir(study.out)
    _solvers(getattr(study, "solvers", None))
    if study.figures is not None:
        check_output_dir(study.figures, "--figures")
    env = ENV_ID if study.study in ("battery", "rules") else "AIGCEdge-v0"
    _check_config("--config", env, study.config)
    if study.study in ("sweep", "curves"):
        spec = PARAMS[study.param]
        for value in study.values or []:
            _check_config(f"--values {value:g}", env, {**study.config, **spec.overrides(value)})
    if study.study == "curves":
        from aigc_edge_env.experiments.curves import CURVES

        unknown = [name for name in study.curves or [] if name not in CURVES]
        if unknown:
            raise UsageError(f"--curves: unknown curve pair(s) {unknown}: accepted {sorted(CURVES)}")
    if study.study == "scale":
        _check_scale(study)
    if study.study == "battery":
        policies, lyapunov = _battery_policies(study)
        _check_runs(study.runs)
        if not study.no_hindsight:
            check_output_dir(study.hindsight_cache, "--hindsight-cache")
        labels = policy_labels(_solvers(study.solvers), study.prices, study.decaying_prices, lyapunov, policies)
        from aigc_edge_env.policies.registry import make_policy

        for label in labels:
            try:
                make_policy(label)
            except ValueError as exc:
                raise UsageError(f"--policies/--prices/--lyapunov: {exc}") from None
        try:
            check_compare_to(study.compare_to, [*labels, *(r.name for r in study.runs),
                                                *([] if study.no_hindsight else [PLAN])])
        except ValueError as exc:
            raise UsageError(f"--compare-to: {exc}") from None


def _check_scale(study: argparse.Namespace) -> None:
    """The scale study's policies, each made at every count (a network file read, a name checked)."""
    from aigc_edge_env.experiments.scale import N_USERS, parse_policies
    from aigc_edge_env.policies.registry import make_policy

    study.n_users = study.n_users or list(N_USERS)
    for n in study.n_users:
        _check_config(f"--n-users {n}", "AIGCEdge-v0", {**study.config, "n_users": n})
    try:
        study.policies = parse_policies(study.policies)
        for name in study.policies.values():
            for n in study.n_users:
                make_policy(name.format(n=n))
    except (ValueError, KeyError, IndexError) as exc:
        raise UsageError(f"--policies: {exc}") from None


def _study(args: argparse.Namespace) -> dict[str, Path]:
    """Run one study (not ``all``/``replot``); returns the paths written."""
    progress = not args.no_progress
    if args.study == "sweep":
        from aigc_edge_env.experiments.sweep import run_sweep

        return run_sweep(args.param, args.values, _solvers(args.solvers), _seeds(args), args.slots, args.out,
                         base=args.config or None, workers=args.workers, progress=progress, address=args.address)
    if args.study == "curves":
        from aigc_edge_env.experiments.curves import CURVES, run_curves

        return run_curves(args.param, args.values, _seeds(args), args.slots, args.out,
                          curves=args.curves or list(CURVES), workers=args.workers, progress=progress,
                          address=args.address, base=args.config or None)
    if args.study == "tradeoff":
        from aigc_edge_env.experiments.tradeoff import run_tradeoff

        return run_tradeoff(_solvers(args.solvers), _seeds(args), args.slots, args.out, workers=args.workers,
                            progress=progress, address=args.address, base=args.config or None)
    if args.study == "scale":
        from aigc_edge_env.experiments.scale import run_scale

        return run_scale(args.n_users, args.policies, _seeds(args), args.out, base=args.config or None,
                         workers=args.workers, progress=progress, address=args.address)
    if args.study == "rules":
        from aigc_edge_env.experiments.rules import run_rules

        return run_rules(args.episodes, args.out, args.seed, overrides=args.config or None, workers=args.workers,
                         progress=progress, address=args.address, families=args.families)
    from aigc_edge_env.experiments.battery import BATTERY_SOLVERS, run_battery

    policies, lyapunov = _battery_policies(args)
    return run_battery([s for s in _solvers(args.solvers) if s in BATTERY_SOLVERS], args.runs, args.episodes,
                       args.out, prices=args.prices, overrides=args.config or None, workers=args.workers,
                       progress=progress, seed=args.seed, decaying_prices=args.decaying_prices, lyapunov=lyapunov,
                       policies=policies, compare_to=args.compare_to, hindsight_cache=args.hindsight_cache,
                       hindsight=not args.no_hindsight, address=args.address)


def _all_studies(args: argparse.Namespace) -> list[argparse.Namespace]:
    """The studies of ``all``, each parsed by its own parser (so each has exactly its own defaults)."""
    parser = ArgumentParser(prog="aigc-edge experiments")
    configure(parser)
    shared: list[str] = ["--out", str(args.out)]
    shared += ["--figures", str(args.figures)] if args.figures else []
    shared += ["--workers", str(args.workers)] if args.workers else []
    shared += ["--address", args.address] if args.address else []
    shared += ["--solvers", *args.solvers] if args.solvers else []
    shared += ["--no-progress"] if args.no_progress else []
    studies = [parser.parse_args(["sweep", "--param", param, *shared]) for param in PARAMS]
    studies.append(parser.parse_args(["tradeoff", *shared]))
    studies.append(parser.parse_args(["battery", *shared, *(["--runs", *map(str, args.runs)] if args.runs else [])]))
    return studies


def run(args: argparse.Namespace) -> int:
    if args.study == "replot":
        from aigc_edge_env.experiments.sweep import replot

        missing = [str(path) for path in args.csv if not path.is_file()]
        if missing:
            raise UsageError(f"no such CSV file(s) {missing}")
        for path in args.csv:
            slots = path.with_name(path.stem.removesuffix("_slots") + "_slots.csv")
            if not slots.is_file():
                raise UsageError(f"{path}: no per-slot CSV {slots} beside it (replot reads sweep_<param>_slots.csv)")
        if args.figures is not None:
            check_output_dir(args.figures, "--figures")
        for path in args.csv:
            _copy_figures({"png": replot(path)}, args.figures)
        return 0
    studies = _all_studies(args) if args.study == "all" else [args]
    for study in studies:  # every argument checked before any work
        _check_study(study)
    start = time.perf_counter()
    for study in studies:
        t0 = time.perf_counter()
        paths = _study(study)
        _copy_figures(paths, study.figures)
        label = f"{study.study} {study.param}" if study.study in ("sweep", "curves") else study.study
        print(f"{label}: {time.perf_counter() - t0:.1f} s, wrote {', '.join(map(str, paths.values()))}")
    if len(studies) > 1:
        print(f"total wall time {time.perf_counter() - start:.1f} s")
    return 0


