"""A permutation-equivariant actor-critic for the joint slot action (``policy: PerUserPolicy``).

An MLP over the flat observation must learn the same per-user rule ``N`` times; this policy
shares it across users.  The network is :mod:`.per_user_net`'s (plain torch, usable from any
library; its docstring describes the layers): :class:`~.per_user_net.PerUserEncoder` is the
features extractor and :class:`~.per_user_net.PerUserHead` the actor, its logits laid out
where ``MultiDiscrete`` expects them (:func:`~.per_user_net.joint_logits`).

The critic differs from :class:`~.per_user_net.PerUserActorCritic`'s: SB3's MLP of widths
``vf_arch`` reads ``[h_1 .. h_N, mean_n h_n]`` (it sees which user is which, so the value is
not permutation invariant), as in the runs the README and ``docs/agents_benchmark.md`` report.

:class:`PerUserPolicy` (PPO) and :class:`MaskablePerUserPolicy` (MaskablePPO) are the same
network on the two policy classes.  They draw the joint action from :class:`PerUserCategorical`
and :class:`MaskablePerUserCategorical`: the distributions of SB3's ``MultiCategoricalDistribution``
and sb3-contrib's masked one as two batched categoricals instead of ``2N`` separate ones (a
third of PPO's time at ``N = 10`` went into building and scoring those).
:class:`PerUserBoxPolicy` (PPO) is the same encoder and critic with one Gaussian action per user
(the priced wrapper's per-user price corrections).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
import torch.nn as nn
from sb3_contrib.common.maskable.distributions import MaskableCategorical, MaskableMultiCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch.distributions import Categorical

from aigc_edge_env.agents.per_user_net import PerUserEncoder, PerUserHead, joint_logits
from aigc_edge_env.spaces import observation_n_users

__all__ = ["MaskablePerUserCategorical", "MaskablePerUserPolicy", "PerUserBoxPolicy", "PerUserCategorical",
           "PerUserPolicy", "POLICY_CLASSES"]


class PerUserExtractor(BaseFeaturesExtractor):
    """Per-user embeddings ``h_n`` (flattened) and their mean: ``N * hidden_dim + hidden_dim`` features."""

    def __init__(self, observation_space: gym.spaces.Box, hidden_dim: int = 64, n_layers: int = 2) -> None:
        n_users = observation_n_users(observation_space.shape[0])
        super().__init__(observation_space, features_dim=(n_users + 1) * hidden_dim)
        self.layers = PerUserEncoder(n_users, hidden_dim, n_layers)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        h = self.layers(observations)  # (B, N, H)
        return torch.cat([h.flatten(1), h.mean(dim=1)], dim=-1)


class _JointHead(PerUserHead):
    """:class:`PerUserHead` on the extractor's flat latent, logits in ``MultiDiscrete`` order."""

    def __init__(self, n_users: int, hidden_dim: int, n_levels: int) -> None:
        super().__init__(hidden_dim, n_levels)
        self.n_users, self.hidden_dim = n_users, hidden_dim

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = latent[:, : self.n_users * self.hidden_dim].reshape(-1, self.n_users, self.hidden_dim)
        return joint_logits(super().forward(h))


class _PerUserMixin:
    """Builds the SB3 actor-critic with :class:`PerUserExtractor`, an identity actor MLP, the per-user head
    and the batched action distribution ``distribution_class``."""

    distribution_class: type

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.MultiDiscrete, lr_schedule,
                 hidden_dim: int = 64, n_layers: int = 2, vf_arch: tuple[int, ...] = (64, 64), **kwargs: Any) -> None:
        if not isinstance(action_space, gym.spaces.MultiDiscrete):
            raise ValueError(f"PerUserPolicy needs the env's MultiDiscrete joint action (no env wrapper), "
                             f"got {action_space}")
        n_users = observation_n_users(observation_space.shape[0])
        if action_space.shape != (2 * n_users,):
            raise ValueError(f"PerUserPolicy needs {2 * n_users} action entries for {n_users} users, "
                             f"got {action_space}")
        if "net_arch" in kwargs:
            raise ValueError("PerUserPolicy takes hidden_dim, n_layers and vf_arch instead of net_arch")
        self._head_shape = (n_users, hidden_dim, int(action_space.nvec[n_users]))
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch={"pi": [], "vf": list(vf_arch)},
            features_extractor_class=PerUserExtractor,
            features_extractor_kwargs={"hidden_dim": hidden_dim, "n_layers": n_layers}, **kwargs,
        )

    def _build(self, lr_schedule) -> None:
        n_users, _, n_levels = self._head_shape
        self.action_dist = self.distribution_class(n_users, n_levels)
        super()._build(lr_schedule)
        self.action_net = _JointHead(*self._head_shape)
        if self.ortho_init:
            self.action_net.apply(lambda module: self.init_weights(module, gain=0.01))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class _TwoCategoricals:
    """``MultiDiscrete([2] * N + [L] * N)`` from logits in that order, as two batched categoricals.

    ``offload`` has batch shape ``(B, N)`` over 2 outcomes, ``level`` ``(B, N)`` over ``L``; the
    joint log-probability and entropy sum over the ``2N`` entries, as SB3's distributions do.
    """

    categorical: type[Categorical] = Categorical

    def __init__(self, n_users: int, n_levels: int) -> None:
        super().__init__([2] * n_users + [n_levels] * n_users)  # type: ignore[call-arg]
        self.n_users, self.n_levels = n_users, n_levels

    def proba_distribution(self, action_logits: torch.Tensor) -> Any:
        n = self.n_users
        logits = action_logits.reshape(-1, 2 * n + n * self.n_levels)
        self.offload = self.categorical(logits=logits[:, : 2 * n].reshape(-1, n, 2))
        self.level = self.categorical(logits=logits[:, 2 * n:].reshape(-1, n, self.n_levels))
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        actions = actions.long().reshape(-1, 2 * self.n_users)
        n = self.n_users
        return self.offload.log_prob(actions[:, :n]).sum(1) + self.level.log_prob(actions[:, n:]).sum(1)

    def entropy(self) -> torch.Tensor:
        return self.offload.entropy().sum(1) + self.level.entropy().sum(1)

    def sample(self) -> torch.Tensor:
        return torch.cat([self.offload.sample(), self.level.sample()], dim=1)

    def mode(self) -> torch.Tensor:
        return torch.cat([self.offload.logits.argmax(-1), self.level.logits.argmax(-1)], dim=1)


