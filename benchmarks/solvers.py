"""Benchmark the slot solvers on AIGCEdge-v0 slots (prints tables; not a test).

For each number of users ``N`` it collects slots of ``AIGCEdge-v0`` with ``n_users = N``
(consecutive slots of seeded episodes, :func:`aigc_edge_env.evaluation.slots.collect_slots`) and
runs every registered solver on each.  It
prints, per solver: the median CPU time per slot (``time.process_time``), also as a multiple of
one ``AIGCEdge-v0`` env step timed in the same process (beside 0.5.0's figures for ``exact`` and
``sca_kkt``, :data:`SLOT_STEPS_0_5_0`), the mean slot cost, the mean gap to
the reference (the exact optimum where ``exact`` proved it, else ``exact``'s certified
lower bound, so every gap is an upper bound on the true one), the gap relative to the
mean ``|reference|``, and the dropped requests.  Then, at the best known decision of each
slot (cheapest over all solvers), the offload share and the histogram of chosen steps,
and whether the default config "teaches" (docs/model.md "Defaults": offload share in
[20%, 80%] and most chosen step counts interior, i.e. neither the smallest nor the
largest level), judged on the ``N = 10`` slots (the default ``AIGCEdge-v0``).

``--episodes K`` then times, on the ``AIGCEdge-Battery-v0`` episodes of seeds 10000, ...,
10000 + K - 1, the hindsight bound (:func:`~aigc_edge_env.baselines.hindsight_bound`) and one
episode of ``mpc``, CPU time per episode as env-step multiples beside 0.5.0's
(:data:`EPISODE_STEPS_0_5_0`).

Usage::

    aigc-edge bench solvers [--slots 20] [--n-users 5 8 10 20 50 100]
                                           [--time-budget 2.0] [--seed 0] [--episodes 0]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from aigc_edge_env import AIGCEdgeEnv, Decision, SlotProblem, evaluate_decision
from aigc_edge_env.baselines import SOLVERS, hindsight_bound, solve_exact
from aigc_edge_env.benchmarks.env_speed import env_step_cpu_s
from aigc_edge_env.cli.common import ArgumentParser, add_progress, count, positive_float, seed
from aigc_edge_env.evaluation.runner import EVAL_SEED, run_episode
from aigc_edge_env.evaluation.slots import collect_slots
from aigc_edge_env.evaluation.statistics import relative_gap_pct
from aigc_edge_env.policies.base import SOLVER_STREAM, policy_rng
from aigc_edge_env.policies.registry import make_policy
from aigc_edge_env.progress import progress_bar

TEACHING_SHARE = (0.2, 0.8)
DEFAULT_N = 10
#: 0.5.0's CPU time per slot as multiples of one ``AIGCEdge-v0`` env step (40 slots of
#: ``AIGCEdgeEnv(config={"n_users": N})`` per size, timed with the env step in the same process on the
#: 2-core development machine; docs/solver.md section 9), by solver and ``N``.
SLOT_STEPS_0_5_0 = {"exact": {5: 135, 10: 176, 20: 221, 50: 360, 100: 623},
                    "sca_kkt": {5: 188, 10: 229, 20: 317, 50: 410, 100: 551}}
#: 0.5.0's CPU time per ``AIGCEdge-Battery-v0`` episode as env-step multiples (the mean over seeds
#: 10000-10002, same machine and protocol; docs/solver.md section 10).
EPISODE_STEPS_0_5_0 = {"hindsight bound": 362_000, "mpc": 786_000}
EPISODE_ENV = "AIGCEdge-Battery-v0"


@dataclass
class SolverStats:
    """Per-slot measurements of one solver."""

    times_s: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    drops: int = 0


@dataclass
class BestKnown:
    """Offload and step counts of the best known decisions, over all requests."""

    n_requests: int = 0
    n_offloaded: int = 0
    steps: dict[int, int] = field(default_factory=dict)

    def add(self, problem: SlotProblem, decision: Decision) -> None:
        active = problem.has_request
        self.n_requests += int(active.sum())
        self.n_offloaded += int((decision.offload & active).sum())
        for s in decision.steps[active]:
            self.steps[int(s)] = self.steps.get(int(s), 0) + 1

    @property
    def offload_share(self) -> float:
        return self.n_offloaded / max(self.n_requests, 1)

    def interior_share(self, levels: tuple[int, ...]) -> float:
        interior = sum(n for s, n in self.steps.items() if s not in (levels[0], levels[-1]))
        return interior / max(self.n_requests, 1)


def run_slot(problem: SlotProblem, time_budget_s: float, stats: dict[str, SolverStats]) -> tuple[Decision, float, bool]:
    """Run every solver on one slot; return the best known decision, the reference and
    whether ``exact`` proved optimality."""
    decisions: dict[str, Decision] = {}
    reference, proven = 0.0, False
    for name, solve in SOLVERS.items():
        start = time.process_time()
        if name == "exact":
            result = solve_exact(problem, time_budget_s=time_budget_s)
            decision, reference, proven = result.decision, result.lower_bound, result.proven_optimal
        else:
            decision = solve(problem, rng=policy_rng(0, SOLVER_STREAM))
        stats[name].times_s.append(time.process_time() - start)
        evaluation = evaluate_decision(problem, decision)
        stats[name].costs.append(float(evaluation.total_cost))
        stats[name].drops += int(evaluation.dropped.sum())
        decisions[name] = decision
    best = min(SOLVERS, key=lambda name: stats[name].costs[-1])
    if proven:
        reference = stats["exact"].costs[-1]
    return decisions[best], reference, proven


def benchmark(n_users: int, n_slots: int, time_budget_s: float, seed: int, step_s: float,
              progress: bool = True) -> BestKnown:
    """Run and print the table of one ``N``; return the best-known statistics."""
    problems = collect_slots({"n_users": n_users}, seed, n_slots)
    stats = {name: SolverStats() for name in SOLVERS}
    best_known, references, n_proven = BestKnown(), [], 0
    with progress_bar(n_slots, f"N={n_users}", "slot", progress) as bar:
        for problem in problems:
            decision, reference, proven = run_slot(problem, time_budget_s, stats)
            best_known.add(problem, decision)
            references.append(reference)
            n_proven += proven
            bar.update()
    print_table(n_users, stats, np.array(references), n_proven, best_known, problems[0].config.step_levels, step_s)
    return best_known


def print_table(
    n_users: int, stats: dict[str, SolverStats], references: np.ndarray, n_proven: int,
    best_known: BestKnown, levels: tuple[int, ...], step_s: float,
) -> None:
    print(f"\nN = {n_users}: {references.size} slots, exact proven optimal on {n_proven}/{references.size}, "
          f"mean reference cost {np.mean(references):.4f}")
    print(f"  {'solver':<16}{'median ms':>10}{'env steps':>10}{'0.5.0':>7}{'mean cost':>12}{'mean gap':>11}"
          f"{'gap %':>9}{'drops':>7}")
    for name, s in stats.items():
        gap = float(np.mean(s.costs) - np.mean(references))
        gap_pct = float(relative_gap_pct(float(np.mean(s.costs)), float(np.mean(references))))
        before = SLOT_STEPS_0_5_0.get(name, {}).get(n_users)
        print(f"  {name:<16}{1e3 * np.median(s.times_s):>10.2f}{np.median(s.times_s) / step_s:>10.0f}"
              f"{'-' if before is None else before:>7}{np.mean(s.costs):>12.4f}{gap:>11.4f}{gap_pct:>9.2f}"
              f"{s.drops:>7d}")
    histogram = "  ".join(f"{s}:{best_known.steps.get(s, 0)}" for s in levels)
    print(f"  best known: offload share {100 * best_known.offload_share:.1f}% of {best_known.n_requests} requests, "
          f"interior steps {100 * best_known.interior_share(levels):.1f}%")
    print(f"  steps histogram: {histogram}")


def episode_times(n_episodes: int, step_s: float, progress: bool = True) -> None:
    """Print the CPU time of the hindsight bound and of one ``mpc`` episode per ``AIGCEdge-Battery-v0``
    episode (seeds from 10000), as env-step multiples beside 0.5.0's."""
    runs = {"hindsight bound": lambda s: hindsight_bound(EPISODE_ENV, s),
            "mpc": lambda s: run_episode(gym.make(EPISODE_ENV), make_policy("mpc"), s)}
    seeds = list(range(EVAL_SEED, EVAL_SEED + n_episodes))
    print(f"\n{EPISODE_ENV}, seeds {seeds[0]}-{seeds[-1]}: CPU time per episode "
          f"(one AIGCEdge-v0 env step = {1e6 * step_s:.1f} us)")
    print(f"  {'':<16}{'s':>8}{'env steps':>12}{'0.5.0':>10}{'speed-up':>10}")
    for name, run in runs.items():
        times = []
        with progress_bar(len(seeds), name, "episode", progress) as bar:
            for s in seeds:
                start = time.process_time()
                run(s)
                times.append(time.process_time() - start)
                bar.update()
        steps = float(np.mean(times)) / step_s
        print(f"  {name:<16}{np.mean(times):>8.2f}{steps:>12,.0f}{EPISODE_STEPS_0_5_0[name]:>10,}"
              f"{EPISODE_STEPS_0_5_0[name] / steps:>9.1f}x")


