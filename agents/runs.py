"""Run directories: what a training run leaves on disk, and loading it back.

Layout of a run directory (``train.py --out DIR``)::

    run.yml                      algo, env id, env config (overrides and resolved), hyperparameters,
                                 seed, command lines, package versions, wall time and peak memory
    model.zip                    final model
    model.vecnormalize.pkl       its VecNormalize statistics (when the run normalises)
    best_model.zip (+ .vecnormalize.pkl)   best periodic evaluation so far
    checkpoints/model_<steps>_steps.zip (+ .vecnormalize.pkl)
    tb/<algo>_1/events.out.tfevents.*      TensorBoard logs

Every model file ``<stem>.zip`` keeps its normaliser in ``<stem>.vecnormalize.pkl`` beside it.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aigc_edge_env.agents.algorithms import ALGORITHMS

__all__ = [
    "BEST_MODEL", "CHECKPOINT_DIR", "FINAL_MODEL", "RUN_RECORD", "TENSORBOARD_DIR", "RunError", "TrainedModel",
    "load_normalizer", "load_trained", "normalizer_path", "package_versions", "read_record", "read_scalars",
    "save_model", "write_record",
]

RUN_RECORD = "run.yml"
FINAL_MODEL = "model.zip"
BEST_MODEL = "best_model.zip"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tb"
_PACKAGES = ("aigc-edge-env", "numpy", "scipy", "torch", "gymnasium", "stable_baselines3", "sb3_contrib")


class RunError(RuntimeError):
    """A run directory or model file that is missing or cannot be read (the message names the path)."""


def normalizer_path(model_path: Path) -> Path:
    """Where the VecNormalize statistics of ``<stem>.zip`` live: ``<stem>.vecnormalize.pkl``."""
    return model_path.with_name(f"{model_path.stem}.vecnormalize.pkl")


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """Save ``model`` to ``path`` (a ``.zip``) and its VecNormalize statistics beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        normalizer.save(normalizer_path(path))


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


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_RECORD).write_text(yaml.safe_dump(record, sort_keys=False))


def read_record(run_dir: Path) -> dict[str, Any]:
    """The ``run.yml`` of ``run_dir``; :class:`RunError` if it is missing or unreadable."""
    path = run_dir / RUN_RECORD
    try:
        record = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run directory: {path} is missing") from None
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"cannot read run record {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("algo") not in ALGORITHMS:
        raise RunError(f"run record {path} does not name a known algo ({sorted(ALGORITHMS)})")
    return record


@dataclass
class TrainedModel:
    """A trained model, its frozen normaliser and the record of the run that made it."""

    path: Path
    run_dir: Path
    record: dict[str, Any]
    model: BaseAlgorithm
    normalizer: VecNormalize | None


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
        raise RunError(f"no model file at {path}")
    record = read_record(run_dir)
    try:
        model = ALGORITHMS[record["algo"]].cls.load(path, device="cpu")
    except Exception as exc:  # zipfile, pickle and torch raise many types for a corrupt file
        raise RunError(f"cannot load model {path}: {type(exc).__name__}: {exc}") from None
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
