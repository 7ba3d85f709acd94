"""Shared machinery of the experiments: solvers on common slots, summaries over seeds.

Every solver is evaluated on the same seeded slots at each point: the first ``n_slots`` slots
of ``env.reset(seed=k)`` (:func:`aigc_edge_env.evaluation.slots.collect_slots`; without batteries
they are exactly the slots any policy would meet).  Each solver's decision is scored with
:func:`aigc_edge_env.evaluate_decision`.

A seed's slots play the part of an episode of :mod:`aigc_edge_env.evaluation.runner`: the slots of
one episode share the users' distances and clocks, so the seeds, not the slots, are the
independent samples.  Per (point, solver, seed) the engine's metrics (one definition each,
:class:`~aigc_edge_env.evaluation.runner.EpisodeAccumulator`) are divided by the number of slots
where they are sums, giving per-slot values; a point reports their mean over the seeds with
the engine's bootstrap interval over the seeds (:func:`~aigc_edge_env.evaluation.statistics.mean_interval`).

Resuming (:func:`resumable_map`): every study keeps each finished task's result in
``<out>/.tasks/<task function>/<key>.pkl`` as it finishes (written atomically), the key a hash of
the task's settings and the package version.  A rerun with the same settings, after Ctrl-C, a
crash or ``kill -9``, finds them there and runs only the others.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aigc_edge_env.distributed import as_completed
from aigc_edge_env.evaluation.runner import SUMMED, EpisodeAccumulator
from aigc_edge_env.evaluation.slots import collect_slots, solve_slots
from aigc_edge_env.evaluation.statistics import confidence_interval, mean_interval, relative_gap_pct
from aigc_edge_env.files import write_atomic
from aigc_edge_env.model import SlotProblem

#: Per-slot values recorded for every solver (slot totals, as in the env's ``info``).
SLOT_VALUES = ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped", "offload_share",
               "n_requests", "n_served", "n_offloaded", "edge_load", "gap_pct", "solve_ms")
#: Metrics summarised per (point, solver): per slot, means over the seeds with intervals.
METRICS = ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped", "offload_share",
           "n_requests", "edge_load", "gap_pct", "solve_ms")
#: Metrics that are means of per-slot values (the others follow the engine's definitions).
_SLOT_MEANS = ("edge_load", "solve_ms", "gap_pct")

#: Metrics plotted by the sweeps, with axis labels (units).
PLOTTED = {
    "cost": "mean slot cost",
    "gap_pct": "gap of mean cost to exact (%)",
    "time_s": "total time per slot (s)",
    "energy_j": "device energy per slot (J)",
    "mean_error": "mean error per served request (FID-like)",
    "utility": "utility per slot",
    "n_dropped": "drops per slot",
    "offload_share": "offload share",
}


def evaluate_slots(problems: Sequence[SlotProblem], solvers: Sequence[str], seed: int) -> list[dict[str, Any]]:
    """One row per (slot, solver): every value of :data:`SLOT_VALUES` (``gap_pct`` to ``exact``) and the
    mean steps of the requests served at the edge and locally (``edge_steps``, ``local_steps``)."""
    rows = []
    for t, slot in enumerate(solve_slots(problems, solvers, seed)):
        reference = slot.get("exact")
        for name, result in slot.items():
            summary = result.evaluation.summary()
            row = {"slot": t, "solver": name, "solve_ms": 1e3 * result.solve_s}
            row.update({k: float(summary[k]) for k in SLOT_VALUES if k in summary})
            decision = result.decision
            for key, where in (("edge_steps", decision.offload), ("local_steps", ~decision.offload)):
                chosen = result.evaluation.served & where  # mean steps of the requests served there (nan: none)
                row[key] = float(decision.steps[chosen].mean()) if chosen.any() else float("nan")
            row["gap_pct"] = float(relative_gap_pct(result.cost, reference.cost)) if reference else float("nan")
            rows.append(row)
    return rows


#: The folder of an output folder where finished tasks are kept (:func:`resumable_map`).
TASK_DIR = ".tasks"


def task_key(function: Callable[[Any], Any], identity: Any) -> str:
    """A hash of the task function, what identifies its task (its settings) and the package version."""
    from aigc_edge_env import __version__

    text = json.dumps([function.__module__, function.__qualname__, identity, __version__], sort_keys=True,
                      default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def content_digest(paths: Iterable[Path]) -> str | None:
    """SHA-256 of the bytes of the files ``paths`` name (a folder: every file under it, with its relative
    path), for a task's identity: a task reading them runs again when they change (a model trained again),
    whatever their modification times.  ``None`` when none of them exists."""
    digest, found = hashlib.sha256(), False
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] * path.is_file()
        for file in files:
            name = file.relative_to(path) if path.is_dir() else file.name
            digest.update(f"{name}\0{file.stat().st_size}\0".encode())
            with file.open("rb") as handle:  # streamed: a checkpoint folder may be large
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            found = True
    return digest.hexdigest() if found else None


def resumable_map(function: Callable[[Any], Any], tasks: Sequence[Any], out: Path | None, workers: int | None = None,
                  address: str | None = None, progress: bool = True, desc: str = "", unit: str = "task",
                  identity: Callable[[Any], Any] | None = None) -> list[Any]:
    """``[function(task) for task in tasks]`` as :func:`~aigc_edge_env.distributed.as_completed` runs them,
    each result kept in ``<out>/.tasks/`` as it finishes and reused by a later call with the same task.

    ``identity(task)``: what identifies a task's result (default the task itself), e.g. with the
    modification time of a model file it reads.  ``out=None`` keeps nothing.
    """
    store = Path(out) / TASK_DIR / function.__name__ if out is not None else None
    results: list[Any] = [None] * len(tasks)
    todo: list[int] = []
    paths: list[Path | None] = []
    for i, task in enumerate(tasks):
        path = store / f"{task_key(function, (identity or (lambda t: t))(task))}.pkl" if store else None
        paths.append(path)
        if path is not None and path.exists():
            try:
                results[i] = pickle.loads(path.read_bytes())
                continue
            except Exception:  # a file damaged after it was written: the task runs again
                pass
        todo.append(i)
    if len(todo) < len(tasks):
        print(f"{desc}: {len(tasks) - len(todo)} of {len(tasks)} {unit}s found finished in {store}, not run again",
              flush=True)
    for j, result in as_completed(function, [tasks[i] for i in todo], workers, address, progress, desc, unit):
        path = paths[todo[j]]
        if path is not None:
            write_atomic(path, pickle.dumps(result))
        results[todo[j]] = result
    return results


def _point_task(args: tuple) -> list[dict[str, Any]]:
    label, overrides, seed, n_slots, solvers = args
    rows = evaluate_slots(collect_slots(overrides, seed, n_slots), solvers, seed)
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
    address: str | None = None,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Per-slot rows for every (point, seed); points x seeds run as tasks (:func:`resumable_map`, kept in ``out``)."""
    tasks = [(label, dict(ov), int(seed), n_slots, list(solvers)) for label, ov in points for seed in seeds]
    return [row for rows in resumable_map(_point_task, tasks, out, workers, address, progress, desc) for row in rows]


