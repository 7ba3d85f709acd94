"""DROO's order-preserving quantisation: a per-user network's scores turned into a decision by valuing a few
nested offload sets with the env's own cost (``make_policy("quantised:PATH")``).

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
* the candidates are ``k0 - window ... k0 + window`` (:data:`WINDOW`), valued by
  :func:`~aigc_edge_env.model.option_rows` and :func:`~aigc_edge_env.model.serve`, the cost the env's
  reward comes from (repair rule and drops included), all in one batch, plus ``sum_n pi_n E_n`` under the
  problem's energy prices (what every solver minimises, ``docs/model.md``); the cheapest is played (the
  one with the fewest offloaded users on ties).  So the decision never costs more than the greedy one.

Choices where DROO leaves room: the levels are the network's (only the offload bits are quantised), and
the window is small because the best candidate lies next to ``k0``: on the held-out episodes of
``AIGCEdge-v0`` at N = 50 and 100, windows of 2, 4, 8, 16 and all N scored within 0.0003 of each other
(docs/results.md, section 6).
"""

from __future__ import annotations

import numpy as np

from aigc_edge_env.checks import count_option
from aigc_edge_env.model import Decision, SlotProblem, option_rows, serve

__all__ = ["WINDOW", "order_preserving_decision"]

#: Candidates on each side of the network's own number of offloaded users.
WINDOW = 4


def order_preserving_decision(problem: SlotProblem, logits: np.ndarray, window: int = WINDOW) -> Decision:
    """The cheapest of the order-preserving candidates (module docstring) for ``problem`` given the
    network's pair logits ``(N, 2L)`` (index ``offload * L + level``); ``ValueError`` naming the argument
    for logits of another shape or not finite, or a window that is not an integer >= 0."""
    c, n_users = problem.config, problem.n_users
    logits = np.asarray(logits)
    if logits.shape != (n_users, 2 * c.n_levels):
        raise ValueError(f"logits: expected shape {(n_users, 2 * c.n_levels)} (users, 2 x levels), "
                         f"got {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("logits: expected finite values, got NaN or infinite entries")
    window = count_option("window", window, 0)
    device_logits, edge_logits = logits[:, :c.n_levels], logits[:, c.n_levels:]
    margin = np.where(problem.has_request, edge_logits.max(axis=-1) - device_logits.max(axis=-1), -np.inf)
    rank = np.empty(n_users, dtype=np.int64)
    rank[np.argsort(-margin, kind="stable")] = np.arange(n_users)
    greedy_count = int(np.count_nonzero(margin > 0))
    counts = np.arange(max(0, greedy_count - window),
                       min(int(np.count_nonzero(problem.has_request)), greedy_count + window) + 1)
    offload = rank < counts[:, None]  # (candidates, N)
    levels = np.where(offload, edge_logits.argmax(axis=-1), device_logits.argmax(axis=-1))
    steps = np.where(problem.has_request, np.asarray(c.step_levels)[levels], c.min_steps)
    served = serve(option_rows(problem, offload, steps), problem.battery_j, c)
    costs = served.total_cost
    if problem.has_energy_prices:
        costs = costs + served.energy_j @ problem.energy_price_per_j
    best = int(np.argmin(costs))
    return Decision(offload[best], steps[best])
