"""The one local search of the slot solvers: moves that keep a choice edge-feasible and lower its cost.

Every move is scored with the exact penalised cost of :mod:`.options` (``sum of option
costs + congestion_weight * Q^2``) and must keep the edge capacity, its own deadline and
every other edge user's deadline; so from an edge-feasible start every choice visited is
edge-feasible and the cost never increases.

* :func:`descend`: best-improvement descent over *single moves* (any candidate to any of
  its ``2L`` options, all scored at once as a ``(K, 2L)`` array) and, with ``pairs``, *pair
  moves* (an edge user steps down to one of its next ``PAIR_LEVELS_DOWN`` lower edge levels
  or to its best device option while another user takes any edge level; needed when the
  capacity or a deadline is tight).
* :func:`local_search`: :func:`descend` from each start, keeping the cheapest; with
  ``kicks``, then each edge user with a device option in turn is sent to its best device
  option and barred from the edge while the descent settles, then the descent runs
  unrestricted; a kick is kept if it ends cheaper (this reaches moves of three or more users).
* :func:`descend_edge_levels`: coordinate descent on the edge users' levels (each in turn
  takes its best edge level given the others), for the ``all_edge`` heuristic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aigc_edge_env.baselines.options import SlotOptions

__all__ = ["IMPROVEMENT_TOL", "PAIR_LEVELS_DOWN", "DescentMemo", "descend", "descend_edge_levels", "local_search"]

#: Relative tolerance under which a cost change does not count as an improvement.
IMPROVEMENT_TOL = 1e-12
#: Lower edge levels a user may step down to in a pair move.
PAIR_LEVELS_DOWN = 2


def _tolerance(opts: SlotOptions, starts: Sequence[np.ndarray]) -> float:
    return IMPROVEMENT_TOL * (1.0 + min(abs(opts.penalised_cost(start)) for start in starts))


def _single_move_deltas(opts: SlotOptions, choice: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
    """``(U, 2L)`` cost change of moving each of ``users`` (default all) to each option, ``inf`` where
    infeasible."""
    sqrt_steps_sum = opts.sqrt_steps_sum(choice)
    new_sqrt_steps_sum, new_edge_steps, limit = opts.single_moves(choice, users)
    ok = (new_edge_steps <= opts.edge_step_capacity) & (new_sqrt_steps_sum <= limit)
    if users is None:
        cost, current = opts.cost, opts.chosen_cost(choice)
    else:
        cost, current = opts.cost[users], opts.cost[users, choice[users]]
    change = (cost - current[:, None]
              + opts.congestion_weight * (new_sqrt_steps_sum**2 - sqrt_steps_sum * sqrt_steps_sum))
    return np.where(ok, change, np.inf)


def _min_of_others_pairs(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``out[a, b]``: the minimum of ``values`` without entries ``first[a]`` and ``b`` (``inf`` if none)."""
    order = np.argsort(values)[:3]
    smallest = np.concatenate([values[order], np.full(3 - order.size, np.inf)])
    order = np.concatenate([order, np.full(3 - order.size, -1)])
    users = np.arange(values.size)
    taken = (order[None, None, :] == first[:, None, None]) | (order[None, None, :] == users[None, :, None])
    return np.where(taken, np.inf, smallest).min(axis=2)


def _best_pair_move(opts: SlotOptions, choice: np.ndarray) -> tuple[float, int, int, int, int]:
    """Best feasible pair move (module docstring): ``(cost change, lowering user, its option, other user,
    its edge option)``; the first best in the order (lowering user, its option, other user, level)."""
    rows = np.arange(choice.size)
    n_levels = opts.n_levels
    lowering = np.flatnonzero(opts.offloaded(choice))
    if lowering.size == 0:
        return np.inf, 0, 0, 0, 0
    current = opts.chosen_cost(choice)
    sqrt_steps, edge_steps = opts.sqrt_steps[choice], opts.edge_steps[choice]
    sqrt_steps_sum = opts.sqrt_steps_sum(choice)
    # the lowering user's new options (a, o): its best device option, then up to PAIR_LEVELS_DOWN lower levels
    below = choice[lowering][:, None] - np.arange(1, PAIR_LEVELS_DOWN + 1)
    valid = np.hstack([np.ones((lowering.size, 1), dtype=bool), below >= n_levels])
    targets = np.hstack([opts.fallback[lowering][:, None], np.maximum(below, n_levels)])
    lower = valid & (opts.sqrt_steps[targets] < sqrt_steps[lowering][:, None])
    # only the (a, o) that lower a's sqrt(s) are scored (the others are infeasible), in their (a, o) order
    first, option = np.nonzero(lower)
    if first.size == 0:
        return np.inf, 0, 0, 0, 0
    mover, target = lowering[first], targets[first, option]
    others = _min_of_others_pairs(opts.max_sqrt_steps_sum[rows, choice], mover)  # (m, b): all but m's, b's
    # axes: (move m = (a, o), other user b, b's edge level l)
    new_sqrt_steps_sum = (sqrt_steps_sum - sqrt_steps[mover][:, None, None] + opts.sqrt_steps[target][:, None, None]
                          - sqrt_steps[None, :, None] + opts.sqrt_steps[None, None, n_levels:])
    new_edge_steps = (opts.edge_steps_sum(choice) - edge_steps[mover][:, None, None]
                      + opts.edge_steps[target][:, None, None]
                      - edge_steps[None, :, None] + opts.edge_steps[None, None, n_levels:])
    feasible = ((mover[:, None, None] != rows[None, :, None])
                & (new_sqrt_steps_sum <= opts.max_sqrt_steps_sum[mover, target][:, None, None])
                & (new_sqrt_steps_sum <= opts.max_sqrt_steps_sum[None, :, n_levels:])
                & (new_sqrt_steps_sum <= others[:, :, None]) & (new_edge_steps <= opts.edge_step_capacity))
    delta = ((opts.cost[mover, target] - current[mover])[:, None, None]
             + (opts.penalised_edge_cost - current[:, None])[None, :, :]
             + opts.congestion_weight * (new_sqrt_steps_sum**2 - sqrt_steps_sum * sqrt_steps_sum))
    delta = np.where(feasible, delta, np.inf)
    move, b, level = np.unravel_index(np.argmin(delta), delta.shape)
    return float(delta[move, b, level]), int(mover[move]), int(target[move]), int(b), int(level + n_levels)


