"""Pretrained policies shipped with the package, one per registered env id, played by name (``pretrained``).

After the rl-baselines3-zoo's trained agents (``rl-trained-agents/<algo>/<env_id>_1/``: the model, its
VecNormalize statistics and the ``config.yml``/``args.yml`` that made it), each policy lives in
``aigc_edge_env/pretrained/<env_id>/`` as package data: a ``card.json`` and the files it lists.  The card
(:data:`CARD_FIELDS`) holds the env config the policy was trained and evaluated under (the env's full
``AIGCEdgeConfig.to_dict()``), the package release that made it, the exact training command, its
hyperparameters and seeds, the training slots and CPU time, and the measured evaluation with its command.
Card kinds (:data:`KINDS`):

* ``sb3``: a stable-baselines3 run (``model.zip`` and ``model.vecnormalize.pkl``), played by
  :class:`aigc_edge_env.agents.policies.ModelPolicy` as a trained run is (:mod:`aigc_edge_env.agents.pretrained`);
  needs the ``agents`` extra (torch);
* ``price_network``: a per-user price network in one ``.npz`` file, played with ``exact`` under the prices
  it predicts (:class:`aigc_edge_env.policies.price_network.PriceNetworkPolicy`); core only;
* ``torch``: a per-user network in the ``torch:PATH`` format (:mod:`aigc_edge_env.policies.torch_module`),
  e.g. one trained on a mixture of user counts (``--algo ppo_mixture``); needs the ``agents`` extra (torch).

A card is refused (:class:`PretrainedError`, one line) when the evaluated env's config differs from the
card's in any field (the fields are named), when the installed release is not the card's (**the rule**:
same ``major.minor`` as the card's ``package_version``; a release that changes the model or the
observation bumps ``minor``, and its cards are re-evaluated and re-stamped), when a listed file is missing
or altered (size and SHA-256 in the card), or when the env id has none (the ids that have one are listed).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from aigc_edge_env.config import AIGCEdgeConfig, make_config
from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.policies.base import Policy

__all__ = [
    "CARD", "CARD_FIELDS", "KINDS", "PRETRAINED", "PretrainedError", "PretrainedPolicy", "available",
    "check_pretrained", "file_entry", "load_pretrained", "release",
]

#: The :func:`~aigc_edge_env.policies.registry.make_policy` name of the env's pretrained policy.
PRETRAINED = "pretrained"
#: The card's file name in each policy's folder.
CARD = "card.json"
#: Card kinds and the module whose absence makes the kind unplayable (with the extra that installs it).
KINDS: dict[str, tuple[str, str] | None] = {"sb3": ("stable_baselines3", "agents"), "price_network": None,
                                            "torch": ("torch", "agents")}
#: The module whose ``load_sb3(folder, card)`` plays an ``sb3`` card.
SB3_LOADER = "aigc_edge_env.agents.pretrained"
#: Fields every card holds.
CARD_FIELDS = ("env_id", "kind", "algo", "files", "config", "package_version", "command", "hyperparams", "seeds",
               "training_slots", "training_cpu_s", "evaluation", "created")


class PretrainedError(ValueError):
    """A pretrained policy that does not exist or does not fit the env, its config or the release (one line)."""


def _folder() -> Path:
    """The folder of the shipped policies (a real folder: the models are read from paths)."""
    return Path(str(files("aigc_edge_env") / "pretrained"))


def release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``0.5.0``; :class:`PretrainedError` if it has none."""
    parts = version.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise PretrainedError(f"unreadable package version {version!r}: expected major.minor[.patch]")
    return int(parts[0]), int(parts[1])


@cache
def available() -> dict[str, dict[str, Any]]:
    """The shipped cards by env id (read once)."""
    cards = {}
    for folder in sorted(_folder().iterdir(), key=lambda entry: entry.name):
        if folder.is_dir() and (folder / CARD).is_file():
            card = json.loads((folder / CARD).read_text())
            missing = [name for name in CARD_FIELDS if name not in card]
            if missing or card["env_id"] != folder.name or card["kind"] not in KINDS:
                raise PretrainedError(f"malformed pretrained card {folder.name}/{CARD}: missing {missing}, "
                                      f"env_id {card.get('env_id')!r}, kind {card.get('kind')!r} "
                                      f"(accepted {list(KINDS)})")
            cards[folder.name] = card
    return cards


def _check_files(env_id: str, card: dict[str, Any]) -> None:
    """Every file the card lists is in the policy's folder with its recorded size and SHA-256."""
    for name, expected in card["files"].items():
        path = _folder() / env_id / name
        if not path.is_file() or file_entry(path) != expected:
            found = "missing" if not path.is_file() else f"{path.stat().st_size} bytes, another SHA-256"
            raise PretrainedError(f"pretrained file {path} is {found}: expected {expected['bytes']} bytes "
                                  f"with SHA-256 {expected['sha256'][:12]}... (reinstall aigc-edge-env)")


