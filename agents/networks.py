"""A permutation-equivariant actor-critic for the joint slot action (``policy: PerUserPolicy``).

An MLP over the flat observation must learn the same per-user rule ``N`` times; this policy
shares it across users.  The network is :mod:`.per_user_net`'s (plain torch, usable from any
library; its docstring describes the layers): :class:`~.per_user_net.PerUserEncoder` is the
features extractor and :class:`~.per_user_net.PerUserHead` the actor (``2L`` logits per user,
one per (offload bit, level) pair).

The critic is :class:`~.per_user_net.PerUserActorCritic`'s: an MLP of widths ``vf_arch`` over
``mean_n h_n``, so the value is invariant to the order of the users.  (Until 0.2 it read
``[h_1 .. h_N, mean_n h_n]``: with ``N = 10`` and ``hidden_dim = 64`` its first layer alone
held 40% of the network's multiply-adds.)

:class:`PerUserPolicy` (PPO) and :class:`MaskablePerUserPolicy` (MaskablePPO) are the same
network on the two policy classes.  They draw the joint action from :class:`PerUserCategorical`
and :class:`MaskablePerUserCategorical`: the distributions of SB3's ``MultiCategoricalDistribution``
and sb3-contrib's masked one as one batched categorical per user over its ``2L`` (offload bit,
level) pairs, so a user's level depends on its mode (:class:`_PairCategoricals`; until 0.3 two
batched categoricals, offload bit and level, drawn independently), instead of ``2N`` separate
categoricals (a third of PPO's time at ``N = 10`` went into building and scoring those).  It is
a :class:`BatchedCategorical`: the part of torch's ``Categorical`` that PPO uses, its logits
normalised once and its probabilities one ``exp`` of them (torch's softmax over a last axis of
2 to 16 entries took longer than the network's matrix products).
:class:`PerUserBoxPolicy` (PPO) is the same encoder and critic with one Gaussian action per user
(the priced wrapper's per-user price corrections).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
from torch import nn

from aigc_edge_env.agents.per_user_net import (
    PerUserEncoder,
    PerUserHead,
    action_pairs,
    pair_actions,
    pair_masks,
    tanh_mlp,
)
from aigc_edge_env.spaces import USER_FEATURES, observation_n_users, split_observation, step_energy_scale_j

__all__ = ["BatchedCategorical", "CapacityPerUserCategorical", "CapacityPerUserPolicy",
           "MaskablePerUserCategorical", "MaskablePerUserPolicy", "PerUserBoxPolicy",
           "PerUserCategorical", "PerUserPolicy", "POLICY_CLASSES"]


class PerUserExtractor(BaseFeaturesExtractor):
    """Per-user embeddings ``h_n``, flattened: ``N * hidden_dim`` features."""

    def __init__(self, observation_space: gym.spaces.Box, hidden_dim: int = 64, n_layers: int = 2) -> None:
        n_users = observation_n_users(observation_space.shape[0])
        super().__init__(observation_space, features_dim=n_users * hidden_dim)
        self.layers = PerUserEncoder(hidden_dim, n_layers)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.layers(observations).flatten(1)  # (B, N * H)


class _PerUserLatents(nn.Module):
    """SB3's ``mlp_extractor``: the actor's latent is the features themselves (the head reads each ``h_n``),
    the critic's an MLP of widths ``vf_arch`` over ``mean_n h_n``."""

    def __init__(self, n_users: int, hidden_dim: int, vf_arch: tuple[int, ...]) -> None:
        super().__init__()
        self.n_users, self.hidden_dim = n_users, hidden_dim
        self.critic = tanh_mlp([hidden_dim, *vf_arch])
        self.latent_dim_pi, self.latent_dim_vf = n_users * hidden_dim, ([hidden_dim, *vf_arch])[-1]

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features.reshape(-1, self.n_users, self.hidden_dim).mean(dim=1))


