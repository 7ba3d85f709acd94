"""The per-user (permutation-equivariant) actor-critic as a plain ``torch.nn.Module``, for any RL library.

No stable-baselines3 here: CleanRL-style scripts, RLlib or TorchRL models use
:class:`PerUserActorCritic` directly; SB3's ``PerUserPolicy`` (:mod:`.networks`) is built
from the same :class:`PerUserEncoder` and :class:`PerUserHead`.

The env's observation is ``F = 9`` per-user feature blocks of ``N`` entries, then ``G = 3``
global features; :func:`aigc_edge_env.spaces.split_observation` (core, no torch) splits it
into per-user rows ``(..., N, 9)`` and globals ``(..., 3)``.  The network shares one rule
across users (deep sets, Zaheer et al. 2017):

* user ``n``'s input is its ``F`` features plus the ``G`` global ones;
* ``n_layers`` equivariant layers ``h_n <- tanh(A h_n + B mean_m h_m + c)`` of width
  ``hidden_dim`` let every user see the others (the mean carries the edge congestion);
* the actor maps each ``h_n`` with one shared linear layer to user ``n``'s ``2L`` logits, one
  per (offload bit, level) pair: user ``n``'s action is drawn from one categorical over its
  pairs, so its level depends on its mode (until 0.3, two independent categoricals over the
  offload bit and the level gave one level distribution for both modes; the joint one scores
  higher, docs/results.md section 4);
* the critic of :class:`PerUserActorCritic` reads ``mean_n h_n`` through an MLP of widths
  ``vf_arch``, so the value is invariant to the order of the users.

Permuting the users of an observation permutes the logits the same way and leaves the value
unchanged (tested).  :func:`pair_actions` turns pair indices into the env's ``MultiDiscrete``
action (``N`` offload bits, then ``N`` level indices), :func:`action_pairs` back, and
:func:`pair_masks` the env's per-entry ``action_masks()`` into per-pair masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import gymnasium as gym
import torch
from torch import nn

from aigc_edge_env.spaces import GLOBAL_FEATURES, USER_FEATURES, observation_n_users, split_observation

__all__ = ["EquivariantLayer", "PerUserActorCritic", "PerUserEncoder", "PerUserHead", "action_pairs", "pair_actions",
           "pair_masks", "tanh_mlp"]


class EquivariantLayer(nn.Module):
    """``h_n <- tanh(A h_n + B mean_m h_m + c)`` on ``(..., users, width)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.own = nn.Linear(in_dim, out_dim)
        self.pooled = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.own(h) + self.pooled(h.mean(dim=-2, keepdim=True)))


class PerUserEncoder(nn.Sequential):
    """Flat observations ``(..., 9N + 3)`` -> per-user embeddings ``h`` of shape ``(..., N, hidden_dim)``.

    ``N`` is read from the observation's size, so the same weights encode any number of users.
    The ``n_layers`` :class:`EquivariantLayer` are this container's items.
    """

    def __init__(self, hidden_dim: int = 64, n_layers: int = 2) -> None:
        dims = [len(USER_FEATURES) + len(GLOBAL_FEATURES)] + [hidden_dim] * n_layers
        super().__init__(*(EquivariantLayer(a, b) for a, b in pairwise(dims)))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.encode(*split_observation(observations, observation_n_users(observations.shape[-1])))

    def encode(self, users: torch.Tensor, globals_: torch.Tensor) -> torch.Tensor:
        """Per-user rows ``(..., N, 9)`` and global features ``(..., 3)`` -> embeddings ``(..., N, hidden_dim)``."""
        h = torch.cat([users, globals_.unsqueeze(-2).expand(*users.shape[:-1], globals_.shape[-1])], dim=-1)
        for layer in self:
            h = layer(h)
        return h


class PerUserHead(nn.Module):
    """One shared linear map from each ``h_n`` ``(..., N, hidden_dim)`` to user ``n``'s ``2L`` pair logits.

    Logit ``m * L + l`` is the pair (mode ``m``, level index ``l``), ``m = 0`` on the device and
    ``1`` at the edge: the order of the solvers' option columns (``baselines/options.py``).
    """

    def __init__(self, hidden_dim: int, n_levels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_dim, 2 * n_levels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)


