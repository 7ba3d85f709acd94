"""A plain-torch per-user network saved by any RL stack, played greedily (``make_policy("torch:PATH")``),
through DROO's order-preserving quantisation (``make_policy("quantised:PATH")``) or filling the edge in the
network's order (``make_policy("packed:PATH")``).

**The file format** (``torch.save`` of one dict, read back with ``torch.load(..., weights_only=True)``:
tensors, strings and numbers only, no pickled code):

* ``"format"``: :data:`FORMAT`, ``"version"``: :data:`VERSION`;
* ``"network"``: the network's class, one of :data:`NETWORKS` (today
  :class:`~aigc_edge_env.agents.per_user_net.PerUserActorCritic`);
* ``"kwargs"``: its constructor arguments (``n_users``, ``n_levels``, ``hidden_dim``, ``n_layers``, ``vf_arch``);
* ``"state_dict"``: its weights;
* ``"env_id"``: the env id it was trained on (recorded, not enforced: the check is on the env's shape);
* ``"trained_n_users"`` (optional): the user counts it was trained on (a list; recorded, not enforced).

:func:`save_torch_policy` writes it (``examples/cleanrl_ppo.py`` and ``examples/torchrl_ppo.py`` with
``--save PATH``, and ``aigc-edge train --algo ppo_mixture`` or ``imitation_mixture``); :func:`load_torch_policy`
reads it.  :class:`TorchModulePolicy` plays each user's most likely (offload bit, level) pair in an env of any
number of users (``torch:PATH``), the cheapest of a few offload sets in the order of the network's preference
for the edge (``quantised:PATH``), or the largest such set whose edge steps fit the edge's step capacity
(``packed:PATH``; both :mod:`~aigc_edge_env.policies.quantisation`), and refuses (:class:`TorchPolicyError`,
one line) one whose step levels differ from the network's.
Needs torch (the ``agents`` or ``torchrl`` extra); the core imports this module without it.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np

from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.files import write_atomic
from aigc_edge_env.policies.quantisation import order_preserving_candidates, order_preserving_fill
from aigc_edge_env.spaces import USER_FEATURES, split_observation

if TYPE_CHECKING:
    from torch import nn

    from aigc_edge_env.agents.per_user_net import EquivariantLayer, PerUserActorCritic

__all__ = ["DECODES", "FORMAT", "NETWORKS", "NETWORK_PREFIXES", "TORCH_PREFIX", "VERSION",
           "TorchModulePolicy", "TorchPolicyError", "load_torch_policy", "save_torch_policy"]

#: The :func:`~aigc_edge_env.policies.registry.make_policy` prefix of a saved network's path, played greedily.
TORCH_PREFIX = "torch:"
#: Every prefix of a saved network's path, with how the network's logits become an action (:data:`DECODES`).
NETWORK_PREFIXES = {TORCH_PREFIX: "greedy", "quantised:": "quantised", "packed:": "packed"}
#: How a :class:`TorchModulePolicy` turns the network's pair logits into an action: each user's most likely
#: pair; the cheapest order-preserving candidate; the order-preserving candidate that fills the edge.
DECODES = tuple(NETWORK_PREFIXES.values())
#: The file's ``"format"`` field and the version this release reads and writes.
FORMAT, VERSION = "aigc-edge-torch-policy", 1
#: Network classes a file may name, by the module that defines them (torch; the agents package imports the
#: core, never the reverse, so the core names the module by path).
NETWORKS = {"PerUserActorCritic": "aigc_edge_env.agents.per_user_net"}


class TorchPolicyError(ValueError):
    """A saved network that cannot be read or does not fit the env (one line)."""


def _per_user_net() -> Any:
    """The module of the per-user network (:data:`NETWORKS`); :class:`TorchPolicyError` without torch."""
    try:
        return importlib.import_module(NETWORKS["PerUserActorCritic"])
    except ImportError as exc:
        raise TorchPolicyError(f"a torch:PATH policy needs torch ({exc}): pip install 'aigc-edge-env[agents]'") \
            from None


class TorchModulePolicy:
    """A per-user network (``forward(obs) -> (logits (..., N, 2L), value)``) as a policy of the evaluation
    engine, as ``decode`` (:data:`DECODES`) says: each user's most likely (offload bit, level) pair
    (``greedy``); the cheapest order-preserving candidate
    (:func:`~aigc_edge_env.policies.quantisation.order_preserving_candidates`, valued by the env's
    :meth:`~aigc_edge_env.env.AIGCEdgeEnv.action_costs`; ``quantised``); or the order-preserving candidate that
    fills the edge (:func:`~aigc_edge_env.policies.quantisation.order_preserving_fill`; ``packed``).
    ``ValueError`` for another ``decode``.  The network's weights do not depend on
    the number of users, so it plays an env of any ``N`` (zero-shot outside the counts it was trained on);
    :class:`TorchPolicyError` from :meth:`act` in an env of another number of step levels.

    It decides with a numpy copy of the weights at construction (:class:`_GreedyPass`): the same logits to
    float rounding, 2.5-5.4 times faster than torch's forward on one observation when measured at commit fe179de
    (docs/results.md, section 6; faster since).
    ``evaluate --threads`` limits numpy's BLAS threads as it limits torch's."""

    def __init__(self, net: PerUserActorCritic, name: str = "torch", env_id: str | None = None,
                 decode: str = "greedy") -> None:
        _prefix_of(decode)  # refuses another decode
        self.net, self.name, self.env_id, self.decode = net.eval(), name, env_id, decode
        self.greedy = _GreedyPass(net)

    def reset(self, seed: int | None) -> None:
        """Nothing to reset: the policy is deterministic and keeps no state."""

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        base = unwrapped_env(env)
        config = base.config
        if config.n_levels != self.net.n_levels:
            trained = f" (trained on {self.env_id})" if self.env_id else ""
            raise TorchPolicyError(f"policy {self.name} was built for {self.net.n_levels} step levels{trained}, "
                                   f"not this env's {config.n_levels}: evaluate it on an env of its step levels")
        users, globals_ = split_observation(np.asarray(observation, dtype=np.float32), config.n_users)
        logits = self.greedy.logits(users, globals_)
        if self.decode == "greedy":
            pairs = logits.argmax(-1)
            return np.concatenate([pairs // config.n_levels, pairs % config.n_levels])  # N offload bits, N levels
        has_request = users[:, USER_FEATURES.index("request")] > 0.5
        if self.decode == "packed":
            return order_preserving_fill(logits, has_request, config.step_levels, config.edge_step_capacity)
        candidates = order_preserving_candidates(logits, has_request)
        return candidates[int(np.argmin(base.action_costs(candidates)))]


class _GreedyPass:
    """The actor's forward pass of a :class:`~aigc_edge_env.agents.per_user_net.PerUserActorCritic` in numpy
    (float32): its equivariant layers ``h_n <- tanh(A h_n + B mean_m h_m + c)``, then the shared head.  The
    first layer's input is user ``n``'s features and the global ones (the same for every user), so their
    global part is one vector ``g (A_g + B_g)`` added to every user's."""

    def __init__(self, net: PerUserActorCritic) -> None:
        def array(tensor: Any) -> np.ndarray:
            return tensor.detach().cpu().numpy().astype(np.float32)

        layers = [(array(layer.own.weight.T), array(layer.own.bias), array(layer.pooled.weight.T))
                  for layer in cast("list[EquivariantLayer]", list(net.encoder))]
        self.first: tuple[np.ndarray, ...] | None = None  # the first layer, its global rows summed
        if layers:
            (own, bias, pooled), n_features = layers[0], len(USER_FEATURES)
            self.first = own[:n_features], bias, pooled[:n_features], own[n_features:] + pooled[n_features:]
        self.layers = layers[1:]
        self.head = array(net.actor.linear.weight.T), array(net.actor.linear.bias)

    def logits(self, users: np.ndarray, globals_: np.ndarray) -> np.ndarray:
        """Pair logits ``(N, 2L)`` of one observation's per-user ``(N, 9)`` and global ``(3,)`` features
        (:func:`~aigc_edge_env.spaces.split_observation`, float32)."""
        if self.first is None:  # no equivariant layer: the head reads the features themselves
            h = np.concatenate([users, np.broadcast_to(globals_, (len(users), len(globals_)))], axis=-1)
        else:
            own, bias, pooled, global_weights = self.first
            h = self._layer(users @ own, bias + globals_ @ global_weights, users, pooled)
        for own, bias, pooled in self.layers:
            h = self._layer(h @ own, bias, h, pooled)
        return h @ self.head[0] + self.head[1]

    @staticmethod
    def _layer(own_part: np.ndarray, shared: np.ndarray, h: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """``tanh(own_part + shared + mean_m h_m B)``, in place of ``own_part`` (a fresh product)."""
        own_part += shared + (h.sum(axis=0) * (1.0 / h.shape[0])) @ pooled
        return np.tanh(own_part, out=own_part)


def _prefix_of(decode: str) -> str:
    """The :data:`NETWORK_PREFIXES` prefix of ``decode``; ``ValueError`` for a decode not in :data:`DECODES`."""
    for prefix, way in NETWORK_PREFIXES.items():
        if way == decode:
            return prefix
    raise ValueError(f"decode must be one of {list(DECODES)}, got {decode!r}")


def _network_kwargs(net: PerUserActorCritic) -> dict[str, Any]:
    """The constructor arguments of a :class:`~aigc_edge_env.agents.per_user_net.PerUserActorCritic`."""
    from torch import nn

    widths = [layer.out_features for layer in net.critic if isinstance(layer, nn.Linear)]
    return {"n_users": net.n_users, "n_levels": net.n_levels, "hidden_dim": net.actor.linear.in_features,
            "n_layers": len(net.encoder), "vf_arch": widths[:-1]}


def save_torch_policy(path: str | Path, net: nn.Module, env_id: str, trained_n_users: Sequence[int] = ()) -> None:
    """Write ``net`` (a ``PerUserActorCritic``) trained on ``env_id`` (at the user counts ``trained_n_users``,
    when given) to ``path`` in the module docstring's format, atomically (a reader never sees half a file)."""
    import torch

    network = type(net).__name__
    if network not in NETWORKS:
        raise TorchPolicyError(f"net: a {network} cannot be saved as a torch:PATH policy: accepted {list(NETWORKS)}")
    kwargs = _network_kwargs(cast("PerUserActorCritic", net))
    saved = {"format": FORMAT, "version": VERSION, "network": network, "kwargs": kwargs,
             "state_dict": net.state_dict(), "env_id": env_id}
    if trained_n_users:
        saved["trained_n_users"] = [int(n) for n in trained_n_users]
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    write_atomic(Path(path), buffer.getvalue())


def load_torch_policy(path: str | Path, name: str | None = None, decode: str = "greedy") -> TorchModulePolicy:
    """The network saved at ``path`` as a :class:`TorchModulePolicy` decoding as ``decode`` (:data:`DECODES`) named
    ``name`` (default ``PREFIX:PATH``, the prefix of :data:`NETWORK_PREFIXES` of that decode);
    :class:`TorchPolicyError` if the file is missing or not in the module docstring's format."""
    prefix = _prefix_of(decode)
    module = _per_user_net()
    import torch

    path = Path(path)
    if not path.is_file():
        raise TorchPolicyError(f"{prefix}PATH: no file {path} (write one with examples/cleanrl_ppo.py --save PATH)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a weights-only torch.save
        raise TorchPolicyError(f"{prefix}PATH: {path} is not a torch.save file of weights: {exc}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("version") != VERSION \
            or saved.get("network") not in NETWORKS:
        found = (saved.get("format"), saved.get("version"), saved.get("network")) if isinstance(saved, dict) else \
            type(saved).__name__
        raise TorchPolicyError(f"{prefix}PATH: {path} is not an {FORMAT} file of version {VERSION} with a network of "
                               f"{list(NETWORKS)} (found {found})")
    net = getattr(module, saved["network"])(**saved["kwargs"])
    net.load_state_dict(saved["state_dict"])
    return TorchModulePolicy(net, name or f"{prefix}{path}", saved["env_id"], decode)
