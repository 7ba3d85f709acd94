"""Hyperparameters in rl-baselines3-zoo style YAML, with ``key:value`` overrides from the CLI.

``agents/hyperparams/<algo>.yml`` maps env ids to a dict of settings.  Most keys are keyword
arguments of the SB3 algorithm class; these *settings* are not, and are read by
:mod:`aigc_edge_env.agents.training` instead:

* ``n_envs``: parallel envs; ``n_timesteps``: default training length (env steps).
* ``policy``: SB3 policy name (``MlpPolicy``) or one of the per-user networks of
  :data:`~aigc_edge_env.agents.networks.POLICY_CLASSES`: ``PerUserPolicy`` (PPO and MaskablePPO),
  ``PerUserBoxPolicy`` and ``CapacityPerUserPolicy`` (PPO); their ``policy_kwargs`` are ``hidden_dim``,
  ``n_layers``, ``vf_arch``.
* ``normalize``: ``false``, ``true`` (observations and rewards) or a mapping of
  :class:`~stable_baselines3.common.vec_env.VecNormalize` arguments, e.g. ``{norm_obs: false}``.
* ``vec_env``: ``vector`` (:class:`~aigc_edge_env.agents.vec_env.SB3VectorEnv` over the
  numpy-batched env) or ``dummy`` (SB3's ``DummyVecEnv`` of single envs).
* ``env_wrapper``: ``none``, ``per_user`` (:class:`~aigc_edge_env.agents.wrappers.PerUserDecisionWrapper`;
  ``wrapper_reward``: its ``reward_mode``) or ``priced`` (:class:`~aigc_edge_env.priced.PricedActionWrapper`:
  the action is a per-user energy price, solved by ``exact``; ``wrapper_kwargs``: its ``base_policy``,
  ``price_scale_per_j``, and the training options ``relative_reward`` and ``episode_seeds``).  The priced
  agents' entries are in ``<algo>_priced.yml``, chosen by ``aigc-edge train --wrapper priced``.
* ``behaviour_cloning``: ``{dataset: PATH, epochs, batch_size, learning_rate}``, a new run's policy
  first fitted to a recorded dataset's actions, and for DAgger ``dagger_rounds``, ``dagger_episodes``,
  ``dagger_epochs`` and ``teacher`` (:data:`~aigc_edge_env.agents.behaviour_cloning.BC_DEFAULTS`,
  :mod:`aigc_edge_env.agents.behaviour_cloning`).

Values follow the zoo's conventions where it has one: ``lin_<x>`` is a schedule falling
linearly from ``x`` to 0; ``policy_kwargs`` is a YAML mapping whose ``activation_fn`` is a
name (``tanh``, ``relu``, ``elu``, ``leaky_relu``) instead of the zoo's Python expression.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

__all__ = [
    "HYPERPARAMS_DIR", "HyperparamError", "SETTINGS", "algorithm_kwargs", "check_policy_kwargs", "check_values",
    "checked_number",
    "load_hyperparams", "parse_overrides", "parse_value",
]

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
#: Keys of a hyperparameter entry that are not algorithm keyword arguments.
SETTINGS = ("n_envs", "n_timesteps", "policy", "normalize", "vec_env", "env_wrapper", "wrapper_reward",
            "wrapper_kwargs", "behaviour_cloning")
#: Algorithm arguments ``aigc-edge train`` sets itself (from its command line), so not hyperparameters.
_RESERVED = {"self", "policy", "env", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model"}
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


#: Accepted values of numeric keys: (integer?, low, high, low included?, ``lin_<x>`` schedule allowed?).
#: An integer key takes an integral float too (YAML's ``!!float 2e5``), converted to ``int``.
_NUMERIC: dict[str, tuple[bool, float, float, bool, bool]] = {
    "n_envs": (True, 1, math.inf, True, False),
    "n_timesteps": (True, 1, math.inf, True, False),
    "n_steps": (True, 1, math.inf, True, False),
    "batch_size": (True, 1, math.inf, True, False),
    "n_epochs": (True, 1, math.inf, True, False),
    "buffer_size": (True, 1, math.inf, True, False),
    "learning_starts": (True, 0, math.inf, True, False),
    "train_freq": (True, 1, math.inf, True, False),
    "gradient_steps": (True, -1, math.inf, True, False),
    "target_update_interval": (True, 1, math.inf, True, False),
    "learning_rate": (False, 0, math.inf, False, True),
    "clip_range": (False, 0, math.inf, False, True),
    "gamma": (False, 0, 1, True, False),
    "gae_lambda": (False, 0, 1, True, False),
    "ent_coef": (False, 0, math.inf, True, False),
    "vf_coef": (False, 0, math.inf, True, False),
    "max_grad_norm": (False, 0, math.inf, False, False),
    "tau": (False, 0, 1, False, False),
    "exploration_fraction": (False, 0, 1, True, False),
    "exploration_initial_eps": (False, 0, 1, True, False),
    "exploration_final_eps": (False, 0, 1, True, False),
}


class HyperparamError(ValueError):
    """A hyperparameter file, entry, key or value that cannot be used (the message says which)."""


def parse_value(text: str) -> Any:
    """A CLI value: YAML (``256``, ``true``, ``{net_arch: [64, 64]}``), numbers like ``3e-4`` included."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HyperparamError(f"cannot parse value {text!r}: {exc}") from None
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "3e-4" as a string
        except ValueError:
            return value
    return value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["learning_rate:3e-4", "n_steps:256"]`` -> ``{"learning_rate": 3e-4, "n_steps": 256}``."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition(":")
        if not sep or not key:
            raise HyperparamError(f"hyperparameter override {item!r} is not of the form key:value")
        overrides[key.strip()] = parse_value(text.strip())
    return overrides