def check_pretrained(env_id: str, config: Mapping[str, Any] | AIGCEdgeConfig | None = None) -> dict[str, Any]:
    """The card of ``env_id``'s pretrained policy when it fits ``env_id`` under ``config`` (overrides or a full
    config) and the installed release, its files are whole and its kind can be played here; else
    :class:`PretrainedError`."""
    from aigc_edge_env import __version__

    cards = available()
    if env_id not in cards:
        raise PretrainedError(f"no pretrained policy for {env_id!r}: shipped for {sorted(cards)}")
    card = cards[env_id]
    if release(__version__) != release(card["package_version"]):
        major, minor = release(card["package_version"])
        raise PretrainedError(f"the pretrained policy of {env_id} was made with aigc-edge-env "
                              f"{card['package_version']} and fits its {major}.{minor}.x releases only, "
                              f"not the installed {__version__}: "
                              f"play it with that release, or retrain it ({card['command']})")
    evaluated = make_config(env_id, config).to_dict()
    trained = make_config(env_id, card["config"]).to_dict()
    differ = [name for name in trained if evaluated[name] != trained[name]]
    if differ:
        values = ", ".join(f"{name}={evaluated[name]!r} (trained with {trained[name]!r})" for name in differ)
        raise PretrainedError(f"the pretrained policy of {env_id} does not fit this config: {values}; "
                              "play it under the env's registered config, or train one for this config")
    _check_files(env_id, card)
    requirement = KINDS[card["kind"]]
    if requirement is not None and importlib.util.find_spec(requirement[0]) is None:
        module, extra = requirement
        raise PretrainedError(f"the pretrained policy of {env_id} is a {card['kind']} model: it needs {module}, "
                              f"which is not installed: pip install 'aigc-edge-env[{extra}]'")
    return card


def file_entry(path: Path) -> dict[str, Any]:
    """A card's record of one of its files: size in bytes and SHA-256."""
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def load_pretrained(env_id: str, config: Mapping[str, Any] | AIGCEdgeConfig | None = None) -> Policy:
    """The pretrained policy of ``env_id``, checked by :func:`check_pretrained` against ``config``."""
    card = check_pretrained(env_id, config)
    folder = _folder() / env_id
    if card["kind"] == "price_network":
        from aigc_edge_env.policies.price_network import PriceNetworkPolicy

        (network,) = card["files"]
        return PriceNetworkPolicy.load(folder / network, name=PRETRAINED)
    if card["kind"] == "torch":
        from aigc_edge_env.policies.torch_module import load_torch_policy

        (network,) = card["files"]
        return load_torch_policy(folder / network, name=PRETRAINED)
    # An sb3 card is played by the agents package (torch), which imports the core, never the reverse: the
    # core names its loader by module path, as Gymnasium's entry points name an env (no import cycle).
    return importlib.import_module(SB3_LOADER).load_sb3(folder, card)


class PretrainedPolicy:
    """``make_policy("pretrained")``: the pretrained policy of the env it acts in, resolved at its first
    :meth:`act` from the env's registered id (``env.unwrapped.spec.id``) and config, and again whenever it
    meets an env of another id or config (:class:`PretrainedError` if none fits)."""

    name = PRETRAINED

    def __init__(self) -> None:
        self.seed: int | None = None
        self.fitted: tuple[str, AIGCEdgeConfig] | None = None  # the env id and config the policy was loaded for
        self.policy: Policy | None = None

    def reset(self, seed: int | None) -> None:
        self.seed = seed
        if self.policy is not None:
            self.policy.reset(seed)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        base = unwrapped_env(env)
        if self.fitted is None or base.config is not self.fitted[1] or base.spec is None \
                or base.spec.id != self.fitted[0]:
            self._resolve(base.spec.id if base.spec is not None else None, base.config)
        assert self.policy is not None
        return self.policy.act(env, observation)

    def _resolve(self, env_id: str | None, config: AIGCEdgeConfig) -> None:
        """Load the policy of ``env_id`` under ``config``, unless the one loaded is already that one."""
        if env_id is None:
            raise PretrainedError("the pretrained policy needs the env's registered id: make the env with "
                                  f"gym.make(id), id one of {sorted(available())}")
        if self.fitted is None or self.fitted != (env_id, config):
            self.policy = load_pretrained(env_id, config)
            self.policy.reset(self.seed)
        self.fitted = (env_id, config)
