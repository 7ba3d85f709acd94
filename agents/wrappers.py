"""Per-user decisions: the slot's joint action split into one ``Discrete`` choice per request.

DQN needs a ``Discrete`` action space; the env's ``MultiDiscrete([2]*N + [L]*N)`` joint action
has ``(2L)^N`` values.  :class:`PerUserDecisionWrapper` decides the slot one requesting user at
a time, in the order ``user_order`` names (:func:`decision_order`):

* ``"index"``: user-index order, the order the env's repair rule admits edge requests;
* ``"edge_gain"``: the users that gain most from the edge first, the gain being the cheapest
  feasible local cost minus the cheapest edge cost of the user alone on the edge GPU
  (``edge_base_cost + (w_T / F_E) s``, feasible alone; :func:`~aigc_edge_env.model.option_table`),
  ties in index order.  A user decides knowing the earlier users' choices but not the later
  ones', so the congestion it will meet is unknown to it; deciding the users who need the edge
  most first lets them take it and leaves the later users a congestion they can see.  The
  myopic (gamma 0) optimum of the ``"marginal"`` reward, each user taking the choice of least
  marginal cost, scores 0.78 of ``exact``'s improvement over random in index order and 0.93 in
  this order (``AIGCEdge-v0``, 10 held-out episodes; docs/results.md section 4).

* **Action** ``Discrete(2L)``: ``a = offload * L + level``, i.e. ``a // L`` is the offload bit
  (1 = edge) and ``a % L`` the index into ``config.step_levels``.
* **Steps per slot**: one per user with a request; users without a request are skipped.  A slot
  without any request still takes one step, whose action is ignored, so every slot is visible
  to the agent and the episode stays in step with the env's.  The env advances one slot after
  the last requesting user's choice (the *completing* step).
* **Observation** ``Box(0, 1, (9N + 3 + 4N + 1,))``: the env's observation of the slot
  (unchanged during the slot), then (:meth:`SlotChoices.features`)

  | block | size | meaning |
  |-------|------|---------|
  | user being decided | N | one-hot (all zero on the ignored step of an empty slot) |
  | decided | N | 1 for users whose choice is already made this slot |
  | offloaded | N | 1 for decided users sent to the edge |
  | level | N | decided users' level index / (L - 1) (0 when L = 1) |
  | edge steps so far | 1 | decided edge steps / ``S^E_max``, clipped to 1 |

* **Reward** (``reward_mode``), always summing over a slot's steps to the env's slot reward,
  so an episode's return equals the env's for the same decisions:

  - ``"slot_end"``: 0 on intermediate steps, the env's slot reward on the completing step.
  - ``"marginal"``: step ``k`` earns ``-reward_scale * (C_k - C_{k-1})`` where ``C_k`` is the
    slot cost (:func:`~aigc_edge_env.model.evaluate_decision`, repair rule included) of the
    first ``k`` decided users alone (``C_0 = 0``); the completing step earns the env's reward
    plus ``reward_scale * C_{K-1}``, so the sum telescopes to the env's reward.  Each user is
    thus charged the cost it adds, congestion it causes to earlier users included.

* **Info**: ``{}`` on intermediate steps; the env's slot ``info`` on completing steps.
* **Episodes** (``slot_episodes``): ``False``, the env's episodes.  ``True``: every slot is an
  episode of its own, for learners that stop bootstrapping at an episode's end (DQN's TD target):
  the completing step returns ``terminated=True``, and ``reset()`` without a seed or options then
  continues the env's episode with its next slot (the env is reset only when its own episode has
  ended, or when a seed or options are given).  A discounted return then covers the users of one
  slot only, i.e. with ``gamma = 1`` and ``"marginal"`` rewards it is minus the cost the decision
  adds to its slot, later users' congestion included, and nothing of the next slots.  Valid only
  where slots are independent (batteries off): with batteries a decision changes later slots, so
  it is refused there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.model import Decision, SlotProblem, evaluate_decision, option_table
from aigc_edge_env.spaces import integer_array

__all__ = [
    "DECISION_REWARD_MODES", "USER_ORDERS", "PerUserDecisionWrapper", "SlotChoices", "decide_slot", "decision_order",
    "per_user_observation",
]

DECISION_REWARD_MODES: tuple[str, ...] = ("slot_end", "marginal")
USER_ORDERS: tuple[str, ...] = ("index", "edge_gain")
_N_EXTRA_BLOCKS = 4  # one-hot, decided, offloaded, level
#: What :meth:`PerUserDecisionWrapper.step` takes: the ``Discrete(2L)`` choice as an integer or a one-element array.
PerUserAction: TypeAlias = int | np.integer | np.ndarray


def decision_order(problem: SlotProblem, user_order: str = "index") -> np.ndarray:
    """The requesting users of ``problem`` in the order they decide (module docstring)."""
    users = np.flatnonzero(problem.has_request)
    if user_order == "index":
        return users
    if user_order != "edge_gain":
        raise ValueError(f"user_order must be one of {USER_ORDERS}, got {user_order!r}")
    table = option_table(problem)
    local = np.where(table.local_feasible, table.local_cost, np.inf).min(axis=-1)
    edge_alone = table.edge_base_cost + table.congestion_weight * table.levels  # Q^2 = s alone on the GPU
    edge = np.where(table.edge_feasible_alone, edge_alone, np.inf).min(axis=-1)
    with np.errstate(invalid="ignore"):
        gain = np.nan_to_num(local - edge, nan=0.0, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    return users[np.argsort(-gain[users], kind="stable")]


class SlotChoices:
    """The choices made so far in one slot, one requesting user at a time in the order ``user_order`` names."""

    def __init__(self, problem: SlotProblem, user_order: str = "index") -> None:
        self.problem = problem
        self.config: AIGCEdgeConfig = problem.config
        n = problem.n_users
        self.users = decision_order(problem, user_order)
        self.offload = np.zeros(n, dtype=np.int64)
        self.level = np.zeros(n, dtype=np.int64)
        self.decided = np.zeros(n, dtype=bool)
        self._position = 0

    @property
    def current_user(self) -> int | None:
        """Index of the user decided next; ``None`` once the slot is complete."""
        return None if self.complete else int(self.users[self._position])

    @property
    def complete(self) -> bool:
        return self._position >= self.users.size

    def record(self, choice: int) -> None:
        """Record ``choice`` (``offload * L + level``) for the current user."""
        n_levels = self.config.n_levels
        if not 0 <= choice < 2 * n_levels:
            raise ValueError(f"per-user action must lie in [0, {2 * n_levels - 1}], got {choice}")
        user = self.current_user
        if user is None:
            raise RuntimeError("every requesting user of this slot is already decided")
        self.offload[user], self.level[user] = divmod(int(choice), n_levels)
        self.decided[user] = True
        self._position += 1

    def action(self) -> np.ndarray:
        """The env's ``MultiDiscrete`` action of the choices (undecided users: 0, ignored)."""
        return np.concatenate([self.offload, self.level])

    def decided_cost(self) -> float:
        """Slot cost ``C_k`` of the decided users alone (repair rule included)."""
        partial = dataclasses.replace(self.problem, has_request=self.decided.copy())
        levels = np.asarray(self.config.step_levels, dtype=np.int64)
        decision = Decision(offload=self.offload.astype(bool), steps=levels[self.level])
        return float(evaluate_decision(partial, decision).total_cost)

    def features(self) -> np.ndarray:
        """The ``4N + 1`` features appended to the env's observation (module docstring)."""
        c = self.config
        one_hot = np.zeros(self.problem.n_users)
        if not self.complete:
            one_hot[self.current_user] = 1.0
        level = self.decided * self.level / max(c.n_levels - 1, 1)
        edge_steps = np.where(self.decided & (self.offload == 1), np.asarray(c.step_levels)[self.level], 0).sum()
        edge_share = min(1.0, edge_steps / c.edge_step_capacity) if c.edge_step_capacity else 1.0
        return np.concatenate([one_hot, self.decided, self.decided * self.offload, level, [edge_share]])


