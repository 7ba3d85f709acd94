"""The battery price rules' grid on training seeds: ``aigc-edge experiments rules``.

The hand-made planning rules of the battery study each have parameters; they are chosen here
on *training* episodes (``reset(seed)`` for seeds ``0 .. episodes - 1``, apart from the
evaluation seeds ``10000 ...`` that :mod:`aigc_edge_env.experiments.battery` reports on):

* ``exact+price<λ>``: a constant price ``λ`` per J for every user;
* ``exact+price<λ>(1-t/H)``: a price decaying from ``λ`` to 0 at the horizon;
* ``lyapunov(V=<V>,theta=<θ>)``: the drift-plus-penalty price ``max(θ - battery, 0) / V``;
* ``mpc(every=<k>,slots=<m>)``: re-planning on a sampled future (:mod:`aigc_edge_env.policies.mpc`),
  every ``k`` slots on ``m`` sampled slots (10-40 s per episode: the slowest family).

``families`` (``--families``) plays a subset of :data:`GRID`'s families; the other families' rows
and best entries of an earlier run in the same folder, on the same seeds and config, are kept.

Each candidate of :data:`GRID` plays every training episode (the engine's runner); the best
of each family is the one with the highest mean episode return.  Writes ``rules.csv`` (every
candidate: family, parameters, mean return with its 95% bootstrap interval over the
episodes, its mean difference to ``exact`` paired by seed) and ``rules_best.json`` (the best
name per family and its parameters), which ``aigc-edge experiments battery`` reads.  Both are
written only when every return is a finite number (``ValueError`` otherwise: an earlier valid
``rules_best.json`` is never replaced by NaNs), each atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aigc_edge_env.evaluation.statistics import mean_interval
from aigc_edge_env.evaluation.writers import read_csv, write_csv
from aigc_edge_env.experiments.battery import ENV_ID, policy_task
from aigc_edge_env.experiments.common import resumable_map
from aigc_edge_env.files import write_atomic
from aigc_edge_env.policies.registry import lyapunov_policy_name, mpc_policy_name, price_policy_name

#: Candidates per family: constant prices (1/J), initial decaying prices (1/J), (V, theta) of lyapunov,
#: (every, slots) of mpc.
GRID: dict[str, list[Any]] = {
    "constant": [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5],
    "decaying": [0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.2, 1.6],
    "lyapunov": [(v, theta) for theta in (60.0, 80.0, 100.0, 130.0, 160.0) for v in (50.0, 100.0, 150.0, 200.0, 400.0)],
    "mpc": [(25, 20), (10, 20), (5, 20), (10, 40)],
}


def candidate_names(grid: dict[str, list[Any]] = GRID) -> dict[str, tuple[str, Any]]:
    """``make_policy`` name -> (family, parameters) of every candidate."""
    names: dict[str, tuple[str, Any]] = {}
    for price in grid.get("constant", []):
        names[price_policy_name("exact", price)] = ("constant", {"price_per_j": price})
    for price in grid.get("decaying", []):
        names[price_policy_name("exact", price, decaying=True)] = ("decaying", {"initial_price_per_j": price})
    for v, theta in grid.get("lyapunov", []):
        names[lyapunov_policy_name(v, theta)] = ("lyapunov", {"V": v, "theta": theta})
    for every, slots in grid.get("mpc", []):
        names[mpc_policy_name(every, slots)] = ("mpc", {"every": every, "slots": slots})
    return names


def run_rules(episodes: int, out: Path, seed: int = 0, grid: dict[str, list[Any]] = GRID,
             overrides: dict[str, Any] | None = None, workers: int | None = None, progress: bool = True,
             confidence: float = 0.95, address: str | None = None,
             families: Sequence[str] | None = None) -> dict[str, Path]:
    """Play every candidate (and ``exact``) on training seeds ``seed ...``; write the table and the best.

    ``families``: the families of ``grid`` to tune (default all); an unknown one raises ``ValueError``,
    and so do ``episodes`` below 1 and any return that is not a finite number (nothing is written then).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    unknown = sorted(set(families or ()) - set(grid))
    if unknown:
        raise ValueError(f"unknown families {unknown}: accepted {sorted(grid)}")
    grid = {family: grid[family] for family in (families or grid)}
    overrides = dict(overrides or {})
    seeds = list(range(seed, seed + episodes))
    candidates = candidate_names(grid)
    labels = ["exact", *candidates]
    tasks = [(label, None, overrides, seeds) for label in labels]
    results = {r.name: r for r in resumable_map(policy_task, tasks, out, workers, address, progress, desc="tuning",
                                                 unit="policy")}
    exact = results["exact"].episodes["reward"]
    rows = []
    for label in labels:
        family, params = candidates.get(label, ("myopic", {}))
        rewards = results[label].episodes["reward"]
        mean, low, high = mean_interval(rewards, confidence)
        diff, diff_low, diff_high = mean_interval(rewards - exact, confidence)
        rows.append({"policy": label, "family": family, **params, "reward": mean, "reward_low": low,
                     "reward_high": high, "diff_vs_exact": diff, "diff_low": diff_low, "diff_high": diff_high})
    invalid = [row["policy"] for row in rows if not all(math.isfinite(row[k]) for k in ("reward", "diff_vs_exact"))]
    if invalid:
        raise ValueError(f"returns that are not finite numbers for {invalid}: nothing written to {out}")
    best = {}
    for family in grid:
        members = [row for row in rows if row["family"] == family]
        if members:
            top = max(members, key=lambda row: row["reward"])
            best[family] = {"policy": top["policy"], **candidates[top["policy"]][1], "reward": top["reward"]}
    out = Path(out)
    paths = {"csv": out / "rules.csv", "best": out / "rules_best.json"}
    kept_rows, kept_best = earlier_results(paths, seeds, overrides, tuned=set(grid))
    rows, best = [*rows, *kept_rows], {**kept_best, **best}
    write_csv(paths["csv"], rows)
    write_atomic(paths["best"], json.dumps({"env_id": ENV_ID, "config_overrides": overrides, "seeds": seeds,
                                            "best": best}, indent=2, allow_nan=False))
    return paths


def earlier_results(paths: dict[str, Path], seeds: list[int], overrides: dict[str, Any], tuned: set[str]
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and best entries of the families *not* in ``tuned`` from an earlier run in the same folder
    on the same seeds and config (so tuning one family keeps the others'); nothing otherwise."""
    if not (paths["best"].exists() and paths["csv"].exists()):
        return [], {}
    earlier = _read_best(paths["best"])
    if (earlier.get("env_id"), earlier.get("seeds"), earlier.get("config_overrides")) != (ENV_ID, seeds, overrides):
        return [], {}
    rows = [row for row in read_csv(paths["csv"]) if row["family"] not in tuned and row["family"] != "myopic"]
    return rows, {family: entry for family, entry in earlier["best"].items() if family not in tuned}


def tuned_policies(path: Path) -> list[str]:
    """The best policy name per family in a ``rules_best.json``."""
    return [entry["policy"] for entry in _read_best(Path(path))["best"].values()]


def _read_best(path: Path) -> dict[str, Any]:
    """A ``rules_best.json``; ``ValueError`` naming it when it is unreadable or not one."""
    try:
        best = json.loads(path.read_text(), parse_constant=lambda name: float("nan"))
        if not all(isinstance(entry["policy"], str) and math.isfinite(entry["reward"])
                   for entry in best["best"].values()):
            raise ValueError("an entry without a policy name or a finite reward")
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path} is not a valid rules_best.json ({type(exc).__name__}: {exc}): run "
                         "`aigc-edge experiments rules` again or remove it") from None
    return best

