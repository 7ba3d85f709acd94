"""DROO's order-preserving quantisation: a per-user network's scores turned into a decision by valuing a few
nested offload sets with the env's own cost (``make_policy("quantised:PATH")``), or by filling the edge in
their order (``make_policy("packed:PATH")``).

DROO (Huang, Bi and Zhang, *Deep Reinforcement Learning for Online Computation Offloading in Wireless
Powered Mobile-Edge Computing Networks*, IEEE Transactions on Mobile Computing 19(11), 2020) does not play
its network's rounded output: it ranks the users by the network's relaxed offload decision, forms ``K``
candidate binary decisions that keep that order (order-preserving quantisation), values each candidate by
solving the rest of the slot, and plays the best.  Here the network is the per-user network of
:mod:`~aigc_edge_env.policies.torch_module` (pair logits ``(N, 2L)`` over (offload bit, level)):

* each user's **margin** is its best edge logit minus its best device logit (users without a request last);
* candidate ``k`` offloads the ``k`` users of largest margin, each at its best edge level, and keeps the
  others on the device at their best device level; the network's own greedy decision is the candidate
  ``k0`` = the number of positive margins;
* the candidates are ``k0 - window ... k0 + window`` (:data:`WINDOW`,
  :func:`order_preserving_candidates`), valued in one batch by the cost the env's reward comes from
  (repair rule and drops included): in the env, from the table its steps read
  (:meth:`~aigc_edge_env.env.AIGCEdgeEnv.action_costs`, what ``quantised:PATH`` plays); for a
  :class:`~aigc_edge_env.model.SlotProblem`, by :func:`~aigc_edge_env.model.option_rows` and
  :func:`~aigc_edge_env.model.serve` plus ``sum_n pi_n E_n`` under its energy prices (what every solver
  minimises, ``docs/model.md``; :func:`order_preserving_decision`).  The cheapest is played (the one with
  the fewest offloaded users on ties), so the decision never costs more than the greedy one.

**Filling the edge** (:func:`order_preserving_fill`, ``packed:PATH``) picks one of the same nested sets
without valuing any: the largest ``k`` whose users' edge steps (at their best edge levels) fit the edge's
step capacity ``S^E_max`` together, whatever the signs of their margins.  It never exceeds the capacity, so the
repair rule drops no request for it (the deadlines at the resulting ``Q`` can still bind; batteries too).  It
is for networks that rank the users well but miscount them: the network of ``aigc-edge train --algo
imitation_mixture``, played greedily and kept within the capacity, offloads one to three users fewer than
``exact`` in about a third of the slots at N = 50 and 100, where ``exact`` leaves no room at the edge for
another request in 95-99% of the slots of ``AIGCEdge-v0`` (docs/results.md, section 6).  Where the edge's
congestion or the deadlines, not its step capacity, limit what should be offloaded, ``quantised:PATH``
values the candidates instead.

Choices where DROO leaves room: the levels are the network's (only the offload bits are quantised), and
the window is small because the best candidate lies next to ``k0``: on the held-out episodes of
``AIGCEdge-v0`` at N = 50 and 100, windows of 2, 4, 8, 16 and all N scored within 0.0003 of each other
(docs/results.md, section 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from aigc_edge_env.checks import count_option
from aigc_edge_env.model import Decision, SlotProblem, option_rows, serve
from aigc_edge_env.spaces import actions_to_decision

__all__ = ["WINDOW", "order_preserving_candidates", "order_preserving_decision", "order_preserving_fill"]

#: Candidates on each side of the network's own number of offloaded users.
WINDOW = 4


def order_preserving_candidates(logits: np.ndarray, has_request: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The order-preserving candidates (module docstring) as env actions ``(K, 2N)`` (N offload bits, then N
    level indices), ordered by their number of offloaded users, for the network's pair logits ``(N, 2L)``
    (index ``offload * L + level``) and which users have a request (booleans ``(N,)``); ``ValueError`` naming
    the argument for ``has_request`` of another type or shape, logits of another shape or with a best logit
    per user and mode that is not finite (a NaN or ``+inf`` anywhere, or all ``-inf``: a ``-inf`` beside
    finite logits is a masked pair), or a window that is not an integer >= 0.  ``L`` is read from the logits:
    the caller checks it is the env's (:class:`~aigc_edge_env.policies.torch_module.TorchModulePolicy` does)."""
    window = count_option("window", window, 0)
    order, key, best_levels, has_request = _ranking(logits, has_request)
    greedy_count = int(np.count_nonzero(key < 0))  # positive margins
    counts = np.arange(max(0, greedy_count - window),
                       min(int(np.count_nonzero(has_request)), greedy_count + window) + 1)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return _actions(rank < counts[:, None], best_levels, has_request)


