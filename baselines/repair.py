"""The one repair of the slot solvers: make a choice edge-feasible, dropping only when unavoidable.

:func:`repair` takes a choice over the candidates of a :class:`~.options.SlotOptions` that
may break the edge capacity or a deadline and applies moves that each lower one edge
user's ``sqrt(s)`` (to a device option or a lower edge level) until the choice is
edge-feasible.  Every move lowers ``Q`` and the edge load, so the loop ends.  A move to a
drop (a device option that is infeasible) is taken only when no other move is left: the
device options plus the edge-only users at their smallest levels is the configuration
with the least ``Q`` and load a drop-free choice can have, so the result drops a request
only when no drop-free choice exists.  Two move rules:

* ``least_cost=False`` (the heuristics): move the edge user with a device option whose
  move to its ``fallback`` device option saves most (congestion included); when none is
  left, lower the level of the edge-only user with the most steps; when all sit at their
  smallest levels, drop the one whose drop saves most.
* ``least_cost=True`` (``sca_kkt``): among all moves, the one with the least change of
  option cost that removes the whole violation; else the least change per unit of
  violation removed.

With ``improve``, the repair then keeps moving the edge user whose move to its ``fallback``
device option saves most while that saves cost.
"""

from __future__ import annotations

import numpy as np

from aigc_edge_env.baselines.options import SlotOptions

__all__ = ["repair"]


class _Chosen:
    """A choice with the per-candidate values the move rules read, updated move by move.

    Each array holds what :class:`~.options.SlotOptions` would compute from the choice
    (``sqrt_steps[choice]``, ``cost[k, choice_k]``, ...), so the rules' arithmetic is
    theirs, without rebuilding the arrays at every move."""

    def __init__(self, opts: SlotOptions, choice: np.ndarray, fallback: np.ndarray) -> None:
        rows = np.arange(choice.size)
        self.opts, self.choice, self.fallback = opts, choice, fallback
        self.n_levels = opts.n_levels
        self.offloaded = choice >= self.n_levels
        self.sqrt_steps = opts.sqrt_steps[choice]
        self.edge_steps = opts.edge_steps[choice]
        self.limit = opts.max_sqrt_steps_sum[rows, choice]
        self.cost = opts.cost[rows, choice]
        self.fallback_cost = opts.cost[rows, fallback]
        self.has_local = opts.has_local

    def move(self, user: int, option: int) -> None:
        opts = self.opts
        self.choice[user] = option
        self.offloaded[user] = option >= self.n_levels
        self.sqrt_steps[user] = opts.sqrt_steps[option]
        self.edge_steps[user] = opts.edge_steps[option]
        self.limit[user] = opts.max_sqrt_steps_sum[user, option]
        self.cost[user] = opts.cost[user, option]

    def sqrt_steps_sum(self) -> float:
        """``Q`` (:meth:`~.options.SlotOptions.sqrt_steps_sum`)."""
        return float(self.sqrt_steps[self.offloaded].sum())

    def violation(self) -> float:
        """:meth:`~.options.SlotOptions.violation` of the choice."""
        return self.opts.violation_of(int(self.edge_steps.sum()), self.sqrt_steps_sum(), float(self.limit.min()))

    def leave_gains(self) -> np.ndarray:
        """Cost saved by moving each edge user to its ``fallback`` device option (``-inf`` for the others)."""
        sqrt_steps_sum = self.sqrt_steps_sum()
        without = (sqrt_steps_sum - self.sqrt_steps) ** 2  # Q^2 once each user leaves the edge
        at_edge = self.cost + self.opts.congestion_weight * (sqrt_steps_sum * sqrt_steps_sum - without)
        return np.where(self.offloaded, at_edge - self.fallback_cost, -np.inf)


def _local_first_move(chosen: _Chosen) -> tuple[int, int]:
    """The ``least_cost=False`` rule (module docstring): ``(user, option)``."""
    opts, choice, offloaded = chosen.opts, chosen.choice, chosen.offloaded
    gain = chosen.leave_gains()
    if np.any(offloaded & chosen.has_local):
        user = int(np.argmax(np.where(chosen.has_local, gain, -np.inf)))
        return user, int(chosen.fallback[user])
    lowerable = offloaded & (choice > opts.smallest_edge)
    if lowerable.any():
        user = int(np.argmax(np.where(lowerable, choice, -1)))
        lower = np.flatnonzero(opts.feasible[user, opts.n_levels:choice[user]])
        return user, int(opts.n_levels + lower[-1])
    user = int(np.argmax(gain))
    return user, int(chosen.fallback[user])


def _least_cost_move(opts: SlotOptions, choice: np.ndarray, violation: float) -> tuple[int, int]:
    """The ``least_cost=True`` rule (module docstring): ``(user, option)``; drops only if nothing else helps."""
    new_sqrt_steps_sum, new_edge_steps, limits = opts.single_moves(choice)
    remaining = (np.maximum(new_edge_steps - opts.edge_step_capacity, 0.0)
                 + np.maximum(new_sqrt_steps_sum - limits, 0.0))
    lowering = opts.sqrt_steps[None, :] < opts.sqrt_steps[choice][:, None]
    change = opts.cost - opts.chosen_cost(choice)[:, None]
    for allowed in (lowering & opts.feasible, lowering):  # a drop only when no other move helps
        delta = np.where(allowed, change, np.inf)
        score = np.where(remaining == 0.0, delta, np.inf)
        if not np.isfinite(score).any():
            reduction = violation - remaining
            score = np.where(reduction > 0.0, delta / np.maximum(reduction, 1e-300), np.inf)
        user, option = np.unravel_index(np.argmin(score), score.shape)
        if np.isfinite(score[user, option]):
            return int(user), int(option)
    raise RuntimeError("repair found no move that lowers the violation")


def repair(
    opts: SlotOptions,
    choice: np.ndarray,
    *,
    fallback: np.ndarray | None = None,
    least_cost: bool = False,
    improve: bool = False,
) -> np.ndarray:
    """An edge-feasible choice from ``choice`` (module docstring); a new array.

    ``fallback``: each candidate's device option for the ``least_cost=False`` rule and for
    ``improve`` (default: its cheapest, :attr:`~.options.SlotOptions.fallback`).  Every
    edge option chosen must be feasible alone.
    """
    fallback = opts.fallback if fallback is None else fallback
    chosen = _Chosen(opts, choice.copy(), fallback)
    while chosen.offloaded.any():
        violation = chosen.violation()
        if violation == 0.0:
            gain = chosen.leave_gains()
            user = int(np.argmax(gain))
            if not (improve and gain[user] > 0.0):
                break
            option = int(fallback[user])
        elif least_cost:
            user, option = _least_cost_move(opts, chosen.choice, violation)
        else:
            user, option = _local_first_move(chosen)
        chosen.move(user, option)
    return chosen.choice
