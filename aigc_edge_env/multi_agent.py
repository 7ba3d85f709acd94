"""The env as a PettingZoo ``ParallelEnv``: every user (phone) is an agent.

``parallel_env(env_id="AIGCEdge-v0", config=None, render_mode=None, reward="team", observation="own")``
wraps one :class:`~aigc_edge_env.env.AIGCEdgeEnv` (same ``env_id`` and ``config``
arguments) and steps it with the agents' joint decision, so a seed and a sequence of joint
decisions give exactly the single env's slots, costs and rewards (tested): no cost logic
lives here.  Needs the ``multiagent`` extra (``pip install 'aigc-edge-env[multiagent]'``);
the core never imports PettingZoo.

* **Agents**: ``user_0 .. user_{N-1}``, all present from ``reset()`` to the horizon: an
  agent without a request this slot stays in the game (observation block 0, the request
  flag, is 0) and its action is ignored, as the single env ignores the entries of users
  without a request (a given one is still checked against the action space, as the single
  env checks every entry); it may also be left out of the actions dict.  Every agent truncates
  at the horizon (``horizon_slots`` slots); nobody terminates.
* **Observation** of ``user_n`` (``observation=``): ``"own"``, ``Box(0, 1, (12,), float32)``, its 9
  features (:data:`~aigc_edge_env.spaces.USER_FEATURES`, the single env's blocks 0-8 at index ``n``)
  then the 3 global ones (:data:`~aigc_edge_env.spaces.GLOBAL_FEATURES`); ``"mean_field"``,
  ``Box(0, 1, (21,), float32)``, its 9 features, the mean of the 9 features over all ``N`` users
  (the mean field of Yang et al., ICML 2018: how many users request and how good their channels,
  deadlines and devices are on average, what an edge server can broadcast), then the 3 global ones
  (:func:`~aigc_edge_env.spaces.agent_observations`).  ``state()`` is the single env's flat
  observation (``state_space``), for centralised critics.
* **Action** of ``user_n``: ``MultiDiscrete([2, L])``, ``(offload, level)``: 1 = edge, and
  an index into ``config.step_levels``; entries ``n`` and ``N + n`` of the single env's action.
* **Reward** (``reward=``): ``"team"`` gives every agent the single env's reward,
  ``-reward_scale * slot cost``.  ``"own"`` gives ``user_n`` ``-reward_scale * C_n`` (the
  per-user :attr:`SlotEvaluation.cost <aigc_edge_env.model.SlotEvaluation.cost>`):
  ``C_n`` of a served request includes its own edge compute time ``sqrt(s_n) Q / F_E``,
  ``C_drop`` for a dropped request, 0 without a request.  The compute times of the edge
  users add up to ``Q^2 / F_E``, so the own rewards sum to the team reward (up to float
  rounding).  The split is exact but not an incentive to share: ``C_n`` leaves out the
  time user ``n``'s offloading adds to the other edge users' requests, so selfish
  (independent, own-reward) learners under-price the edge congestion.
* **Infos**: ``user_n``'s outcome of the last slot, ``cost`` (``C_n``), ``served``,
  ``offloaded``, ``dropped`` (plain Python values), and under ``slot`` a copy of the
  single env's ``info`` (the slot totals); empty dicts after ``reset()``.
* ``reset(seed=...)`` seeds as the single env; ``options`` is accepted (PettingZoo's API
  test passes one) and ignored.  ``render()`` with ``render_mode="ansi"`` returns the single
  env's text.  ``pettingzoo.utils.parallel_to_aec`` gives the AEC (turn-based) view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.spaces import agent_observation_size, agent_observations, integer_array

try:
    from pettingzoo import ParallelEnv
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("aigc_edge_env.multi_agent needs PettingZoo: pip install 'aigc-edge-env[multiagent]'") from error

__all__ = ["AIGCEdgeParallelEnv", "OBSERVATION_MODES", "REWARD_MODES", "parallel_env"]

#: The ``reward=`` choices (module docstring).
REWARD_MODES = ("team", "own")
#: The ``observation=`` choices (module docstring).
OBSERVATION_MODES = ("own", "mean_field")


class AIGCEdgeParallelEnv(ParallelEnv[str, np.ndarray, np.ndarray]):
    """One agent per user over one :class:`~aigc_edge_env.env.AIGCEdgeEnv` (the module docstring is the manual)."""

    metadata = {"render_modes": ["ansi"], "name": "aigc_edge_v0", "is_parallelizable": True}

    def __init__(
        self,
        env_id: str = "AIGCEdge-v0",
        config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
        render_mode: str | None = None,
        reward: str = "team",
        observation: str = "own",
    ) -> None:
        if reward not in REWARD_MODES:
            raise ValueError(f"reward must be one of {REWARD_MODES}, got {reward!r}")
        if observation not in OBSERVATION_MODES:
            raise ValueError(f"observation must be one of {OBSERVATION_MODES}, got {observation!r}")
        self.env = AIGCEdgeEnv(config=config, env_id=env_id, render_mode=render_mode)
        self.reward = reward
        self.mean_field = observation == "mean_field"
        self.render_mode = render_mode
        c = self.config = self.env.config
        self.possible_agents = [f"user_{n}" for n in range(c.n_users)]
        self.agents: list[str] = []
        self.observation_spaces = {
            agent: spaces.Box(0.0, 1.0, (agent_observation_size(self.mean_field),), np.float32)
            for agent in self.possible_agents
        }
        self.action_spaces = {agent: spaces.MultiDiscrete([2, c.n_levels]) for agent in self.possible_agents}
        self.state_space = self.env.observation_space
        self._observation: np.ndarray | None = None  # the single env's latest observation

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        observation, _ = self.env.reset(seed=seed)
        self._observation = observation
        self.agents = list(self.possible_agents)
        return self._agent_observations(observation), {agent: {} for agent in self.agents}

    def step(self, actions: Mapping[str, Any]) -> tuple[
        dict[str, np.ndarray], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]
    ]:
        if not self.agents:
            raise RuntimeError("no agents in play: call reset() (before the first step and after the horizon)")
        joint = self._joint_action(actions)
        observation, reward, _, truncated, info = self.env.step(joint)
        self._observation = observation
        evaluation = self.env.last_evaluation
        assert evaluation is not None  # set by every step
        own_cost = evaluation.cost.tolist()
        if self.reward == "team":
            rewards = dict.fromkeys(self.agents, float(reward))
        else:
            rewards = {agent: -self.config.reward_scale * own_cost[n] for n, agent in enumerate(self.possible_agents)}
        served, offloaded, dropped = (x.tolist() for x in (evaluation.served, evaluation.offloaded, evaluation.dropped))
        infos = {
            agent: {"cost": own_cost[n], "served": served[n], "offloaded": offloaded[n], "dropped": dropped[n],
                    "slot": dict(info)}
            for n, agent in enumerate(self.possible_agents)
        }
        observations = self._agent_observations(observation)
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, bool(truncated))
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The single env's flat observation of the current slot (``state_space``)."""
        if self._observation is None:
            raise RuntimeError("call reset() before state()")
        return self._observation.copy()

    def render(self) -> str | None:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    # --- helpers ----------------------------------------------------------------------
    def _agent_observations(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        rows = agent_observations(observation, self.config.n_users, self.mean_field)
        return dict(zip(self.possible_agents, rows, strict=True))

    def _joint_action(self, actions: Mapping[str, Any]) -> np.ndarray:
        """The single env's action from the agents' ``(offload, level)`` pairs (idle agents may be missing)."""
        unknown = sorted(set(actions) - set(self.agents))
        if unknown:
            raise ValueError(f"actions for agents not in play: {unknown} (agents: {self.possible_agents})")
        assert self._observation is not None
        n_users = self.config.n_users
        requesting = self._observation[:n_users] > 0.5  # observation block 0: request flag
        missing = [agent for n, agent in enumerate(self.possible_agents) if requesting[n] and agent not in actions]
        if missing:
            raise ValueError(f"no action for agents with a request: {missing}")
        joint = np.zeros(2 * n_users, dtype=np.int64)  # offload bits, then level indices
        n_levels = self.config.n_levels
        for n, agent in enumerate(self.possible_agents):
            if agent not in actions:
                continue
            action = integer_array(actions[agent], f"action of {agent}")  # checked even where it is ignored
            if action.shape != (2,):
                raise ValueError(f"action of {agent} must be (offload, level) of shape (2,), got shape {action.shape}")
            if action[0] not in (0, 1) or not 0 <= action[1] < n_levels:
                raise ValueError(f"action of {agent} = {action.tolist()} is out of range: offload 0 or 1, "
                                 f"level an index in [0, {n_levels - 1}]")
            if requesting[n]:  # an idle agent's action is ignored, as the single env ignores its entries
                joint[n], joint[n_users + n] = action
        return joint


def parallel_env(
    env_id: str = "AIGCEdge-v0",
    config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
    render_mode: str | None = None,
    reward: str = "team",
    observation: str = "own",
) -> AIGCEdgeParallelEnv:
    """The PettingZoo ``ParallelEnv`` of ``env_id`` (module docstring)."""
    return AIGCEdgeParallelEnv(env_id=env_id, config=config, render_mode=render_mode, reward=reward,
                               observation=observation)
