"""A permutation-equivariant actor-critic for the joint slot action (``policy: PerUserPolicy``).

The env's observation is ``F = 9`` per-user feature blocks of ``N`` entries, then ``G = 3``
global features (:mod:`aigc_edge_env.spaces`); the action is ``N`` offload bits then ``N``
level indices.  An MLP over the flat vector must learn the same per-user rule ``N`` times;
this network shares it across users (deep sets, Zaheer et al. 2017):

* user ``n``'s input is its ``F`` features plus the ``G`` global ones;
* ``n_layers`` equivariant layers ``h_n <- tanh(A h_n + B mean_m h_m + c)`` of width
  ``hidden_dim`` let every user see the others (the mean carries the edge congestion);
* the actor's head maps each ``h_n`` with one shared linear layer to user ``n``'s
  ``2 + L`` logits (offload bit, level), placed where ``MultiDiscrete`` expects them;
* the critic reads ``[h_1 .. h_N, mean_n h_n]`` through an MLP of widths ``vf_arch``.

:class:`PerUserPolicy` (PPO) and :class:`MaskablePerUserPolicy` (MaskablePPO) are the same
network on the two policy classes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from aigc_edge_env.spaces import GLOBAL_FEATURES, USER_FEATURES

__all__ = ["MaskablePerUserPolicy", "PerUserPolicy", "POLICY_CLASSES"]

_F, _G = len(USER_FEATURES), len(GLOBAL_FEATURES)


def _n_users(observation_space: gym.spaces.Box) -> int:
    size = observation_space.shape[0]
    if (size - _G) % _F:
        raise ValueError(f"observation size {size} is not {_F} N + {_G}: not the AIGC env's observation")
    return (size - _G) // _F


class _EquivariantLayer(nn.Module):
    """``h_n <- tanh(A h_n + B mean_m h_m + c)`` on ``(batch, users, width)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.own = nn.Linear(in_dim, out_dim)
        self.pooled = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.own(h) + self.pooled(h.mean(dim=1, keepdim=True)))


class PerUserExtractor(BaseFeaturesExtractor):
    """Per-user embeddings ``h_n`` (flattened) and their mean: ``N * hidden_dim + hidden_dim`` features."""

    def __init__(self, observation_space: gym.spaces.Box, hidden_dim: int = 64, n_layers: int = 2) -> None:
        n_users = _n_users(observation_space)
        super().__init__(observation_space, features_dim=(n_users + 1) * hidden_dim)
        self.n_users = n_users
        dims = [_F + _G] + [hidden_dim] * n_layers
        self.layers = nn.Sequential(*(_EquivariantLayer(a, b) for a, b in zip(dims[:-1], dims[1:])))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        batch, n = observations.shape[0], self.n_users
        users = observations[:, : _F * n].reshape(batch, _F, n).transpose(1, 2)  # (B, N, F)
        globals_ = observations[:, _F * n:].unsqueeze(1).expand(batch, n, _G)
        h = self.layers(torch.cat([users, globals_], dim=-1))  # (B, N, H)
        return torch.cat([h.flatten(1), h.mean(dim=1)], dim=-1)


class PerUserHead(nn.Module):
    """One shared linear map from each ``h_n`` to user ``n``'s offload and level logits."""

    def __init__(self, n_users: int, hidden_dim: int, n_levels: int) -> None:
        super().__init__()
        self.n_users, self.hidden_dim, self.n_levels = n_users, hidden_dim, n_levels
        self.linear = nn.Linear(hidden_dim, 2 + n_levels)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = latent[:, : self.n_users * self.hidden_dim].reshape(-1, self.n_users, self.hidden_dim)
        logits = self.linear(h)  # (B, N, 2 + L)
        return torch.cat([logits[..., :2].flatten(1), logits[..., 2:].flatten(1)], dim=-1)


class _PerUserMixin:
    """Builds the SB3 actor-critic with :class:`PerUserExtractor`, an identity actor MLP and :class:`PerUserHead`."""

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.MultiDiscrete, lr_schedule,
                 hidden_dim: int = 64, n_layers: int = 2, vf_arch: tuple[int, ...] = (64, 64), **kwargs: Any) -> None:
        if not isinstance(action_space, gym.spaces.MultiDiscrete):
            raise ValueError(f"PerUserPolicy needs the env's MultiDiscrete joint action (no env wrapper), got {action_space}")
        n_users = _n_users(observation_space)
        if action_space.shape != (2 * n_users,):
            raise ValueError(f"PerUserPolicy needs {2 * n_users} action entries for {n_users} users, got {action_space}")
        if "net_arch" in kwargs:
            raise ValueError("PerUserPolicy takes hidden_dim, n_layers and vf_arch instead of net_arch")
        self._head_shape = (n_users, hidden_dim, int(action_space.nvec[n_users]))
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch={"pi": [], "vf": list(vf_arch)},
            features_extractor_class=PerUserExtractor,
            features_extractor_kwargs={"hidden_dim": hidden_dim, "n_layers": n_layers}, **kwargs,
        )

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = PerUserHead(*self._head_shape)
        if self.ortho_init:
            self.action_net.apply(lambda module: self.init_weights(module, gain=0.01))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class PerUserPolicy(_PerUserMixin, ActorCriticPolicy):
    """PPO's equivariant actor-critic (module docstring)."""


class MaskablePerUserPolicy(_PerUserMixin, MaskableActorCriticPolicy):
    """MaskablePPO's equivariant actor-critic (module docstring)."""


#: ``policy`` names of the hyperparameter files -> algorithm name -> class.
POLICY_CLASSES: dict[str, dict[str, type]] = {"PerUserPolicy": {"ppo": PerUserPolicy, "maskable_ppo": MaskablePerUserPolicy}}
