"""How close ``sca_kkt`` comes to ``exact`` and to the heuristics (the figures of docs/solver.md, section 7).

Slots: the first ``--slots`` slots of ``AIGCEdgeEnv(config={"n_users": N, ...}).reset(seed)`` for
each seed (:func:`aigc_edge_env.evaluation.slots.collect_slots`).
Per ``N`` it prints on how many slots ``sca_kkt`` costs more than ``exact``'s proven optimum, than
the ``local_search`` heuristic and than some other heuristic (with the largest relative excess),
and the gap to the optimum of the repaired rounding alone, before the final local search
(``sca_kkt.solve(..., search=False)``).

Usage::

    aigc-edge bench sca-kkt [--n-users 8 10 20 50] [--seed 100] [--episodes 20] [--slots 10]
                                                  [--deadline-s-range 0.5 3.0]
"""

from __future__ import annotations

import numpy as np

from aigc_edge_env import SlotProblem, evaluate_decision
from aigc_edge_env.baselines import SOLVERS, sca_kkt, solve_exact
from aigc_edge_env.cli.common import ArgumentParser, add_seed_episodes, count, finite_float
from aigc_edge_env.evaluation.slots import collect_slots
from aigc_edge_env.evaluation.statistics import relative_gap_pct

OTHERS = [name for name in SOLVERS if name not in ("exact", "sca_kkt", "local_search")]


def slot_costs(problem: SlotProblem) -> dict[str, float]:
    result = solve_exact(problem)
    assert result.proven_optimal
    decisions = {name: SOLVERS[name](problem, rng=np.random.default_rng(0)) for name in ["sca_kkt", *OTHERS]}
    decisions["rounding"] = sca_kkt.solve(problem, search=False)
    decisions["local_search"] = SOLVERS["local_search"](problem)
    return {"exact": result.cost, **{k: float(evaluate_decision(problem, d).total_cost) for k, d in decisions.items()}}


def main(argv: list[str] | None = None, prog: str = "aigc-edge bench sca-kkt") -> int:
    parser = ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=count, nargs="+", default=[8, 10, 20, 50])
    add_seed_episodes(parser, 100, 20)
    parser.add_argument("--slots", type=count, default=10, help="slots per seed")
    parser.add_argument("--deadline-s-range", type=finite_float, nargs=2,
                        help="config override (default: the config's)")
    args = parser.parse_args(argv)
    for n in args.n_users:
        config = {"n_users": n, **({"deadline_s_range": args.deadline_s_range} if args.deadline_s_range else {})}
        rows: list[dict[str, float]] = []
        for seed in range(args.seed, args.seed + args.episodes):
            rows.extend(slot_costs(problem) for problem in collect_slots(config, seed, args.slots))
        cost = {name: np.array([row[name] for row in rows]) for name in rows[0]}
        sca = cost["sca_kkt"]
        excess = {name: relative_gap_pct(sca, cost[name]) / 100 for name in ("exact", "local_search", *OTHERS)}
        other = np.max([excess[name] for name in OTHERS], axis=0)
        rounding = relative_gap_pct(cost["rounding"], cost["exact"]) / 100
        print(f"N = {n}: {sca.size} slots; sca_kkt above the optimum on {np.sum(excess['exact'] > 1e-9)} "
              f"(max {100 * excess['exact'].max():.2f}%), above local_search on "
              f"{np.sum(excess['local_search'] > 1e-9)} (max {100 * max(excess['local_search'].max(), 0):.2f}%), "
              f"above another heuristic on {np.sum(other > 1e-9)} (max {100 * max(other.max(), 0):.2f}%); "
              f"rounding + repair alone: mean gap {100 * rounding.mean():.2f}%, max {100 * rounding.max():.2f}%")
    return 0


if __name__ == "__main__":  # run as a script by its old name
    raise SystemExit("this module runs as `aigc-edge bench sca-kkt` (see `aigc-edge bench sca-kkt --help`)")
