"""Evaluate slot solvers, planning policies and trained agents on the same seeds and slots; tables and plots.

Examples::

    aigc-edge evaluate --episodes 10                                # every solver
    aigc-edge evaluate --env AIGCEdge-v0 --episodes 1 --policies exact greedy random
    aigc-edge evaluate --policies exact random greedy --runs runs/ppo_s0 runs/dqn_s0/best_model.zip
    aigc-edge evaluate --policies all_local all_edge --episodes 3 --horizon 10 --out results/quick
    aigc-edge evaluate --env AIGCEdge-Battery-v0 --policies exact+price0.3 "exact+price1(1-t/H)" lyapunov mpc
    aigc-edge evaluate --env AIGCEdge-Battery-v0 --episodes 3 --policies exact random pretrained

Every policy plays episode ``i`` from ``reset(seed=SEED + i)``; decisions do not change the
env's random draws, so all policies see the same slots.  ``--policies`` takes the names of
:func:`aigc_edge_env.policies.registry.make_policy`: the slot solvers, solvers under a (decaying)
shadow price on energy, ``lyapunov`` and ``mpc`` (re-planning on sampled futures); they need
only the core install.  ``pretrained`` plays the policy shipped for ``--env``
(:mod:`aigc_edge_env.policies.pretrained`; the SB3 and torch cards need the ``agents`` extra, the battery's
price network only numpy), loaded
before any work: under config overrides it was not trained with, under another release, or for an id
without one it exits with status 2 and one line.  ``--runs`` plays trained models (the ``agents`` extra: torch).
Reported per policy: mean episode reward and cost components with bootstrap confidence
intervals over episodes, drops, time per decision, and the normalised score
``(R - R_random) / (R_exact - R_random)`` when exact and random are among the policies (they are
by default); ``random`` is the random *feasible* solver (a valid random decision per slot, about
-32 per slot on AIGCEdge-v0), not uniformly random actions (about -114 per slot).  In a battery
scenario it also reports the share of the gap closed ``G = (R - R_exact) / (R_hindsight - R_exact)``
with a paired interval, ``R_hindsight = -reward_scale * lower_bound`` of the certified hindsight
bound (:func:`aigc_edge_env.baselines.hindsight_bound`) of the same episodes, ``exact`` being
evaluated as the myopic reference whatever ``--policies`` says.  A bound takes 10-30 s per
episode (100 slots, one core); bounds are cached per (env id, config, seed) as JSON in
``--hindsight-cache`` (default ``results/hindsight``, shared by every output directory), so a
rerun reads them back; ``--no-hindsight`` skips them; ``--workers`` computes them in parallel
(default 1: here, without Ray).  Writes ``summary.md`` (also printed), ``summary.csv``,
``results.json`` and PNG plots (with matplotlib) to ``--out``.  A trained model is a run
directory (its final model) or a model ``.zip`` in one; missing or corrupt files exit with
status 2 naming the path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aigc_edge_env.cli.common import (
    UsageError,
    add_env,
    add_out,
    add_progress,
    add_seed_episodes,
    add_workers,
    check_output_dir,
    count,
    probability,
)
from aigc_edge_env.evaluation.runner import EVAL_SEED

__all__ = ["configure", "resolve_policies", "run", "run_labels"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_env(parser)
    parser.add_argument("--horizon", type=count, default=None, help="slots per episode (config horizon_slots)")
    add_seed_episodes(parser, EVAL_SEED, 10)
    parser.add_argument("--policies", nargs="*", default=None, metavar="POLICY",
                        help="policies to evaluate: solvers (default all registered), a solver under a "
                             "shadow price, e.g. exact+price0.3 or 'exact+price1(1-t/H)', or lyapunov, "
                             "'lyapunov(V=100,theta=80)', mpc, 'mpc(every=10,slots=20)', pretrained "
                             "(the policy shipped for --env), torch:PATH (a saved per-user torch network, "
                             "docs/stacks.md), quantised:PATH (the same network through DROO's "
                             "order-preserving quantisation), packed:PATH (the same network filling the edge in "
                             "its order) or rllib:PATH (an RLlib checkpoint, the rllib extra); give none for runs "
                             "only")
    parser.add_argument("--runs", nargs="*", default=[], type=Path, metavar="PATH",
                        help="trained run directories or model .zip files (the agents extra)")
    add_out(parser, Path("results/evaluate"))
    parser.add_argument("--confidence", type=probability, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--threads", type=count, default=1,
                        help="CPU threads of torch and of numpy's BLAS for --runs, torch:/quantised:/packed:/rllib: "
                             "policies "
                             "and a torch pretrained policy (default 1: fastest for these small networks)")
    parser.add_argument("--hindsight-cache", type=Path, default=Path("results/hindsight"),
                        help="directory caching the hindsight bounds of battery episodes (default results/hindsight)")
    parser.add_argument("--no-hindsight", action="store_true", help="battery scenarios: skip the hindsight bound and G")
    add_workers(parser, default=1)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_progress(parser)


def run_labels(paths: list[Path]) -> dict[str, Path]:
    """Unique table labels for model paths: the run directory's name, plus the model's stem for a .zip or .npz."""
    labels: dict[str, Path] = {}
    for path in paths:
        label = path.name if path.is_dir() or path.suffix not in (".zip", ".npz") else f"{path.parent.name}/{path.stem}"
        unique, k = label, 2
        while unique in labels:
            unique, k = f"{label}#{k}", k + 1
        labels[unique] = path
    return labels


def resolve_policies(names: list[str], runs: list[Path], env_id: str, config: dict[str, Any],
                     threads: int) -> tuple[dict[str, Any], dict[str, Path]]:
    """Policies by label (the ``--policies`` names, then the ``--runs`` models under :func:`run_labels`)
    and the run directories by label; :class:`UsageError` naming the option if a name or a run is bad,
    or if there is no policy at all.  A run needs the agents extra (torch, ``threads`` CPU threads);
    ``pretrained`` is loaded here, so one that does not fit ``env_id`` fails before any work."""
    from aigc_edge_env.policies.pretrained import KINDS, PRETRAINED, PretrainedError, available, load_pretrained
    from aigc_edge_env.policies.registry import RLLIB_PREFIX, make_policy
    from aigc_edge_env.policies.torch_module import NETWORK_PREFIXES

    try:
        policies: dict[str, Any] = {name: make_policy(name) for name in names}
    except ValueError as exc:
        raise UsageError(f"--policies: {exc}") from None
    if PRETRAINED in policies:  # loaded now: a policy that does not fit fails before any work, and loading
        try:                    # is not timed as its first decision
            policies[PRETRAINED] = load_pretrained(env_id, config)  # checked against env_id and config
        except PretrainedError as exc:
            raise UsageError(f"--policies: {exc}") from None
    if any(name.startswith((*NETWORK_PREFIXES, RLLIB_PREFIX)) for name in names) or \
            (PRETRAINED in policies and KINDS[available()[env_id]["kind"]] is not None):
        _decision_threads(threads)  # a torch network decides
    run_dirs = {}
    if runs:
        _decision_threads(threads)
        from aigc_edge_env.agents.policies import load_model_policy
        from aigc_edge_env.agents.runs import RunError

        for label, path in run_labels(runs).items():
            try:
                policies[label] = load_model_policy(path, env_id, config)
            except (RunError, ValueError) as exc:
                raise UsageError(f"--runs: {exc}") from None
            run_dirs[label] = path if path.is_dir() else path.parent
    if not policies:
        raise UsageError("no policy: give --policies and/or --runs")
    return policies, run_dirs


def _decision_threads(threads: int) -> None:
    """``threads`` for torch and for numpy's BLAS (a ``torch:PATH`` network decides by a numpy pass)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")  # for the rest of the process


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from aigc_edge_env.baselines import SOLVERS
    from aigc_edge_env.baselines.hindsight import hindsight_bounds
    from aigc_edge_env.config import make_config
    from aigc_edge_env.evaluation.runner import evaluate_all
    from aigc_edge_env.evaluation.statistics import GAP_REFERENCE, summarize
    from aigc_edge_env.evaluation.writers import markdown_table, write_outputs
    from aigc_edge_env.policies.registry import make_policy
    from aigc_edge_env.versions import package_versions

    check_output_dir(args.out)
    if not args.no_hindsight:
        check_output_dir(args.hindsight_cache, "--hindsight-cache")
    config = dict(args.config)
    if args.horizon is not None:
        config["horizon_slots"] = args.horizon
    env_config = make_config(args.env, config)  # a bad config fails here, before any work
    names = list(SOLVERS) if args.policies is None else args.policies
    policies, run_dirs = resolve_policies(names, args.runs, args.env, config, args.threads)
    seeds = list(range(args.seed, args.seed + args.episodes))
    bounds = None
    if env_config.battery_enabled and not args.no_hindsight:
        policies = {GAP_REFERENCE: make_policy(GAP_REFERENCE), **policies}  # the myopic reference of G
        bounds = hindsight_bounds(args.env, seeds, config, args.hindsight_cache, args.workers, args.address,
                                  progress=not args.no_progress)
    results = evaluate_all(policies, lambda: gym.make(args.env, config=config), seeds, progress=not args.no_progress)
    rows = summarize(results, args.confidence,
                     {seed: -env_config.reward_scale * b.lower_bound for seed, b in bounds.items()} if bounds else None)
    metadata: dict[str, Any] = {
        "env_id": args.env, "config_overrides": config, "seeds": seeds, "command": args.argv,
        "runs": {label: str(path) for label, path in run_dirs.items()}, "versions": package_versions()}
    if bounds:
        metadata["hindsight"] = {str(seed): {key: getattr(b, key) for key in HINDSIGHT_FIELDS} | {
            "gap": b.gap, "relative_gap": b.relative_gap} for seed, b in bounds.items()}
    written = list(write_outputs(args.out, rows, results, metadata, args.confidence).values())
    if not args.no_plots:
        written += _plots(args.out, rows, run_dirs)
    print(markdown_table(rows, args.confidence))
    print(f"written: {', '.join(str(p) for p in written)}")
    return 0


#: Per-episode fields of the hindsight bound written to results.json.
HINDSIGHT_FIELDS = ("lower_bound", "plan_cost", "dual_upper", "rounds", "plan", "bound_s", "elapsed_s")


def _plots(out: Path, rows: list[dict[str, Any]], run_dirs: dict[str, Path]) -> list[Path]:
    """The PNG plots of :mod:`aigc_edge_env.agents.plots`, where matplotlib is installed."""
    try:
        from aigc_edge_env.agents.plots import write_plots
    except ModuleNotFoundError as exc:
        print(f"no plots: they need {exc.name} (pip install 'aigc-edge-env[experiments]')")
        return []
    return write_plots(out, rows, run_dirs)
