"""Run directories: what a training run leaves on disk, and loading it back.

Layout of a run directory (``train.py --out DIR``)::

    run.yml                      algo, env id, env config (overrides and resolved), hyperparameters,
                                 seed, command lines, package versions, wall time and peak memory
    model.zip                    final model
    model.vecnormalize.pkl       its VecNormalize statistics (when the run normalises)
    model.resume.pkl             what --resume needs to continue exactly: the training env's state
                                 (mid-episode included), the random generators, the last observation,
                                 and the SHA-256 of the model file it belongs to
    model.replay_buffer.pkl      the replay buffer (DQN)
    best_model.zip (+ .vecnormalize.pkl, .yml)   best periodic evaluation so far (.yml: its mean reward)
    train.lock                   held (flock) by the train.py writing the run: a second one is refused
    checkpoints/model_<steps>_steps.zip (+ .vecnormalize.pkl, .resume.pkl; the newest also .replay_buffer.pkl)
    tb/<algo>_1/events.out.tfevents.*      TensorBoard logs

Every model file ``<stem>.zip`` keeps its normaliser in ``<stem>.vecnormalize.pkl`` beside it.
Every file is written atomically (:func:`aigc_edge_env.files.write_atomic`): a process killed at
any moment leaves each file whole, old or new.  A *snapshot* (:func:`save_snapshot`: the final
model or a checkpoint) writes its training state last, holding the model file's SHA-256, so a
snapshot is *complete* (:func:`complete_snapshot`) exactly when its state matches its model;
``--resume`` continues from the newest complete one (:func:`resume_point`).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import pickle
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.files import write_atomic
from aigc_edge_env.versions import package_versions

__all__ = [
    "BEST_MODEL", "CHECKPOINT_DIR", "FINAL_MODEL", "IMITATION_MIXTURE_ALGO", "LOCK_FILE", "MIXTURE_ALGOS",
    "MIXTURE_FILE", "PPO_MIXTURE_ALGO",
    "PRICE_NETWORK_ALGO", "PRICE_NETWORK_FILE",
    "RUN_RECORD", "TENSORBOARD_DIR", "RunError", "ResumePoint", "TrainedModel", "checkpoint_steps",
    "complete_snapshot", "load_normalizer", "load_resume_state", "load_trained", "model_file", "normalizer_path",
    "read_record", "read_scalars", "replay_buffer_path", "restore_training_state", "resume_point",
    "resume_state_path", "run_lock", "save_model", "save_snapshot", "training_state", "write_record",
]

RUN_RECORD = "run.yml"
FINAL_MODEL = "model.zip"
BEST_MODEL = "best_model.zip"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tb"
LOCK_FILE = "train.lock"
#: Attributes of an SB3 model that the zip does not restore as training left them.
_MODEL_STATE = ("num_timesteps", "_episode_num", "_last_obs", "_last_episode_starts", "_last_original_obs",
                "ep_info_buffer", "ep_success_buffer")
class RunError(RuntimeError):
    """A run directory or model file that is missing or cannot be read (the message names the path)."""


def normalizer_path(model_path: Path) -> Path:
    """Where the VecNormalize statistics of ``<stem>.zip`` live: ``<stem>.vecnormalize.pkl``."""
    return model_path.with_name(f"{model_path.stem}.vecnormalize.pkl")


def save_model(model: BaseAlgorithm, path: Path) -> bytes:
    """Save ``model`` to ``path`` (a ``.zip``) and its VecNormalize statistics beside it, each atomically
    (the normaliser first); the bytes of the model file."""
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        write_atomic(normalizer_path(path), pickle.dumps(normalizer))  # what VecNormalize.save writes
    buffer = io.BytesIO()
    model.save(buffer)
    write_atomic(path, buffer.getvalue())
    return buffer.getvalue()


def resume_state_path(model_path: Path) -> Path:
    """Where the training state of ``<stem>.zip`` lives: ``<stem>.resume.pkl``."""
    return model_path.with_name(f"{model_path.stem}.resume.pkl")


def replay_buffer_path(model_path: Path) -> Path:
    """Where the replay buffer of an off-policy ``<stem>.zip`` lives: ``<stem>.replay_buffer.pkl``."""
    return model_path.with_name(f"{model_path.stem}.replay_buffer.pkl")


def _env_layers(venv: VecEnv) -> list[VecEnv]:
    layers = [venv]
    while isinstance(layers[-1], VecEnvWrapper):
        layers.append(layers[-1].venv)
    return layers


def training_state(model: BaseAlgorithm) -> dict[str, Any]:
    """What the model file does not hold of a training run in progress, as plain picklable values.

    The training env's attributes layer by layer (VecNormalize statistics and running returns,
    monitor counters, the env's own state and generators, mid-episode included), the global
    random generators (Python, numpy, torch), the action space's generator and the model's
    last observation and counters.
    """
    env = model.get_env()
    assert env is not None
    layers = [{name: value for name, value in vars(layer).items()
               if not (isinstance(layer, VecEnvWrapper) and name in ("venv", "class_attributes"))}
              for layer in _env_layers(env)]
    return pickle.loads(pickle.dumps({  # a deep copy: the caller may keep it while training goes on
        "env": layers,
        "random": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                   "action_space": model.action_space._np_random},
        "model": {name: getattr(model, name) for name in _MODEL_STATE},
    }))


def restore_training_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Put ``state`` (of :func:`training_state`) back into ``model`` and its env, generators included."""
    env = model.get_env()
    assert env is not None
    layers = _env_layers(env)
    if len(layers) != len(state["env"]):
        raise RunError(f"the saved training state has {len(state['env'])} env layers, the env {len(layers)}")
    for layer, values in zip(layers, state["env"], strict=True):
        vars(layer).update(values)
    generators = state["random"]
    random.setstate(generators["python"])
    np.random.set_state(generators["numpy"])
    torch.set_rng_state(generators["torch"])
    model.action_space._np_random = generators["action_space"]
    for name, value in state["model"].items():
        setattr(model, name, value)


