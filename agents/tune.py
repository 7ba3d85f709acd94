"""Hyperparameter search on Ray Tune: ``aigc-edge tune --algo ppo --env AIGCEdge-v0 --trials 32``.

Optuna's TPE sampler (Ray Tune's ``OptunaSearch``, seeded with ``--seed``) proposes values of
the algorithm's search space, ``agents/hyperparams/<algo>.search.yml`` (beside ``<algo>.yml``;
its header documents the format), put over the env's entry of ``<algo>.yml``.  Each trial
trains as ``aigc-edge train --algo A --env E --config C --timesteps T --seed S --eval-freq F --checkpoint-freq 0``
would, holding one CPU and one torch thread, and after every periodic evaluation (``--eval-freq``
timesteps, ``--eval-episodes`` episodes on the training's evaluation seeds) reports its
normalised score ``(R - R_random) / (R_exact - R_random)`` on those seeds (``exact`` and
``random`` played once, before the search).  ASHA (``ASHAScheduler``, reduction factor 2, first
rung at ``--grace-timesteps``) stops the trials whose score trails at a rung.  The best trial is
the one with the highest final score among those that trained all ``--timesteps``.

Trials run on Ray (:mod:`aigc_edge_env.distributed`): a local instance on every core by
default (``--workers N`` trials at once), ``--address auto`` or ``ray://HOST:PORT`` on a cluster.
A trial whose worker dies is run again (up to 3 times).  The sampler learns from finished
trials, so which values are tried depends on how many trials run at once; with ``--workers 1``
a search is repeatable.

Writes to ``--out`` (default ``results/tune/<algo>_<env>``):

* ``<algo>.yml``: the env's entry with the best trial's values, in the format of
  ``agents/hyperparams/<algo>.yml`` (copy the entry there, or pass the printed
  ``--hyperparams`` to ``aigc-edge train``);
* ``trials.csv`` and ``trials.md``: every trial's values, last and best score, timesteps
  reached and status (completed, stopped by ASHA, error);
* ``search/``: Ray Tune's state of the search.  The same command run again after an
  interruption resumes it: finished trials are kept, unfinished ones start again.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from aigc_edge_env.agents.callbacks import reference_rewards
from aigc_edge_env.agents.environments import make_env
from aigc_edge_env.agents.hyperparameters import HYPERPARAMS_DIR, HyperparamError, check_values, load_hyperparams
from aigc_edge_env.agents.training import EVAL_SEED_BASE, TrainRequest, train
from aigc_edge_env.cli.common import UsageError
from aigc_edge_env.distributed import MAX_RETRIES, init_ray
from aigc_edge_env.evaluation.statistics import normalised
from aigc_edge_env.evaluation.writers import format_number, write_csv
from aigc_edge_env.files import write_atomic

__all__ = ["DISTRIBUTIONS", "best_entry", "load_search_space", "run_search"]

#: Distributions of a search space entry and the number of values each takes.
DISTRIBUTIONS = {"loguniform": 2, "uniform": 2, "int": 2, "choice": None}
#: ASHA's reduction factor: half of the trials at a rung go on to the next.
REDUCTION_FACTOR = 2
SEARCH_DIR = "search"


def load_search_space(algo: str, directory: Path = HYPERPARAMS_DIR) -> dict[str, dict[str, Any]]:
    """``<directory>/<algo>.search.yml``, checked: one distribution per key, ``schedule: lin`` optional."""
    path = directory / f"{algo}.search.yml"
    try:
        space = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise HyperparamError(f"cannot read search space {path}: {exc}") from None
    if not isinstance(space, dict) or not space:
        raise HyperparamError(f"search space {path} must map hyperparameters to distributions")
    for key, spec in space.items():
        kinds = [k for k in DISTRIBUTIONS if isinstance(spec, dict) and k in spec]
        extra = set(spec) - set(DISTRIBUTIONS) - {"schedule"} if isinstance(spec, dict) else set()
        if len(kinds) != 1 or extra:
            raise HyperparamError(f"{path}: {key} needs exactly one of {sorted(DISTRIBUTIONS)} (and optionally "
                                  f"schedule: lin), got {spec!r}")
        values, count = spec[kinds[0]], DISTRIBUTIONS[kinds[0]]
        if not isinstance(values, list) or not values or (count is not None and len(values) != count):
            raise HyperparamError(f"{path}: {key}: {kinds[0]} takes a list of {count or 'one or more'} values, "
                                  f"got {values!r}")
        if spec.get("schedule", "lin") != "lin":
            raise HyperparamError(f"{path}: {key}: schedule must be lin, got {spec['schedule']!r}")
    return space


def tune_space(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ray Tune's distributions of a search space (``int``: both ends included)."""
    from ray import tune

    def distribution(spec: dict[str, Any]) -> Any:
        if "loguniform" in spec:
            return tune.loguniform(*spec["loguniform"])
        if "uniform" in spec:
            return tune.uniform(*spec["uniform"])
        if "int" in spec:
            return tune.randint(spec["int"][0], spec["int"][1] + 1)
        return tune.choice(spec["choice"])

    return {key: distribution(spec) for key, spec in space.items()}


