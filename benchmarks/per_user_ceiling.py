"""What the per-user formulation allows, without learning: sequential best responses with the model's cost.

DQN decides a slot one requesting user at a time (:class:`~aigc_edge_env.agents.wrappers.PerUserDecisionWrapper`,
``wrapper_reward: marginal``): user ``k`` earns minus the cost ``C_k - C_{k-1}`` it adds to the users decided
before it.  At gamma 0 the best policy of that MDP is the *sequential greedy*: each user, in the wrapper's order,
takes the choice of least marginal cost given the earlier users' choices (the later users are unknown to it).
This script plays that policy for each ``user_order`` of the wrapper, and, to show what a second look at the
slot would add, coordinate descent: after the first pass each user in turn re-picks its best choice given all
the others (the whole slot cost), for ``--passes`` passes (0: until no user changes, at most 50).

Every cost is the model's (:func:`~aigc_edge_env.model.option_rows` and :func:`~aigc_edge_env.model.serve`,
the repair rule included), for all ``2L`` choices of a user at once.  Scores are the evaluation engine's
normalised score ``(R - R_random) / (R_exact - R_random)`` on the held-out episodes (seeds from 10000), with
``exact``, ``random`` and ``greedy`` played beside.

Usage: ``aigc-edge bench ceiling [--env AIGCEdge-v0] [--episodes 10] [--orders index edge_gain]
[--passes 1 2 0]``
"""

from __future__ import annotations

import dataclasses
import time

import gymnasium as gym
import numpy as np

from aigc_edge_env.agents.wrappers import USER_ORDERS, decision_order
from aigc_edge_env.cli.common import ArgumentParser, add_env, add_seed_episodes
from aigc_edge_env.env import AIGCEdgeEnv, unwrapped_env
from aigc_edge_env.evaluation.runner import EVAL_SEED, evaluate_all
from aigc_edge_env.evaluation.statistics import summarize
from aigc_edge_env.model import SlotProblem, option_rows, serve
from aigc_edge_env.policies.registry import make_policy

MAX_PASSES = 50


def choice_costs(problem: SlotProblem, decided: np.ndarray, offload: np.ndarray, level: np.ndarray,
                 user: int) -> np.ndarray:
    """Slot cost of the ``decided`` users (``user`` among them) for each of ``user``'s ``2L`` choices.

    Choice ``a`` is ``offload * L + level`` as in the wrapper; the other decided users keep ``offload``/``level``.
    """
    c = problem.config
    n_levels = c.n_levels
    offloads = np.tile(offload, (2 * n_levels, 1))
    level_indices = np.tile(level, (2 * n_levels, 1))
    offloads[:, user], level_indices[:, user] = np.divmod(np.arange(2 * n_levels), n_levels)
    steps = np.where(decided, np.asarray(c.step_levels)[level_indices], c.min_steps)
    partial = dataclasses.replace(problem, has_request=decided.copy())
    evaluation = serve(option_rows(partial, offloads.astype(bool), steps), problem.battery_j, c)
    return np.asarray(evaluation.summary()["cost"])


class SequentialBestResponse:
    """Users in the wrapper's ``user_order`` take their least-cost choice; ``passes`` > 1 revisits them."""

    def __init__(self, user_order: str, passes: int) -> None:
        self.user_order, self.passes = user_order, passes

    def reset(self, seed: int | None) -> None:
        """Deterministic and stateless."""

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        problem = unwrapped_env(env).current_problem()
        n, n_levels = problem.n_users, problem.config.n_levels
        offload, level = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        decided = np.zeros(n, dtype=bool)
        users = decision_order(problem, self.user_order)
        for index in range(self.passes if self.passes > 0 else MAX_PASSES):
            changed = False
            for user in users:
                decided[user] = True  # first pass: the earlier users only; later passes: everyone
                choice = divmod(int(np.argmin(choice_costs(problem, decided, offload, level, int(user)))), n_levels)
                changed |= index > 0 and choice != (offload[user], level[user])
                offload[user], level[user] = choice
            if index > 0 and not changed:
                break
        return np.concatenate([offload, level])


def main(argv: list[str] | None = None, prog: str = "aigc-edge bench ceiling") -> int:
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_env(parser, config=False)
    add_seed_episodes(parser, EVAL_SEED, 10)
    parser.add_argument("--orders", nargs="+", default=list(USER_ORDERS), choices=USER_ORDERS)
    parser.add_argument("--passes", nargs="+", type=int, default=[1, 2, 0],
                        help="passes over the users (1: the gamma-0 optimum of the wrapper; 0: until none changes)")
    args = parser.parse_args(argv)
    if any(p < 0 for p in args.passes):
        parser.error("--passes must be >= 0")
    policies = {name: make_policy(name) for name in ("random", "exact", "greedy")}
    for order in args.orders:
        for passes in args.passes:
            policies[f"{order}, {passes or 'all'} pass(es)"] = SequentialBestResponse(order, passes)
    seeds = list(range(args.seed, args.seed + args.episodes))
    start = time.perf_counter()
    rows = summarize(evaluate_all(policies, lambda: AIGCEdgeEnv(env_id=args.env), seeds))
    print(f"{args.env}, {args.episodes} episodes from seed {args.seed} ({time.perf_counter() - start:.0f} s)\n")
    print("| policy | score [95% CI] | episode return | offload share | drops per episode | ms per slot |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['policy']} | {row['score']:.3f} [{row['score_low']:.3f}, {row['score_high']:.3f}] | "
              f"{row['reward']:.1f} | {row['offload_share']:.3f} | {row['n_dropped']:.1f} | {row['decision_ms']:.1f} |")
    return 0


if __name__ == "__main__":  # run as a script by its old name
    raise SystemExit("this module runs as `aigc-edge bench ceiling` (see `aigc-edge bench ceiling --help`)")
