"""PNG plots of evaluation summaries and of training runs' learning curves (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from aigc_edge_env.evaluation.runner import EPISODE_METRICS
from aigc_edge_env.plotting import pyplot, save_figure

plt = pyplot()

__all__ = [
    "LEARNING_CURVE_TAGS", "learning_curves", "plot_components", "plot_learning_curves", "plot_scores", "write_plots",
]

#: TensorBoard tags tried, in order, for a run's learning curve (periodic evaluation first).
LEARNING_CURVE_TAGS = ("eval/reward", "rollout/ep_rew_mean")


def _bars(ax: Axes, rows: Sequence[dict[str, Any]], key: str) -> None:
    means = np.array([row[key] for row in rows], dtype=float)
    low = np.array([row[f"{key}_low"] for row in rows], dtype=float)
    high = np.array([row[f"{key}_high"] for row in rows], dtype=float)
    errors = np.nan_to_num(np.stack([means - low, high - means]).clip(min=0))
    ax.bar(range(len(rows)), means, yerr=errors, capsize=3, color="tab:blue")
    ax.set_xticks(range(len(rows)), [str(row["policy"]) for row in rows], rotation=45, ha="right", fontsize=8)
    ax.set_title(key)
    ax.axhline(0.0, color="black", linewidth=0.5)


def plot_scores(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Bar chart of the normalised score per policy, with its confidence interval."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2), 4))
    _bars(ax, rows, "score")
    ax.axhline(1.0, color="tab:green", linestyle="--", linewidth=1, label="exact")
    ax.set_ylabel("(R - R_random) / (R_exact - R_random)")
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_components(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One bar chart per episode metric (reward and cost components), policies side by side."""
    n_cols = 4
    n_rows = math.ceil(len(EPISODE_METRICS) / n_cols)
    width = max(12.0, 0.45 * len(rows) * n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, 3.6 * n_rows), squeeze=False)
    for ax, metric in zip(axes.flat, EPISODE_METRICS, strict=False):
        _bars(ax, rows, metric)
    for ax in list(axes.flat)[len(EPISODE_METRICS):]:
        ax.set_visible(False)
    _save(fig, path)


def learning_curves(run_dirs: Mapping[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Per run label: (timesteps, values, tag) of the first :data:`LEARNING_CURVE_TAGS` tag it logged."""
    curves: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    if not run_dirs:
        return curves
    from aigc_edge_env.agents.runs import TENSORBOARD_DIR, read_scalars  # torch: only for trained runs

    for label, run_dir in run_dirs.items():
        for tag in LEARNING_CURVE_TAGS:
            steps, values = read_scalars(Path(run_dir) / TENSORBOARD_DIR, tag)
            if steps.size:
                curves[label] = (steps, values, tag)
                break
    return curves


def plot_learning_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray, str]], path: Path) -> None:
    """Episode reward against training timesteps, one line per run."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (steps, values, tag) in curves.items():
        ax.plot(steps, values, marker=".", label=f"{label} ({tag})")
    ax.set_xlabel("training timesteps (env steps)")
    ax.set_ylabel("episode reward")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    _save(fig, path)


def write_plots(out_dir: Path, rows: Sequence[dict[str, Any]], run_dirs: Mapping[str, Path]) -> list[Path]:
    """``score.png`` (when rows have scores), ``components.png`` and, for runs with TensorBoard
    logs, ``learning_curves.png`` in ``out_dir``; returns the paths written.
    """
    written = []
    if rows and all("score" in row for row in rows):
        plot_scores(rows, out_dir / "score.png")
        written.append(out_dir / "score.png")
    plot_components(rows, out_dir / "components.png")
    written.append(out_dir / "components.png")
    curves = learning_curves(run_dirs)
    if curves:
        plot_learning_curves(curves, out_dir / "learning_curves.png")
        written.append(out_dir / "learning_curves.png")
    return written


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    save_figure(fig, path, dpi=120, bbox_inches=None)
