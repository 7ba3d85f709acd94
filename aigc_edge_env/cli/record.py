"""Record episodes of named policies and trained runs as Minari datasets, for imitation and offline RL.

Examples::

    aigc-edge record --env AIGCEdge-Battery-v0 --policies mpc --episodes 10 --seed 0 --out results/datasets
    aigc-edge record --policies exact greedy --runs runs/ppo_s0 --episodes 100 --out results/datasets
    aigc-edge record --env AIGCEdge-Battery-v0 --policies clairvoyant --episodes 10 --dataset-id aigc-edge/plan-v0

Each policy plays episode ``i`` from ``reset(seed=SEED + i)`` (default seeds 0...: training
seeds, apart from the evaluation seeds 10000...) and becomes one Minari dataset under ``--out``
(the datasets root, as ``MINARI_DATASETS_PATH``): id ``aigc-edge/<env>/<policy>-v0`` by default
(``aigc-edge/aigcedge-battery/mpc-v0``), or ``--dataset-id`` when there is one policy.  A
dataset holds observations, actions, rewards, terminations, truncations, the env's slot infos
(the cost components) and the env spec (id and config), so ``dataset.recover_environment()``
recreates the env; :mod:`aigc_edge_env.datasets` describes the layout.  ``--policies`` takes the
names of ``evaluate --policies`` and ``clairvoyant``: the clairvoyant plan of the episode's
hindsight bound (:func:`aigc_edge_env.baselines.hindsight_bound`, 10-30 s per battery episode,
cached in ``--hindsight-cache``), replayed; ``--runs`` takes trained runs (the agents extra).
After writing, each dataset is replayed from its own env spec and seeds and the largest reward
difference printed (0 when it replays).  Datasets are never overwritten: an existing dataset id is
refused before any work (give a new version ``-v<N+1>`` or delete its folder), unless it holds what
this command would record (the same env, config, policy name, seeds and package version, and a policy
that reads no files: not ``--runs``, ``torch:``, ``quantised:``, ``packed:`` or ``rllib:``), which a rerun
after an interruption keeps, recording only the others.  Needs the ``datasets`` extra (minari, h5py).
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
    check_output_dir,
    count,
)

__all__ = ["CLAIRVOYANT", "configure", "run"]

#: The policy name of the hindsight bound's clairvoyant plan (this command only: it needs the episodes' seeds).
CLAIRVOYANT = "clairvoyant"


def configure(parser: argparse.ArgumentParser) -> None:
    add_env(parser)
    parser.add_argument("--horizon", type=count, default=None, help="slots per episode (config horizon_slots)")
    add_seed_episodes(parser, 0, 10)
    parser.add_argument("--policies", nargs="*", default=[], metavar="POLICY",
                        help="policies to record, one dataset each: the names of evaluate --policies (exact, "
                             f"mpc, 'exact+price0.3', lyapunov, ...) or {CLAIRVOYANT} (the hindsight plan)")
    parser.add_argument("--runs", nargs="*", default=[], type=Path, metavar="PATH",
                        help="trained run directories or model .zip files to record (the agents extra)")
    add_out(parser, Path("results/datasets"))
    parser.add_argument("--dataset-id", default=None,
                        help="the dataset id, (namespace/)name-v<N>, when one policy is recorded "
                             "(default aigc-edge/<env>/<policy>-v0)")
    parser.add_argument("--threads", type=count, default=1, help="torch CPU threads for --runs (default 1)")
    parser.add_argument("--hindsight-cache", type=Path, default=Path("results/hindsight"),
                        help=f"where the hindsight bounds {CLAIRVOYANT} replays are cached (default results/hindsight)")
    add_progress(parser)


def _dataset_ids(args: argparse.Namespace, labels: list[str], request: dict[str, Any], from_files: set[str]
                 ) -> tuple[dict[str, str], set[str]]:
    """The dataset id of each policy label, and the labels whose dataset exists as this command would record
    it (``request``: env id, config, seeds, requirements; a rerun after an interruption skips them);
    :class:`UsageError` for a bad or repeated id, or one that exists recorded otherwise or by a policy
    read from files (``from_files``: ``--runs``, ``torch:``, ``quantised:``, ``packed:``, ``rllib:``; the dataset
    cannot say whether they changed since)."""
    from aigc_edge_env.datasets import check_dataset_id, dataset_path, default_dataset_id, open_dataset, recording_of

    if args.dataset_id is not None and len(labels) != 1:
        raise UsageError(f"--dataset-id names one dataset, but {len(labels)} policies are recorded")
    ids = {label: args.dataset_id or default_dataset_id(args.env, label) for label in labels}
    done = set()
    for label, dataset_id in ids.items():
        try:
            check_dataset_id(dataset_id)
        except ValueError as exc:
            raise UsageError(f"--dataset-id: {exc}") from None
        path = dataset_path(args.out, dataset_id)
        if not path.exists():
            continue
        try:
            recorded = recording_of(open_dataset(path))
        except Exception:  # any unreadable folder is refused below, naming it
            recorded = None
        if label in from_files or recorded != {**request, "algorithm_name": label}:
            raise UsageError(f"--out: dataset {dataset_id} exists at {path}, recorded otherwise (env, config, policy, "
                             "seeds or package version) or by a policy read from files; record a new version "
                             "(--dataset-id ...-v<N+1>) or delete that folder")
        done.add(label)
    if len(set(ids.values())) < len(ids):
        raise UsageError(f"two policies would get the same dataset id: {sorted(ids.values())}; record them apart")
    return ids, done


def run(args: argparse.Namespace) -> int:
    import h5py  # noqa: F401  (the datasets extra: a missing minari or h5py fails here, before any work)
    import minari  # noqa: F401

    from aigc_edge_env import __version__
    from aigc_edge_env.baselines.hindsight import hindsight_bounds
    from aigc_edge_env.cli.evaluate import resolve_policies
    from aigc_edge_env.config import make_config
    from aigc_edge_env.datasets import record_dataset, replay_max_difference
    from aigc_edge_env.policies.base import ReplayPolicy
    from aigc_edge_env.policies.registry import policy_files

    check_output_dir(args.out)
    config: dict[str, Any] = dict(args.config)
    if args.horizon is not None:
        config["horizon_slots"] = args.horizon
    make_config(args.env, config)  # a bad config fails here, before any work
    names = [name for name in args.policies if name != CLAIRVOYANT]
    clairvoyant = CLAIRVOYANT in args.policies
    if clairvoyant:
        check_output_dir(args.hindsight_cache, "--hindsight-cache")
    if not names and not args.runs and not clairvoyant:
        raise UsageError("no policy: give --policies and/or --runs")
    try:
        policies = resolve_policies(names, args.runs, args.env, config, args.threads)[0] if names or args.runs else {}
    except UsageError as exc:
        raise UsageError(f"{exc}, or {CLAIRVOYANT!r}" if str(exc).startswith("--policies") else str(exc)) from None
    labels = ([CLAIRVOYANT] if clairvoyant else []) + list(policies)
    seeds = list(range(args.seed, args.seed + args.episodes))
    request = {"env_id": args.env, "config": config, "seeds": seeds, "requirements": [f"aigc-edge-env=={__version__}"]}
    # --runs, torch:, quantised:, packed:, rllib:
    from_files = {label for label in policies if label not in names or policy_files(label)}
    ids, done = _dataset_ids(args, labels, request, from_files)
    for label in done:
        print(f"{ids[label]}: recorded as asked by an earlier run, kept (not recorded again)", flush=True)
    policies = {label: policy for label, policy in policies.items() if label not in done}
    clairvoyant = clairvoyant and CLAIRVOYANT not in done
    if clairvoyant:
        bounds = hindsight_bounds(args.env, seeds, config, args.hindsight_cache, progress=not args.no_progress)
        policies = {CLAIRVOYANT: ReplayPolicy({s: b.plan_actions for s, b in bounds.items()}), **policies}
    for label, policy in policies.items():
        dataset = record_dataset(args.env, policy, seeds, ids[label], args.out, config=config, algorithm_name=label,
                                 progress=not args.no_progress)
        returns = [float(e.rewards.sum()) for e in dataset.iterate_episodes()]
        size_mb = sum(f.stat().st_size for f in Path(dataset.spec.data_path).iterdir()) / 1e6
        print(f"{ids[label]}: {dataset.total_episodes} episodes, {dataset.total_steps} steps, mean return "
              f"{sum(returns) / len(returns):.4f}, {size_mb:.3f} MB at {dataset.spec.data_path}; "
              f"replayed from its env spec: max |reward difference| {replay_max_difference(dataset):.3g}")
    return 0
