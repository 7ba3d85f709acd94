"""A learned pricing rule: a per-user network maps each user's state to its energy price, ``exact`` decides.

The amortised planner of the battery scenario.  ``mpc`` (:mod:`aigc_edge_env.policies.mpc`)
prices each user's joule by planning on a sampled future, 20-30 times ``exact``'s time per
decision; :class:`PriceNetworkPolicy` learns that map once (imitation of ``mpc``'s prices with
DAgger, :mod:`aigc_edge_env.agents.price_imitation`) and then decides each slot with one small
forward pass and ``exact`` under the predicted prices: the same decision rule as every priced
policy (:class:`~aigc_edge_env.policies.pricing.PricedPolicy`), scored with the true costs.

The network is a DeepSets-style per-user map (the same weights for every user, so it works
for any number of users): user ``n``'s input is :func:`price_features` (its 9 observation
features, three battery-budget features, the 3 global features and the mean of the users' 9
features), then fully connected layers with ``tanh`` and a ``softplus`` output in cost per J
(prices are never negative).  Inference is numpy only (no torch): a trained network is one
``.npz`` file, :meth:`PriceNetworkPolicy.save` / :meth:`PriceNetworkPolicy.load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aigc_edge_env.files import write_npz
from aigc_edge_env.model import SlotProblem
from aigc_edge_env.policies.pricing import PricedPolicy
from aigc_edge_env.spaces import GLOBAL_FEATURES, USER_FEATURES, split_observation

if TYPE_CHECKING:
    from aigc_edge_env.baselines import Solver

__all__ = ["FEATURES_VERSION", "N_PRICE_FEATURES", "PriceNetworkPolicy", "price_features"]

#: Version of :func:`price_features`; a saved network records the version it was trained on.
FEATURES_VERSION = 1
#: Inputs per user: user features, the budget features, global features, the users' mean features.
N_PRICE_FEATURES = 2 * len(USER_FEATURES) + 3 + len(GLOBAL_FEATURES)


def price_features(problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
    """The network's inputs ``(N, N_PRICE_FEATURES)`` for the slot ``problem`` observed as ``observation``.

    Besides the observation (docs/model.md, "Observation"), three features per user state its
    energy budget in the battery's units: ``r = 1 - t/H`` (the share of the episode left), the
    expected energy to come ``(b_n + E[h] r H) / C`` (battery plus expected harvest, over the
    capacity ``C``), and ``log1p`` of that budget per remaining slot over the user's energy
    per step ``E^loc_n`` (how many local steps per slot the user can afford till the end), /5.
    """
    c = problem.config
    user, global_ = split_observation(np.asarray(observation, dtype=np.float64), problem.n_users)
    remaining = 1.0 - float(global_[-1])
    battery_j = np.where(np.isfinite(problem.battery_j), problem.battery_j, c.battery_capacity_j)
    to_come_j = battery_j + 0.5 * sum(c.harvest_j_range) * remaining * c.horizon_slots
    per_slot_steps = to_come_j / (max(remaining * c.horizon_slots, 1.0) * problem.local_step_energy_j)
    budget = np.stack([np.full(problem.n_users, remaining), to_come_j / c.battery_capacity_j,
                       np.log1p(per_slot_steps) / 5.0], axis=-1)
    n = problem.n_users
    return np.concatenate([user, budget, np.broadcast_to(global_, (n, global_.size)),
                           np.broadcast_to(user.mean(axis=0), user.shape)], axis=-1)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class PriceNetworkPolicy(PricedPolicy):
    """``solve`` (default ``exact``) under the prices of a per-user network (module docstring).

    ``weights`` and ``biases`` are the layers' ``(in, out)`` matrices and ``(out,)`` vectors,
    the last layer with one output; hidden layers use ``tanh``, the output ``softplus``.
    """

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], solve: Solver | None = None,
                 name: str = "price_network") -> None:
        if solve is None:
            from aigc_edge_env.baselines import SOLVERS

            solve = SOLVERS["exact"]
        if len(weights) != len(biases) or not weights:
            raise ValueError(f"price network needs as many weight matrices as bias vectors (>= 1), "
                             f"got {len(weights)} and {len(biases)}")
        shapes = [w.shape for w in weights]
        if shapes[0][0] != N_PRICE_FEATURES or shapes[-1][1] != 1 or any(
                a[1] != b[0] for a, b in zip(shapes, shapes[1:], strict=False)) or any(
                w.shape[1:] != b.shape for w, b in zip(weights, biases, strict=True)):
            raise ValueError(f"price network layers {shapes} do not chain from {N_PRICE_FEATURES} inputs to 1 output")
        super().__init__(solve, name)
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]

    def forward(self, features: np.ndarray) -> np.ndarray:
        """Prices (cost per J) of feature rows ``(..., N_PRICE_FEATURES)``."""
        x = features
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = np.tanh(x @ w + b)
        return _softplus(x @ self.weights[-1] + self.biases[-1])[..., 0]

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        if not problem.config.battery_enabled:
            return np.zeros(problem.n_users)
        return self.forward(price_features(problem, observation))

    def save(self, path: Path) -> None:
        """Write the network to one ``.npz`` file (with :data:`FEATURES_VERSION`)."""
        arrays: dict[str, np.ndarray] = {"features_version": np.array(FEATURES_VERSION)}
        arrays |= {f"w{i}": w for i, w in enumerate(self.weights)} | {f"b{i}": b for i, b in enumerate(self.biases)}
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: Path, solve: Solver | None = None, name: str = "price_network") -> PriceNetworkPolicy:
        """The network saved at ``path`` by :meth:`save`; ``ValueError`` for another feature version."""
        with np.load(path) as data:
            version = int(data["features_version"])
            if version != FEATURES_VERSION:
                raise ValueError(f"price network {path} was trained on features version {version}; "
                                 f"this package computes version {FEATURES_VERSION}")
            n_layers = sum(1 for key in data.files if key.startswith("w"))
            weights = [data[f"w{i}"] for i in range(n_layers)]
            biases = [data[f"b{i}"] for i in range(n_layers)]
        return cls(weights, biases, solve, name)