def tanh_mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given widths (input first), each followed by ``tanh``; empty for one width."""
    layers: list[nn.Module] = []
    for a, b in pairwise(widths):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers)


def pair_actions(pairs: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Pair indices ``(..., N)`` (:class:`PerUserHead`'s order) -> the env's ``MultiDiscrete`` actions
    ``(..., 2N)``: ``N`` offload bits, then ``N`` level indices."""
    return torch.cat([torch.div(pairs, n_levels, rounding_mode="floor"), pairs % n_levels], dim=-1)


def action_pairs(actions: torch.Tensor, n_levels: int) -> torch.Tensor:
    """The env's actions ``(..., 2N)`` -> pair indices ``(..., N)`` (the inverse of :func:`pair_actions`)."""
    n_users = actions.shape[-1] // 2
    return actions[..., :n_users] * n_levels + actions[..., n_users:]


def pair_masks(masks: torch.Tensor, n_users: int, n_levels: int) -> torch.Tensor:
    """The env's per-entry ``action_masks()`` ``(..., 2N + NL)`` (``N`` pairs of offload entries, then
    ``N`` groups of ``L`` level entries) -> per-pair masks ``(..., N, 2L)``: a pair is allowed iff
    both its offload bit and its level are."""
    offload = masks[..., : 2 * n_users].reshape(*masks.shape[:-1], n_users, 2, 1)
    levels = masks[..., 2 * n_users:].reshape(*masks.shape[:-1], n_users, 1, n_levels)
    return (offload & levels).flatten(-2)


class PerUserActorCritic(nn.Module):
    """Per-user logits and a permutation-invariant value from the env's flat observations (module docstring).

    ``forward(observations)`` takes ``(..., 9N + 3)`` and returns ``(logits, value)``:
    ``logits`` of shape ``(..., N, 2L)`` (user ``n``'s pair logits, :class:`PerUserHead`) and
    ``value`` of shape ``(...)``.  Sampling one pair per user from them and
    :func:`pair_actions` gives the env's action.

    ``ortho_init`` initialises as stable-baselines3 and CleanRL do: orthogonal weights with
    gain ``sqrt(2)`` in the hidden layers, 0.01 in the actor, 1 in the value output; zero biases.
    """

    def __init__(self, n_users: int, n_levels: int, hidden_dim: int = 64, n_layers: int = 2,
                 vf_arch: Sequence[int] = (64, 64), ortho_init: bool = True) -> None:
        super().__init__()
        self.n_users, self.n_levels = n_users, n_levels
        self.encoder = PerUserEncoder(hidden_dim, n_layers)
        self.actor = PerUserHead(hidden_dim, n_levels)
        widths = [hidden_dim, *vf_arch]
        self.critic = nn.Sequential(*tanh_mlp(widths), nn.Linear(widths[-1], 1))
        if ortho_init:
            for module, gain in ((self.encoder, math.sqrt(2)), (self.critic, math.sqrt(2)),
                                 (self.critic[-1], 1.0), (self.actor, 0.01)):
                for layer in module.modules():
                    if isinstance(layer, nn.Linear):
                        nn.init.orthogonal_(layer.weight, gain=gain)
                        if layer.bias is not None:
                            nn.init.zeros_(layer.bias)

    @classmethod
    def from_spaces(cls, observation_space: gym.spaces.Space, action_space: gym.spaces.Space,
                    **kwargs) -> PerUserActorCritic:
        """The network for an env with these (single-env) spaces; ``ValueError`` unless they are the AIGC env's."""
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"expected the AIGC env's flat Box observation space, got {observation_space}")
        n_users = observation_n_users(observation_space.shape[0])
        if not isinstance(action_space, gym.spaces.MultiDiscrete) or action_space.shape != (2 * n_users,):
            raise ValueError(f"expected the AIGC env's MultiDiscrete([2]*{n_users} + [L]*{n_users}) action space, "
                             f"got {action_space}")
        return cls(n_users, int(action_space.nvec[n_users]), **kwargs)

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(observations)
        return self.actor(h), self.critic(h.mean(dim=-2)).squeeze(-1)