class _JointHead(PerUserHead):
    """:class:`PerUserHead` on the extractor's flat latent: ``(B, N * 2L)``, user by user."""

    def __init__(self, n_users: int, hidden_dim: int, n_levels: int) -> None:
        super().__init__(hidden_dim, n_levels)
        self.n_users, self.hidden_dim = n_users, hidden_dim

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return super().forward(latent.reshape(-1, self.n_users, self.hidden_dim)).flatten(1)


class _PerUserNetwork:
    """The SB3 actor-critic on :class:`PerUserExtractor` and :class:`_PerUserLatents` (the invariant
    critic), its actor head :meth:`_action_head` (initialised as SB3 initialises its own)."""

    mlp_extractor: MlpExtractor  # as SB3's policies declare it; a _PerUserLatents here (_build_mlp_extractor)

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Space, lr_schedule,
                 hidden_dim: int = 64, n_layers: int = 2, vf_arch: tuple[int, ...] = (64, 64), **kwargs: Any) -> None:
        self._n_users = self._check_spaces(observation_space, action_space)
        self._hidden_dim, self._vf_arch = hidden_dim, tuple(vf_arch)
        if "net_arch" in kwargs:
            raise ValueError(f"{type(self).__name__} takes hidden_dim, n_layers and vf_arch instead of net_arch")
        super().__init__(  # type: ignore[call-arg]
            observation_space, action_space, lr_schedule,
            features_extractor_class=PerUserExtractor,
            features_extractor_kwargs={"hidden_dim": hidden_dim, "n_layers": n_layers}, **kwargs,
        )

    def _check_spaces(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Space) -> int:
        """The number of users ``N``; a ``ValueError`` for an action space the head cannot serve."""
        raise NotImplementedError

    def _action_head(self) -> nn.Module:
        raise NotImplementedError

    def _build_mlp_extractor(self) -> None:
        # SB3 reads only what _PerUserLatents has of MlpExtractor: latent_dim_pi/_vf, forward_actor/_critic.
        self.mlp_extractor = _PerUserLatents(  # type: ignore[assignment]
            self._n_users, self._hidden_dim, self._vf_arch)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        self.action_net = self._action_head()
        if self.ortho_init:  # type: ignore[attr-defined]
            self.action_net.apply(lambda module: self.init_weights(module, gain=0.01))  # type: ignore[attr-defined]
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[attr-defined]


class _PerUserMixin(_PerUserNetwork):
    """:class:`_PerUserNetwork` with the per-user head over the joint action and the batched action
    distribution ``distribution_class``."""

    distribution_class: type

    def _check_spaces(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Space) -> int:
        if not isinstance(action_space, gym.spaces.MultiDiscrete):
            raise ValueError(f"PerUserPolicy needs the env's MultiDiscrete joint action (no env wrapper), "
                             f"got {action_space}")
        n_users = observation_n_users(observation_space.shape[0])
        if action_space.shape != (2 * n_users,):
            raise ValueError(f"PerUserPolicy needs {2 * n_users} action entries for {n_users} users, "
                             f"got {action_space}")
        self._n_levels = int(action_space.nvec[n_users])
        return n_users

    def _action_head(self) -> nn.Module:
        return _JointHead(self._n_users, self._hidden_dim, self._n_levels)

    def _build(self, lr_schedule) -> None:
        self.action_dist = self._distribution()
        super()._build(lr_schedule)

    def _distribution(self) -> Any:
        return self.distribution_class(self._n_users, self._n_levels)