@dataclass
class DescentMemo:
    """What :func:`descend` learnt during one :func:`local_search` about choices (keys ``choice.tobytes()``):
    the single-move scores of each choice scored, and the choices without an improving single or
    pair move (at the search's tolerance).  Both are functions of the choice alone, so reusing
    them changes no result."""

    scores: dict[bytes, np.ndarray] = field(default_factory=dict)
    settled: set[bytes] = field(default_factory=set)


def descend(
    opts: SlotOptions, choice: np.ndarray, tolerance: float, *, pairs: bool = False, barred: int | None = None,
    memo: DescentMemo | None = None,
) -> np.ndarray:
    """Best-improvement descent (module docstring) from an edge-feasible ``choice``; a new array.

    A move counts when it lowers the cost by more than ``tolerance``.  ``barred``: a
    candidate kept off the edge (no pair moves then).  ``memo``: scores and settled choices
    of earlier descents at the same ``tolerance``, read and extended.
    """
    choice = choice.copy()
    unbarred_pairs = pairs and barred is None
    for _ in range(4 * opts.cost.size):  # a guard: every move lowers the cost
        if memo is None:
            delta = _single_move_deltas(opts, choice)
        else:
            key = choice.tobytes()
            if unbarred_pairs and key in memo.settled:
                break
            if key not in memo.scores:
                memo.scores[key] = _single_move_deltas(opts, choice)
            delta = memo.scores[key]
        if barred is not None:
            delta = delta.copy()
            delta[barred, opts.n_levels:] = np.inf
        user, option = np.unravel_index(np.argmin(delta), delta.shape)
        if delta[user, option] < -tolerance:
            choice[user] = option
            continue
        if not unbarred_pairs:
            break
        gain, lowering, lowering_option, other, other_option = _best_pair_move(opts, choice)
        if gain >= -tolerance:
            if memo is not None:
                memo.settled.add(choice.tobytes())
            break
        choice[lowering], choice[other] = lowering_option, other_option
    return choice


def local_search(
    opts: SlotOptions, starts: Sequence[np.ndarray], *, pairs: bool = False, kicks: bool = False
) -> np.ndarray:
    """The cheapest of :func:`descend` from each (edge-feasible) start, then kicks (module docstring)."""
    tolerance = _tolerance(opts, starts)
    memo = DescentMemo()
    choice = min((descend(opts, start, tolerance, pairs=pairs, memo=memo) for start in starts),
                 key=opts.penalised_cost)
    cost = opts.penalised_cost(choice)
    kicked = kicks
    while kicked:
        kicked = False
        for user in np.flatnonzero(opts.offloaded(choice) & opts.has_local):
            start = choice.copy()
            start[user] = opts.fallback[user]
            # the kicked user stays on the device until the others settle
            candidate = descend(opts, start, tolerance, barred=int(user), memo=memo)
            candidate = descend(opts, candidate, tolerance, pairs=pairs, memo=memo)
            candidate_cost = opts.penalised_cost(candidate)
            if candidate_cost < cost - tolerance:
                choice, cost, kicked = candidate, candidate_cost, True
                break
    return choice


def descend_edge_levels(opts: SlotOptions, choice: np.ndarray, max_sweeps: int = 50) -> np.ndarray:
    """Coordinate descent on the edge users' levels, keeping edge feasibility; a new array."""
    choice = choice.copy()
    tolerance = _tolerance(opts, [choice])
    for _ in range(max_sweeps):
        changed = False
        for user in np.flatnonzero(opts.offloaded(choice)):
            delta = _single_move_deltas(opts, choice, np.array([user]))[0, opts.n_levels:]
            level = int(np.argmin(delta))
            if delta[level] < -tolerance:
                choice[user], changed = opts.n_levels + level, True
        if not changed:
            break
    return choice
