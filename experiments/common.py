"""Shared machinery of the experiments: seeded slots, solver evaluation, intervals, plotting.

Every solver is evaluated on the same seeded slots at each point: slot ``t`` of seed ``k``
is the ``t``-th slot of ``env.reset(seed=k)`` stepped with a fixed action (all local at the
smallest level).  Without batteries the env's exogenous randomness (requests, sizes,
fading) does not depend on the actions, so these are exactly the slots any policy would
meet.  Each solver's decision is scored with :func:`aigc_edge_env.evaluate_decision`.

Confidence intervals are Student-t intervals over the per-seed (per-episode) means: the
slots of one episode share the users' distances and clocks, so the episodes, not the
slots, are the independent samples.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

#: Per-slot metrics recorded for every solver (slot totals, as in the env's ``info``).
METRICS = ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped", "offload_share",
           "n_requests", "edge_load", "gap_pct", "solve_ms")

#: Metrics plotted by the sweeps, with axis labels (units).
PLOTTED = {
    "cost": "mean slot cost",
    "gap_pct": "gap of mean cost to exact (%)",
    "time_s": "total time per slot (s)",
    "energy_j": "device energy per slot (J)",
    "mean_error": "mean error (FID-like)",
    "utility": "utility per slot",
    "n_dropped": "drops per slot",
    "offload_share": "offload share",
}


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def slot_problems(overrides: Mapping[str, Any], seed: int, n_slots: int, scenario: str = "AIGCEdge-v0") -> list:
    """The first ``n_slots`` slots of ``reset(seed)`` (stepped with a fixed action)."""
    from aigc_edge_env import AIGCEdgeEnv

    env = AIGCEdgeEnv(config=dict(overrides), scenario=scenario)
    if env.config.battery_enabled:
        raise ValueError("slot sweeps need battery-free configs (decisions would change later slots)")
    env.reset(seed=int(seed))
    fixed = np.zeros(env.action_space.shape, dtype=np.int64)  # all local, smallest level
    problems = []
    for _ in range(n_slots):
        problems.append(env.current_problem())
        env.step(fixed)
    return problems


def evaluate_slots(problems: Sequence, solvers: Sequence[str], seed: int) -> list[dict[str, float]]:
    """One row per (slot, solver): every metric of :data:`METRICS` (``gap_pct`` to ``exact``)."""
    from aigc_edge_env import evaluate_decision
    from aigc_edge_env.baselines import SOLVERS

    rows = []
    for t, problem in enumerate(problems):
        slot_rows = {}
        for name in solvers:
            rng = np.random.default_rng([int(seed), t])
            start = time.perf_counter()
            decision = SOLVERS[name](problem, rng=rng)
            solve_ms = 1e3 * (time.perf_counter() - start)
            summary = evaluate_decision(problem, decision).summary()
            row = {"slot": t, "solver": name, "solve_ms": solve_ms}
            row.update({k: float(summary[k]) for k in METRICS if k in summary})
            slot_rows[name] = row
        reference = slot_rows.get("exact")
        for row in slot_rows.values():
            if reference is None:
                row["gap_pct"] = float("nan")
            else:
                ref = reference["cost"]
                row["gap_pct"] = 100.0 * (row["cost"] - ref) / abs(ref) if ref != 0 else 0.0
            rows.append(row)
    return rows


def _point_task(args: tuple) -> list[dict[str, Any]]:
    label, overrides, seed, n_slots, solvers = args
    rows = evaluate_slots(slot_problems(overrides, seed, n_slots), solvers, seed)
    for row in rows:
        row["point"] = label
        row["seed"] = int(seed)
    return rows


def run_points(
    points: Sequence[tuple[Any, Mapping[str, Any]]],
    seeds: Sequence[int],
    n_slots: int,
    solvers: Sequence[str],
    workers: int | None = None,
    progress: bool = True,
    desc: str = "points x seeds",
) -> list[dict[str, Any]]:
    """Per-slot rows for every (point, seed); points x seeds run in ``workers`` processes."""
    from tqdm.auto import tqdm

    tasks = [(label, dict(ov), int(seed), n_slots, list(solvers)) for label, ov in points for seed in seeds]
    workers = default_workers() if workers is None else max(1, int(workers))
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(tasks), disable=not progress, desc=desc, unit="task") as bar:
        if workers == 1:
            for task in tasks:
                rows.extend(_point_task(task))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_point_task, tasks):
                    rows.extend(result)
                    bar.update()
    return rows


def t_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of independent samples (``(m, m, m)`` for one sample or no spread)."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2 or np.ptp(x) == 0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def aggregate(rows: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per (point, solver): mean of every metric over all slots, with a t-interval over seed means."""
    groups: dict[tuple, dict[int, list]] = {}
    for row in rows:
        groups.setdefault((row["point"], row["solver"]), {}).setdefault(row["seed"], []).append(row)
    out = []
    for (point, solver), by_seed in groups.items():
        agg: dict[str, Any] = {"point": point, "solver": solver, "n_seeds": len(by_seed),
                               "n_slots": sum(len(v) for v in by_seed.values())}
        for metric in METRICS:
            seed_means = [np.mean([r[metric] for r in v]) for v in by_seed.values()]
            all_values = [r[metric] for v in by_seed.values() for r in v]
            mean, low, high = t_interval(seed_means, confidence)
            agg[metric] = float(np.mean(all_values))  # equal slots per seed: the mean of the seed means
            agg[f"{metric}_low"], agg[f"{metric}_high"] = low, high
        out.append(agg)
    _gap_of_means(out, groups, confidence)
    return out