def main(argv: list[str] | None = None, prog: str = "aigc-edge bench solvers") -> int:
    parser = ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=count, default=20, help="slots per N (default 20)")
    parser.add_argument("--n-users", type=count, nargs="+", default=[5, 8, 10, 20, 50, 100], help="values of N")
    parser.add_argument("--time-budget", type=positive_float, default=2.0, help="exact's time budget per slot, s")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the first episode")
    parser.add_argument("--episodes", type=int, default=0,
                        help=f"also time the hindsight bound and mpc on this many {EPISODE_ENV} episodes (default 0)")
    add_progress(parser)
    args = parser.parse_args(argv)
    if args.episodes < 0:
        parser.error(f"--episodes must be >= 0, got {args.episodes}")
    step_s = env_step_cpu_s()
    print(f"solvers: {', '.join(SOLVERS)}; gap = cost - (exact optimum, or exact's certified lower bound); "
          f"times are CPU time, one AIGCEdge-v0 env step = {1e6 * step_s:.1f} us")
    progress = not args.no_progress
    results = {n: benchmark(n, args.slots, args.time_budget, args.seed, step_s, progress) for n in args.n_users}
    if DEFAULT_N in results:
        best, levels = results[DEFAULT_N], AIGCEdgeEnv().config.step_levels
        share, interior = best.offload_share, best.interior_share(levels)
        teaching = TEACHING_SHARE[0] <= share <= TEACHING_SHARE[1] and interior > 0.5
        print(f"\nAIGCEdge-v0 defaults teaching: {'YES' if teaching else 'NO'} (offload share {100 * share:.1f}% "
              f"in [20%, 80%]: {TEACHING_SHARE[0] <= share <= TEACHING_SHARE[1]}; interior steps "
              f"{100 * interior:.1f}% > 50%: {interior > 0.5})")
    if args.episodes:
        episode_times(args.episodes, step_s, progress)
    return 0


if __name__ == "__main__":  # run as a script by its old name
    raise SystemExit("this module runs as `aigc-edge bench solvers` (see `aigc-edge bench solvers --help`)")
