"""Training callbacks: episode cost components in TensorBoard, periodic evaluation, checkpoints, stopping."""

from __future__ import annotations

import pickle
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from aigc_edge_env.agents.policies import ModelPolicy
from aigc_edge_env.agents.runs import (
    TENSORBOARD_DIR,
    RunError,
    checkpoint_steps,
    read_scalars,
    replay_buffer_path,
    restore_training_state,
    save_model,
    save_snapshot,
    training_state,
)
from aigc_edge_env.evaluation.runner import EPISODE_METRICS, EpisodeAccumulator, evaluate_all, evaluate_policy
from aigc_edge_env.evaluation.statistics import SCORE_REFERENCES
from aigc_edge_env.files import write_atomic
from aigc_edge_env.policies.registry import make_policy

__all__ = ["CheckpointSaver", "EpisodeCostLogger", "PeriodicEvaluation", "StopRequest", "best_record_path",
           "best_reward", "reference_rewards"]


class EpisodeCostLogger(BaseCallback):
    """Logs every finished training episode's metrics as ``episode/<metric>`` (mean per log interval).

    Components come from the env's per-slot ``info`` (steps whose info has no ``cost``, the
    per-user wrapper's intermediate steps, are skipped); the reward is the Monitor's
    un-normalised episode return.
    """

    def _on_training_start(self) -> None:
        self._episodes = [EpisodeAccumulator() for _ in range(self.training_env.num_envs)]

    def _on_step(self) -> bool:
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            if "cost" in info:
                self._episodes[i].add(info)
            if done:
                metrics = self._episodes[i].result(reward=info["episode"]["r"])
                for name, value in metrics.items():
                    self.logger.record_mean(f"episode/{name}", value)
                self._episodes[i] = EpisodeAccumulator()
        return True


class _Periodic(BaseCallback):
    """A callback that acts each time the timestep count passes a multiple of ``every``."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self._next = every

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every  # resumed runs start late

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self._on_due()
        return True

    def _on_due(self) -> None:
        raise NotImplementedError


def best_record_path(best_path: Path) -> Path:
    """Where the mean reward of the best model ``<stem>.zip`` is kept: ``<stem>.yml``."""
    return best_path.with_suffix(".yml")


def best_reward(best_path: Path) -> float:
    """The mean reward of the best model ``best_path`` (``-inf`` when there is none yet).

    Read from its record (:func:`best_record_path`); when that is missing or unreadable, recovered from
    the run's evaluation log (the highest ``eval/reward`` in ``tb/``, to float32 precision), written back
    to the record and said on stderr.  Raises :class:`RunError` naming the record when neither holds it:
    a best model whose score is unknown is never silently replaced.
    """
    if not best_path.exists():
        return -np.inf
    record = best_record_path(best_path)
    try:
        reward = float(yaml.safe_load(record.read_text())["mean_reward"])
        if not np.isnan(reward):
            return reward
        problem = "holds no mean_reward"
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        problem = f"is unreadable ({type(exc).__name__})"
    steps, rewards = read_scalars(best_path.parent / TENSORBOARD_DIR, "eval/reward")
    if len(rewards) == 0:
        raise RunError(f"{record} {problem} and the evaluation log {best_path.parent / TENSORBOARD_DIR} holds no "
                       f"eval/reward: the score of {best_path} is unknown; remove {best_path} to let the next "
                       "evaluation replace it")
    best = int(np.argmax(rewards))
    reward = float(rewards[best])
    write_atomic(record, yaml.safe_dump({"mean_reward": reward, "timesteps": int(steps[best]),
                                         "recovered_from": "eval/reward of the evaluation log"}))
    print(f"{record} {problem}: best mean reward {reward:.6g} (step {int(steps[best])}) recovered from the "
          "evaluation log", file=sys.stderr)
    return reward


def reference_rewards(make_env: Callable[[], gym.Env], seeds: Sequence[int]) -> dict[str, float]:
    """Mean episode rewards of the normalised score's references (``exact``, ``random``) on ``seeds``,
    e.g. a run's periodic evaluation seeds, to turn its ``eval/reward`` into scores."""
    policies = {name: make_policy(name) for name in SCORE_REFERENCES}
    results = evaluate_all(policies, make_env, list(seeds), progress=False)
    return {result.name: float(result.episodes["reward"].mean()) for result in results}


