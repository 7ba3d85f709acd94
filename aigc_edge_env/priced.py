"""Acting through the optimiser: an env whose action is a per-user energy price, solved by ``exact``.

The learning-to-optimise idea of DROO / LyDROO (Huang, Bi, Zhang, IEEE TMC 2020; Bi et al.,
IEEE TWC 2021), with prices instead of offload bits: the agent says what a joule of each
phone's battery is worth this slot, and the per-slot solver does the combinatorics under those
prices (:attr:`~aigc_edge_env.model.SlotProblem.energy_price_per_j`, a term of what the solver
minimises, never of the env's reward).  The agent only has to learn the inter-slot part the
solver cannot see; the hindsight bound's dual (:func:`~aigc_edge_env.baselines.hindsight_bound`)
is exactly such a price per user and slot, and its clairvoyant plan closes 0.94 of the
myopic-to-hindsight gap (docs/results.md section 3).

**Residual on a tuned rule.**  The price is a correction of a hand rule of the evaluation engine,

    price_n = max(0, base_n(t) + price_scale_per_j * a_n),   a_n in [-1, 1]

where ``base`` is a priced policy of :func:`~aigc_edge_env.policies.registry.make_policy` (default
:data:`BASE_POLICY`, the decaying price ``1.1 (1 - t/H)`` per J tuned on training seeds, the
best hand rule on held-out episodes; ``mpc``, re-planning on sampled futures, is a base too:
:mod:`aigc_edge_env.policies.mpc`).  Why a residual: a zero action *is* the tuned rule (the
same prices, the same solver, the same decisions, bit for bit), and PPO's Gaussian policy starts
with a mean near 0 (SB3 initialises the action layer with gain 0.01), so training starts from
the best rule known instead of from random prices, and learns corrections per user (its battery,
its clock) and per slot.  Why additive and not multiplicative (``base * exp(k a)``): the decaying
base is 0 at the horizon, where a multiplicative correction could not raise a price, and the
dual prices of the hindsight bound stay positive to the end when a battery binds there.  The
clip at 0 keeps prices non-negative (a negative price would reward spending energy).

**Spaces.**  Action ``Box(-1, 1, (N,), float32)``: one correction per user (users without a
request: ignored by the solver).  An action of another shape, with NaN or outside the box raises
``ValueError`` (SB3 clips its Gaussian samples to the box before stepping).  Observation: the
env's unchanged (``Box(0, 1, (9N + 3,))``): it already holds each user's battery level (block 8)
and the time in the episode (last entry), the two things the base rules read, plus the user's
device speed and energy per step (blocks 4, 5), which say how much a joule is worth to it.

**Reward, info, episode**: the env's (the slot reward ``-reward_scale * cost``, so returns are
comparable with every other policy's; ``info`` gains ``energy_price_per_j``, the prices played,
as a list).  The wrapped env decides and steps one slot per step; episodes end at the env's
horizon.

**Training options** (both off by default; :data:`TRAINING_KWARGS`).  Episode returns differ by
about 150 from one episode to the next while a useful price correction is worth a few units per
episode, so PPO's advantages mostly compare episodes, not prices.  Two options make them compare
prices:

* ``relative_reward=True``: the reward is the env's minus the base rule's reward in the same
  slot of the same episode (the base rule played alone from the same ``reset`` seed, its
  per-slot rewards computed once per seed and cached: :func:`base_rule_rewards`).  The base
  rule's episode depends on the episode's seed only, never on the agent's actions, so the shift
  of the episode return is independent of the policy: the optimal policy is unchanged, and a
  zero action earns exactly 0 in every slot.  The episode return becomes "agent minus rule"
  (per-episode spread about 5 instead of 150, docs/results.md section 3); ``info`` keeps the
  env's reward as ``env_reward`` and its cost as ``cost``.
  Without ``episode_seeds`` every seedless reset (SB3's) draws a new episode, so the rule is
  replayed for each one: training then solves twice as many slots.
* ``episode_seeds=K``: every ``reset`` plays one of the episodes ``reset(seed=k)``, ``k`` drawn
  uniformly from ``0 .. K-1`` (a ``reset(seed=s)`` seeds that draw): common random numbers, so each
  training episode comes back many times and the base rule's rewards on it are computed once.

Evaluation plays the trained policy in the plain env (:class:`ResidualPricePolicy`), so neither
option changes how an agent is scored.

:class:`ResidualPricePolicy` is the same rule as a policy of the evaluation engine, given a
function from observation to action (a trained model in :mod:`aigc_edge_env.agents.policies`);
the wrapper uses it too, so training and evaluation decide by the same code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aigc_edge_env.checks import is_count, is_finite_number
from aigc_edge_env.config import AIGCEdgeConfig
from aigc_edge_env.env import AIGCEdgeEnv, unwrapped_env
from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.model import Decision, SlotProblem
from aigc_edge_env.policies.pricing import PricedPolicy
from aigc_edge_env.policies.registry import make_policy

__all__ = ["BASE_POLICY", "POLICY_KWARGS", "PRICE_SCALE_PER_J", "TRAINING_KWARGS", "PricedActionWrapper",
           "ResidualPricePolicy", "base_rule_rewards", "check_price_action", "policy_kwargs"]

#: The default base rule: the decaying shadow price tuned on training seeds 0-19 (docs/results.md section 3).
BASE_POLICY = "exact+price1.1(1-t/H)"
#: The default correction per unit of action (cost per J): about half the base's initial price.
PRICE_SCALE_PER_J = 0.5
#: Arguments of the wrapper that define the price (shared with :class:`ResidualPricePolicy`).
POLICY_KWARGS = ("base_policy", "price_scale_per_j")
#: Arguments of the wrapper that only shape training (module docstring).
TRAINING_KWARGS = ("relative_reward", "episode_seeds")


def policy_kwargs(wrapper_kwargs: Any) -> dict[str, Any]:
    """The :data:`POLICY_KWARGS` among the wrapper's arguments: what a trained policy needs to act."""
    return {key: value for key, value in dict(wrapper_kwargs or {}).items() if key in POLICY_KWARGS}