class PerUserCategorical(_TwoCategoricals, MultiCategoricalDistribution):
    """PPO's joint action distribution (:class:`_TwoCategoricals`)."""


class MaskablePerUserCategorical(_TwoCategoricals, MaskableMultiCategoricalDistribution):
    """MaskablePPO's joint action distribution (:class:`_TwoCategoricals`) under ``action_masks()``."""

    categorical = MaskableCategorical

    def proba_distribution(self, action_logits: torch.Tensor) -> Any:
        super().proba_distribution(action_logits)
        self.distributions = [self.offload, self.level]
        return self

    def apply_masking(self, masks: Any) -> None:
        if masks is None:
            self.offload.apply_masking(None)
            self.level.apply_masking(None)
            return
        masks = torch.as_tensor(masks).reshape(-1, 2 * self.n_users + self.n_users * self.n_levels)
        self.offload.apply_masking(masks[:, : 2 * self.n_users])
        self.level.apply_masking(masks[:, 2 * self.n_users:])


class _PerUserMean(nn.Module):
    """One Gaussian mean per user: a linear map of the user's embedding ``h_n``, the same for every user."""

    def __init__(self, n_users: int, hidden_dim: int) -> None:
        super().__init__()
        self.n_users, self.hidden_dim = n_users, hidden_dim
        self.linear = nn.Linear(hidden_dim, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = latent[:, : self.n_users * self.hidden_dim].reshape(-1, self.n_users, self.hidden_dim)
        return self.linear(h).squeeze(-1)


class PerUserBoxPolicy(ActorCriticPolicy):
    """PPO's equivariant actor-critic for one continuous action per user (``Box((N,))``, e.g. the
    priced wrapper's price corrections, :mod:`aigc_edge_env.priced`): the encoder and critic of
    :class:`PerUserPolicy`, and a Gaussian whose mean for user ``n`` is a linear map of ``h_n``
    shared by all users (SB3's diagonal Gaussian, one log standard deviation per user)."""

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, lr_schedule,
                 hidden_dim: int = 64, n_layers: int = 2, vf_arch: tuple[int, ...] = (64, 64), **kwargs: Any) -> None:
        n_users = observation_n_users(observation_space.shape[0])
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (n_users,):
            raise ValueError(f"PerUserBoxPolicy needs a Box action of shape ({n_users},) (env_wrapper priced), "
                             f"got {action_space}")
        if "net_arch" in kwargs:
            raise ValueError("PerUserBoxPolicy takes hidden_dim, n_layers and vf_arch instead of net_arch")
        self._head_shape = (n_users, hidden_dim)
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch={"pi": [], "vf": list(vf_arch)},
            features_extractor_class=PerUserExtractor,
            features_extractor_kwargs={"hidden_dim": hidden_dim, "n_layers": n_layers}, **kwargs,
        )

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = _PerUserMean(*self._head_shape)
        if self.ortho_init:
            self.action_net.apply(lambda module: self.init_weights(module, gain=0.01))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class PerUserPolicy(_PerUserMixin, ActorCriticPolicy):
    """PPO's equivariant actor-critic (module docstring)."""

    distribution_class: type = PerUserCategorical


class MaskablePerUserPolicy(_PerUserMixin, MaskableActorCriticPolicy):
    """MaskablePPO's equivariant actor-critic (module docstring)."""

    distribution_class: type = MaskablePerUserCategorical


#: ``policy`` names of the hyperparameter files -> algorithm name -> class.
POLICY_CLASSES: dict[str, dict[str, type]] = {
    "PerUserPolicy": {"ppo": PerUserPolicy, "maskable_ppo": MaskablePerUserPolicy},
    "PerUserBoxPolicy": {"ppo": PerUserBoxPolicy},
}
