"""Training one agent into a run directory (the engine of ``train.py``).

:func:`train` resolves a :class:`TrainRequest` (algorithm, env id and config overrides,
hyperparameters from ``agents/hyperparams/<algo>.yml`` plus overrides), checks it before
building anything (a bad request raises :class:`TrainingError` with a one-line reason),
trains with episode cost components in TensorBoard, periodic evaluation and checkpoints,
and leaves the run directory described in :mod:`aigc_edge_env.agents.runs`.

Only one process writes a run directory (a lock; a second is refused at once).  SIGINT or
SIGTERM during training stops it at the next env step: the model, its normaliser and the
training state are saved, ``run.yml`` marks the session interrupted with the step reached, and
:class:`TrainingInterrupted` is raised; further signals wait until that save is done.  Every file
is written atomically, so a process killed outright (``kill -9``, a power cut) loses at most the
steps since the last checkpoint: ``resume`` continues from the newest complete snapshot, the final
model or a checkpoint (:func:`aigc_edge_env.agents.runs.resume_point`), and says which.  It
continues from the saved training state
(env mid-episode, random generators, normaliser), so a resumed run is the run it continues:
an interrupted run resumed to its planned total gives the parameters of the uninterrupted run,
and so do 2,000 steps plus 2,000 more under constant schedules.  With a ``lin_`` schedule they
differ by design: a session of 2,000 planned steps anneals to zero at 2,000 (with ppo.yml's
``lin_5e-3`` on AIGCEdge-v0 the parameters end 3.9% apart in relative L2 norm).

Timesteps are steps of the training env: slots for PPO and MaskablePPO, per-user
decisions (about ``N * p_task`` per slot) for DQN's per-user wrapper.
"""

from __future__ import annotations

import datetime
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.behaviour_cloning import (
    behaviour_cloning_options,
    clone,
    dagger_labels,
    dagger_seeds,
    fit_policy,
    normalised_observations,
)
from aigc_edge_env.agents.callbacks import (
    CheckpointSaver,
    EpisodeCostLogger,
    PeriodicEvaluation,
    StopRequest,
    best_reward,
)
from aigc_edge_env.agents.environments import (
    check_env_id,
    check_vec_env,
    make_env,
    make_vec_env,
    normalize_kwargs,
    wrap_normalize,
)
from aigc_edge_env.agents.hyperparameters import (
    algorithm_kwargs,
    check_policy_kwargs,
    check_values,
    load_hyperparams,
)
from aigc_edge_env.agents.runs import (
    BEST_MODEL,
    CHECKPOINT_DIR,
    FINAL_MODEL,
    MIXTURE_ALGOS,
    PRICE_NETWORK_ALGO,
    RUN_RECORD,
    TENSORBOARD_DIR,
    ResumePoint,
    RunError,
    load_normalizer,
    normalizer_path,
    read_record,
    replay_buffer_path,
    restore_training_state,
    resume_point,
    run_lock,
    save_snapshot,
    write_record,
)
from aigc_edge_env.cli.common import check_device, check_output_dir, check_threads
from aigc_edge_env.config import make_config
from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.files import write_atomic
from aigc_edge_env.versions import package_versions

__all__ = ["EVAL_SEED_BASE", "TrainRequest", "TrainingError", "TrainingInterrupted", "locked_run", "refusing_requests",
           "train"]

#: Periodic evaluation plays seeds ``EVAL_SEED_BASE + i``: apart from training seeds and evaluate.py's.
EVAL_SEED_BASE = 1_000_000


class TrainingError(ValueError):
    """A training request that cannot run (unknown algo or env, bad hyperparameter, ...)."""


class TrainingInterrupted(Exception):
    """Training stopped by a signal; the run was saved (``signal_name``, ``timesteps`` reached, ``run_dir``)."""

    def __init__(self, signal_name: str, timesteps: int, run_dir: Path) -> None:
        super().__init__(f"interrupted by {signal_name} at step {timesteps}; saved in {run_dir}")
        self.signal_name, self.timesteps, self.run_dir = signal_name, timesteps, run_dir


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
    wrapper: str | None = None
    resume: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 5
    checkpoint_every: int = 50_000
    progress_bar: bool = True
    device: str = "cpu"
    threads: int = 1
    command: list[str] = field(default_factory=list)
    #: Called with (timesteps, mean episode reward) after each periodic evaluation.
    on_evaluation: Callable[[int, float], None] | None = None


