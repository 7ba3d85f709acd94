"""The optimum under different error curves: offload share and step counts against a parameter.

``aigc-edge experiments curves --param weight_error`` runs the exact solver on the same slots under each
named curve pair of :data:`CURVES` (the edge's and the device's curve, names of
``aigc_edge_env.error_curves.NAMED_ERROR_CURVES``) for each value of a sweep parameter
(:data:`experiments.sweep.PARAMS`), and writes ``<out>/curves_<param>.csv`` (per curve and value:
per-slot means over the seeds with 95% bootstrap intervals over seeds), ``<out>/curves_<param>_slots.csv``
(every slot), ``<out>/curves_<param>.png`` and ``<out>/error_curves.png`` (the curves themselves).
Per slot it records the offload share (requests served at the edge over requests), the mean steps of
the edge-served and of the locally served requests, the mean error per served request and the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aigc_edge_env.evaluation.statistics import mean_interval
from aigc_edge_env.evaluation.writers import write_csv
from aigc_edge_env.experiments.common import per_slot_metrics, run_points
from aigc_edge_env.experiments.sweep import PARAMS
from aigc_edge_env.plotting import pyplot, save_figure

#: Curve pairs compared: label -> (edge_error_curve, device_error_curve).
CURVES = {"ddim-cifar10": ("ddim-cifar10", "ddim-cifar10-device"), "digits-ddim": ("digits-ddim", "digits-ddim-device")}
#: Per-slot values recorded, with axis labels.
VALUES = {"offload_share": "offload share", "edge_steps": "mean steps of edge requests",
          "local_steps": "mean steps of local requests", "mean_error": "mean error per served request",
          "cost": "mean slot cost"}


def run_curves(param: str, values: Sequence[float] | None, seeds: Sequence[int], n_slots: int, out: Path,
               curves: Sequence[str] = tuple(CURVES), workers: int | None = None,
               progress: bool = True, address: str | None = None, base: dict[str, Any] | None = None,
               ) -> dict[str, Path]:
    """Run the comparison (``base``: config overrides of every point) and write its CSVs and PNG; returns the
    paths written."""
    if param not in PARAMS:
        raise ValueError(f"param = {param!r} is invalid: accepted one of {sorted(PARAMS)}")
    unknown = [c for c in curves if c not in CURVES]
    if unknown:
        raise ValueError(f"curves = {list(curves)} is invalid: {unknown} unknown; accepted names in {sorted(CURVES)}")
    spec = PARAMS[param]
    values = [int(v) if spec.integer else v for v in (values or spec.values)]
    points = [((curve, value), {**(base or {}), "edge_error_curve": CURVES[curve][0],
                                "device_error_curve": CURVES[curve][1], **spec.overrides(value)})
              for curve in curves for value in values]
    rows = run_points(points, seeds, n_slots, ["exact"], workers, progress, f"curves {param}", address,
                      out=Path(out))
    for row in rows:
        row["curve"], row["value"] = row.pop("point")
    summary = []
    for curve in curves:
        for value in values:
            point = [r for r in rows if r["curve"] == curve and r["value"] == value]
            entry: dict[str, Any] = {"curve": curve, "param": param, "value": value, "n_seeds": len(seeds)}
            for name in VALUES:
                per_seed = [_seed_value(name, [r for r in point if r["seed"] == s]) for s in seeds]
                entry[name], entry[f"{name}_low"], entry[f"{name}_high"] = mean_interval(per_seed)
            summary.append(entry)
    out = Path(out)
    paths = {"csv": out / f"curves_{param}.csv", "slots_csv": out / f"curves_{param}_slots.csv",
             "png": out / f"curves_{param}.png"}
    write_csv(paths["slots_csv"], rows)
    write_csv(paths["csv"], summary)
    plot_curves(summary, param, paths["png"])
    paths["curves_png"] = out / "error_curves.png"
    plot_error_curves(curves, paths["curves_png"])
    return paths


def _seed_value(name: str, slot_rows: Sequence[dict[str, Any]]) -> float:
    """One seed's value of ``name`` over its slots: the engine's definition for the cost (per slot), the
    mean error (weighted by requests served) and the offload share (of requests); the mean over the slots
    that have any for the steps of edge and local requests."""
    if name in ("edge_steps", "local_steps"):
        return float(np.nanmean([r[name] for r in slot_rows]))
    return per_slot_metrics(slot_rows)[name]


def plot_error_curves(curves: Sequence[str], path: Path) -> None:
    """Each pair's edge and device curves over the default step levels' range, as they are and divided by
    their value at 5 steps (the shapes)."""
    plt = pyplot()

    from aigc_edge_env.error_curves import NAMED_ERROR_CURVES

    steps = np.geomspace(1, 200, 200)
    fig, (ax, shape_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, curve in enumerate(curves):
        for name, style in zip(CURVES[curve], ("-", "--"), strict=True):
            values = NAMED_ERROR_CURVES[name].error(steps)
            color = f"C{index}"
            ax.plot(steps, values, style, color=color, label=name)
            shape_ax.plot(steps, values / NAMED_ERROR_CURVES[name].error(5.0), style, color=color, label=name)
    for axis, label in ((ax, "error eps(s)"), (shape_ax, "eps(s) / eps(5)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.axvspan(5, 50, color="0.9", zorder=0)  # the default step levels
        axis.set_xlabel("reverse steps s (shaded: AIGCEdge-v0's levels 5-50)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.suptitle("Named error curves (aigc_edge_env.error_curves.NAMED_ERROR_CURVES): solid edge, dashed device")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save_figure(fig, path)


def plot_curves(summary: Sequence[dict[str, Any]], param: str, path: Path) -> None:
    plt = pyplot()

    spec = PARAMS[param]
    fig, axes = plt.subplots(1, len(VALUES), figsize=(4 * len(VALUES), 3.6))
    for ax, (name, label) in zip(axes, VALUES.items(), strict=True):
        for curve in dict.fromkeys(r["curve"] for r in summary):
            rows = [r for r in summary if r["curve"] == curve]
            x = np.array([r["value"] for r in rows], dtype=float)
            y, low, high = (np.array([r[k] for r in rows]) for k in (name, f"{name}_low", f"{name}_high"))
            ax.errorbar(x, y, yerr=[np.maximum(y - low, 0), np.maximum(high - y, 0)], marker="o", ms=4, capsize=2,
                        label=curve)
        if spec.log_x:
            ax.set_xscale("log")
        ax.set_xlabel(spec.label)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Exact optimum under each error curve against {spec.label} (AIGCEdge-v0 otherwise; means over "
                 f"{summary[0]['n_seeds']} seeds' slots, 95% bootstrap intervals over seeds)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save_figure(fig, path)
