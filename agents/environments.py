"""Building the envs agents train and act in: single envs, SB3 vector envs, normalisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

from aigc_edge_env.agents.vec_env import SB3VectorEnv
from aigc_edge_env.agents.wrappers import PerUserDecisionWrapper
from aigc_edge_env.config import SCENARIOS, ConfigError, make_config
from aigc_edge_env.priced import POLICY_KWARGS, TRAINING_KWARGS, PricedActionWrapper
from aigc_edge_env.vector_env import AIGCEdgeVectorEnv

__all__ = [
    "ENV_WRAPPERS", "VEC_ENV_KINDS", "check_env_id", "check_vec_env", "make_env", "make_vec_env",
    "normalize_kwargs", "wrap_normalize",
]

ENV_WRAPPERS = ("none", "per_user", "priced")
VEC_ENV_KINDS = ("vector", "dummy")
#: The ``wrapper_kwargs`` each ``env_wrapper`` takes.
_WRAPPER_KWARGS: dict[str, tuple[str, ...]] = {
    "none": (), "per_user": ("user_order", "slot_episodes"), "priced": POLICY_KWARGS + TRAINING_KWARGS,
}


def check_env_id(env_id: str, config: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` for an unknown env id or bad config overrides (naming them)."""
    if env_id not in SCENARIOS:
        raise ConfigError(f"unknown env id {env_id!r}: accepted {sorted(SCENARIOS)}")
    make_config(env_id, dict(config or {}))


def make_env(
    env_id: str, config: Mapping[str, Any] | None = None, env_wrapper: str = "none", wrapper_reward: str = "slot_end",
    wrapper_kwargs: Mapping[str, Any] | None = None,
) -> gym.Env:
    """One env, ``gym.make(env_id, config=config)``, inside the wrapper ``env_wrapper`` names.

    ``per_user``: :class:`PerUserDecisionWrapper` with ``reward_mode=wrapper_reward`` and
    ``wrapper_kwargs`` (``user_order``, ``slot_episodes``); ``priced``:
    :class:`~aigc_edge_env.priced.PricedActionWrapper` with ``wrapper_kwargs`` (``base_policy``,
    ``price_scale_per_j``, ``relative_reward``, ``episode_seeds``).  ``none`` takes no ``wrapper_kwargs``.
    """
    if env_wrapper not in ENV_WRAPPERS:
        raise ValueError(f"env_wrapper must be one of {ENV_WRAPPERS}, got {env_wrapper!r}")
    if wrapper_kwargs is not None and not isinstance(wrapper_kwargs, Mapping):
        raise ValueError(f"wrapper_kwargs must be a mapping, got {wrapper_kwargs!r}")
    kwargs = dict(wrapper_kwargs or {})
    accepted = _WRAPPER_KWARGS[env_wrapper]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"unknown wrapper_kwargs {unknown} for env_wrapper {env_wrapper!r}; "
                         f"accepted: {list(accepted)}")
    env = gym.make(env_id, config=dict(config or {}))
    if env_wrapper == "per_user":
        env = PerUserDecisionWrapper(env, reward_mode=wrapper_reward, **kwargs)
    elif env_wrapper == "priced":
        env = PricedActionWrapper(env, **kwargs)
    return env


def check_vec_env(kind: str, env_wrapper: str) -> None:
    """Raise ``ValueError`` for an unknown ``vec_env`` kind or one that cannot apply ``env_wrapper``."""
    if kind not in VEC_ENV_KINDS:
        raise ValueError(f"vec_env must be one of {VEC_ENV_KINDS}, got {kind!r}")
    if kind == "vector" and env_wrapper != "none":
        raise ValueError(f"vec_env 'vector' cannot apply env_wrapper {env_wrapper!r}; use vec_env 'dummy'")


def make_vec_env(
    env_id: str,
    config: Mapping[str, Any] | None,
    n_envs: int,
    kind: str = "vector",
    env_wrapper: str = "none",
    wrapper_reward: str = "slot_end",
    wrapper_kwargs: Mapping[str, Any] | None = None,
) -> VecEnv:
    """``n_envs`` envs as an SB3 ``VecEnv`` with episode monitoring (``info["episode"]``).

    ``kind="vector"`` steps them as one numpy batch (:class:`SB3VectorEnv`); it does not
    support env wrappers.  ``kind="dummy"`` is SB3's ``DummyVecEnv`` of :func:`make_env` envs.
    """
    check_vec_env(kind, env_wrapper)
    if kind == "vector":
        vector_env = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                                  config=dict(config or {}))
        if not isinstance(vector_env, AIGCEdgeVectorEnv):
            raise TypeError(f"vec_env 'vector' needs an AIGC edge env id, got {env_id!r}")
        return VecMonitor(SB3VectorEnv(vector_env))
    return DummyVecEnv([lambda: Monitor(make_env(env_id, config, env_wrapper, wrapper_reward, wrapper_kwargs))]
                       * n_envs)


def normalize_kwargs(normalize: Any, gamma: float | None) -> dict[str, Any] | None:
    """``VecNormalize`` arguments for the ``normalize`` hyperparameter (``None``: no normalisation).

    Like the zoo, the return normalisation uses the algorithm's discount ``gamma``.
    """
    if normalize is False or normalize is None:
        return None
    kwargs = {} if normalize is True else dict(normalize)
    if gamma is not None:
        kwargs.setdefault("gamma", gamma)
    unknown = set(kwargs) - {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
    if unknown:
        raise ValueError(f"normalize: unknown VecNormalize argument(s) {sorted(unknown)}")
    return kwargs


def wrap_normalize(venv: VecEnv, kwargs: dict[str, Any] | None) -> VecEnv:
    """``venv`` inside ``VecNormalize(**kwargs)``, or unchanged when ``kwargs`` is None."""
    return venv if kwargs is None else VecNormalize(venv, **kwargs)