def _check_request(request: TrainRequest) -> None:
    """Raise for settings of the request itself (not of the run it names) that cannot work."""
    check_threads(request.threads)
    check_device(request.device)
    if request.eval_every < 0:
        raise TrainingError(f"--eval-freq must be >= 0 (0: no evaluation), got {request.eval_every}")
    if request.checkpoint_every < 0:
        raise TrainingError(f"--checkpoint-freq must be >= 0 (0: no checkpoints), got {request.checkpoint_every}")
    if request.eval_every > 0 and request.eval_episodes < 1:
        raise TrainingError(f"--eval-episodes must be >= 1 when evaluating (--eval-freq {request.eval_every}), "
                            f"got {request.eval_episodes}")
    check_output_dir(request.out, "--resume" if request.resume else "--out")


def _resolve_new(request: TrainRequest) -> dict[str, Any]:
    if request.algo not in ALGORITHMS:
        raise TrainingError(f"unknown algo {request.algo!r}: accepted {sorted(ALGORITHMS)}")
    if (request.out / RUN_RECORD).exists():
        raise TrainingError(f"{request.out} already holds a run; pass --resume to continue it or choose another --out")
    if request.env_id is None:
        raise TrainingError("a new run needs an env id (--env)")
    check_env_id(request.env_id, request.env_config)
    hyperparams = check_values(load_hyperparams(request.algo, request.env_id, request.hyperparams,
                                                     wrapper=request.wrapper))
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


def _resolve_resume(request: TrainRequest) -> tuple[dict[str, Any], ResumePoint]:
    """The run's record and where it continues (refused, naming the file at fault, when unreadable)."""
    record = read_record(request.out)
    if record["algo"] in (PRICE_NETWORK_ALGO, *MIXTURE_ALGOS):  # aigc-edge train --resume routes them there
        raise TrainingError(f"{request.out} is a {record['algo']} run: resume it with aigc_edge_env.agents."
                            + ("mixture.resume_mixture" if record["algo"] in MIXTURE_ALGOS else
                               "price_imitation.resume_price_network"))
    for name, given in (("algo", request.algo), ("env_id", request.env_id)):
        if given is not None and given != record[name]:
            raise TrainingError(f"--resume: the run was trained with {name} {record[name]!r}, not {given!r}")
    if request.hyperparams or request.env_config or request.wrapper is not None:
        raise TrainingError("--resume continues a run as it was configured; it takes no --hyperparams, --config "
                            "or --wrapper")
    point = resume_point(request.out)
    load_normalizer(normalizer_path(point.path))  # a corrupt file is refused here, not later
    if record["evaluation"]["every"] > 0:
        best_reward(request.out / BEST_MODEL)  # an unknown best score is recovered or refused here
    return record, point


def _unfinished(session: dict[str, Any]) -> bool:
    """A session stopped by a signal, or killed (no ``total_timesteps``: it never saved its end)."""
    return bool(session.get("interrupted")) or "total_timesteps" not in session


def _timesteps(request: TrainRequest, record: dict[str, Any], start: int) -> int:
    """Steps to train from step ``start``: --timesteps; else on resuming an unfinished session what it had left;
    else n_timesteps."""
    if request.timesteps is not None:
        return request.timesteps
    last = record["sessions"][-1] if request.resume and record["sessions"] else {}
    if last and _unfinished(last):
        return max(int(last["planned_total_timesteps"]) - start, 1)
    timesteps = record["hyperparams"].get("n_timesteps")
    if timesteps is None:
        raise TrainingError("no --timesteps given and no n_timesteps in the hyperparameters")
    return int(timesteps)


