"""Pricing rules: a slot solver deciding under per-user energy prices set by a rule.

Every rule is a :class:`PricedPolicy`: each slot, the solver minimises the slot cost plus
``price_n * E_n`` (:attr:`~aigc_edge_env.model.SlotProblem.energy_price_per_j`), and the env
scores the decision with its true costs (the prices never enter the env).

* :class:`ShadowPricePolicy`: one price per J, constant or decaying as ``price (1 - t/H)``;
* :class:`LyapunovPolicy`: drift-plus-penalty with a perturbed virtual battery queue;
* :class:`SlotPricesPolicy`: given prices per slot and user (the hindsight plan of
  :func:`~aigc_edge_env.baselines.hindsight_bound`);
* ``mpc`` (:mod:`aigc_edge_env.policies.mpc`): prices re-planned on sampled futures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from aigc_edge_env.checks import bool_option, is_finite_number
from aigc_edge_env.model import Decision, DropReason, SlotProblem, evaluate_decision
from aigc_edge_env.policies.base import SolverPolicy

if TYPE_CHECKING:
    from aigc_edge_env.baselines import Solver

__all__ = ["LYAPUNOV_DEFAULTS", "LyapunovPolicy", "PricedPolicy", "ShadowPricePolicy", "SlotPricesPolicy",
           "priced_problem"]


def priced_problem(problem: SlotProblem, price_per_j: float | np.ndarray) -> SlotProblem:
    """``problem`` with per-user energy prices ``price_per_j`` (cost per J, a number or one per user).

    The solvers add ``price_n * E_n`` to what they minimise
    (:attr:`~aigc_edge_env.model.SlotProblem.energy_price_per_j`); the env's costs, the drop
    cost included, are unchanged.
    """
    return dataclasses.replace(problem, energy_price_per_j=np.asarray(price_per_j, dtype=np.float64))


class PricedPolicy(SolverPolicy):
    """A solver deciding each slot under per-user energy prices set by :meth:`prices_per_j`; scored
    with the true costs (the prices never enter the env).

    ``slot_index`` counts the slots of the episode (0 at ``reset``), for rules that depend on time.
    """

    def __init__(self, solve: Solver, name: str | None = None) -> None:
        super().__init__(solve, name)
        self.slot_index = 0

    def reset(self, seed: int | None) -> None:
        super().reset(seed)
        self.slot_index = 0

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> float | np.ndarray:
        """Energy prices (cost per J, a number or one per user) for the slot ``problem``."""
        raise NotImplementedError

    def observe(self, env: Any) -> None:
        """Read what the policy needs of the env (an :class:`AIGCEdgeEnv`) beyond the slot; called by
        :meth:`act` before each decision.  The rules here need nothing."""

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        self.observe(env.unwrapped)
        return super().act(env, observation)

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        price = self.prices_per_j(problem, observation)
        self.slot_index += 1
        return self.solve(priced_problem(problem, price), rng=self.rng)


class ShadowPricePolicy(PricedPolicy):
    """A solver deciding each slot under one shadow price on energy, ``price`` or ``price (1 - t/H)``
    per J, the same for every user.

    The decaying price reads ``t / H`` from the observation's last entry (the env's documented
    time-in-episode feature): a joule kept is worth less as the episode ends.
    """

    def __init__(self, solve: Solver, price: float, decaying: bool = False, name: str | None = None) -> None:
        if not (is_finite_number(price) and float(price) >= 0):
            raise ValueError(f"a shadow price must be a finite number >= 0 (cost per J), got {price} in "
                             f"{name or 'ShadowPricePolicy'}")
        super().__init__(solve, name)
        self.price = float(price)
        self.decaying = bool_option("decaying", decaying)

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> float:
        return self.price * (1.0 - float(observation[-1])) if self.decaying else self.price


class LyapunovPolicy(PricedPolicy):
    """Drift-plus-penalty with a perturbed virtual battery queue (Mao, Zhang, Letaief, IEEE JSAC 2016;
    LyDROO, Bi et al., IEEE TWC 2021): each slot, the solver with the energy price

        price_n = max(perturbation_j - battery_n, 0) / v_j2_per_cost     (cost per J)

    ``perturbation_j`` (theta, J) is the battery level below which energy gets a price and
    ``v_j2_per_cost`` (V, J^2 per cost unit) weighs the slot cost against the drift of the
    virtual queue ``battery - theta``: minimising ``V cost - (battery - theta) E`` is minimising
    ``cost + (theta - battery) / V * E``.  The price grows linearly as a battery falls below
    theta.  Departure from the papers: the negative part (a reward for spending a battery above
    theta) is dropped, since with scarce harvesting the battery never overflows and spending
    early buys nothing.  State across slots is the env's battery itself (read from the slot).
    """

    def __init__(self, solve: Solver, v_j2_per_cost: float, perturbation_j: float, name: str | None = None) -> None:
        if not (is_finite_number(v_j2_per_cost) and float(v_j2_per_cost) > 0) or not is_finite_number(perturbation_j):
            raise ValueError(f"lyapunov needs V > 0 and a finite theta, got V={v_j2_per_cost}, theta={perturbation_j}")
        super().__init__(solve, name)
        self.v_j2_per_cost = float(v_j2_per_cost)
        self.perturbation_j = float(perturbation_j)

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        battery_j = np.where(np.isfinite(problem.battery_j), problem.battery_j, self.perturbation_j)
        return np.maximum(self.perturbation_j - battery_j, 0.0) / self.v_j2_per_cost


class SlotPricesPolicy(PricedPolicy):
    """A plan: the solver under given prices per slot and user, ``prices_per_j[t, n]`` (cost per J).

    ``planned[t]``, when given and not ``None``, is a decision made for slot ``t`` in advance
    (by :func:`~aigc_edge_env.baselines.hindsight_bound`); it is played as it is unless the
    battery would make the env drop one of its requests, and then the solver decides.
    """

    def __init__(self, solve: Solver, prices_per_j: np.ndarray, name: str | None = None,
                 planned: Sequence[Decision | None] | None = None) -> None:
        super().__init__(solve, name)
        self.plan_prices_per_j = np.asarray(prices_per_j, dtype=np.float64)
        self.planned = planned

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        return self.plan_prices_per_j[self.slot_index]

    def decide(self, problem: SlotProblem, observation: np.ndarray) -> Decision:
        decision = self.planned[self.slot_index] if self.planned is not None else None
        if decision is not None and not np.any(evaluate_decision(problem, decision).drop_reason == DropReason.BATTERY):
            self.slot_index += 1
            return decision
        return super().decide(problem, observation)


#: ``lyapunov``'s parameters, tuned on training seeds (``aigc-edge experiments rules``; docs/results.md).
LYAPUNOV_DEFAULTS = {"V": 200.0, "theta": 130.0}