def save_snapshot(model: BaseAlgorithm, path: Path, state: dict[str, Any] | None = None) -> None:
    """Save what resuming from ``path`` (a model ``.zip``) needs: the normaliser, the replay buffer of an
    off-policy model, the model, then (the commit) ``state`` (default: the model's current
    :func:`training_state`) with the model file's SHA-256.  Each file is written atomically; a process
    killed before the last write leaves an incomplete snapshot, which :func:`complete_snapshot` rejects."""
    state = dict(state if state is not None else training_state(model))
    if isinstance(model, OffPolicyAlgorithm):
        buffer = io.BytesIO()
        model.save_replay_buffer(buffer)
        write_atomic(replay_buffer_path(path), buffer.getvalue())
    state["model_sha256"] = hashlib.sha256(save_model(model, path)).hexdigest()
    write_atomic(resume_state_path(path), pickle.dumps(state))


def load_resume_state(path: Path) -> dict[str, Any] | None:
    """The training state saved for the model ``path`` (``None`` if there is none); :class:`RunError` if corrupt."""
    state_path = resume_state_path(path)
    if not state_path.exists():
        return None
    try:
        state = pickle.loads(state_path.read_bytes())
    except Exception as exc:  # pickle raises many types for a corrupt file
        raise RunError(f"cannot load training state {state_path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or not {"env", "random", "model"} <= set(state) <= {"env", "random", "model",
                                                                                        "model_sha256"}:
        raise RunError(f"{state_path} does not hold a training state")
    return state


def complete_snapshot(path: Path) -> dict[str, Any]:
    """The training state of the snapshot ``path`` (a model ``.zip``) when the snapshot is complete: the model
    file and its state both there, readable, and the state's SHA-256 the model file's.

    Raises :class:`RunError` naming the file at fault otherwise.
    """
    state = load_resume_state(path)
    if state is None:
        raise RunError(f"no training state {resume_state_path(path)} beside {path}")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise RunError(f"cannot read model {path}: {exc}") from None
    if state.get("model_sha256", digest) != digest:  # (a state saved by 0.5.0 holds no hash: taken as it is)
        raise RunError(f"{resume_state_path(path)} belongs to another {path.name} (a save cut short)")
    return state


_CHECKPOINT = re.compile(r"model_(\d+)_steps\.zip")


def checkpoint_steps(path: Path) -> int | None:
    """The timesteps in a checkpoint's name ``model_<steps>_steps.zip``; ``None`` for another name."""
    match = _CHECKPOINT.fullmatch(path.name)
    return int(match.group(1)) if match else None


