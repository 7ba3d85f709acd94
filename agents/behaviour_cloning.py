"""Behaviour cloning: start a joint-action policy from a teacher's recorded decisions.

The ``behaviour_cloning`` hyperparameter of a PPO or MaskablePPO run (``{dataset: PATH, epochs: K,
batch_size: B, learning_rate: LR}``) fits the new policy, before any reinforcement learning, to
the actions of a recorded dataset (:func:`aigc_edge_env.datasets.load_transitions`: e.g. ``mpc``'s
or the amortised planner's episodes, recorded by ``aigc-edge record``) by maximising their
log-likelihood (Pomerleau 1991; the usual start of RL from demonstrations).  The run's
observation normaliser takes the dataset's observation mean and variance first, so the cloned
policy sees what it will see in training.  Only the policy's action distribution is fitted;
the value head learns in the PPO updates that follow (none with ``--timesteps`` small).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from aigc_edge_env.agents.hyperparameters import checked_number

__all__ = ["BC_DEFAULTS", "behaviour_cloning_options", "clone"]

#: Defaults of the ``behaviour_cloning`` hyperparameter besides its ``dataset``.
BC_DEFAULTS = {"epochs": 20, "batch_size": 512, "learning_rate": 1e-3}


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
    for key in ("epochs", "batch_size"):
        merged[key] = checked_number(f"behaviour_cloning.{key}", merged[key], True, 1, math.inf)
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
        observations = np.asarray(normalizer.normalize_obs(observations))
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