def _gap_of_means(out: list[dict[str, Any]], groups: dict, confidence: float) -> None:
    """Replace ``gap_pct`` by the gap of mean costs, ``100 (mean cost - mean exact) / |mean exact|``.

    The mean of per-slot relative gaps (kept as ``slot_gap_pct``) explodes on slots whose
    optimal cost is near zero; the gap of the means does not.  Its interval is a t-interval
    over the seeds' own gaps of means.
    """
    for agg in out:
        agg["slot_gap_pct"], agg["slot_gap_pct_low"], agg["slot_gap_pct_high"] = (
            agg["gap_pct"], agg["gap_pct_low"], agg["gap_pct_high"])
        reference = groups.get((agg["point"], "exact"))
        if reference is None:
            continue
        own = groups[(agg["point"], agg["solver"])]
        ref_all = np.mean([r["cost"] for v in reference.values() for r in v])
        own_all = np.mean([r["cost"] for v in own.values() for r in v])
        per_seed = []
        for seed, rows in own.items():
            ref = np.mean([r["cost"] for r in reference[seed]])
            per_seed.append(100.0 * (np.mean([r["cost"] for r in rows]) - ref) / abs(ref) if ref else 0.0)
        _, low, high = t_interval(per_seed, confidence)
        agg["gap_pct"] = 100.0 * (own_all - ref_all) / abs(ref_all) if ref_all else 0.0
        agg["gap_pct_low"], agg["gap_pct_high"] = low, high


def write_csv(path, rows: Sequence[Mapping[str, Any]]) -> None:
    import csv

    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path) -> list[dict[str, Any]]:
    import csv

    def convert(value: str) -> Any:
        try:
            return float(value)
        except ValueError:
            return value

    with open(path, newline="") as f:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(f)]


#: A fixed colour and marker per solver, so every figure reads the same.
STYLE = {
    "exact": ("black", "o"), "sca_kkt": ("tab:red", "x"), "local_search": ("tab:purple", "s"),
    "greedy": ("tab:blue", "^"), "all_local": ("tab:green", "v"), "all_edge": ("tab:orange", "<"),
    "random": ("tab:gray", ">"), "fixed_steps_10": ("tab:brown", "d"), "fixed_steps_20": ("tab:pink", "P"),
}


def style(name: str) -> tuple[str, str]:
    return STYLE.get(name, ("tab:olive", "*"))


def save_figure(fig, path, dpi: int = 90) -> None:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