def sampled_hyperparams(config: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A trial's values as hyperparameter overrides (``schedule: lin`` ones as ``lin_<value>``)."""
    return {key: f"lin_{config[key]!r}" if space[key].get("schedule") == "lin" else config[key] for key in space}


def run_trial(config: dict[str, Any], *, algo: str, env_id: str, env_config: dict[str, Any], timesteps: int, seed: int,
              eval_freq: int, eval_episodes: int, references: dict[str, float],
              space: dict[str, dict[str, Any]]) -> None:
    """One trial (Ray Tune's function API): train on ``env_id`` with the config overrides ``env_config`` in a
    temporary directory, report after each evaluation."""
    from ray import tune

    best = -math.inf

    def report(steps: int, reward: float) -> None:
        nonlocal best
        score = float(normalised(np.array([reward]), np.array([references["random"]]),
                                 np.array([references["exact"]])))
        best = max(best, score)
        tune.report({"score": score, "best_score": best, "reward": reward, "timesteps": steps})

    with tempfile.TemporaryDirectory() as tmp:
        train(TrainRequest(out=Path(tmp) / "run", algo=algo, env_id=env_id, env_config=env_config,
                           timesteps=timesteps, seed=seed,
                           hyperparams=sampled_hyperparams(config, space), eval_every=eval_freq,
                           eval_episodes=eval_episodes, checkpoint_every=0, progress_bar=False, threads=1,
                           on_evaluation=report))


def periodic_references(env_id: str, env_config: dict[str, Any], eval_episodes: int) -> dict[str, float]:
    """:func:`~aigc_edge_env.agents.callbacks.reference_rewards` on the trials' periodic evaluation seeds."""
    return reference_rewards(lambda: make_env(env_id, env_config),
                             [EVAL_SEED_BASE + i for i in range(eval_episodes)])


def trial_rows(results: Any, space: dict[str, dict[str, Any]], timesteps: int) -> list[dict[str, Any]]:
    """Per trial of a Ray Tune ``ResultGrid``: values, scores, timesteps reached and status."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        reached = metrics.get("timesteps")
        if result.error is not None:
            status = "error"
        elif reached is not None and reached >= timesteps:
            status = "completed"
        else:
            status = "stopped by ASHA"
        rows.append({"trial": metrics.get("trial_id", result.path.rsplit("/", 1)[-1] if result.path else ""),
                     **{key: result.config.get(key) for key in space}, "score": metrics.get("score"),
                     "best_score": metrics.get("best_score"), "timesteps": reached, "status": status})
    rows.sort(key=lambda row: (row["status"] != "completed",  # the best first; ties in trial order
                               -(row["score"] if row["score"] is not None else -math.inf), row["trial"]))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) else str(value)


def trials_markdown(rows: list[dict[str, Any]], keys: list[str]) -> str:
    columns = ["trial", *keys, "score", "best_score", "timesteps", "status"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def best_entry(algo: str, env_id: str, best: dict[str, Any], directory: Path = HYPERPARAMS_DIR) -> dict[str, Any]:
    """The env's entry of ``<algo>.yml`` with ``best`` over it, checked as ``aigc-edge train`` checks it."""
    return check_values(load_hyperparams(algo, env_id, best, directory))


def check_resumed_settings(path: Path, settings: dict[str, Any]) -> None:
    """:class:`UsageError` if ``path`` holds the settings of another search than ``settings``.  A search saved
    before ``tune --config`` existed has no ``config`` key: it ran without overrides (``{}``)."""
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    saved.setdefault("config", {})
    if saved != settings:
        raise UsageError(f"{path.parent} holds a search with other settings ({path}): choose another --out")


def run_search(args: argparse.Namespace) -> dict[str, Path]:
    """Run (or resume) the search; write the best entry and the table of trials."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    space = load_search_space(args.algo)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = {"algo": args.algo, "env": args.env, "config": args.config, "trials": args.trials,
                "timesteps": args.timesteps, "seed": args.seed, "eval_freq": args.eval_freq,
                "eval_episodes": args.eval_episodes, "grace_timesteps": args.grace_timesteps, "space": space}
    settings_path = out / "search_settings.json"
    check_resumed_settings(settings_path, settings)
    write_atomic(settings_path, json.dumps(settings, indent=2))
    references = periodic_references(args.env, args.config, args.eval_episodes)
    trainable = tune.with_resources(functools.partial(
        run_trial, algo=args.algo, env_id=args.env, env_config=args.config, timesteps=args.timesteps, seed=args.seed,
        eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, references=references, space=space),
        {"cpu": 1})
    init_ray(args.address, args.workers)
    path = out / SEARCH_DIR
    if tune.Tuner.can_restore(str(path)):
        print(f"resuming the search in {path}", flush=True)
        tuner = tune.Tuner.restore(str(path), trainable=trainable)
    else:
        scheduler = ASHAScheduler(time_attr="timesteps", max_t=args.timesteps, grace_period=args.grace_timesteps,
                                  reduction_factor=REDUCTION_FACTOR)
        tuner = tune.Tuner(
            trainable, param_space=tune_space(space),
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=args.trials, scheduler=scheduler,
                                        search_alg=OptunaSearch(seed=args.seed),
                                        max_concurrent_trials=args.workers),
            run_config=tune.RunConfig(name=SEARCH_DIR, storage_path=str(out), verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=MAX_RETRIES)),
        )
    # Ray Tune's own Ctrl-C handler stops the running trials as if they had finished, so an interrupted search
    # would look finished; without it, Ctrl-C raises here, and the search saved so far resumes on a rerun.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    results = tuner.fit()
    rows = trial_rows(results, space, args.timesteps)
    paths = {"csv": out / "trials.csv", "md": out / "trials.md", "yml": out / f"{args.algo}.yml"}
    write_csv(paths["csv"], rows)
    write_atomic(paths["md"], trials_markdown(rows, list(space)))
    completed = [row for row in rows if row["status"] == "completed"]
    if not completed:
        raise SystemExit(f"no trial trained all {args.timesteps} timesteps: see {paths['md']}")
    top = completed[0]
    best = sampled_hyperparams({key: top[key] for key in space}, space)
    entry = best_entry(args.algo, args.env, best)
    config = f" --config '{json.dumps(args.config)}'" if args.config else ""
    header = (f"# {args.algo} on {args.env}: best of {len(rows)} trials (aigc-edge tune "
              f"--algo {args.algo} --env {args.env}{config} --trials {args.trials} --timesteps {args.timesteps} --seed "
              f"{args.seed}),\n# score {format_number(top['score'])} at {top['timesteps']} timesteps\n")
    write_atomic(paths["yml"], header + yaml.safe_dump({args.env: entry}, sort_keys=False))
    overrides = " ".join(f"{key}:{value}" for key, value in best.items())
    print(trials_markdown(rows, list(space)))
    print(f"best trial {top['trial']}: score {format_number(top['score'])}; wrote {', '.join(map(str, paths.values()))}"
          f"\ntrain with it: aigc-edge train --algo {args.algo} --env {args.env}{config} --hyperparams {overrides}")
    return paths


if __name__ == "__main__":  # run as a script by its old name
    raise SystemExit("this module runs as `aigc-edge tune` (see `aigc-edge tune --help`)")