def _check(record: dict[str, Any], timesteps: int, resume: bool) -> None:
    """Raise before building anything when the resolved run cannot train."""
    cloning = "behaviour_cloning" in record["hyperparams"] and not resume  # a new run clones; a resumed one not
    if timesteps < (0 if cloning else 1):
        raise TrainingError(f"--timesteps must be a positive integer (0: behaviour cloning only), got {timesteps}")
    if record["n_envs"] < 1:
        raise TrainingError(f"n_envs must be a positive integer, got {record['n_envs']}")
    hp = record["hyperparams"]
    spec = ALGORITHMS[record["algo"]]
    kwargs = algorithm_kwargs(spec.cls, hp)
    policy = spec.resolve_policy(hp["policy"])
    if "policy_kwargs" in hp:
        check_policy_kwargs(spec.cls.policy_aliases[policy] if isinstance(policy, str) else policy,
                            hp["policy_kwargs"])
        given = sorted(set(_env_policy_kwargs(policy, record)) & set(hp["policy_kwargs"]))
        if given:
            raise TrainingError(f"policy_kwargs {given} of {hp['policy']} come from the env's config; do not set them")
    if "batch_size" in kwargs and "n_steps" in kwargs and kwargs["batch_size"] > kwargs["n_steps"] * record["n_envs"]:
        raise TrainingError(f"batch_size {kwargs['batch_size']} exceeds the rollout of n_steps x n_envs = "
                            f"{kwargs['n_steps']} x {record['n_envs']}")
    normalize = normalize_kwargs(hp.get("normalize", False), hp.get("gamma"))
    if getattr(policy, "needs_raw_observations", False) and normalize and normalize.get("norm_obs", True):
        raise TrainingError(f"{hp['policy']} reads the raw observation (battery, step energy): set "
                            "normalize:{norm_obs: false, norm_reward: true} (or normalize:false)")
    if cloning:
        _check_behaviour_cloning(record)
    check_vec_env(hp["vec_env"], hp["env_wrapper"])
    env = make_env(record["env_id"], record["env_config_overrides"], hp["env_wrapper"], hp["wrapper_reward"],
                   hp.get("wrapper_kwargs"))
    try:
        spec.check_action_space(env.action_space, hp["env_wrapper"])
    finally:
        env.close()


def _check_behaviour_cloning(record: dict[str, Any]) -> None:
    """The ``behaviour_cloning`` hyperparameter's options, and its dataset recorded in the run's env (same
    id, same config, joint actions); raises :class:`TrainingError` otherwise."""
    from aigc_edge_env.datasets import open_dataset

    hp = record["hyperparams"]
    if hp["env_wrapper"] != "none" or ALGORITHMS[record["algo"]].discrete_only:
        raise TrainingError("behaviour_cloning needs a joint-action algorithm (ppo, maskable_ppo) without env_wrapper")
    options = behaviour_cloning_options(hp["behaviour_cloning"])
    try:
        dataset = open_dataset(options["dataset"])
    except FileNotFoundError as exc:
        raise TrainingError(f"behaviour_cloning.dataset: {exc}") from None
    env = dataset.recover_environment()
    try:
        expected = make_config(record["env_id"], record["env_config_overrides"])
        recorded_in = env.spec.id if env.spec is not None else None
        if recorded_in != record["env_id"] or unwrapped_env(env).config != expected:
            raise TrainingError(f"behaviour_cloning.dataset {options['dataset']} was recorded in {recorded_in} "
                                f"with another config than this run's {record['env_id']}")
    finally:
        env.close()


def _training_env(record: dict[str, Any], resume_from: Path | None) -> VecEnv:
    """The training env; resuming from the snapshot ``resume_from``, with its normaliser."""
    hp = record["hyperparams"]
    venv = make_vec_env(record["env_id"], record["env_config_overrides"], record["n_envs"], hp["vec_env"],
                        hp["env_wrapper"], hp["wrapper_reward"], hp.get("wrapper_kwargs"))
    if resume_from is not None:
        normalizer = load_normalizer(normalizer_path(resume_from), venv)
        if normalizer is not None:
            normalizer.training = True
            return normalizer
        return venv
    return wrap_normalize(venv, normalize_kwargs(hp.get("normalize", False), hp.get("gamma")))


