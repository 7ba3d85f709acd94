"""One-parameter sweeps: every solver's mean slot cost and components against a parameter.

``aigc-edge experiments sweep --param n_users --values 5 10 20 50`` writes
``<out>/sweep_<param>.csv`` (one row per value and solver: per-slot means over seeds with
95% bootstrap intervals over seeds, :func:`experiments.common.aggregate`),
``<out>/sweep_<param>_slots.csv`` (every slot and solver) and ``<out>/sweep_<param>.png``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aigc_edge_env.evaluation.writers import read_csv, write_csv
from aigc_edge_env.experiments.common import PLOTTED, aggregate, run_points
from aigc_edge_env.plotting import pyplot, save_figure, style


@dataclass(frozen=True)
class Param:
    """A sweepable parameter: its axis label, default values and how a value becomes overrides."""

    label: str
    values: tuple[float, ...]
    overrides: Callable[[float], dict[str, Any]]
    log_x: bool = False
    integer: bool = False


def _field(name: str) -> Callable[[float], dict[str, Any]]:
    return lambda v: {name: v}


PARAMS: dict[str, Param] = {
    "n_users": Param("number of users N", (5, 10, 20, 50), lambda v: {"n_users": int(v)}, log_x=True, integer=True),
    "edge_step_capacity": Param("edge capacity S^E_max (steps per slot)", (20, 40, 60, 100, 200),
                                lambda v: {"edge_step_capacity": int(v)}, integer=True),
    "edge_steps_per_s": Param("edge GPU speed F_E (steps/s)", (5, 10, 25, 50, 100), _field("edge_steps_per_s"),
                              log_x=True),
    "weight_time_per_s": Param("time weight w_T (1/s)", (0.25, 0.5, 1, 2, 4), _field("weight_time_per_s"),
                               log_x=True),
    "weight_energy_per_j": Param("energy weight w_E (1/J)", (0.01, 0.03, 0.1, 0.3, 1), _field("weight_energy_per_j"),
                                 log_x=True),
    "weight_error": Param("error weight w_Q", (0.05, 0.1, 0.2, 0.5, 1), _field("weight_error"), log_x=True),
    "weight_utility": Param("utility weight w_U", (0.25, 0.5, 1, 2, 4), _field("weight_utility"), log_x=True),
    "distance_max_m": Param("largest user distance (m)", (100, 200, 300, 500, 800),
                            lambda v: {"distance_m_range": (20.0, float(v))}, log_x=True),
    "user_tx_power_w": Param("user transmit power p (W)", (0.05, 0.1, 0.2, 0.5, 1), _field("user_tx_power_w"),
                             log_x=True),
}


def run_sweep(
    param: str,
    values: Sequence[float] | None,
    solvers: Sequence[str],
    seeds: Sequence[int],
    n_slots: int,
    out: Path,
    base: dict[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = True,
    confidence: float = 0.95,
    address: str | None = None,
) -> dict[str, Path]:
    """Run the sweep of ``param`` and write its CSVs and PNG; returns the paths written."""
    if param not in PARAMS:
        raise ValueError(f"unknown parameter {param!r}: accepted {sorted(PARAMS)}")
    spec = PARAMS[param]
    values = list(spec.values if not values else values)
    if spec.integer:
        values = [int(v) for v in values]
    points = [(v, {**(base or {}), **spec.overrides(v)}) for v in values]
    out = Path(out)
    rows = run_points(points, seeds, n_slots, solvers, workers=workers, progress=progress, desc=f"sweep {param}",
                      address=address, out=out)
    paths = {"csv": out / f"sweep_{param}.csv", "slots_csv": out / f"sweep_{param}_slots.csv",
             "png": out / f"sweep_{param}.png"}
    write_csv(paths["slots_csv"], [{**{k: v for k, v in row.items() if k != "point"}, "param": param,
                                    "value": row["point"]} for row in rows])
    write_summary(rows, param, solvers, paths["csv"], paths["png"], confidence)
    return paths


def write_summary(rows: Sequence[dict[str, Any]], param: str, solvers: Sequence[str], csv_path: Path,
                  png_path: Path, confidence: float = 0.95) -> None:
    """The summary CSV (:func:`~experiments.common.aggregate`, ``param`` and ``value`` first) and
    the PNG of per-slot rows whose ``point`` is the parameter's value."""
    order = {name: i for i, name in enumerate(solvers)}
    summary = sorted(aggregate(rows, confidence), key=lambda r: (r["point"], order[r["solver"]]))
    summary = [{"param": param, "value": r.pop("point"), **r} for r in summary]
    write_csv(csv_path, summary)
    plot_sweep(summary, param, solvers, png_path, confidence)


def plot_sweep(summary: Sequence[dict[str, Any]], param: str, solvers: Sequence[str], path: Path,
               confidence: float = 0.95) -> None:
    plt = pyplot()

    spec = PARAMS[param]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (metric, ylabel) in zip(axes.flat, PLOTTED.items(), strict=True):
        for name in solvers:
            rows = sorted((r for r in summary if r["solver"] == name), key=lambda r: r["value"])
            if not rows:
                continue
            x = np.array([r["value"] for r in rows], dtype=float)
            y = np.array([r[metric] for r in rows])
            low = np.array([r[f"{metric}_low"] for r in rows])
            high = np.array([r[f"{metric}_high"] for r in rows])
            color, marker = style(name)
            ax.errorbar(x, y, yerr=[np.maximum(y - low, 0), np.maximum(high - y, 0)], color=color, marker=marker,
                        ms=4, lw=1.2, capsize=2, label=name)
        if spec.log_x:
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            ax.set_xscale("log")
            ax.set_xticks(sorted({r["value"] for r in summary}))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        if metric == "gap_pct":
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel(spec.label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    n_seeds = int(summary[0]["n_seeds"]) if summary else 0
    fig.suptitle(f"Slot solvers against {spec.label} (AIGCEdge-v0 otherwise; mean over {n_seeds} seeds' slots, "
                 f"{int(100 * confidence)}% bootstrap intervals over seeds)")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    save_figure(fig, path)


def replot(csv_path: Path, png_path: Path | None = None) -> Path:
    """Redo a sweep's summary CSV and PNG from its per-slot CSV (``sweep_<param>_slots.csv``; no solver is run)."""
    csv_path = Path(csv_path)
    slots_path = csv_path.with_name(csv_path.stem.removesuffix("_slots") + "_slots.csv")
    summary_path = slots_path.with_name(slots_path.name.replace("_slots.csv", ".csv"))
    rows = [{**row, "point": row["value"]} for row in read_csv(slots_path)]
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    png_path = Path(png_path) if png_path else summary_path.with_suffix(".png")
    write_summary(rows, rows[0]["param"], solvers, summary_path, png_path)
    return png_path
