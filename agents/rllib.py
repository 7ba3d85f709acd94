"""Ray RLlib (new API stack) with the package's per-user network: module, distribution, PPO configs, checkpoint policy.

Needs the ``rllib`` extra (``pip install 'aigc-edge-env[rllib]'``); the core never imports Ray.

* :class:`PerUserRLModule` is :class:`~aigc_edge_env.agents.per_user_net.PerUserActorCritic`
  as an RLlib ``TorchRLModule`` with the ``ValueFunctionAPI`` (PPO's learner asks it for values).
  Its ``model_config`` keys are :data:`MODEL_CONFIG_DEFAULTS`; the module reads those and leaves
  alone the keys RLlib adds to every module's config (PPO's ``vf_share_layers``, say).
* :class:`PairCategorical` is its action distribution over the env's own ``MultiDiscrete``
  action (no action wrapper): one categorical per user over its ``2L`` (offload bit, level)
  pairs, sampled pairs mapped to the env's action by :func:`pair_actions` and back by
  :func:`action_pairs` for ``logp``.  The module hands it to RLlib through the public
  ``action_dist_cls`` of ``TorchRLModule`` (a partial class binding ``L``).
* **Users without a request**: the env ignores their entries, so the module pins their pairs
  to pair 0 (logits ``[0, -1e9, ...]``): their log-probability and entropy are 0 and PPO's
  ratio, entropy and KL count the users with a request only (as ``examples/cleanrl_ppo.py``).
* :func:`ppo_config` is the single env's ``PPOConfig``, the settings of ``examples/cleanrl_ppo.py``;
  :func:`multi_agent_ppo_config` the PettingZoo view's, one shared per-agent policy on the view's
  mean-field observation (docs/rllib.md).
* :class:`RLlibPolicy` plays a saved module greedily in the evaluation engine
  (``aigc-edge evaluate --policies rllib:PATH``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from aigc_edge_env.agents.per_user_net import PerUserActorCritic, action_pairs, pair_actions
from aigc_edge_env.spaces import USER_FEATURES, agent_observation_size, agent_observations, observation_n_users

try:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDeterministic, TorchDistribution
    from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec
    from ray.rllib.core.rl_module.torch import TorchRLModule
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("aigc_edge_env.agents.rllib needs Ray RLlib: pip install 'aigc-edge-env[rllib]'") from error

__all__ = ["MODEL_CONFIG_DEFAULTS", "PairCategorical", "PerUserRLModule", "RLlibPolicy",
           "SHARED_POLICY", "multi_agent_ppo_config", "ppo_config", "team_share_env"]

#: The ``model_config`` keys of :class:`PerUserRLModule` and their defaults (those of ``ppo.yml``'s
#: ``AIGCEdge-v0`` entry): :class:`PerUserActorCritic`'s arguments.
MODEL_CONFIG_DEFAULTS: dict[str, Any] = {"hidden_dim": 48, "n_layers": 3, "vf_arch": (64, 64), "ortho_init": True}

#: The module id of the multi-agent config's one policy, shared by every user.
SHARED_POLICY = "shared_user"

# The logits of a user without a request: pair 0 certain, so its log-probability and entropy are 0.
_PINNED = -1e9


class PairCategorical(TorchDistribution):
    """One categorical per user over its ``2L`` pairs, as a distribution over the env's ``MultiDiscrete`` action.

    ``logits``: ``(..., N * 2L)``, user-major (:class:`~.per_user_net.PerUserHead`'s order);
    ``n_levels``: ``L``.  ``sample()`` gives ``(..., 2N)`` env actions; ``logp``, ``entropy`` and
    ``kl`` sum over the users.
    """

    def __init__(self, logits: torch.Tensor, n_levels: int) -> None:
        self.n_levels = n_levels
        super().__init__(logits=logits, n_levels=n_levels)

    def _get_torch_distribution(self, logits: torch.Tensor, n_levels: int) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=logits.unflatten(-1, (-1, 2 * n_levels)))

    def logp(self, value: Any, **kwargs: Any) -> torch.Tensor:
        return self._dist.log_prob(action_pairs(value.long(), self.n_levels)).sum(-1)

    def entropy(self, **kwargs: Any) -> torch.Tensor:
        return self._dist.entropy().sum(-1)

    def kl(self, other: PairCategorical) -> torch.Tensor:  # type: ignore[override]
        return torch.distributions.kl.kl_divergence(self._dist, other._dist).sum(-1)

    def sample(self, *, sample_shape: Any = None) -> torch.Tensor:  # type: ignore[override]
        return pair_actions(self._dist.sample(sample_shape or torch.Size()), self.n_levels)

    def rsample(self, *, sample_shape: Any = None) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError("PairCategorical is discrete: no reparameterised sample")

    @staticmethod
    def required_input_dim(space: gym.spaces.Space, **kwargs) -> int:
        if not isinstance(space, gym.spaces.MultiDiscrete):
            raise ValueError(f"PairCategorical needs the env's MultiDiscrete action space, got {space}")
        n_users = space.shape[0] // 2
        return int(n_users * 2 * space.nvec[n_users])

    def to_deterministic(self) -> TorchDeterministic:
        """Each user's most likely pair, as an env action."""
        return TorchDeterministic(loc=pair_actions(self._dist.logits.argmax(-1), self.n_levels))


class PerUserRLModule(TorchRLModule, ValueFunctionAPI):
    """:class:`PerUserActorCritic` as an RLlib module (module docstring).

    With the single env's spaces it acts for every user.  With one agent's (action ``MultiDiscrete([2, L])``,
    the multi-agent view's, or a single env of one user) it acts for one user: its observation is rows of
    the 9 user features, then the 3 global ones, and it acts for the first row; a second row (the
    ``"mean_field"`` observation: the mean over all users) enters the encoder's pooling like another user.
    ``model_config``: the keys of :data:`MODEL_CONFIG_DEFAULTS`; other keys (RLlib's) are not read.
    """

    def setup(self) -> None:
        config = self.model_config if isinstance(self.model_config, Mapping) else {}
        kwargs = {key: config.get(key, default) for key, default in MODEL_CONFIG_DEFAULTS.items()}
        if self.observation_space is None or self.action_space is None:
            raise ValueError("PerUserRLModule needs observation_space and action_space")
        self.agent_rows = _agent_rows(self.observation_space, self.action_space)
        if self.agent_rows:
            self.net = PerUserActorCritic(1, int(cast(gym.spaces.MultiDiscrete, self.action_space).nvec[1]), **kwargs)
        else:
            self.net = PerUserActorCritic.from_spaces(self.observation_space, self.action_space, **kwargs)
        self.action_dist_cls = PairCategorical.get_partial_dist_cls(n_levels=self.net.n_levels)  # type: ignore[misc]

    def _embeddings(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.agent_rows:
            return self.net.encoder(obs)
        rows = obs[..., : self.agent_rows * len(USER_FEATURES)].unflatten(-1, (self.agent_rows, len(USER_FEATURES)))
        return self.net.encoder.encode(rows, obs[..., self.agent_rows * len(USER_FEATURES):])

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        h = self._embeddings(obs)
        logits = self.net.actor(h[..., :1, :] if self.agent_rows else h)
        pinned = torch.full_like(logits, _PINNED)
        pinned[..., 0] = 0.0
        requesting = obs[..., : logits.shape[-2], None] > 0.5  # observation block 0: the request flags
        logits = torch.where(requesting, logits, pinned)
        return {Columns.ACTION_DIST_INPUTS: logits.flatten(-2), Columns.EMBEDDINGS: h}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        h = self._embeddings(batch[Columns.OBS]) if embeddings is None else embeddings
        return self.net.critic(h.mean(dim=-2)).squeeze(-1)


def _agent_rows(observation_space: gym.Space | None, action_space: gym.Space | None) -> int:
    """Rows of user features in one agent's observation (1, or 2 with the mean field); 0 for a whole env's."""
    if not isinstance(action_space, gym.spaces.MultiDiscrete) or action_space.shape != (2,):
        return 0
    size = observation_space.shape[0] if isinstance(observation_space, gym.spaces.Box) else None
    rows = {agent_observation_size(mean_field): 1 + mean_field for mean_field in (False, True)}
    if size not in rows:
        raise ValueError(f"one agent's observation has {sorted(rows)} entries (own, mean_field), "
                         f"got {observation_space}")
    return rows[size]


def _module_spec(model_config: Mapping[str, Any] | None) -> RLModuleSpec:
    return RLModuleSpec(module_class=PerUserRLModule, model_config={**MODEL_CONFIG_DEFAULTS, **(model_config or {})})


def _ppo_training(config: PPOConfig, timesteps: int, learning_rate: float, minibatch_size: int,
                  num_epochs: int) -> PPOConfig:
    """PPO at gamma 0 on batches of 512 slots, ``num_epochs`` passes of minibatches of ``minibatch_size``,
    learning rate decaying linearly to 0 at ``timesteps``, clip 0.2, no entropy bonus, no KL penalty."""
    return config.training(
        gamma=0.0, lambda_=0.95, lr=[[0, learning_rate], [timesteps, 0.0]], train_batch_size_per_learner=512,
        minibatch_size=minibatch_size, num_epochs=num_epochs, clip_param=0.2, entropy_coeff=0.0, use_kl_loss=False,
        kl_coeff=0.0, vf_loss_coeff=0.5, vf_clip_param=float("inf"), grad_clip=0.5)


def _rollout_steps(num_envs_per_env_runner: int, num_env_runners: int) -> int:
    """Steps per env runner that make a batch of 512 slots."""
    if num_envs_per_env_runner < 1:
        raise ValueError(f"num_envs_per_env_runner must be >= 1, got {num_envs_per_env_runner}")
    return max(1, 512 // (num_envs_per_env_runner * max(1, num_env_runners)))


def ppo_config(env: str = "AIGCEdge-v0", seed: int = 1, timesteps: int = 100_000, num_env_runners: int = 0,
               num_envs_per_env_runner: int = 8, learning_rate: float = 1e-3, reward_scale: float = 0.15,
               model_config: Mapping[str, Any] | None = None) -> PPOConfig:
    """RLlib PPO on the single env ``env`` with :class:`PerUserRLModule`, the settings of ``examples/cleanrl_ppo.py``.

    Each env runner steps the package's numpy-batched vector env (``vector_entry_point``) with
    ``num_envs_per_env_runner`` sub-envs (batches of 512 slots: 8 sub-envs x 64 steps by default);
    ``num_env_runners=0`` samples in the driver.  Each batch is 10 epochs of 4 minibatches of 128 at a
    learning rate of 1e-3: with ``ppo.yml``'s SB3 settings (128 x 4 steps, 4 epochs of one minibatch,
    5e-3), which SB3 runs with an observation normaliser that RLlib's module has not, one seed in three
    stopped at 0.85 (docs/rllib.md).  ``reward_scale`` is the env's own config field (reward
    ``-reward_scale * slot cost``): 0.15 gives slot rewards of standard deviation near 1 (about -2 to -5),
    where CleanRL's running normalisation puts them; the evaluation scores the unscaled env.
    """
    config = (
        PPOConfig()
        .environment(env, env_config={"config": {"reward_scale": reward_scale}})
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
                     rollout_fragment_length=_rollout_steps(num_envs_per_env_runner, num_env_runners),
                     gym_env_vectorize_mode="vector_entry_point")
        .rl_module(rl_module_spec=_module_spec(model_config))
        .debugging(seed=seed)
    )
    return _ppo_training(config, timesteps, learning_rate, minibatch_size=128, num_epochs=10)


def multi_agent_ppo_config(env_id: str = "AIGCEdge-v0", seed: int = 1, timesteps: int = 100_000,
                           num_env_runners: int = 0, num_envs_per_env_runner: int = 8, learning_rate: float = 1e-3,
                           reward_scale: float = 1.5, observation: str = "mean_field",
                           model_config: Mapping[str, Any] | None = None) -> PPOConfig:
    """RLlib PPO on the PettingZoo view with one policy (:data:`SHARED_POLICY`) shared by every user.

    Each agent observes the view's ``observation`` (``"mean_field"``: its features, the mean over all
    users and the global ones; ``"own"``: its features and the global ones) and gets the team reward
    divided by the number of users (:func:`team_share_env`), so RLlib's episode return (the sum over
    agents) is the single env's return; users without a request are pinned by :class:`PerUserRLModule`.
    PPO settings: :func:`ppo_config`'s, with ``reward_scale`` 1.5, so that each agent's share (the team
    reward / 10 on ``AIGCEdge-v0``) has the single env's scale at 0.15 (docs/rllib.md); RLlib counts the
    minibatches of 128 in agent steps, so each epoch over a batch of 512 slots (5,120 agent steps) takes
    40 of them.
    """
    from ray.tune.registry import register_env

    name = f"aigc-edge-team-share-{env_id}"
    register_env(name, team_share_env)
    config = (
        PPOConfig()
        .environment(name, env_config={"env_id": env_id, "config": {"reward_scale": reward_scale},
                                       "observation": observation})
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
                     rollout_fragment_length=_rollout_steps(num_envs_per_env_runner, num_env_runners))
        .multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=_shared_policy)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={SHARED_POLICY: _module_spec(model_config)}))
        .debugging(seed=seed)
    )
    return _ppo_training(config, timesteps, learning_rate, minibatch_size=128, num_epochs=10)


