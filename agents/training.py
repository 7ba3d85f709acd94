"""Training one agent into a run directory (the engine of ``train.py``).

:func:`train` resolves a :class:`TrainRequest` (algorithm, env id and config overrides,
hyperparameters from ``agents/hyperparams/<algo>.yml`` plus overrides), checks it before
building anything (a bad request raises :class:`TrainingError` with a one-line reason),
trains with episode cost components in TensorBoard, periodic evaluation and checkpoints,
and leaves the run directory described in :mod:`aigc_edge_env.agents.runs`.

Timesteps are steps of the training env: slots for PPO and MaskablePPO, per-user
decisions (about ``N * p_task`` per slot) for DQN's per-user wrapper.
"""

from __future__ import annotations

import datetime
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from aigc_edge_env.agents.algorithms import ALGORITHMS, IncompatibleEnvError
from aigc_edge_env.agents.callbacks import CheckpointSaver, EpisodeCostLogger, PeriodicEvaluation
from aigc_edge_env.agents.environments import (
    check_env_id,
    check_vec_env,
    make_env,
    make_vec_env,
    normalize_kwargs,
    wrap_normalize,
)
from aigc_edge_env.agents.hyperparameters import HyperparamError, algorithm_kwargs, load_hyperparams
from aigc_edge_env.agents.runs import (
    BEST_MODEL,
    CHECKPOINT_DIR,
    FINAL_MODEL,
    RUN_RECORD,
    TENSORBOARD_DIR,
    RunError,
    load_normalizer,
    normalizer_path,
    package_versions,
    read_record,
    save_model,
    write_record,
)
from aigc_edge_env.config import ConfigError, make_config

__all__ = ["EVAL_SEED_BASE", "TrainRequest", "TrainingError", "train"]

#: Periodic evaluation plays seeds ``EVAL_SEED_BASE + i``: apart from training seeds and evaluate.py's.
EVAL_SEED_BASE = 1_000_000


class TrainingError(ValueError):
    """A training request that cannot run (unknown algo or env, bad hyperparameter, ...)."""


@dataclass
class TrainRequest:
    """What to train.  ``None`` fields take the hyperparameter file's value (``n_envs``,
    ``n_timesteps``); with ``resume`` the algo, env, config and hyperparameters come from
    the run directory ``out`` and ``timesteps`` more are trained there.
    """

    out: Path
    algo: str | None = None
    env_id: str | None = None
    timesteps: int | None = None
    seed: int = 0
    n_envs: int | None = None
    env_config: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 5
    checkpoint_every: int = 50_000
    progress_bar: bool = True
    device: str = "cpu"
    threads: int = 1
    command: list[str] = field(default_factory=list)


def _resolve_new(request: TrainRequest) -> dict[str, Any]:
    if request.algo not in ALGORITHMS:
        raise TrainingError(f"unknown algo {request.algo!r}: accepted {sorted(ALGORITHMS)}")
    if (request.out / RUN_RECORD).exists():
        raise TrainingError(f"{request.out} already holds a run; pass --resume to continue it or choose another --out")
    check_env_id(request.env_id, request.env_config)
    hyperparams = load_hyperparams(request.algo, request.env_id, request.hyperparams)
    env_wrapper = hyperparams.setdefault("env_wrapper", "none")
    hyperparams.setdefault("wrapper_reward", "slot_end")
    hyperparams.setdefault("vec_env", "vector" if env_wrapper == "none" else "dummy")
    hyperparams.setdefault("policy", "MlpPolicy")
    n_envs = request.n_envs if request.n_envs is not None else int(hyperparams.get("n_envs", 1))
    return {
        "algo": request.algo,
        "env_id": request.env_id,
        "seed": request.seed,
        "n_envs": n_envs,
        "env_config_overrides": dict(request.env_config),
        "env_config": make_config(request.env_id, request.env_config).to_dict(),
        "hyperparams": hyperparams,
        "hyperparam_overrides": dict(request.hyperparams),
        "evaluation": {"every": request.eval_every, "episodes": request.eval_episodes,
                       "seeds": [EVAL_SEED_BASE + i for i in range(request.eval_episodes)]},
        "checkpoint_every": request.checkpoint_every,
        "versions": package_versions(),
        "sessions": [],
    }


def _resolve_resume(request: TrainRequest) -> dict[str, Any]:
    record = read_record(request.out)
    for name, given in (("algo", request.algo), ("env_id", request.env_id)):
        if given is not None and given != record[name]:
            raise TrainingError(f"--resume: the run was trained with {name} {record[name]!r}, not {given!r}")
    if request.hyperparams or request.env_config:
        raise TrainingError("--resume continues a run as it was configured; it takes no --hyperparams or --config")
    if not (request.out / FINAL_MODEL).exists():
        raise TrainingError(f"--resume: no model to continue at {request.out / FINAL_MODEL}")
    return record


