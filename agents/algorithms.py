"""The learning algorithms this package trains, and what each needs from the env."""

from __future__ import annotations

from dataclasses import dataclass

from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from aigc_edge_env.agents.networks import POLICY_CLASSES

__all__ = ["ALGORITHMS", "AlgorithmSpec", "IncompatibleEnvError"]


class IncompatibleEnvError(ValueError):
    """An algorithm cannot act in the (wrapped) env's action space; the message says why."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """An SB3 algorithm and its requirements.

    ``masked``: acts under the env's ``action_masks()`` (sb3-contrib MaskablePPO).
    ``discrete_only``: needs a ``Discrete`` action space (DQN), i.e. the per-user wrapper.
    """

    name: str
    cls: type[BaseAlgorithm]
    masked: bool = False
    discrete_only: bool = False

    def check_action_space(self, action_space: spaces.Space, env_wrapper: str) -> None:
        """Raise :class:`IncompatibleEnvError` when this algorithm cannot act in ``action_space``."""
        if self.discrete_only and not isinstance(action_space, spaces.Discrete):
            raise IncompatibleEnvError(
                f"{self.name} needs a Discrete action space but the env (env_wrapper={env_wrapper!r}) has "
                f"{action_space}; use the per-user wrapper (hyperparameter env_wrapper:per_user)"
            )
        if self.masked and env_wrapper != "none":
            raise IncompatibleEnvError(
                f"{self.name} acts under the env's action_masks(), which env_wrapper={env_wrapper!r} does not "
                "provide; use env_wrapper:none"
            )


    def resolve_policy(self, name: str) -> str | type:
        """The policy argument for ``cls``: an SB3 alias (``MlpPolicy``) or this package's class of that name.

        Raises :class:`IncompatibleEnvError` for a name neither SB3 nor this package has for the algorithm.
        """
        by_algorithm = POLICY_CLASSES.get(name, {})
        if self.name in by_algorithm:
            return by_algorithm[self.name]
        if name in self.cls.policy_aliases:
            return name
        custom = sorted(n for n, by_algo in POLICY_CLASSES.items() if self.name in by_algo)
        known = sorted(self.cls.policy_aliases) + custom
        raise IncompatibleEnvError(f"{self.name} has no policy {name!r}; accepted: {known}")


#: Algorithm name (the ``--algo`` of ``aigc-edge train``) -> spec.
ALGORITHMS: dict[str, AlgorithmSpec] = {
    "ppo": AlgorithmSpec("ppo", PPO),
    "maskable_ppo": AlgorithmSpec("maskable_ppo", MaskablePPO, masked=True),
    "dqn": AlgorithmSpec("dqn", DQN, discrete_only=True),
}