class BatchedCategorical:
    """Independent categoricals over the last axis of ``logits`` (batch shape ``logits.shape[:-1]``).

    What PPO and MaskablePPO ask of torch's ``Categorical`` (``logits`` normalised, ``probs``,
    ``log_prob``, ``entropy``, ``sample``) and of sb3-contrib's ``MaskableCategorical``
    (``apply_masking``: outcomes whose mask is False get logit ``-1e8``, no probability and no
    share of the entropy), without argument checks.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self._original_logits = logits
        self.masks: torch.Tensor | None = None
        self._set(logits)

    def _set(self, logits: torch.Tensor) -> None:
        """Unnormalised ``logits``; normalised and exponentiated on first use (masking may replace them first)."""
        self._raw: torch.Tensor = logits
        self._logits: torch.Tensor | None = None
        self._probs: torch.Tensor | None = None

    @property
    def logits(self) -> torch.Tensor:
        """Log-probabilities (the logits less their ``logsumexp``), as torch's ``Categorical.logits``."""
        if self._logits is None:
            self._logits = self._raw - self._raw.logsumexp(-1, keepdim=True)
        return self._logits

    @property
    def probs(self) -> torch.Tensor:
        if self._probs is None:
            self._probs = self.logits.exp()
        return self._probs

    def apply_masking(self, masks: Any) -> None:
        if masks is None:
            self.masks = None
            self._set(self._original_logits)
            return
        logits = self._original_logits
        self.masks = torch.as_tensor(masks, dtype=torch.bool, device=logits.device).reshape(logits.shape)
        self._set(torch.where(self.masks, logits, _MASKED_LOGIT))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        p_log_p = self.logits * self.probs
        if self.masks is not None:
            p_log_p = torch.where(self.masks, p_log_p, 0.0)
        return -p_log_p.sum(-1)

    def sample(self) -> torch.Tensor:
        flat = self.probs.reshape(-1, self.probs.shape[-1])
        return torch.multinomial(flat, 1, True).reshape(self.probs.shape[:-1])


_MASKED_LOGIT = -1e8  # a Python float: torch.where puts it on the logits' device
#: Relative slack of the battery test on float32 features: a device pair within it of the battery stays allowed.
_ENERGY_TOLERANCE = 1e-5


class _PairCategoricals:
    """``MultiDiscrete([2] * N + [L] * N)`` drawn user by user as one :class:`BatchedCategorical` over
    the ``2L`` (offload bit, level) pairs (batch shape ``(B, N)``), from :class:`PerUserHead`'s logits.

    A user's level thus depends on its mode (two independent categoricals, offload bit and level,
    give one level distribution for both modes).  The joint log-probability and entropy sum over
    the ``N`` users; where the pair logits are sums ``a_m + b_l``, this is SB3's distribution over
    the ``2N`` entries with offload logits ``a`` and level logits ``b`` (tested).
    """

    def __init__(self, n_users: int, n_levels: int) -> None:
        super().__init__([2] * n_users + [n_levels] * n_users)  # type: ignore[call-arg]
        self.n_users, self.n_levels = n_users, n_levels

    def proba_distribution(self, action_logits: torch.Tensor) -> Any:
        self.pairs = BatchedCategorical(action_logits.reshape(-1, self.n_users, 2 * self.n_levels))
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        pairs = action_pairs(actions.long().reshape(-1, 2 * self.n_users), self.n_levels)
        return self.pairs.log_prob(pairs).sum(1)

    def entropy(self) -> torch.Tensor:
        return self.pairs.entropy().sum(1)

    def sample(self) -> torch.Tensor:
        return pair_actions(self.pairs.sample(), self.n_levels)

    def mode(self) -> torch.Tensor:
        return pair_actions(self.pairs.logits.argmax(-1), self.n_levels)


class PerUserCategorical(_PairCategoricals, MultiCategoricalDistribution):
    """PPO's joint action distribution (:class:`_PairCategoricals`)."""


class MaskablePerUserCategorical(_PairCategoricals, MaskableMultiCategoricalDistribution):
    """MaskablePPO's joint action distribution (:class:`_PairCategoricals`) under ``action_masks()``: a pair
    is allowed iff both its offload bit and its level are (:func:`~.per_user_net.pair_masks`)."""

    def proba_distribution(self, action_logits: torch.Tensor) -> Any:
        super().proba_distribution(action_logits)
        # sb3-contrib calls only what BatchedCategorical has of MaskableCategorical (module docstring).
        self.distributions = [self.pairs]  # type: ignore[list-item]
        return self

    def apply_masking(self, masks: Any) -> None:
        if masks is None:
            self.pairs.apply_masking(None)
            return
        masks = torch.as_tensor(masks, dtype=torch.bool, device=self.pairs.logits.device)
        entries = 2 * self.n_users + self.n_users * self.n_levels
        self.pairs.apply_masking(pair_masks(masks.reshape(-1, entries), self.n_users, self.n_levels))


