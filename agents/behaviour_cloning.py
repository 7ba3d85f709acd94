"""Behaviour cloning: start a joint-action policy from a teacher's recorded decisions.

The ``behaviour_cloning`` hyperparameter of a PPO or MaskablePPO run (``{dataset: PATH, epochs: K,
batch_size: B, learning_rate: LR}``) fits the new policy, before any reinforcement learning, to
the actions of a recorded dataset (:func:`aigc_edge_env.datasets.load_transitions`: e.g. ``mpc``'s
or the amortised planner's episodes, recorded by ``aigc-edge record``) by maximising their
log-likelihood (Pomerleau 1991; the usual start of RL from demonstrations).  The run's
observation normaliser takes the dataset's observation mean and variance first, so the cloned
policy sees what it will see in training.  Only the policy's action distribution is fitted;
the value head learns in the PPO updates that follow (none with ``--timesteps`` small).

DAgger (Ross, Gordon and Bagnell, AISTATS 2011), with ``dagger_rounds: K`` and ``teacher: NAME``
(a policy name of ``aigc-edge evaluate --policies``, e.g. ``pretrained``: the amortised planner of
the battery scenario): after the first fit, each of ``K`` rounds plays the cloned policy (greedy) for
``dagger_episodes`` episodes, records the teacher's action in every state the clone visits (the
teacher decides in the clone's env state but does not act), adds these pairs to the data and
fits again for ``dagger_epochs`` epochs (default ``epochs``).  The clone's own mistakes lead to
states the teacher's episodes never show (an emptier battery, say); DAgger labels exactly those.
Round ``r`` plays seeds ``10**6 * (seed + 1) + 1000 r + i`` (apart from the evaluation seeds
10000 on and from the dataset's, which the recording chose).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from aigc_edge_env.agents.hyperparameters import checked_number
from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.policies.base import Policy

__all__ = ["BC_DEFAULTS", "DAGGER_SEED_STRIDE", "behaviour_cloning_options", "clone", "dagger_labels", "dagger_seeds",
           "fit_policy", "normalised_observations"]

#: Seeds of DAgger round ``r`` start at ``10**6 * (seed + 1) + DAGGER_SEED_STRIDE * r`` (module docstring).
DAGGER_SEED_STRIDE = 1000

#: Defaults of the ``behaviour_cloning`` hyperparameter besides its ``dataset`` (and ``teacher``, needed
#: with ``dagger_rounds`` > 0; ``dagger_epochs`` defaults to ``epochs``).
BC_DEFAULTS = {"epochs": 20, "batch_size": 512, "learning_rate": 1e-3, "dagger_rounds": 0, "dagger_episodes": 100,
               "dagger_epochs": None, "teacher": None}


def behaviour_cloning_options(options: Any) -> dict[str, Any]:
    """The checked ``behaviour_cloning`` hyperparameter, defaults filled in; ``ValueError`` names the bad key."""
    if not isinstance(options, Mapping) or "dataset" not in options:
        raise ValueError(f"behaviour_cloning must be a mapping with a 'dataset' (and optionally "
                         f"{sorted(BC_DEFAULTS)}), got {options!r}")
    unknown = set(options) - {"dataset", *BC_DEFAULTS}
    if unknown:
        raise ValueError(f"behaviour_cloning: unknown key(s) {sorted(unknown)}; "
                         f"accepted dataset, {sorted(BC_DEFAULTS)}")
    merged = {**BC_DEFAULTS, **options}
    merged["dagger_epochs"] = merged["epochs"] if merged["dagger_epochs"] is None else merged["dagger_epochs"]
    for key in ("epochs", "batch_size", "dagger_epochs"):
        merged[key] = checked_number(f"behaviour_cloning.{key}", merged[key], True, 1, math.inf)
    merged["dagger_episodes"] = checked_number("behaviour_cloning.dagger_episodes", merged["dagger_episodes"], True, 1,
                                               DAGGER_SEED_STRIDE)
    merged["dagger_rounds"] = checked_number("behaviour_cloning.dagger_rounds", merged["dagger_rounds"], True, 0,
                                             math.inf)
    if merged["dagger_rounds"] and not isinstance(merged["teacher"], str):
        raise ValueError(f"behaviour_cloning.teacher must name a policy (e.g. pretrained, mpc) when dagger_rounds > 0, "
                         f"got {merged['teacher']!r}")
    if merged["teacher"] is not None:
        from aigc_edge_env.policies.registry import make_policy

        make_policy(merged["teacher"])  # an unknown name fails here, naming the accepted forms
    merged["learning_rate"] = checked_number("behaviour_cloning.learning_rate", merged["learning_rate"], False, 0, 1,
                                             low_included=False)
    return merged


def clone(model: BaseAlgorithm, normalizer: VecNormalize | None, observations: np.ndarray, actions: np.ndarray,
          epochs: int, batch_size: int, learning_rate: float, seed: int) -> list[float]:
    """Fit ``model``'s policy to ``actions`` given ``observations`` (raw env observations); returns the
    mean negative log-likelihood of each epoch.  ``normalizer`` (the run's, if any) takes the
    observations' mean and variance first."""
    if normalizer is not None and normalizer.norm_obs:
        statistics = normalizer.obs_rms
        assert isinstance(statistics, RunningMeanStd)  # the env's observations are one Box
        statistics.mean = observations.mean(axis=0).astype(np.float64)
        statistics.var = observations.var(axis=0).astype(np.float64)
        statistics.count = float(len(observations))
    return fit_policy(model, normalised_observations(normalizer, observations), actions, epochs, batch_size,
                      learning_rate, seed)


def normalised_observations(normalizer: VecNormalize | None, observations: np.ndarray) -> np.ndarray:
    """``observations`` as the policy sees them: through ``normalizer`` where it normalises them."""
    if normalizer is None or not normalizer.norm_obs:
        return observations
    return np.asarray(normalizer.normalize_obs(observations))


def fit_policy(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray, epochs: int, batch_size: int,
               learning_rate: float, seed: int) -> list[float]:
    """Maximise the log-likelihood of ``actions`` under ``model``'s policy given ``observations`` (as the
    policy sees them: normalised); returns each epoch's mean negative log-likelihood."""
    policy = model.policy
    assert isinstance(policy, (ActorCriticPolicy, MaskableActorCriticPolicy))  # PPO, MaskablePPO
    x = torch.as_tensor(observations, dtype=torch.float32, device=policy.device)
    y = torch.as_tensor(actions, dtype=torch.int64, device=policy.device)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    losses = []
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), batch_size):
            index = order[start:start + batch_size]
            _, log_prob, _ = policy.evaluate_actions(x[index], y[index])
            loss = -log_prob.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(index)
        losses.append(total / len(y))
    policy.set_training_mode(False)
    return losses


def dagger_seeds(seed: int, round_index: int, episodes: int) -> list[int]:
    """The episode seeds of DAgger round ``round_index`` of a run with ``seed`` (module docstring)."""
    first = 10**6 * (seed + 1) + DAGGER_SEED_STRIDE * round_index
    return list(range(first, first + episodes))


def dagger_labels(model: BaseAlgorithm, normalizer: VecNormalize | None, masked: bool, env: gym.Env,
                  teacher: Policy, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The states the greedy ``model`` visits in one episode per seed of ``env``, and ``teacher``'s
    action in each (the model acts; the teacher only labels): ``(observations, actions)``."""
    observations, actions = [], []
    for seed in seeds:
        teacher.reset(seed)
        observation, _ = env.reset(seed=seed)
        done = False
        while not done:
            observations.append(observation)
            actions.append(teacher.act(env, observation))
            kwargs: dict[str, Any] = {"action_masks": unwrapped_env(env).action_masks()} if masked else {}
            action, _ = model.predict(normalised_observations(normalizer, observation), deterministic=True, **kwargs)
            observation, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return np.asarray(observations), np.asarray(actions, dtype=np.int64)
