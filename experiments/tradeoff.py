"""The latency-energy-quality front traced by ``exact`` as the weights vary.

``aigc-edge experiments tradeoff`` evaluates every solver on the same seeded slots for each
(w_E, w_Q) of a grid (other weights at their defaults) and writes ``tradeoff.csv`` (per
weight pair and solver: time and energy per request, mean error per served request and
offload share pooled over all slots, as :mod:`aigc_edge_env.evaluation` defines them) and ``tradeoff.png``: the
three 2-D projections of the (time, energy, error) points, ``exact`` over the whole grid
(coloured by w_E, sized by w_Q), and every heuristic at the default weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aigc_edge_env.evaluation.runner import EpisodeAccumulator
from aigc_edge_env.evaluation.writers import write_csv
from aigc_edge_env.experiments.common import run_points
from aigc_edge_env.plotting import pyplot, save_figure, style

ENERGY_WEIGHTS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
ERROR_WEIGHTS = (0.05, 0.2, 1.0, 5.0)
DEFAULT_WEIGHTS = (0.1, 0.2)


def per_request(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (point, solver), pooled over all slots: time and energy per request, the engine's
    ``mean_error`` and ``offload_share``, mean slot cost and drops."""
    groups: dict[tuple, EpisodeAccumulator] = {}
    for row in rows:
        groups.setdefault((row["point"], row["solver"]), EpisodeAccumulator()).add(row)
    out = []
    for (point, solver), pooled in groups.items():
        n_req = pooled.sums["n_requests"]
        metrics = pooled.result()
        out.append({
            "weight_energy_per_j": point[0], "weight_error": point[1], "solver": solver,
            "slots": pooled.n_slots, "requests": n_req,
            "time_s_per_request": metrics["time_s"] / max(n_req, 1),
            "energy_j_per_request": metrics["energy_j"] / max(n_req, 1),
            "mean_error": metrics["mean_error"],
            "offload_share": metrics["offload_share"],
            "cost": metrics["cost"] / pooled.n_slots,
            "drops": metrics["n_dropped"],
        })
    return out


def run_tradeoff(
    solvers: Sequence[str], seeds: Sequence[int], n_slots: int, out: Path,
    energy_weights: Sequence[float] = ENERGY_WEIGHTS, error_weights: Sequence[float] = ERROR_WEIGHTS,
    workers: int | None = None, progress: bool = True, address: str | None = None,
    base: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """The front over the (w_E, w_Q) grid (``base``: config overrides of every point); writes the CSV and PNG."""
    base = dict(base or {})
    grid = list(itertools.product(energy_weights, error_weights))
    if DEFAULT_WEIGHTS not in grid:
        grid.append(DEFAULT_WEIGHTS)
    points = [((w_e, w_q), {**base, "weight_energy_per_j": w_e, "weight_error": w_q}) for w_e, w_q in grid]
    # heuristics only at the default weights; exact (and sca_kkt) over the whole grid
    front_solvers = [s for s in solvers if s in ("exact", "sca_kkt")]
    out = Path(out)
    rows = run_points(points, seeds, n_slots, front_solvers, workers=workers, progress=progress, desc="tradeoff grid",
                      address=address, out=out)
    others = [s for s in solvers if s not in front_solvers]
    if others:
        rows += run_points([(DEFAULT_WEIGHTS, base)], seeds, n_slots, others, workers=workers, progress=progress,
                           desc="heuristics", address=address, out=out)
    table = per_request(rows)
    table.sort(key=lambda r: (r["solver"], r["weight_energy_per_j"], r["weight_error"]))
    paths = {"csv": out / "tradeoff.csv", "png": out / "tradeoff.png"}
    write_csv(paths["csv"], table)
    plot_tradeoff(table, paths["png"])
    return paths


def plot_tradeoff(table: Sequence[dict[str, Any]], path: Path) -> None:
    from matplotlib.colors import LogNorm

    plt = pyplot()

    axes_spec = [("time_s_per_request", "energy_j_per_request"), ("time_s_per_request", "mean_error"),
                 ("energy_j_per_request", "mean_error")]
    labels = {"time_s_per_request": "mean time per request (s)",
              "energy_j_per_request": "device energy per request (J)",
              "mean_error": "mean error per served request (FID-like)"}
    exact = [r for r in table if r["solver"] == "exact"]
    w_e = np.array([r["weight_energy_per_j"] for r in exact])
    w_q = np.array([r["weight_error"] for r in exact])
    sizes = 15 + 25 * (np.log10(w_q) - np.log10(w_q.min()) + 0.01) if exact else []
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for ax, (kx, ky) in zip(axes, axes_spec, strict=True):
        sc = ax.scatter([r[kx] for r in exact], [r[ky] for r in exact], c=w_e, s=sizes, cmap="viridis",
                        norm=LogNorm(vmin=w_e.min(), vmax=w_e.max()), edgecolors="black", linewidths=0.4,
                        label="exact over the (w_E, w_Q) grid", zorder=2)
        for r in table:
            on_default = (r["weight_energy_per_j"], r["weight_error"]) == DEFAULT_WEIGHTS
            if r["solver"] != "exact" and on_default and r["solver"] != "sca_kkt":
                color, marker = style(r["solver"])
                ax.scatter(r[kx], r[ky], color=color, marker=marker, s=70, label=r["solver"], zorder=3)
        default = [r for r in exact if (r["weight_energy_per_j"], r["weight_error"]) == DEFAULT_WEIGHTS]
        if default:
            ax.scatter(default[0][kx], default[0][ky], facecolors="none", edgecolors="red", s=200, lw=1.5,
                       label="exact at default weights", zorder=4)
        ax.set_xlabel(labels[kx])
        ax.set_ylabel(labels[ky])
        if "energy" in kx:
            ax.set_xscale("log")
        if "energy" in ky:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=axes, label="energy weight w_E (1/J)", fraction=0.02)
    handles, lbls = axes[0].get_legend_handles_labels()
    fig.legend(handles, lbls, loc="lower center", ncol=6, frameon=False)
    fig.suptitle("Latency-energy-quality trade-off: exact as (w_E, w_Q) vary (marker size grows with w_Q), "
                 "heuristics at the default weights")
    fig.subplots_adjust(bottom=0.25, right=0.9)
    save_figure(fig, path)