def load_hyperparams(
    algo: str, env_id: str, overrides: dict[str, Any] | None = None, directory: Path = HYPERPARAMS_DIR,
    wrapper: str | None = None,
) -> dict[str, Any]:
    """The entry of ``env_id`` in ``<directory>/<algo>.yml`` (``<algo>_<wrapper>.yml`` for a
    ``wrapper``, whose entries must say ``env_wrapper: <wrapper>``), updated with ``overrides``."""
    path = directory / (f"{algo}.yml" if wrapper is None else f"{algo}_{wrapper}.yml")
    if wrapper is not None and not path.exists():
        known = sorted(p.stem.partition("_")[2] for p in directory.glob(f"{algo}_*.yml"))
        raise HyperparamError(f"no hyperparameters for {algo} with wrapper {wrapper!r} ({path} does not exist); "
                              f"wrappers with {algo} entries: {known}")
    try:
        table = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise HyperparamError(f"cannot read hyperparameter file {path}: {exc}") from None
    if not isinstance(table, dict) or env_id not in table:
        available = sorted(table) if isinstance(table, dict) else []
        raise HyperparamError(f"no hyperparameters for env {env_id!r} in {path}; entries: {available}")
    entry = {**table[env_id], **(overrides or {})}
    if wrapper is not None and entry.get("env_wrapper") != wrapper:
        raise HyperparamError(f"{path}: entry {env_id!r} must keep env_wrapper: {wrapper}, "
                              f"got {entry.get('env_wrapper')!r}")
    return entry


