"""Trained SB3 models as policies of the evaluation engine (:class:`aigc_edge_env.policies.base.Policy`).

:class:`ModelPolicy` acts in the plain single env, so trained agents face the same slots as
the solvers: joint-action models (PPO, MaskablePPO, the latter under the env's
``action_masks()``) predict the slot action at once; per-user models (DQN) are asked once
per requesting user through :func:`~aigc_edge_env.agents.wrappers.decide_slot`, exactly as in
their training wrapper; priced models (``env_wrapper: priced``) predict per-user price
corrections that :class:`~aigc_edge_env.priced.ResidualPricePolicy` turns into the slot's
decision, by the same code as their training wrapper.  Observations go through the run's frozen
VecNormalize statistics; actions are deterministic, so ``reset`` only restarts a priced
policy's slot clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.environments import make_env
from aigc_edge_env.agents.runs import (
    IMITATION_MIXTURE_ALGO,
    MIXTURE_ALGOS,
    PPO_MIXTURE_ALGO,
    PRICE_NETWORK_ALGO,
    RUN_RECORD,
    RunError,
    TrainedModel,
    load_trained,
    model_file,
    read_record,
)
from aigc_edge_env.agents.wrappers import decide_slot
from aigc_edge_env.config import make_config
from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.policies.base import Policy
from aigc_edge_env.policies.price_network import PriceNetworkPolicy
from aigc_edge_env.priced import ResidualPricePolicy, policy_kwargs

__all__ = ["ModelPolicy", "load_model_policy"]


class ModelPolicy:
    """A trained SB3 model as a policy of the evaluation engine (see the module docstring)."""

    def __init__(
        self, model: BaseAlgorithm, normalizer: VecNormalize | None, masked: bool, env_wrapper: str = "none",
        wrapper_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.normalizer = normalizer
        self.masked = masked
        self.per_user = env_wrapper == "per_user"
        self.user_order = dict(wrapper_kwargs or {}).get("user_order", "index") if self.per_user else "index"
        self.priced = (ResidualPricePolicy(price_action=self._predict, **policy_kwargs(wrapper_kwargs))
                       if env_wrapper == "priced" else None)

    @classmethod
    def from_trained(cls, trained: TrainedModel) -> ModelPolicy:
        spec = ALGORITHMS[trained.record["algo"]]
        hp = trained.record["hyperparams"]
        return cls(trained.model, trained.normalizer, spec.masked, hp.get("env_wrapper", "none"),
                   hp.get("wrapper_kwargs"))

    def reset(self, seed: int | None) -> None:
        """The model acts deterministically and keeps no state across slots; a priced policy restarts its clock."""
        if self.priced is not None:
            self.priced.reset(seed)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        if self.priced is not None:
            return self.priced.act(env, observation)
        base = unwrapped_env(env)
        if self.per_user:
            return decide_slot(base.current_problem(), observation, lambda obs: int(self._predict(obs)),
                               self.user_order)
        return self._predict(observation, base.action_masks() if self.masked else None)

    def _predict(self, observation: np.ndarray, action_masks: np.ndarray | None = None) -> np.ndarray:
        model_observation = observation if self.normalizer is None else self.normalizer.normalize_obs(observation)
        # only MaskablePPO's predict takes the masks
        kwargs: dict[str, Any] = {"action_masks": action_masks} if self.masked else {}
        action, _ = self.model.predict(model_observation, deterministic=True, **kwargs)
        return action


def load_model_policy(path: Path, env_id: str, config: Mapping[str, Any] | None = None) -> Policy:
    """The policy of the model at ``path`` (run directory or ``.zip``; a price network's run directory or
    ``.npz``: :class:`~aigc_edge_env.policies.price_network.PriceNetworkPolicy`; a mixture run's directory or
    ``policy.pt``: its network played as :data:`RUN_DECODES` says), checked against ``env_id``.

    Raises :class:`~aigc_edge_env.agents.runs.RunError` naming the path when the model is
    missing or corrupt, when its observation or action space differs from the env's
    (seen through the run's own wrapper), or when the env's step levels differ from those it
    was trained with (the same action would ask for other step counts).
    """
    network = _network_run(Path(path))
    if network is not None and network[0] in MIXTURE_ALGOS:
        return _load_torch_network(network[1], RUN_DECODES[network[0]])
    if network is not None:
        return _load_price_network(network[1], env_id, config)
    trained = load_trained(path)
    trained_levels = list(trained.record["env_config"]["step_levels"])
    levels = list(make_config(env_id, dict(config or {})).step_levels)
    if levels != trained_levels:
        raise RunError(f"model {trained.path} was trained with step levels {trained_levels}, "
                       f"but {env_id} with this config has {levels}")
    hp = trained.record["hyperparams"]
    env = make_env(env_id, config, hp.get("env_wrapper", "none"), hp.get("wrapper_reward", "slot_end"),
                   hp.get("wrapper_kwargs"))
    try:
        for kind in ("observation_space", "action_space"):
            expected, found = getattr(env, kind), getattr(trained.model, kind)
            if expected.shape != found.shape or type(expected) is not type(found):
                raise RunError(f"model {trained.path} (trained on {trained.record['env_id']}) has {kind} {found}, "
                               f"but {env_id} with this config needs {expected}")
    finally:
        env.close()
    return ModelPolicy.from_trained(trained)


def _network_run(path: Path) -> tuple[str, Path] | None:
    """``(algo, network file)`` when ``path`` is a price network's or a mixture run directory or a file
    inside one, else None."""
    run_dir = path if path.is_dir() else path.parent
    if not (run_dir / RUN_RECORD).exists():
        return None
    algo = read_record(run_dir)["algo"]
    if algo not in (PRICE_NETWORK_ALGO, *MIXTURE_ALGOS):
        return None
    return algo, model_file(path)


#: How ``--runs`` plays the network of each kind of mixture run: PPO's greedily; the imitation network by filling
#: the edge in its order (``packed:PATH``), as greedily it miscounts the users the edge can take
#: (docs/results.md, section 6).
RUN_DECODES = {PPO_MIXTURE_ALGO: "greedy", IMITATION_MIXTURE_ALGO: "packed"}


def _load_torch_network(path: Path, decode: str) -> Policy:
    """The per-user network of a mixture run played as ``decode``, named after its run directory."""
    from aigc_edge_env.policies.torch_module import TorchPolicyError, load_torch_policy

    try:
        return load_torch_policy(path, name=path.parent.name, decode=decode)
    except TorchPolicyError as exc:
        raise RunError(str(exc)) from None


def _load_price_network(path: Path, env_id: str, config: Mapping[str, Any] | None) -> PriceNetworkPolicy:
    """The price network at ``path``, for an env with batteries (its prices mean nothing without)."""
    if not make_config(env_id, dict(config or {})).battery_enabled:
        raise RunError(f"price network {path} sets battery energy prices, but {env_id} with this config has no "
                       "batteries (battery_enabled false)")
    if not path.exists():
        raise RunError(f"no price network file at {path} (an unfinished run?)")
    try:
        return PriceNetworkPolicy.load(path, name=path.parent.name)
    except (OSError, KeyError, ValueError) as exc:
        raise RunError(f"cannot load price network {path}: {exc}") from None
