"""Training the amortised planner: imitation of ``mpc``'s prices with DAgger.

:class:`~aigc_edge_env.policies.price_network.PriceNetworkPolicy` decides with ``exact`` under
the prices of a per-user network.  This module fits that network to the prices ``mpc``
(:mod:`aigc_edge_env.policies.mpc`) plans:

1. **Imitation**: play ``mpc`` on training episodes and record, every ``label_every`` slots,
   each user's :func:`~aigc_edge_env.policies.price_network.price_features` with the price
   ``mpc`` plans there (its label).
2. **DAgger** (Ross, Gordon and Bagnell, AISTATS 2011): play the fitted network, label the
   states *it* visits with the price ``mpc`` would plan there (a teacher planning from that
   state with its own sampled futures, as ``mpc`` itself would), add them to the data and
   refit; repeated ``dagger_rounds`` times.

Each fit minimises the mean squared price error (cost per J) of a ``tanh`` network with a
``softplus`` output (torch, Adam), then copies its weights into the numpy policy.  The
labels are noisy (each plan sees one sampled future), and the regression averages the noise
of many plans; all randomness comes from the seeds given (``torch.Generator`` for the fit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.policies.mpc import MPC_DEFAULTS, MPCPolicy
from aigc_edge_env.policies.price_network import N_PRICE_FEATURES, PriceNetworkPolicy, price_features
from aigc_edge_env.policies.pricing import PricedPolicy

__all__ = ["LabelledStates", "collect_labels", "fit_price_network", "imitate_mpc"]


@dataclass
class LabelledStates:
    """Rows of per-user features with ``mpc``'s planned price (cost per J) for each."""

    features: list[np.ndarray] = field(default_factory=list)  # (N, F) per labelled slot
    prices_per_j: list[np.ndarray] = field(default_factory=list)  # (N,) per labelled slot

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.features), np.concatenate(self.prices_per_j)

    def __len__(self) -> int:
        return sum(len(p) for p in self.prices_per_j)


class _Labelling:
    """Plays ``behaviour`` and, every ``label_every`` slots, records the state and the teacher's plan there.

    With ``behaviour`` = the teacher itself the label is the price it plays (its own plan); otherwise
    a teacher ``MPCPolicy`` plans from the visited state (warm-started from its previous plan)."""

    def __init__(self, behaviour: PricedPolicy, teacher: MPCPolicy, label_every: int, data: LabelledStates) -> None:
        self.behaviour, self.teacher, self.label_every, self.data = behaviour, teacher, label_every, data

    def reset(self, seed: int | None) -> None:
        self.behaviour.reset(seed)
        if self.teacher is not self.behaviour:
            self.teacher.reset(seed)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        base = unwrapped_env(env)
        t, problem = self.behaviour.slot_index, base.current_problem()
        if t % self.label_every and self.teacher is not self.behaviour:
            return self.behaviour.act(env, observation)
        if self.teacher is not self.behaviour:
            self.teacher.distance_m, self.teacher.slot_index = base.distance_m, t
            self.teacher.planned_price_per_j = self.teacher.plan(problem)[0]
        action = self.behaviour.act(env, observation)  # the teacher as behaviour plans here itself
        if t % self.label_every == 0:
            assert self.teacher.planned_price_per_j is not None
            self.data.features.append(price_features(problem, observation))
            self.data.prices_per_j.append(np.array(self.teacher.planned_price_per_j, dtype=np.float64))
        return action


def collect_labels(env_id: str, seeds: Iterable[int], behaviour: PricedPolicy | None, data: LabelledStates,
                   label_every: int = MPC_DEFAULTS["every"], config: dict | None = None,
                   on_episode: Callable[[], None] | None = None) -> None:
    """Add to ``data`` the labelled states of one episode per seed, played by ``behaviour`` (``None``: ``mpc``)."""
    from aigc_edge_env.evaluation.runner import run_episode

    env = gym.make(env_id, config=config)
    teacher = MPCPolicy(every=label_every)
    policy = _Labelling(behaviour or teacher, teacher, label_every, data)
    for seed in seeds:
        run_episode(env, policy, seed)
        if on_episode is not None:
            on_episode()
    env.close()


def _torch_network(hidden: Sequence[int], generator: torch.Generator) -> torch.nn.Sequential:
    sizes = [N_PRICE_FEATURES, *hidden]
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    layers.append(torch.nn.Linear(sizes[-1], 1))
    net = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for module in net:
            if isinstance(module, torch.nn.Linear):
                bound = 1.0 / np.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
    return net


def fit_price_network(features: np.ndarray, prices_per_j: np.ndarray, hidden: Sequence[int] = (64, 64),
                      epochs: int = 60, batch_size: int = 256, learning_rate: float = 3e-3,
                      seed: int = 0) -> PriceNetworkPolicy:
    """A :class:`PriceNetworkPolicy` fitted to ``prices_per_j[i] ~ network(features[i])`` (mean squared error)."""
    generator = torch.Generator().manual_seed(seed)
    net = _torch_network(hidden, generator)
    x = torch.as_tensor(features, dtype=torch.float64)
    y = torch.as_tensor(prices_per_j, dtype=torch.float64)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            index = order[start:start + batch_size]
            loss = torch.mean((torch.nn.functional.softplus(net(x[index])[:, 0]) - y[index]) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    return PriceNetworkPolicy([m.weight.detach().numpy().T.copy() for m in linear],
                              [m.bias.detach().numpy().copy() for m in linear])


def imitate_mpc(env_id: str, seeds: Sequence[int], dagger_rounds: int, dagger_seeds: Sequence[Sequence[int]],
                config: dict | None = None, fit_seed: int = 0, hidden: Sequence[int] = (64, 64), epochs: int = 60,
                on_episode: Callable[[], None] | None = None) -> tuple[PriceNetworkPolicy, list[PriceNetworkPolicy]]:
    """Imitation on ``mpc``'s episodes from ``seeds``, then ``dagger_rounds`` rounds on ``dagger_seeds[r]``.

    Returns the final network and the network after each step (imitation, then each round)."""
    data = LabelledStates()
    collect_labels(env_id, seeds, None, data, config=config, on_episode=on_episode)
    networks = [fit_price_network(*data.arrays(), hidden=hidden, epochs=epochs, seed=fit_seed)]
    for round_seeds in dagger_seeds[:dagger_rounds]:
        collect_labels(env_id, round_seeds, networks[-1], data, config=config, on_episode=on_episode)
        networks.append(fit_price_network(*data.arrays(), hidden=hidden, epochs=epochs, seed=fit_seed))
    return networks[-1], networks