def check_values(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """``hyperparams`` with numeric values checked against their type and range (integers made ``int``).

    Raises :class:`HyperparamError` naming the key, the value and what it accepts.
    """
    checked = dict(hyperparams)
    for key, (integer, low, high, low_included, schedule) in _NUMERIC.items():
        if key in checked:
            checked[key] = checked_number(key, checked[key], integer, low, high, low_included, schedule)
    return checked


def checked_number(key: str, value: Any, integer: bool, low: float, high: float, low_included: bool = True,
                   schedule: bool = False) -> Any:
    """``value`` checked as hyperparameter ``key``: a number (an integer when ``integer``) in ``[low, high]``
    (``(low, high]`` unless ``low_included``), or a ``lin_<number>`` schedule when ``schedule``;
    :class:`HyperparamError` naming the key, the range and the value otherwise."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if schedule and isinstance(value, str) and value.startswith("lin_"):
        _schedule(key, value)  # raises for a bad number after lin_
        number = float(value[4:])
    if integer and isinstance(number, float):
        number = int(number) if number.is_integer() else None
    in_range = number is not None and (number >= low if low_included else number > low) and number <= high
    if not in_range:
        kind = "an integer" if integer else "a number"
        bounds = f"{'>=' if low_included else '>'} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
        extra = " or a schedule lin_<number>" if schedule else ""
        raise HyperparamError(f"hyperparameter {key} must be {kind} {bounds}{extra}, got {value!r}")
    return value if isinstance(value, str) else number


def checked_entry(algo: str, hp: Mapping[str, Any], integers: Mapping[str, tuple[int, int]],
                  reals: Mapping[str, tuple[float, float]], others: Iterable[str]) -> dict[str, Any]:
    """An entry of a trainer's own hyperparameter file (``<algo>.yml``) with exactly the keys of ``integers``,
    ``reals`` and ``others``: each integer in its ``[low, high]``, each real in its ``(low, high]`` (``others``
    left to the caller); :class:`HyperparamError` naming the key otherwise."""
    expected = {*integers, *reals, *others}
    if set(hp) != expected:
        raise HyperparamError(f"{algo} hyperparameters must be exactly {sorted(expected)}; "
                              f"missing {sorted(expected - set(hp))}, unknown {sorted(set(hp) - expected)}")
    checked = dict(hp)
    for key, (low, high) in integers.items():
        checked[key] = checked_number(f"{algo}.{key}", hp[key], True, low, high)
    for key, (real_low, real_high) in reals.items():
        checked[key] = checked_number(f"{algo}.{key}", hp[key], False, real_low, real_high, low_included=False)
    return checked


def check_policy_kwargs(policy_class: type, policy_kwargs: Any) -> None:
    """Raise :class:`HyperparamError` when ``policy_kwargs`` holds a key ``policy_class`` does not take."""
    kwargs = _policy_kwargs(policy_kwargs)
    accepted: set[str] = set()
    for cls in policy_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(vars(cls)["__init__"]).parameters.values()
        accepted |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    accepted -= {"self", "observation_space", "action_space", "lr_schedule"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise HyperparamError(f"unknown policy_kwargs {unknown} for {policy_class.__name__}; "
                              f"accepted: {sorted(accepted)}")


def algorithm_kwargs(algorithm: type, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``algorithm(policy, env, **kwargs)`` from a hyperparameter entry.

    Unknown keys raise :class:`HyperparamError` listing the accepted ones.
    """
    accepted = set(inspect.signature(algorithm).parameters) - _RESERVED
    kwargs = {key: value for key, value in hyperparams.items() if key not in SETTINGS}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise HyperparamError(
            f"unknown hyperparameter(s) {unknown} for {algorithm.__name__}; "
            f"accepted: {sorted(accepted | set(SETTINGS))}"
        )
    converted = {key: _schedule(key, value) for key, value in kwargs.items()}
    if "policy_kwargs" in converted:
        converted["policy_kwargs"] = _policy_kwargs(converted["policy_kwargs"])
    return converted


def _schedule(key: str, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            initial = float(value[4:])
        except ValueError:
            raise HyperparamError(f"{key}: bad linear schedule {value!r} (expected lin_<number>)") from None
        return _linear_schedule(initial)
    return value


def _linear_schedule(initial: float) -> Callable[[float], float]:
    def schedule(progress_remaining: float) -> float:
        """``initial`` at the start of training, falling linearly to 0 at the end."""
        return progress_remaining * initial

    return schedule


def _policy_kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HyperparamError(f"policy_kwargs must be a mapping, got {value!r}")
    kwargs = dict(value)
    if "activation_fn" in kwargs:
        name = kwargs["activation_fn"]
        if name not in _ACTIVATIONS:
            raise HyperparamError(f"policy_kwargs.activation_fn {name!r} is not one of {sorted(_ACTIVATIONS)}")
        kwargs["activation_fn"] = _ACTIVATIONS[name]
    return kwargs