def order_preserving_fill(logits: np.ndarray, has_request: np.ndarray, step_levels: Sequence[int],
                          edge_step_capacity: int) -> np.ndarray:
    """The order-preserving candidate that fills the edge (``packed:PATH``): the most users, in the order of
    the network's preference for the edge, whose steps at their best edge level fit ``edge_step_capacity``
    together (``S^E_max``), whatever the sign of their margins; the others on the device at their best device
    level.  One env action ``(2N,)``; ``logits`` and ``has_request`` as for
    :func:`order_preserving_candidates` (and ``ValueError`` as there), ``step_levels`` the env's (``L``
    integers >= 1) and ``edge_step_capacity`` an integer >= 0, each refused with a ``ValueError`` naming it
    otherwise."""
    order, _, best_levels, has_request = _ranking(logits, has_request)
    levels = np.asarray(step_levels)
    if levels.ndim != 1 or 2 * levels.size != np.shape(logits)[1] or levels.dtype.kind not in "iu" \
            or not (levels >= 1).all():
        raise ValueError(f"step_levels: expected the {np.shape(logits)[1] // 2} step counts (integers >= 1) of the "
                         f"logits' levels, got {levels.tolist()}")
    capacity = count_option("edge_step_capacity", edge_step_capacity, 0)
    edge_steps = levels.take(best_levels[:, 1]) * has_request
    count = int(np.searchsorted(np.cumsum(edge_steps.take(order)), capacity, side="right"))  # the sums only grow
    offload = np.zeros(order.size, dtype=bool)
    offload[order[:count]] = True
    return _actions(offload & has_request, best_levels, has_request)  # the count may reach users without request


def _ranking(logits: np.ndarray, has_request: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked inputs -> the users in the order of their margins (most edge-leaning first, ties by index; users
    without a request last), each user's sort key (minus its margin, the best edge minus the best device logit;
    ``+inf`` without a request), its best (device, edge) level indices ``(N, 2)`` and ``has_request``."""
    has_request = np.asarray(has_request)
    if has_request.dtype != bool or has_request.ndim != 1 or not has_request.size:
        raise ValueError(f"has_request: expected booleans of shape (N,) with N >= 1, got dtype {has_request.dtype} "
                         f"and shape {has_request.shape}")
    n_users = has_request.size
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != n_users or logits.shape[1] % 2 or not logits.shape[1]:
        raise ValueError(f"logits: expected shape ({n_users}, 2L) (has_request's {n_users} users, 2 x levels), "
                         f"got {logits.shape}")
    best_levels = logits.reshape(n_users, 2, -1).argmax(axis=-1)  # (N, device/edge)
    best_logits = logits.ravel().take(best_levels + _pair_offsets(n_users, logits.shape[1] // 2))
    if not np.isfinite(best_logits).all():  # a NaN or an infinity anywhere in a user's logits is its best
        raise ValueError("logits: expected finite values, got a user whose best logit of a mode is NaN or infinite")
    key = np.subtract(best_logits[:, 0], best_logits[:, 1], dtype=np.float64)  # minus the margin: ascending =
    # most edge-leaning first (float64: integer logits too, and +inf below)
    key[~has_request] = np.inf
    return np.argsort(key, kind="stable"), key, best_levels, has_request


@lru_cache(maxsize=64)
def _pair_offsets(n_users: int, n_levels: int) -> np.ndarray:
    """The flat index of each user's first device and first edge logit, ``(N, 2)`` (read-only)."""
    offsets = np.arange(0, 2 * n_users * n_levels, n_levels).reshape(n_users, 2)
    offsets.flags.writeable = False
    return offsets


def _actions(offload: np.ndarray, best_levels: np.ndarray, has_request: np.ndarray) -> np.ndarray:
    """Env actions of offload bits ``(..., N)``: each user at its best level of its mode; a user without a
    request on the device at level 0 (entries the env ignores)."""
    n_users = offload.shape[-1]
    actions = np.empty((*offload.shape[:-1], 2 * n_users), dtype=np.int64)
    actions[..., :n_users] = offload
    np.multiply(np.where(offload, best_levels[:, 1], best_levels[:, 0]), has_request, out=actions[..., n_users:])
    return actions


def order_preserving_decision(problem: SlotProblem, logits: np.ndarray, window: int = WINDOW) -> Decision:
    """The cheapest of the order-preserving candidates (module docstring) for ``problem`` given the
    network's pair logits ``(N, 2L)``, valued by :func:`~aigc_edge_env.model.option_rows` and
    :func:`~aigc_edge_env.model.serve` plus the problem's energy prices; the env's
    :meth:`~aigc_edge_env.env.AIGCEdgeEnv.action_costs` values them from its table instead (``quantised:PATH``,
    which plays no prices).  ``ValueError`` as :func:`order_preserving_candidates`', or for logits of
    another number of levels than the problem's."""
    c = problem.config
    logits = np.asarray(logits)
    if logits.shape != (problem.n_users, 2 * c.n_levels):
        raise ValueError(f"logits: expected shape {(problem.n_users, 2 * c.n_levels)} (users, 2 x levels), "
                         f"got {logits.shape}")
    candidates = actions_to_decision(order_preserving_candidates(logits, problem.has_request, window), c)
    served = serve(option_rows(problem, candidates.offload, candidates.steps), problem.battery_j, c)
    costs = served.total_cost
    if problem.has_energy_prices:
        costs = costs + served.energy_j @ problem.energy_price_per_j
    best = int(np.argmin(costs))
    return Decision(candidates.offload[best], candidates.steps[best])