@functools.lru_cache(maxsize=4096)
def base_rule_rewards(config: AIGCEdgeConfig, base_policy: str, seed: int) -> np.ndarray:
    """The per-slot rewards of ``base_policy`` (a :func:`make_policy` name) on the episode
    ``reset(seed=seed)`` of ``config`` (read-only array; cached: a pure function of its arguments)."""
    episode = run_episode(AIGCEdgeEnv(config=config), make_policy(base_policy), seed)
    rewards = -config.reward_scale * np.asarray(episode.per_slot["cost"], dtype=np.float64)  # the env's formula
    rewards.setflags(write=False)
    return rewards


def check_price_action(action: Any, n_users: int) -> np.ndarray:
    """``action`` as a float64 array ``(n_users,)`` in ``[-1, 1]``; ``ValueError`` saying what is wrong otherwise."""
    try:
        array = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"price action must be {n_users} numbers in [-1, 1], got {action!r}") from None
    if array.shape != (n_users,):
        raise ValueError(f"price action must have shape ({n_users},), got {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(np.abs(array) > 1.0):
        raise ValueError(f"price action entries must be finite and in [-1, 1], got {array}")
    return array


class ResidualPricePolicy(PricedPolicy):
    """The base rule's prices plus ``price_scale_per_j * action`` per user, clipped at 0 (module docstring).

    ``price_action(observation)`` gives the action of each slot (an array ``(N,)`` in [-1, 1]);
    without it, the action set by :meth:`set_action` is played (the wrapper's way).
    """

    def __init__(
        self,
        base_policy: str = BASE_POLICY,
        price_scale_per_j: float = PRICE_SCALE_PER_J,
        price_action: Callable[[np.ndarray], np.ndarray] | None = None,
        name: str | None = None,
    ) -> None:
        base = make_policy(base_policy) if isinstance(base_policy, str) else None
        if not isinstance(base, PricedPolicy):
            raise ValueError(f"base_policy must name a priced policy of make_policy ('<solver>+price<λ>', "
                             f"'<solver>+price<λ>(1-t/H)', 'lyapunov(...)', 'mpc(...)'), got {base_policy!r}")
        if not (is_finite_number(price_scale_per_j) and float(price_scale_per_j) >= 0):
            raise ValueError(f"price_scale_per_j must be a finite number >= 0 (cost per J), got {price_scale_per_j!r}")
        super().__init__(base.solve, name or f"residual on {base_policy}")
        self.base = base
        self.price_scale_per_j = float(price_scale_per_j)
        self.price_action = price_action
        self.action: np.ndarray | None = None
        self.last_prices_per_j: np.ndarray | None = None

    def reset(self, seed: int | None) -> None:
        super().reset(seed)
        self.base.reset(seed)

    def set_action(self, action: np.ndarray) -> None:
        """The action of the next slot (checked by :func:`check_price_action` against the problem's users)."""
        self.action = np.asarray(action, dtype=np.float64)

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        action = self.price_action(observation) if self.price_action is not None else self.action
        if action is None:
            raise RuntimeError("ResidualPricePolicy needs price_action or set_action() before each slot")
        action = check_price_action(action, problem.n_users)
        base = np.asarray(self.base.prices_per_j(problem, observation), dtype=np.float64)
        self.last_prices_per_j = np.maximum(base + self.price_scale_per_j * action, 0.0)
        return self.last_prices_per_j

    def observe(self, env: Any) -> None:
        self.base.observe(env)

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        self.base.slot_index = self.slot_index  # rules that count slots see the same clock
        return super().decide(problem, observation)


class PricedActionWrapper(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray], gym.utils.RecordConstructorArgs):
    """The battery env with a per-user energy price correction as its action (module docstring).

    ``base_policy`` (a priced :func:`~aigc_edge_env.policies.registry.make_policy` name) and
    ``price_scale_per_j`` (cost per J per unit of action, >= 0) define the price;
    ``relative_reward`` (bool) and ``episode_seeds`` (None or an integer >= 1) shape training
    (module docstring).  A bad value raises ``ValueError`` naming it.
    """

    def __init__(self, env: gym.Env, base_policy: str = BASE_POLICY, price_scale_per_j: float = PRICE_SCALE_PER_J,
                 relative_reward: bool = False, episode_seeds: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, base_policy=base_policy, price_scale_per_j=price_scale_per_j,
                                                 relative_reward=relative_reward, episode_seeds=episode_seeds)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.MultiDiscrete) or not hasattr(env.unwrapped, "current_problem"):
            raise TypeError(f"PricedActionWrapper needs an AIGC edge env (MultiDiscrete slot action), got {env}")
        if not isinstance(relative_reward, bool):
            raise ValueError(f"relative_reward must be true or false, got {relative_reward!r}")
        if episode_seeds is not None and not is_count(episode_seeds, 1):
            raise ValueError(f"episode_seeds must be None or an integer >= 1, got {episode_seeds!r}")
        self.policy = ResidualPricePolicy(base_policy, price_scale_per_j)
        self.base_policy = base_policy
        self.relative_reward = relative_reward
        self.episode_seeds = episode_seeds
        self._base_rewards: np.ndarray | None = None  # the base rule's per-slot rewards (relative_reward)
        self._slot = 0
        base = unwrapped_env(env)
        self.config: AIGCEdgeConfig = base.config
        self.n_users = int(base.config.n_users)
        self.action_space = spaces.Box(-1.0, 1.0, (self.n_users,), dtype=np.float32)
        self._observation: np.ndarray | None = None
        self._policy_seeds = np.random.default_rng()  # reseeded by reset(seed=...)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:  # the base policy's seed; later resets without one (SB3's) draw from it
            self._policy_seeds = np.random.default_rng(seed)
        if self.episode_seeds is not None:  # common random numbers: an episode of the pool
            seed = int(self._policy_seeds.integers(self.episode_seeds))
        elif self.relative_reward and seed is None:  # an explicit seed, so that the base rule can replay it
            seed = int(self._policy_seeds.integers(2**31))
        observation, info = self.env.reset(seed=seed, options=options)
        policy_seed = seed if seed is not None else int(self._policy_seeds.integers(2**63))
        self.policy.reset(policy_seed)
        if self.relative_reward:  # the base rule alone on this episode (run_episode seeds it the same way)
            self._base_rewards = base_rule_rewards(self.config, self.base_policy, policy_seed)
        self._slot = 0
        self._observation = observation
        return observation, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._observation is None:
            raise RuntimeError("call reset() before step()")
        self.policy.set_action(check_price_action(action, self.n_users))
        env_action = self.policy.act(self.env, self._observation)
        observation, reward, terminated, truncated, info = self.env.step(env_action)
        self._observation = observation
        prices = self.policy.last_prices_per_j
        info = {**info, "energy_price_per_j": [] if prices is None else [float(p) for p in prices]}
        if self._base_rewards is not None:
            info["env_reward"] = float(reward)
            reward = float(reward) - float(self._base_rewards[self._slot])
        self._slot += 1
        return observation, float(reward), terminated, truncated, info