def _shared_policy(agent_id: Any, episode: Any, **kwargs) -> str:
    return SHARED_POLICY


def team_share_env(env_config: Mapping[str, Any]) -> Any:
    """The PettingZoo view as an RLlib ``MultiAgentEnv``, each agent rewarded ``team reward / N``.

    ``env_config``: ``env_id``, ``config`` and ``observation`` of :func:`aigc_edge_env.multi_agent.parallel_env`.
    """
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from aigc_edge_env.multi_agent import parallel_env

    class TeamShareEnv(ParallelPettingZooEnv):
        def step(self, action_dict):
            obs, rewards, terminated, truncated, infos = super().step(action_dict)
            n_users = len(self.par_env.possible_agents)
            return obs, {agent: r / n_users for agent, r in rewards.items()}, terminated, truncated, infos

    return TeamShareEnv(parallel_env(env_id=env_config.get("env_id", "AIGCEdge-v0"), config=env_config.get("config"),
                                     reward="team", observation=env_config.get("observation", "own")))


def _module_dir(path: Path) -> Path:
    """The one module's directory under an algorithm checkpoint ``path`` (or ``path`` itself if it is a module's)."""
    modules = path / "learner_group" / "learner" / "rl_module"
    if not modules.is_dir():
        return path
    found = sorted(p for p in modules.iterdir() if p.is_dir())
    if len(found) != 1:
        raise ValueError(f"rllib checkpoint {path} holds modules {[p.name for p in found]}: "
                         f"pass one module's directory, {modules}/<module id>")
    return found[0]