def per_user_observation(env_observation: np.ndarray, choices: SlotChoices) -> np.ndarray:
    """The wrapper's observation: the env's, then the slot's choices so far (float32)."""
    return np.concatenate([env_observation, choices.features()]).astype(np.float32)


def _per_user_observation_space(env_space: spaces.Box, n_users: int) -> spaces.Box:
    size = env_space.shape[0] + _N_EXTRA_BLOCKS * n_users + 1
    return spaces.Box(low=0.0, high=1.0, shape=(size,), dtype=np.float32)


def decide_slot(
    problem: SlotProblem, env_observation: np.ndarray, choose: Callable[[np.ndarray], int],
    user_order: str = "index",
) -> np.ndarray:
    """The env action of a whole slot, asking ``choose(per_user_obs)`` for each requesting user in turn."""
    choices = SlotChoices(problem, user_order)
    while not choices.complete:
        choices.record(choose(per_user_observation(env_observation, choices)))
    return choices.action()


def _discrete_choice(action: Any) -> int:
    """The integer of a ``Discrete`` action (a scalar or a one-element array), checked as the env checks its own."""
    array = integer_array(action, "per-user action")
    if array.size != 1:
        raise ValueError(f"per-user action must be one integer, got shape {array.shape}")
    return int(array.reshape(()))


