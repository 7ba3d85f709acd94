"""Offline-RL and imitation datasets: episodes of any policy recorded as Minari datasets (the ``datasets`` extra).

`Minari <https://minari.farama.org>`_ is Farama's format for offline reinforcement learning: a
dataset is a folder ``<root>/<namespace>/<name>-v<N>/data/`` holding ``main_data.hdf5`` (the
episodes) and ``metadata.json`` (spaces, the env spec, who made it and how).  Record, load,
replay::

    from aigc_edge_env.datasets import load_transitions, open_dataset, record_dataset, replay_max_difference
    from aigc_edge_env.policies.registry import make_policy

    dataset = record_dataset("AIGCEdge-Battery-v0", make_policy("mpc"), seeds=range(10),
                             dataset_id="aigc-edge/aigcedge-battery/mpc-v0", root="results/datasets",
                             algorithm_name="mpc")
    replay_max_difference(dataset)                 # 0.0: the env spec replays the recorded rewards
    data = load_transitions(open_dataset("aigc-edge/aigcedge-battery/mpc-v0", "results/datasets"))
    data.observations.shape, data.actions.shape    # (1000, 93), (1000, 20): one row per slot

or from a shell ``aigc-edge record --env AIGCEdge-Battery-v0 --policies mpc --episodes 10 --seed 0
--out results/datasets`` (:mod:`aigc_edge_env.cli.record`; docs/datasets.md).

**What an episode holds** (Minari's layout, one episode per seed, ``T`` slots):
``observations`` ``(T + 1, obs_dim)`` (the reset's observation, then each step's), ``actions``
``(T, 2N)`` (the env's ``MultiDiscrete`` slot action), ``rewards``, ``terminations`` and
``truncations`` ``(T,)``, and ``infos``: every entry of the env's slot ``info`` (the cost and
its components ``time_s``, ``energy_j``, ``mean_error``, ``utility``, their weighted terms,
``drop_cost``, the request counts...; docs/model.md), each an array of ``T + 1`` aligned with
``observations`` as Minari's ``DataCollector`` aligns them: row 0 is the reset, where the env
reports no slot, and holds 0 (nothing played yet), row ``t + 1`` the info of slot ``t``.
Each episode keeps its reset seed (``dataset.storage.get_episode_metadata``) and the reward
statistics of Minari's ``EpisodeMetadataCallback``.

**Recreating the env.**  The dataset's env spec is the recording env's: its registered id and
its config overrides (``kwargs["config"]``), so ``dataset.recover_environment()`` makes the same
scenario (after ``import aigc_edge_env``, which registers the ids), and replaying the recorded
actions from each episode's seed gives the recorded rewards exactly: the env's random draws do
not depend on the actions (:mod:`aigc_edge_env.evaluation.runner`), and
:func:`replay_max_difference` checks it.  ``requirements`` pins this package's version
(Minari warns when another version recreates the env).

**Where datasets go.**  Minari finds datasets under ``$MINARI_DATASETS_PATH`` (default
``~/.minari/datasets``) and its creating functions take no folder; :func:`record_dataset` writes
under the ``root`` it is given (setting ``MINARI_DATASETS_PATH`` only while it writes), never to
``~/.minari`` unasked.  Load with :func:`open_dataset` (a root and an id, or a dataset folder), or
with ``minari.load_dataset(id)`` after ``export MINARI_DATASETS_PATH=<root>``.  A dataset is never
overwritten (Minari's rule): record a new version ``-v<N+1>`` or delete the folder.  It is written whole
in a staging folder under ``root`` and renamed into place, so an interruption (``kill -9`` included)
never leaves a half-written dataset where one would be.

**Behaviour cloning.**  :func:`load_transitions` flattens a dataset into one row per slot:
``observations`` (the observation each action answered), ``actions``, ``rewards``,
``next_observations``, ``terminations``, ``truncations``, ``episode_starts`` and the cost
components of ``infos``, ready for a supervised loss or an offline-RL buffer.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.policies.base import Policy
from aigc_edge_env.progress import progress_bar

if TYPE_CHECKING:
    from minari import MinariDataset
    from minari.data_collector import EpisodeBuffer

__all__ = [
    "AUTHOR", "DATASET_ID_RE", "Transitions", "check_dataset_id", "dataset_path", "default_dataset_id",
    "load_transitions", "open_dataset", "record_dataset", "replay_max_difference",
]

#: The datasets' author field: the package's authors as CITATION.cff names them.
AUTHOR = "aigc-edge-env contributors"
#: A dataset id: ``(namespace/)name-v<N>`` (Minari's rule, the version required).
DATASET_ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")


def check_dataset_id(dataset_id: str) -> None:
    """Raise ``ValueError`` unless ``dataset_id`` is ``(namespace/)name-v<N>`` (:data:`DATASET_ID_RE`)."""
    if not DATASET_ID_RE.fullmatch(dataset_id):
        raise ValueError(f"dataset id {dataset_id!r} is not (namespace/)name-v<N> (letters, digits, '-', '_'), "
                         "e.g. aigc-edge/aigcedge-battery/mpc-v0")


def default_dataset_id(env_id: str, label: str) -> str:
    """``aigc-edge/<env>/<label>-v0``: ``<env>`` the env id in lower case without its version,
    ``<label>`` the policy's label with every run of other characters than letters, digits, ``-``
    and ``_`` made one ``-`` (``exact+price0.3`` is ``exact-price0-3``)."""
    env = re.sub(r"-v\d+$", "", env_id).lower()
    name = re.sub(r"[^-\w]+", "-", label).strip("-") or "policy"
    return f"aigc-edge/{env}/{name}-v0"


def dataset_path(root: str | Path, dataset_id: str) -> Path:
    """The folder of dataset ``dataset_id`` under the datasets root ``root`` (its data in ``data/``)."""
    return Path(root) / dataset_id


@contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """``MINARI_DATASETS_PATH`` set to ``root`` for the block (Minari's creating functions read only it)."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


class _EpisodeRecorder(gym.Wrapper):
    """Keeps what the episode since the last ``reset`` returned, as Minari's episode buffer."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seed: int | None = None
        self.observations: list[np.ndarray] = []
        self.steps: list[tuple[np.ndarray, float, bool, bool, Mapping[str, Any]]] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self.seed, self.observations, self.steps = seed, [observation], []
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.observations.append(observation)
        self.steps.append((np.asarray(action, dtype=self.action_space.dtype), float(reward), bool(terminated),
                           bool(truncated), info))
        return observation, reward, terminated, truncated, info

    def buffer(self) -> EpisodeBuffer:
        """The episode as Minari's buffer; ``infos`` (module docstring) with a row of 0 for the reset."""
        from minari.data_collector import EpisodeBuffer

        actions, rewards, terminations, truncations, infos = zip(*self.steps, strict=True)
        return EpisodeBuffer(
            seed=self.seed, observations=np.stack(self.observations), actions=np.stack(actions),
            rewards=list(rewards), terminations=list(terminations), truncations=list(truncations),
            infos={key: np.array([0.0] + [float(info[key]) for info in infos]) for key in infos[0]})


def record_dataset(
    env_id: str,
    policy: Policy,
    seeds: Sequence[int],
    dataset_id: str,
    root: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    algorithm_name: str,
    description: str | None = None,
    progress: bool = False,
) -> MinariDataset:
    """Play one episode of ``policy`` per seed in ``gym.make(env_id, config=config)`` and write them as
    Minari dataset ``dataset_id`` under ``root`` (module docstring); returns the dataset.

    Episode ``i`` starts from ``reset(seed=seeds[i])`` (:func:`~aigc_edge_env.evaluation.runner.run_episode`).
    ``algorithm_name`` is the policy's name (``make_policy``'s, or a run's label).  Raises
    ``ValueError`` for a malformed id, no seeds, or a dataset that exists, before playing.
    """
    import minari
    from minari import EpisodeMetadataCallback

    from aigc_edge_env import __version__

    check_dataset_id(dataset_id)
    if not seeds:
        raise ValueError("seeds must name at least one episode")
    root = Path(root).absolute()  # Minari's size of a dataset under a relative root looks for the wrong files
    path = dataset_path(root, dataset_id)
    if path.exists():
        raise ValueError(f"dataset {dataset_id} exists at {path}: record a new version (-v<N+1>) or delete that folder")
    overrides = dict(config or {})
    recorder = _EpisodeRecorder(gym.make(env_id, config=overrides))
    try:
        buffers = []
        with progress_bar(len(seeds), f"record {algorithm_name}", "episode", progress) as bar:
            for seed in seeds:
                run_episode(recorder, policy, int(seed))
                buffers.append(recorder.buffer())
                bar.update()
        spec = recorder.env.spec  # the made env's: the wrapper adds itself to its own spec
        text = description or (f"{algorithm_name} on {env_id} (config overrides {overrides}), one episode per seed "
                               f"{list(seeds)[0]}...{list(seeds)[-1]}; infos: the env's slot info per step, row 0 "
                               "(the reset) 0; recorded by aigc_edge_env.datasets.record_dataset")
        root.mkdir(parents=True, exist_ok=True)
        # Written whole in a temporary root beside the datasets, then renamed into place: an interruption,
        # even kill -9, never leaves a half-written dataset where a valid one would be (nor blocks the next try).
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".recording-"))
        try:
            with _datasets_root(staging), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="`author_email` is set to None")  # the package publishes none
                dataset = minari.create_dataset_from_buffers(
                    dataset_id, buffers, env=spec, eval_env=spec, algorithm_name=algorithm_name, author=AUTHOR,
                    code_permalink=f"aigc-edge-env {__version__}: aigc_edge_env.datasets.record_dataset",
                    description=text, requirements=[f"aigc-edge-env=={__version__}"], data_format="hdf5")
            storage = dataset.storage
            storage.update_episode_metadata(storage.apply(EpisodeMetadataCallback()))
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dataset_path(staging, dataset_id), path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        recorder.close()
    return open_dataset(path)