class RLlibPolicy:
    """A saved :class:`PerUserRLModule` playing greedily (each user's most likely pair) in the evaluation engine.

    ``path``: an algorithm checkpoint (``Algorithm.save_to_path``) with one module, or a module's
    directory.  A module of the whole env acts on the flat observation; a shared per-agent module
    (the multi-agent config's) acts for every user on that user's agent observation, built from the
    flat one as the multi-agent view builds it (:func:`~aigc_edge_env.spaces.agent_observations`).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise ValueError(f"rllib checkpoint path {path} does not exist")
        module = RLModule.from_checkpoint(_module_dir(path))
        if not isinstance(module, TorchRLModule) or not isinstance(module.observation_space, gym.spaces.Box):
            raise ValueError(f"rllib checkpoint {path} does not hold a torch module of the AIGC env, "
                             f"got {type(module).__name__} with observations {module.observation_space}")
        self.module = module.eval()
        self.dist_cls = module.get_inference_action_dist_cls()
        self.agent_rows = _agent_rows(module.observation_space, module.action_space)

    def reset(self, seed: int | None) -> None:
        """Nothing to reset: the policy is deterministic and keeps no state."""

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        if self.agent_rows:
            observation = agent_observations(observation, observation_n_users(observation.shape[-1]),
                                             mean_field=self.agent_rows == 2)
        with torch.no_grad():
            logits = self.module.forward_inference({Columns.OBS: torch.as_tensor(observation, dtype=torch.float32)})
        action = self.dist_cls.from_logits(logits[Columns.ACTION_DIST_INPUTS]).to_deterministic().sample()
        action = torch.as_tensor(action).numpy()
        return action.T.reshape(-1) if self.agent_rows else action  # per user (offload, level) -> N bits, N levels