def _model(record: dict[str, Any], venv: VecEnv, run_dir: Path, device: str,
           point: ResumePoint | None) -> BaseAlgorithm:
    spec = ALGORITHMS[record["algo"]]
    hp = record["hyperparams"]
    tensorboard_log = str(run_dir / TENSORBOARD_DIR)
    if point is not None:
        model = spec.cls.load(point.path, env=venv, device=device, tensorboard_log=tensorboard_log)
        restore_training_state(model, {k: v for k, v in point.state.items() if k != "model_sha256"})
        if replay_buffer_path(point.path).exists():
            model.load_replay_buffer(replay_buffer_path(point.path))  # type: ignore[attr-defined]
        return model
    policy = spec.resolve_policy(hp["policy"])
    kwargs = algorithm_kwargs(spec.cls, hp)
    fixed = _env_policy_kwargs(policy, record)
    if fixed:
        kwargs["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), **fixed}
    return spec.cls(policy, venv, seed=record["seed"], tensorboard_log=tensorboard_log, device=device, verbose=0,
                    **kwargs)


def _env_policy_kwargs(policy: str | type, record: dict[str, Any]) -> dict[str, Any]:
    """The policy kwargs the env's config fixes (``env_policy_kwargs`` of a policy class that has one:
    CapacityPerUserPolicy's edge steps and capacity); empty for the others."""
    if not hasattr(policy, "env_policy_kwargs"):
        return {}
    return policy.env_policy_kwargs(make_config(record["env_id"], record["env_config_overrides"]))


def _clone(model: BaseAlgorithm, venv: VecEnv, record: dict[str, Any], run_dir: Path) -> float:
    """Behaviour cloning of the new ``model`` on the dataset of its ``behaviour_cloning`` options, then their
    DAgger rounds (the losses go to ``bc_losses.csv``); returns its CPU time (s)."""
    start_cpu = time.process_time()
    from aigc_edge_env.datasets import load_transitions
    from aigc_edge_env.policies.registry import make_policy

    options, seed = behaviour_cloning_options(record["hyperparams"]["behaviour_cloning"]), record["seed"]
    data = load_transitions(options["dataset"])
    normalizer = venv if isinstance(venv, VecNormalize) else None
    fit = {"batch_size": options["batch_size"], "learning_rate": options["learning_rate"]}
    losses = clone(model, normalizer, data.observations, data.actions, options["epochs"], seed=seed, **fit)
    rows = [f"0,{i + 1},{loss:.6f}\n" for i, loss in enumerate(losses)]
    print(f"behaviour cloning: {len(data.actions)} slots of {options['dataset']}, {options['epochs']} epochs, "
          f"negative log-likelihood {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
    observations, actions = data.observations, data.actions
    if options["dagger_rounds"]:
        env = make_env(record["env_id"], record["env_config_overrides"])
        teacher = make_policy(options["teacher"])
    for round_index in range(options["dagger_rounds"]):
        seeds = dagger_seeds(seed, round_index, options["dagger_episodes"])
        new_obs, new_actions = dagger_labels(model, normalizer, ALGORITHMS[record["algo"]].masked, env, teacher, seeds)
        observations, actions = np.concatenate([observations, new_obs]), np.concatenate([actions, new_actions])
        losses = fit_policy(model, normalised_observations(normalizer, observations), actions,
                            options["dagger_epochs"], seed=seed + round_index + 1, **fit)
        rows += [f"{round_index + 1},{i + 1},{loss:.6f}\n" for i, loss in enumerate(losses)]
        print(f"DAgger round {round_index + 1}/{options['dagger_rounds']}: {len(new_actions)} states labelled by "
              f"{options['teacher']}, {len(actions)} in all, negative log-likelihood {losses[-1]:.3f}", flush=True)
    write_atomic(run_dir / "bc_losses.csv", "dagger_round,epoch,neg_log_likelihood\n" + "".join(rows))
    return time.process_time() - start_cpu


def _callbacks(record: dict[str, Any], run_dir: Path, stop: StopRequest,
               on_evaluation: Callable[[int, float], None] | None = None) -> list[BaseCallback]:
    hp = record["hyperparams"]
    spec = ALGORITHMS[record["algo"]]
    callbacks: list[BaseCallback] = [EpisodeCostLogger()]
    evaluation = record["evaluation"]
    if evaluation["every"] > 0 and evaluation["episodes"] > 0:
        callbacks.append(PeriodicEvaluation(
            lambda: make_env(record["env_id"], record["env_config_overrides"]), evaluation["seeds"],
            evaluation["every"], run_dir / BEST_MODEL, masked=spec.masked, env_wrapper=hp["env_wrapper"],
            wrapper_kwargs=hp.get("wrapper_kwargs"), on_result=on_evaluation,
        ))
    if record["checkpoint_every"] > 0:
        callbacks.append(CheckpointSaver(run_dir / CHECKPOINT_DIR, record["checkpoint_every"], stop))
    return callbacks + [stop]  # last, so that the others see the stopping step


@contextmanager
def _stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """SIGINT and SIGTERM ask ``stop`` to end training; later ones wait (said on stderr) until the run is saved."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.reason is not None:
            print(f"{signal.Signals(signum).name} again: the run is being saved after {stop.reason}; it stops "
                  "when saved", file=sys.stderr, flush=True)
            return
        stop.request(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _as_training_error(exc: Exception) -> TrainingError:
    return exc if isinstance(exc, TrainingError) else TrainingError(str(exc))


@contextmanager
def locked_run(out: Path, algo: str | tuple[str, ...] | None = None) -> Iterator[dict[str, Any] | None]:
    """Hold the run directory's lock (:func:`~aigc_edge_env.agents.runs.run_lock`) for the block, for the trainers
    of their own.  With ``algo`` (one, or a tuple of those accepted), ``out`` must already hold a run of that
    ``algo`` (checked before the lock, which would create the directory), and its record is yielded.  A second
    holder, a missing or unreadable record and a run of another kind are refused as :class:`TrainingError`."""
    if algo is not None and not (out / RUN_RECORD).is_file():
        raise TrainingError(f"{out} is not a run directory: {out / RUN_RECORD} is missing")
    accepted = (algo,) if isinstance(algo, str) else algo
    try:
        with run_lock(out):
            record = None if accepted is None else read_record(out)
            if record is not None and accepted is not None and record["algo"] not in accepted:
                raise TrainingError(f"{out} is a {record['algo']} run, not a {' or '.join(accepted)} run")
            yield record
    except RunError as exc:
        raise TrainingError(str(exc)) from None


@contextmanager
def refusing_requests() -> Iterator[None]:
    """Around the checks of a training request, before any work: a ``ValueError`` raised there becomes a
    :class:`TrainingError` (``aigc-edge train`` reports it in one line, status 2).  A ``ValueError`` raised
    later, while training, stays what it is: a failure to see with its traceback, not a bad request."""
    try:
        yield
    except ValueError as exc:
        raise _as_training_error(exc) from None


def train(request: TrainRequest) -> Path:
    """Train as ``request`` says; returns the run directory.

    Raises :class:`TrainingError` (and writes nothing) when the request cannot train, and
    :class:`TrainingInterrupted` after saving the run when SIGINT or SIGTERM stopped it.
    """
    try:
        with refusing_requests():
            _check_request(request)
            point = None
            if request.resume:
                record, point = _resolve_resume(request)
            else:
                record = _resolve_new(request)
            timesteps = _timesteps(request, record, point.timesteps if point is not None else 0)
            _check(record, timesteps, request.resume)
    except RunError as exc:
        raise _as_training_error(exc) from None
    torch.set_num_threads(request.threads)
    stop = StopRequest()
    with _stop_on_signals(stop):
        built = None if request.resume else _build(record, request, None)  # a new run: refused before any write
        try:
            with run_lock(request.out):
                if built is None:
                    point = resume_point(request.out)  # again, under the lock
                    built = _build(record, request, point)
                    _say_resumed(request.out, point)
                elif (request.out / RUN_RECORD).exists():  # another process started it meanwhile
                    raise TrainingError(f"{request.out} already holds a run; pass --resume to continue it "
                                        "or choose another --out")
                return _train_locked(request, record, timesteps, stop, *built, point)
        except RunError as exc:
            raise _as_training_error(exc) from None
        finally:
            if built is not None:
                built[0].close()


def _say_resumed(run_dir: Path, point: ResumePoint) -> None:
    """Which snapshot a resumed run continues from, and the newer ones skipped (on stderr)."""
    for why in point.skipped:
        print(f"skipped: {why}", file=sys.stderr)
    print(f"resuming {run_dir} from {point.path.relative_to(run_dir)} at step {point.timesteps}", file=sys.stderr,
          flush=True)


def _build(record: dict[str, Any], request: TrainRequest, point: ResumePoint | None) -> tuple[VecEnv, BaseAlgorithm]:
    """The training env and the model (new, or loaded with its training state from ``point`` on resume)."""
    venv = _training_env(record, point.path if point is not None else None)
    try:
        return venv, _model(record, venv, request.out, request.device, point)
    except ValueError as exc:  # e.g. a policy that does not fit the (wrapped) env's spaces
        venv.close()
        raise _as_training_error(exc) from None
    except BaseException:
        venv.close()
        raise


def _train_locked(request: TrainRequest, record: dict[str, Any], timesteps: int, stop: StopRequest, venv: VecEnv,
                  model: BaseAlgorithm, point: ResumePoint | None) -> Path:
    run_dir = request.out
    start_steps = model.num_timesteps
    session: dict[str, Any] = {"command": list(request.command), "timesteps": timesteps,
               "planned_total_timesteps": start_steps + timesteps, "device": request.device,
               "threads": request.threads, "pid": os.getpid(),
               "started": datetime.datetime.now().isoformat(timespec="seconds")}
    if point is not None:
        session["resumed_from"] = {"file": str(point.path.relative_to(run_dir)), "timesteps": point.timesteps}
        if record["sessions"] and "total_timesteps" not in record["sessions"][-1]:
            record["sessions"][-1]["ended"] = "killed before saving its end"
    record["sessions"].append(session)
    write_record(run_dir, record)
    if point is None and "behaviour_cloning" in record["hyperparams"]:  # a new run, now that it holds the lock
        session["behaviour_cloning_cpu_s"] = round(
            _clone(model, venv, record, run_dir), 3)
        write_record(run_dir, record)
    start, start_cpu = time.perf_counter(), time.process_time()
    if timesteps > 0:  # 0: behaviour cloning only (learn() would move the normaliser on its first reset)
        model.learn(total_timesteps=timesteps, callback=_callbacks(record, run_dir, stop, request.on_evaluation),
                    log_interval=1, tb_log_name=record["algo"], reset_num_timesteps=not request.resume,
                    progress_bar=request.progress_bar)
    wall_time_s, cpu_time_s = time.perf_counter() - start, time.process_time() - start_cpu
    save_snapshot(model, run_dir / FINAL_MODEL)
    session.update({
        "wall_time_s": round(wall_time_s, 3),
        "steps_per_s": round((model.num_timesteps - start_steps) / wall_time_s, 1),
        "cpu_time_s": round(cpu_time_s, 3),  # this process's CPU time: on a shared core, below the wall time
        "steps_per_cpu_s": round((model.num_timesteps - start_steps) / cpu_time_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "total_timesteps": int(model.num_timesteps),
    })
    interrupted = stop.reason is not None and model.num_timesteps < session["planned_total_timesteps"]
    if interrupted:  # (a signal after the last step leaves a finished run)
        session["interrupted"] = stop.reason
    write_record(run_dir, record)
    if interrupted:
        raise TrainingInterrupted(str(stop.reason), int(model.num_timesteps), run_dir)
    return run_dir