class PeriodicEvaluation(_Periodic):
    """Every ``every`` timesteps, plays the deterministic policy on ``seeds`` (one episode each).

    Logs ``eval/<metric>`` means (reward and cost components) at the current timestep, and
    ``eval/train_time_s``, the session's wall time so far less the time spent evaluating, and saves
    the model as ``best_path`` (with its normaliser) when its mean reward is the best so far,
    writing that reward beside it (:func:`best_record_path`); a resumed run starts from the
    reward found there (:func:`best_reward`), so it never replaces the best model by a worse one.
    ``on_result(timesteps, mean reward)`` is called after each evaluation (the hyperparameter search reports there).
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env],
        seeds: Sequence[int],
        every: int,
        best_path: Path,
        masked: bool,
        env_wrapper: str = "none",
        wrapper_kwargs: Mapping[str, Any] | None = None,
        on_result: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__(every)
        self.on_result = on_result
        self.make_env = make_env
        self.seeds = list(seeds)
        self.best_path = best_path
        self.masked = masked
        self.env_wrapper = env_wrapper
        self.wrapper_kwargs = wrapper_kwargs
        self.best_reward = best_reward(best_path)
        self._start = time.perf_counter()
        self._evaluating_s = 0.0

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self._start = time.perf_counter()

    def _on_due(self) -> None:
        started = time.perf_counter()
        self.logger.record("eval/train_time_s", started - self._start - self._evaluating_s)
        self.evaluate()
        self._evaluating_s += time.perf_counter() - started

    def evaluate(self) -> float:
        """Run the evaluation now; its mean episode reward."""
        policy = ModelPolicy(self.model, self.model.get_vec_normalize_env(), self.masked, self.env_wrapper,
                             self.wrapper_kwargs)
        result = evaluate_policy("current", self.make_env, policy, self.seeds)
        for name in EPISODE_METRICS:
            self.logger.record(f"eval/{name}", float(result.episodes[name].mean()))
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)
        mean_reward = float(result.episodes["reward"].mean())
        if mean_reward > self.best_reward:
            self.best_reward = mean_reward
            save_model(self.model, self.best_path)
            write_atomic(best_record_path(self.best_path), yaml.safe_dump(
                {"mean_reward": mean_reward, "timesteps": int(self.num_timesteps)}))
        if self.on_result is not None:
            self.on_result(int(self.num_timesteps), mean_reward)
        return mean_reward


class CheckpointSaver(_Periodic):
    """Every ``every`` timesteps, saves a snapshot (:func:`~aigc_edge_env.agents.runs.save_snapshot`: model,
    normaliser, training state, the replay buffer of an off-policy model) as
    ``<directory>/model_<timesteps>_steps.zip``, from which ``--resume`` continues a run killed later.

    The training state is ``stop``'s (:meth:`StopRequest.resume_state`): a resumed on-policy run repeats
    the rollout in progress, as after a signal.  Only the newest checkpoint keeps its replay buffer.
    """

    def __init__(self, directory: Path, every: int, stop: StopRequest) -> None:
        super().__init__(every)
        self.directory = directory
        self.stop = stop

    def _on_due(self) -> None:
        path = self.directory / f"model_{self.num_timesteps}_steps.zip"
        save_snapshot(self.model, path, self.stop.resume_state())
        for older in self.directory.glob("model_*_steps.replay_buffer.pkl"):
            steps = checkpoint_steps(older.with_name(older.name.replace(".replay_buffer.pkl", ".zip")))
            if steps is not None and steps < self.num_timesteps and older != replay_buffer_path(path):
                older.unlink(missing_ok=True)


class StopRequest(BaseCallback):
    """Stops training at the next env step once :meth:`request` was called (from a signal handler).

    An on-policy run is rolled back to the start of the rollout in progress (env, generators,
    counters: a snapshot taken at each rollout start; the parameters do not change during a
    rollout), so that a resumed run repeats that rollout exactly as an uninterrupted run would.
    An off-policy run stops where it is; its last observation is kept, and the one transition
    of the stopping step is not stored in the replay buffer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None
        self._snapshot: dict[str, Any] | None = None

    def request(self, reason: str) -> None:
        self.reason = reason

    def _on_rollout_start(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm):
            self._snapshot = training_state(self.model)

    def _step_end(self) -> dict[str, Any]:
        """An off-policy model's counters as if training stopped after the current step (its transition dropped)."""
        normalizer = self.model.get_vec_normalize_env()
        values = {"_last_obs": self.locals["new_obs"], "_last_episode_starts": self.locals["dones"]}
        if normalizer is not None:
            values["_last_original_obs"] = normalizer.get_original_obs()
        return values

    def resume_state(self) -> dict[str, Any]:
        """The training state a run stopped now would save: an on-policy run's at the start of the rollout in
        progress, an off-policy run's after the current step (call it from a callback's step)."""
        if self._snapshot is not None:
            return self._snapshot
        state = training_state(self.model)
        state["model"].update(pickle.loads(pickle.dumps(self._step_end())))  # a copy: training goes on
        return state

    def _on_step(self) -> bool:
        if self.reason is None:
            return True
        if self._snapshot is not None:
            restore_training_state(self.model, self._snapshot)
        else:
            for name, value in self._step_end().items():
                setattr(self.model, name, value)
        return False