def _check(record: dict[str, Any], timesteps: int) -> None:
    """Raise before building anything when the resolved run cannot train."""
    if timesteps < 1:
        raise TrainingError(f"timesteps must be a positive integer, got {timesteps}")
    if record["n_envs"] < 1:
        raise TrainingError(f"n_envs must be a positive integer, got {record['n_envs']}")
    hp = record["hyperparams"]
    spec = ALGORITHMS[record["algo"]]
    algorithm_kwargs(spec.cls, hp)
    spec.resolve_policy(hp["policy"])
    normalize_kwargs(hp.get("normalize", False), hp.get("gamma"))
    check_vec_env(hp["vec_env"], hp["env_wrapper"])
    env = make_env(record["env_id"], record["env_config_overrides"], hp["env_wrapper"], hp["wrapper_reward"])
    try:
        spec.check_action_space(env.action_space, hp["env_wrapper"])
    finally:
        env.close()


def _training_env(record: dict[str, Any], resume_from: Path | None) -> VecEnv:
    hp = record["hyperparams"]
    venv = make_vec_env(record["env_id"], record["env_config_overrides"], record["n_envs"], hp["vec_env"],
                        hp["env_wrapper"], hp["wrapper_reward"])
    if resume_from is not None:
        normalizer = load_normalizer(normalizer_path(resume_from), venv)
        if normalizer is not None:
            normalizer.training = True
            return normalizer
        return venv
    return wrap_normalize(venv, normalize_kwargs(hp.get("normalize", False), hp.get("gamma")))


def _model(record: dict[str, Any], venv: VecEnv, run_dir: Path, device: str, resume: bool) -> BaseAlgorithm:
    spec = ALGORITHMS[record["algo"]]
    hp = record["hyperparams"]
    tensorboard_log = str(run_dir / TENSORBOARD_DIR)
    if resume:
        model = spec.cls.load(run_dir / FINAL_MODEL, env=venv, device=device, tensorboard_log=tensorboard_log)
        model.set_random_seed(record["seed"] + model.num_timesteps)  # new episodes, not a replay
        return model
    return spec.cls(spec.resolve_policy(hp["policy"]), venv, seed=record["seed"], tensorboard_log=tensorboard_log,
                    device=device, verbose=0, **algorithm_kwargs(spec.cls, hp))


def _callbacks(record: dict[str, Any], run_dir: Path) -> list[BaseCallback]:
    hp = record["hyperparams"]
    spec = ALGORITHMS[record["algo"]]
    callbacks: list[BaseCallback] = [EpisodeCostLogger()]
    evaluation = record["evaluation"]
    if evaluation["every"] > 0 and evaluation["episodes"] > 0:
        callbacks.append(PeriodicEvaluation(
            lambda: make_env(record["env_id"], record["env_config_overrides"]), evaluation["seeds"],
            evaluation["every"], run_dir / BEST_MODEL, masked=spec.masked, per_user=hp["env_wrapper"] == "per_user",
        ))
    if record["checkpoint_every"] > 0:
        callbacks.append(CheckpointSaver(run_dir / CHECKPOINT_DIR, record["checkpoint_every"]))
    return callbacks


def _as_training_error(exc: Exception) -> TrainingError:
    return exc if isinstance(exc, TrainingError) else TrainingError(str(exc))


def train(request: TrainRequest) -> Path:
    """Train as ``request`` says; returns the run directory.

    Raises :class:`TrainingError` (and writes nothing) when the request cannot train.
    """
    try:
        record = _resolve_resume(request) if request.resume else _resolve_new(request)
        timesteps = request.timesteps if request.timesteps is not None else record["hyperparams"].get("n_timesteps")
        if timesteps is None:
            raise TrainingError("no --timesteps given and no n_timesteps in the hyperparameters")
        timesteps = int(timesteps)
        _check(record, timesteps)
    except (ConfigError, HyperparamError, IncompatibleEnvError, RunError, ValueError) as exc:
        raise _as_training_error(exc) from None
    run_dir = request.out
    torch.set_num_threads(request.threads)
    venv = _training_env(record, run_dir / FINAL_MODEL if request.resume else None)
    try:
        try:
            model = _model(record, venv, run_dir, request.device, request.resume)
        except ValueError as exc:  # e.g. a policy that does not fit the (wrapped) env's spaces
            raise _as_training_error(exc) from None
        session = {"command": list(request.command), "timesteps": timesteps,
                   "started": datetime.datetime.now().isoformat(timespec="seconds")}
        record["sessions"].append(session)
        write_record(run_dir, record)
        start_steps = model.num_timesteps
        start = time.perf_counter()
        model.learn(total_timesteps=timesteps, callback=_callbacks(record, run_dir), log_interval=1,
                    tb_log_name=record["algo"], reset_num_timesteps=not request.resume,
                    progress_bar=request.progress_bar)
        wall_time_s = time.perf_counter() - start
        save_model(model, run_dir / FINAL_MODEL)
    finally:
        venv.close()
    session.update({
        "wall_time_s": round(wall_time_s, 3),
        "steps_per_s": round((model.num_timesteps - start_steps) / wall_time_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "total_timesteps": int(model.num_timesteps),
    })
    write_record(run_dir, record)
    return run_dir