class PerUserDecisionWrapper(gym.Wrapper[np.ndarray, PerUserAction, np.ndarray, np.ndarray],
                             gym.utils.RecordConstructorArgs):
    """Turns the env's joint slot action into one ``Discrete(2L)`` step per requesting user.

    See the module docstring for the action, observation and reward layout.
    """

    def __init__(self, env: gym.Env[np.ndarray, np.ndarray], reward_mode: str = "slot_end",
                 user_order: str = "index", slot_episodes: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, reward_mode=reward_mode, user_order=user_order,
                                                 slot_episodes=slot_episodes)  # gym.make(wrapper.spec) rebuilds it
        # Gymnasium (1.x) annotates Wrapper.__init__'s env as Env[WrapperObsType, WrapperActType], the
        # wrapper's own types, where the wrapped env's (ObsType, ActType) are meant.
        super().__init__(env)  # type: ignore[arg-type]
        if reward_mode not in DECISION_REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {DECISION_REWARD_MODES}, got {reward_mode!r}")
        if user_order not in USER_ORDERS:
            raise ValueError(f"user_order must be one of {USER_ORDERS}, got {user_order!r}")
        if not isinstance(env.action_space, spaces.MultiDiscrete):
            raise TypeError(f"PerUserDecisionWrapper needs the env's MultiDiscrete action, got {env.action_space}")
        if not isinstance(env.observation_space, spaces.Box):
            raise TypeError(f"PerUserDecisionWrapper needs the env's Box observation, got {env.observation_space}")
        if not isinstance(slot_episodes, bool):
            raise ValueError(f"slot_episodes must be true or false, got {slot_episodes!r}")
        self._base = unwrapped_env(env)
        config = self._base.config
        if slot_episodes and config.battery_enabled:
            raise ValueError("slot_episodes needs independent slots; with batteries (battery_enabled) a decision "
                             "changes later slots")
        self.reward_mode = reward_mode
        self.user_order = user_order
        self.slot_episodes = slot_episodes
        self.action_space = spaces.Discrete(2 * config.n_levels)
        self.observation_space = _per_user_observation_space(env.observation_space, config.n_users)
        self._env_observation: np.ndarray | None = None
        self._choices: SlotChoices | None = None
        self._decided_cost = 0.0
        self._env_episode_over = True
        self._episode_over = True  # the wrapper's own episode (a slot with slot_episodes): step() needs reset()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if self.slot_episodes and not self._env_episode_over and seed is None and options is None:
            self._episode_over = False
            return self._observation(), {}  # the env's next slot
        observation, info = self.env.reset(seed=seed, options=options)
        self._env_episode_over = self._episode_over = False
        self._start_slot(observation)
        return self._observation(), info

    def step(self, action: PerUserAction) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._choices is None or self._episode_over:
            raise RuntimeError("call reset() before step() (at the start and after an episode ends)")
        choices = self._choices
        previous_cost = self._decided_cost
        if not choices.complete:
            choices.record(_discrete_choice(action))
        reward_scale = self._base.config.reward_scale
        if not choices.complete:
            reward = 0.0
            if self.reward_mode == "marginal":
                self._decided_cost = choices.decided_cost()
                reward = -reward_scale * (self._decided_cost - previous_cost)
            return self._observation(), reward, False, False, {}
        observation, env_reward, terminated, truncated, info = self.env.step(choices.action())
        reward = float(env_reward)
        if self.reward_mode == "marginal":
            reward += reward_scale * previous_cost
        self._env_episode_over = terminated or truncated
        self._start_slot(observation)
        if self.slot_episodes:
            terminated, truncated = True, False  # the slot is the episode; an env episode's end is one too
        self._episode_over = terminated or truncated
        return self._observation(), reward, terminated, truncated, info

    def _start_slot(self, observation: np.ndarray) -> None:
        self._env_observation = observation
        self._choices = SlotChoices(self._base.current_problem(), self.user_order)
        self._decided_cost = 0.0

    def _observation(self) -> np.ndarray:
        """The env's observation of the slot, then its choices so far."""
        if self._env_observation is None or self._choices is None:
            raise RuntimeError("call reset() before step()")
        return per_user_observation(self._env_observation, self._choices)