@dataclass
class ResumePoint:
    """Where ``--resume`` continues a run: a complete snapshot, its training state and step, and why each
    newer snapshot found there was skipped (a process killed while writing it, a damaged file)."""

    path: Path
    state: dict[str, Any]
    timesteps: int
    skipped: list[str]


def resume_point(run_dir: Path) -> ResumePoint:
    """The newest complete snapshot of ``run_dir``: its final model or a checkpoint, whichever is further on.

    Raises :class:`RunError` naming each file at fault when there is none (a run killed before its first
    checkpoint, damaged files, a run saved before snapshots held their model's SHA-256).
    """
    named = [(checkpoint_steps(p), p) for p in (run_dir / CHECKPOINT_DIR).glob("model_*_steps.zip")]
    checkpoints = [p for steps, p in sorted((item for item in named if item[0] is not None),
                                            key=lambda item: -int(item[0] or 0))]
    best: ResumePoint | None = None
    skipped: list[tuple[int, str]] = []  # (steps in the name, or -1 for the final model; why)
    for path in [run_dir / FINAL_MODEL, *checkpoints]:
        steps = checkpoint_steps(path)
        if best is not None and steps is not None and steps <= best.timesteps:
            break  # every other checkpoint is older
        if not path.exists():
            continue
        try:
            state = complete_snapshot(path)
        except RunError as exc:
            skipped.append((-1 if steps is None else steps, str(exc)))
            continue
        if best is None or int(state["model"]["num_timesteps"]) > best.timesteps:
            best = ResumePoint(path, state, int(state["model"]["num_timesteps"]), [])
    if best is None:
        found = "; ".join(why for _, why in skipped) or f"no {run_dir / FINAL_MODEL} and no checkpoint"
        raise RunError(f"nothing complete to resume from in {run_dir}: {found}")
    best.skipped = [why for steps, why in skipped if steps < 0 or steps > best.timesteps]
    return best


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock (creating the directory) while the block runs.

    A second holder is refused at once with :class:`RunError` naming the process that holds it.
    The lock is ``flock``'s, so it goes with its process, however that process ends.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = (run_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise RunError(f"cannot write to run directory {run_dir}: {exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunError(f"{run_dir} is in use by another train.py (pid {holder}); "
                           "two runs never write one directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def load_normalizer(path: Path, venv: VecEnv | None = None) -> VecNormalize | None:
    """The VecNormalize saved at ``path`` (``None`` if there is none), attached to ``venv`` if given.

    Without ``venv`` it is only good for ``normalize_obs`` (evaluation); it is returned frozen.
    """
    if not path.exists():
        return None
    try:
        if venv is not None:
            return VecNormalize.load(str(path), venv)
        with path.open("rb") as handle:
            normalizer = pickle.load(handle)
    except Exception as exc:  # pickle raises many types for a corrupt file
        raise RunError(f"cannot load VecNormalize statistics {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(normalizer, VecNormalize):
        raise RunError(f"{path} does not hold VecNormalize statistics (found {type(normalizer).__name__})")
    normalizer.training = False
    normalizer.norm_reward = False
    return normalizer


#: The ``algo`` of a price network's run (``aigc-edge train --algo price_network``: no SB3 model; its network is
#: ``PRICE_NETWORK_FILE``, :mod:`aigc_edge_env.agents.price_imitation`).
PRICE_NETWORK_ALGO = "price_network"
PRICE_NETWORK_FILE = "price_network.npz"
#: The ``algo`` of a run of the per-user network on a mixture of user counts (``aigc-edge train --algo
#: ppo_mixture``, :mod:`aigc_edge_env.agents.mixture`); its network is ``MIXTURE_FILE`` (``torch:PATH`` format).
PPO_MIXTURE_ALGO = "ppo_mixture"
#: The same network trained by imitation of ``exact``'s decisions (``aigc-edge train --algo imitation_mixture``).
IMITATION_MIXTURE_ALGO = "imitation_mixture"
#: Both kinds of run of :mod:`aigc_edge_env.agents.mixture`.
MIXTURE_ALGOS = (PPO_MIXTURE_ALGO, IMITATION_MIXTURE_ALGO)
MIXTURE_FILE = "policy.pt"
#: The network file of each run kind that is not an SB3 model.
_NETWORK_FILES = {PRICE_NETWORK_ALGO: PRICE_NETWORK_FILE, **dict.fromkeys(MIXTURE_ALGOS, MIXTURE_FILE)}


def model_file(path: Path) -> Path:
    """The model file of a run directory (``FINAL_MODEL``, or the network file of a price network's or a
    mixture run), or ``path`` itself when it is a file; :class:`RunError` when the directory holds no
    readable run.yml."""
    if not path.is_dir():
        return path
    return path / _NETWORK_FILES.get(read_record(path)["algo"], FINAL_MODEL)


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    write_atomic(run_dir / RUN_RECORD, yaml.safe_dump(record, sort_keys=False))


def read_record(run_dir: Path) -> dict[str, Any]:
    """The ``run.yml`` of ``run_dir``; :class:`RunError` if it is missing or unreadable."""
    path = run_dir / RUN_RECORD
    try:
        record = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run directory: {path} is missing") from None
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"cannot read run record {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(record, dict) or record.get("algo") not in (*ALGORITHMS, *_NETWORK_FILES):
        raise RunError(f"run record {path} does not name a known algo ({sorted([*ALGORITHMS, *_NETWORK_FILES])})")
    return record


@dataclass
class TrainedModel:
    """A trained model, its frozen normaliser and the record of the run that made it."""

    path: Path
    run_dir: Path
    record: dict[str, Any]
    model: BaseAlgorithm
    normalizer: VecNormalize | None


#: The first release whose ``PerUserPolicy`` draws each user's (offload bit, level) pair from one categorical
#: (agents/networks.py); runs of earlier releases hold a head of another meaning, refused by :func:`load_trained`.
PAIR_HEAD_SINCE = (0, 4)


def _release(version: str) -> tuple[int, ...]:
    """``(major, minor)`` of a recorded package version; ``(0, 0)`` if unreadable (treated as old)."""
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return (0, 0)


def load_trained(path: Path) -> TrainedModel:
    """Load a run directory (its final model) or a model ``.zip`` inside one (best, checkpoint).

    Raises :class:`RunError` naming the path when it is missing or corrupt.
    """
    path = Path(path)
    if path.is_dir():
        run_dir, path = path, path / FINAL_MODEL
    else:
        candidates = [path.parent, path.parent.parent]
        run_dir = next((d for d in candidates if (d / RUN_RECORD).exists()), path.parent)
    if not path.exists():
        hint = (f" (an unfinished run: `aigc-edge train --resume {run_dir}` continues it from its newest checkpoint)"
                if path.name == FINAL_MODEL and any((run_dir / CHECKPOINT_DIR).glob("model_*_steps.zip")) else "")
        raise RunError(f"no model file at {path}{hint}")
    record = read_record(run_dir)
    if record["algo"] == PRICE_NETWORK_ALGO:
        raise RunError(f"{run_dir} is a price_network run, not an SB3 model: play it with evaluate --runs")
    version = record.get("versions", {}).get("aigc-edge-env")
    trained_with = f"aigc-edge-env {version}" if version else "an unrecorded release of aigc-edge-env"
    if record["hyperparams"].get("policy") == "PerUserPolicy" and _release(version or "") < PAIR_HEAD_SINCE:
        raise RunError(f"cannot load model {path}: its PerUserPolicy was trained with {trained_with}, whose head "
                       "has independent offload and level logits (2 + L per user); since 0.4.0 it has 2L per user, "
                       "one per (offload bit, level) pair: retrain the run, or evaluate it with that release")
    try:
        model = ALGORITHMS[record["algo"]].cls.load(path, device="cpu")
    except Exception as exc:  # zipfile, pickle and torch raise many types for a corrupt file
        installed = package_versions()["aigc-edge-env"]
        hint = (f" (trained with {trained_with}, whose networks this version {installed} may not "
                "load: retrain the run, or evaluate it with that version)") if version != installed else ""
        raise RunError(f"cannot load model {path}{hint}: {type(exc).__name__}: {exc}") from None
    return TrainedModel(path, run_dir, record, model, load_normalizer(normalizer_path(path)))


def read_scalars(log_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of scalar ``tag`` in every TensorBoard event file under ``log_dir``, by step."""
    steps: list[int] = []
    values: list[float] = []
    for events in sorted({p.parent for p in Path(log_dir).rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                steps.append(event.step)
                values.append(event.value)
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps)[order], np.asarray(values)[order]