class CapacityPerUserCategorical(MultiCategoricalDistribution):
    """The joint action drawn user by user, in index order, so that the edge's step capacity is never exceeded.

    The env admits offloaded requests in user-index order while their steps fit ``S^E_max`` and
    drops the rest (docs/model.md, repair rule 2).  Here the users decide in turn, each user's
    (offload bit, level) pair drawn from its categorical (:class:`~.per_user_net.PerUserHead`'s
    logits) with the edge pairs whose steps exceed what the earlier users left of ``S^E_max`` masked
    out, so the offloaded steps never exceed ``S^E_max`` and the env admits them all, whatever the
    order: the users whose battery affords no device level decide first (they need the edge), then
    the others, each group by index.  The joint probability is the product of these conditionals
    (an autoregressive policy whose only dependence on earlier users is the remaining capacity):
    :meth:`log_prob` rebuilds each user's mask from the earlier users' pairs in the action (the
    order depends on the observation only), so it
    is exact for every action it could have drawn.  Users without a request count as if their
    choice were served (the distribution does not see the requests): their edge pairs would only
    shrink the capacity left to later users, never overfill it, and the cloned or learned policy
    puts them on the device.  With ``affordable_steps`` (per user: the battery over the energy of one
    device step, from the raw observation; :class:`CapacityPerUserPolicy`), the device pairs whose
    energy exceeds the battery are masked too (repair rule 3's battery drops); a user left with no
    pair keeps its device pairs (it is dropped whatever it picks, and takes no edge capacity).
    :meth:`entropy` is the sum of the conditionals' entropies at the
    prefixes of the last action scored or drawn (an unbiased estimate of the joint entropy along
    the policy's own actions).  Sampling loops over the ``N`` users; scoring is vectorised.
    """

    def __init__(self, n_users: int, n_levels: int, edge_step_levels: Any, edge_step_capacity: float) -> None:
        super().__init__([2] * n_users + [n_levels] * n_users)
        self.n_users, self.n_levels = n_users, n_levels
        levels = torch.as_tensor(edge_step_levels, dtype=torch.float32)
        self.pair_edge_steps = torch.cat([torch.zeros(n_levels), levels])  # (2L,): 0 on the device
        self.capacity = float(edge_step_capacity)
        self.masks: torch.Tensor | None = None

    def proba_distribution(self, action_logits: torch.Tensor, affordable_steps: torch.Tensor | None = None) -> Any:
        logits = action_logits.reshape(-1, self.n_users, 2 * self.n_levels)
        levels = self.pair_edge_steps[self.n_levels:].to(action_logits.device)
        local = (torch.ones_like(logits[..., : self.n_levels], dtype=torch.bool) if affordable_steps is None
                 else levels <= affordable_steps.reshape(-1, self.n_users, 1))  # the device pairs the battery affords
        # decoding order: the users with no device pair first (they need the edge), then the others, by index
        self.order = torch.argsort(local.any(-1).to(torch.int8), dim=1, stable=True)  # (B, N)
        self.ordered_logits = logits.gather(1, self._expand(self.order, logits))
        self.ordered_local = local.gather(1, self._expand(self.order, local))
        self.masks = None
        return self

    @staticmethod
    def _expand(order: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return order.unsqueeze(-1).expand(*order.shape, like.shape[-1])

    def _allowed(self, used_before: torch.Tensor, position: slice | int = slice(None)) -> torch.Tensor:
        """Pairs of the users at decoding ``position`` that fit the capacity left after ``used_before`` steps,
        device pairs where the battery affords them; every device pair of a user with none: ``(B, [N,] 2L)``."""
        steps = self.pair_edge_steps[self.n_levels:].to(used_before.device)
        edge = steps <= self.capacity - used_before.unsqueeze(-1)
        local = self.ordered_local[:, position]
        stuck = ~(local.any(-1, keepdim=True) | edge.any(-1, keepdim=True))  # dropped whatever it picks:
        return torch.cat([local | stuck, edge], dim=-1)  # on the device, leaving the edge's capacity to the others

    def _log_probs(self, masks: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        masked = torch.where(masks, logits, _MASKED_LOGIT)
        return masked - masked.logsumexp(-1, keepdim=True)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        pairs = action_pairs(actions.long().reshape(-1, 2 * self.n_users), self.n_levels).gather(1, self.order)
        used = self.pair_edge_steps.to(pairs.device)[pairs]
        self.masks = self._allowed(used.cumsum(1) - used)
        log_probs = self._log_probs(self.masks, self.ordered_logits)
        return log_probs.gather(-1, pairs.unsqueeze(-1)).squeeze(-1).sum(1)

    def entropy(self) -> torch.Tensor:
        if self.masks is None:
            raise RuntimeError("entropy() needs an action scored (log_prob) or drawn (sample, mode) first")
        log_probs = self._log_probs(self.masks, self.ordered_logits)
        return -torch.where(self.masks, log_probs.exp() * log_probs, 0.0).sum((1, 2))

    def _decode(self, choose: Any) -> torch.Tensor:
        """Users in decoding order, each choosing with ``choose(log_probs (B, 2L)) -> (B,)`` under the capacity left."""
        batch = self.ordered_logits.shape[0]
        steps = self.pair_edge_steps.to(self.ordered_logits.device)
        used = torch.zeros(batch, device=self.ordered_logits.device)
        pairs, masks = [], []
        for position in range(self.n_users):
            mask = self._allowed(used, position)
            choice = choose(self._log_probs(mask, self.ordered_logits[:, position]))
            used = used + steps[choice]
            pairs.append(choice)
            masks.append(mask)
        self.masks = torch.stack(masks, 1)
        ordered = torch.stack(pairs, 1)
        return pair_actions(torch.empty_like(ordered).scatter_(1, self.order, ordered), self.n_levels)

    def sample(self) -> torch.Tensor:
        return self._decode(lambda log_probs: torch.multinomial(log_probs.exp(), 1).squeeze(-1))

    def mode(self) -> torch.Tensor:
        return self._decode(lambda log_probs: log_probs.argmax(-1))


class _PerUserMean(nn.Module):
    """One Gaussian mean per user: a linear map of the user's embedding ``h_n``, the same for every user."""

    def __init__(self, n_users: int, hidden_dim: int) -> None:
        super().__init__()
        self.n_users, self.hidden_dim = n_users, hidden_dim
        self.linear = nn.Linear(hidden_dim, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.linear(latent.reshape(-1, self.n_users, self.hidden_dim)).squeeze(-1)


class PerUserBoxPolicy(_PerUserNetwork, ActorCriticPolicy):
    """PPO's equivariant actor-critic for one continuous action per user (``Box((N,))``, e.g. the
    priced wrapper's price corrections, :mod:`aigc_edge_env.priced`): the encoder and the invariant
    critic of :class:`PerUserPolicy`, and a Gaussian whose mean for user ``n`` is a linear map of
    ``h_n`` shared by all users (SB3's diagonal Gaussian, one log standard deviation per user)."""

    def _check_spaces(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Space) -> int:
        if not isinstance(action_space, gym.spaces.Box):
            raise ValueError(f"PerUserBoxPolicy needs a Box action, one entry per user (env_wrapper priced), "
                             f"got {action_space}")
        n_users = observation_n_users(observation_space.shape[0])
        if action_space.shape != (n_users,):
            raise ValueError(f"PerUserBoxPolicy needs a Box action of shape ({n_users},) (env_wrapper priced), "
                             f"got {action_space}")
        return n_users

    def _action_head(self) -> nn.Module:
        return _PerUserMean(self._n_users, self._hidden_dim)


class PerUserPolicy(_PerUserMixin, ActorCriticPolicy):
    """PPO's equivariant actor-critic (module docstring)."""

    distribution_class: type = PerUserCategorical


class MaskablePerUserPolicy(_PerUserMixin, MaskableActorCriticPolicy):
    """MaskablePPO's equivariant actor-critic (module docstring)."""

    distribution_class: type = MaskablePerUserCategorical


class CapacityPerUserPolicy(_PerUserMixin, ActorCriticPolicy):
    """PPO's equivariant actor-critic drawing the joint action under the edge capacity
    (:class:`CapacityPerUserCategorical`).  ``edge_step_levels`` (the config's ``step_levels``) and
    ``edge_step_capacity`` (``S^E_max``) come from the env's config: training fills them in
    (:meth:`env_policy_kwargs`), and the saved model keeps them."""

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Space, lr_schedule,
                 edge_step_levels: tuple[int, ...] = (), edge_step_capacity: float = 0.0,
                 battery_capacity_j: float = math.inf, step_energy_scale_j: float = 1.0, **kwargs: Any) -> None:
        if len(edge_step_levels) != int(getattr(action_space, "nvec", [0, 0])[-1]):
            raise ValueError(f"CapacityPerUserPolicy needs edge_step_levels, one per level of the action space "
                             f"{action_space}, got {edge_step_levels!r}")
        self._edge_step_levels, self._edge_step_capacity = tuple(edge_step_levels), float(edge_step_capacity)
        self._battery_capacity_j, self._step_energy_scale_j = float(battery_capacity_j), float(step_energy_scale_j)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    @staticmethod
    def env_policy_kwargs(config: Any) -> dict[str, Any]:
        """The policy kwargs an env's config fixes (training adds them; a user may not set them)."""
        return {"edge_step_levels": tuple(int(s) for s in config.step_levels),
                "edge_step_capacity": float(config.edge_step_capacity),
                "battery_capacity_j": float(config.battery_capacity_j) if config.battery_enabled else math.inf,
                "step_energy_scale_j": step_energy_scale_j(config)}

    #: It reads the battery and the step energy from the raw observation: the run may not normalise it.
    needs_raw_observations = True

    def _note_affordable_steps(self, obs: torch.Tensor) -> None:
        """The steps each user's battery affords on its device, for the distribution built next from ``obs``."""
        users, _ = split_observation(obs.float(), self._n_users)
        battery_j = users[..., USER_FEATURES.index("battery")] * self._battery_capacity_j
        step_j = users[..., USER_FEATURES.index("device_step_energy")] * self._step_energy_scale_j
        affordable = battery_j * (1 + _ENERGY_TOLERANCE) / step_j.clamp_min(1e-30)
        idle = users[..., USER_FEATURES.index("request")] < 0.5  # ignored by the env: every level stays open
        self._affordable_steps = torch.where(idle, math.inf, affordable)

    def extract_features(  # type: ignore[override]  # as ActorCriticPolicy's own (SB3's BaseModel differs)
        self, obs: Any, features_extractor: BaseFeaturesExtractor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # forward, evaluate_actions
        self._note_affordable_steps(obs)
        return super().extract_features(obs, features_extractor)

    def get_distribution(self, obs: Any) -> Any:  # predict (its features bypass extract_features)
        self._note_affordable_steps(obs)
        return super().get_distribution(obs)

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> Any:
        return self.action_dist.proba_distribution(self.action_net(latent_pi), self._affordable_steps)

    def _distribution(self) -> Any:
        return CapacityPerUserCategorical(self._n_users, self._n_levels, self._edge_step_levels,
                                          self._edge_step_capacity)


#: ``policy`` names of the hyperparameter files -> algorithm name -> class.
POLICY_CLASSES: dict[str, dict[str, type]] = {
    "PerUserPolicy": {"ppo": PerUserPolicy, "maskable_ppo": MaskablePerUserPolicy},
    "PerUserBoxPolicy": {"ppo": PerUserBoxPolicy},
    "CapacityPerUserPolicy": {"ppo": CapacityPerUserPolicy},
}