def recording_of(dataset: MinariDataset) -> dict[str, Any]:
    """What ``dataset`` records: its env id and config overrides, its policy (``algorithm_name``), its
    episodes' seeds and the package version that recorded it (to compare with a request)."""
    spec = dataset.spec.env_spec
    metadata = dataset.storage.metadata
    episodes = dataset.storage.get_episode_metadata(range(dataset.spec.total_episodes))
    return {"env_id": spec.id if spec is not None else None,
            "config": dict(spec.kwargs.get("config") or {}) if spec is not None else None,
            "algorithm_name": metadata.get("algorithm_name"), "seeds": [int(m["seed"]) for m in episodes],
            "requirements": list(metadata.get("requirements") or [])}


def open_dataset(source: str | Path, root: str | Path | None = None) -> MinariDataset:
    """The Minari dataset ``source``: an id under the datasets root ``root``, or (no ``root``) a
    dataset's folder or its ``data/`` folder.  Raises ``FileNotFoundError`` naming the path when
    there is no dataset there."""
    from minari import MinariDataset

    path = dataset_path(root, str(source)) if root is not None else Path(source)
    data = path if (path / "metadata.json").is_file() else path / "data"
    if not (data / "metadata.json").is_file():
        raise FileNotFoundError(f"no Minari dataset at {path} (no metadata.json there or in its data/ folder)")
    return MinariDataset(data)