def per_slot_metrics(slot_rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The engine's metrics of a run of slots, per slot where they are sums, plus the means of
    :data:`_SLOT_MEANS` and ``n_requests`` per slot."""
    slot_rows = list(slot_rows)
    accumulator = EpisodeAccumulator()
    for row in slot_rows:
        accumulator.add(row)
    n_slots = accumulator.n_slots
    values = {k: v / n_slots if k in SUMMED else v for k, v in accumulator.result().items()}
    values["n_requests"] = accumulator.sums["n_requests"] / n_slots
    values.update({k: float(np.mean([row[k] for row in slot_rows])) for k in _SLOT_MEANS})
    return values


def _gap_pct(own: np.ndarray, reference: np.ndarray, axis: int = -1) -> np.ndarray:
    """The gap of mean costs along ``axis`` (:func:`~aigc_edge_env.evaluation.statistics.relative_gap_pct`)."""
    return relative_gap_pct(np.mean(own, axis=axis), np.mean(reference, axis=axis))


def aggregate(rows: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per (point, solver): every metric of :data:`METRICS`, the mean over seeds of its per-slot
    value (:func:`per_slot_metrics`), with an interval over the seeds.

    ``gap_pct`` is the gap of mean costs, ``100 (mean cost - mean exact) / |mean exact|``, its
    interval from resampling the seeds of both solvers together; the mean of per-slot relative
    gaps is kept as ``slot_gap_pct`` (it explodes on slots whose optimal cost is near zero).
    """
    groups: dict[tuple, dict[int, list]] = {}
    for row in rows:
        groups.setdefault((row["point"], row["solver"]), {}).setdefault(row["seed"], []).append(row)
    seed_values = {key: {seed: per_slot_metrics(v) for seed, v in by_seed.items()} for key, by_seed in groups.items()}
    out = []
    for (point, solver), by_seed in groups.items():
        agg: dict[str, Any] = {"point": point, "solver": solver, "n_seeds": len(by_seed),
                               "n_slots": sum(len(v) for v in by_seed.values())}
        values = seed_values[(point, solver)]
        for metric in METRICS:
            agg[metric], agg[f"{metric}_low"], agg[f"{metric}_high"] = mean_interval(
                [v[metric] for v in values.values()], confidence)
        agg["slot_gap_pct"], agg["slot_gap_pct_low"], agg["slot_gap_pct_high"] = (
            agg["gap_pct"], agg["gap_pct_low"], agg["gap_pct_high"])
        reference = seed_values.get((point, "exact"))
        if reference is not None:
            own = np.array([values[seed]["cost"] for seed in values])
            ref = np.array([reference[seed]["cost"] for seed in values])
            agg["gap_pct"] = float(_gap_pct(own, ref))
            agg["gap_pct_low"], agg["gap_pct_high"] = confidence_interval([own, ref], _gap_pct, confidence)
        out.append(agg)
    return out