def replay_max_difference(dataset: MinariDataset) -> float:
    """The largest ``|reward - replayed reward|`` over every slot of ``dataset`` when its recorded actions
    are played in ``dataset.recover_environment()`` from each episode's seed (0.0: the dataset replays)."""
    import aigc_edge_env  # noqa: F401  (registers the env ids the spec names)

    env = dataset.recover_environment()
    metadata = dataset.storage.get_episode_metadata(dataset.episode_indices)
    worst = 0.0
    for episode, meta in zip(dataset.iterate_episodes(), metadata, strict=True):
        env.reset(seed=int(meta["seed"]))
        replayed = [float(env.step(action)[1]) for action in episode.actions]
        worst = max(worst, float(np.max(np.abs(np.asarray(replayed) - episode.rewards))))
    env.close()
    return worst


@dataclass
class Transitions:
    """A dataset flattened to one row per slot, episodes one after another (:func:`load_transitions`).

    ``observations[i]`` is what ``actions[i]`` answered, ``next_observations[i]`` what followed it;
    ``episode_starts[i]`` marks an episode's first slot; ``infos[key][i]`` is slot ``i``'s info entry;
    ``seeds`` has one reset seed per episode."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_starts: np.ndarray
    infos: dict[str, np.ndarray]
    seeds: np.ndarray


def load_transitions(dataset: MinariDataset | str | Path, root: str | Path | None = None) -> Transitions:
    """``dataset`` (a loaded dataset, or what :func:`open_dataset` opens with ``root``) as :class:`Transitions`."""
    from minari import MinariDataset

    if not isinstance(dataset, MinariDataset):
        dataset = open_dataset(dataset, root)
    episodes = list(dataset.iterate_episodes())
    seeds = [meta.get("seed", -1) for meta in dataset.storage.get_episode_metadata(dataset.episode_indices)]
    starts = [np.arange(len(e)) == 0 for e in episodes]
    return Transitions(
        observations=np.concatenate([e.observations[:-1] for e in episodes]),
        actions=np.concatenate([e.actions for e in episodes]),
        rewards=np.concatenate([e.rewards for e in episodes]),
        next_observations=np.concatenate([e.observations[1:] for e in episodes]),
        terminations=np.concatenate([e.terminations for e in episodes]),
        truncations=np.concatenate([e.truncations for e in episodes]),
        episode_starts=np.concatenate(starts),
        infos={key: np.concatenate([e.infos[key][1:] for e in episodes]) for key in episodes[0].infos},
        seeds=np.asarray(seeds, dtype=np.int64),
    )
