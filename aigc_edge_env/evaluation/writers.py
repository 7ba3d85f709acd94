"""Output of evaluations: Markdown tables, CSV and JSON files (one writer each).

:func:`markdown_table`, :func:`write_csv` (the one CSV writer; :func:`read_csv` reads its files
back), :func:`write_json` and :func:`write_outputs` (``summary.md``, ``summary.csv``,
``results.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aigc_edge_env.evaluation.runner import EPISODE_METRICS, PolicyResult
from aigc_edge_env.evaluation.statistics import SAME_MEAN_RTOL
from aigc_edge_env.files import write_atomic

__all__ = ["format_number", "markdown_table", "print_score", "read_csv", "text_table", "write_csv", "write_json",
           "write_outputs"]


def format_number(value: float | None) -> str:
    """Compact fixed-point text: 1 decimal from 100, 3 from 1, else 4 (``None``/``nan`` as ``n/a``)."""
    if value is None or math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    decimals = 1 if magnitude >= 100 else 3 if magnitude >= 1 else 4
    return f"{value:.{decimals}f}"


def _with_interval(row: Mapping[str, Any], key: str) -> str:
    return f"{format_number(row[key])} [{format_number(row[key + '_low'])}, {format_number(row[key + '_high'])}]"


def _undefined(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    """Some row's ``key`` or its interval is ``nan`` (one episode has no interval anyway)."""
    return any(math.isnan(row[key]) or (row["episodes"] >= 2 and (
        math.isnan(row[f"{key}_low"]) or math.isnan(row[f"{key}_high"]))) for row in rows)


def markdown_table(rows: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> str:
    """One line per policy: score (if computed), every episode metric with its interval, ms per decision."""
    with_score = bool(rows) and all("score" in row for row in rows)
    with_gap = bool(rows) and all("gap_closed" in row for row in rows)
    keys = (["score"] if with_score else []) + (["gap_closed"] if with_gap else []) + list(EPISODE_METRICS)
    header = ["policy"] + keys + ["ms/decision"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["policy"])] + [_with_interval(row, key) for key in keys] + [format_number(row["decision_ms"])]
        lines.append("| " + " | ".join(cells) + " |")
    n_episodes = rows[0]["episodes"] if rows else 0
    note = (f"Mean over {n_episodes} episodes [{confidence:.0%} bootstrap CI]; per-episode sums except "
            "mean_error (per served request) and offload_share (of requests); ms/decision is per slot.")
    if with_score:
        note += " score = (R - R_random) / (R_exact - R_random)."
        if _undefined(rows, "score"):
            note += (f" score or its interval is n/a where R_exact = R_random (to {SAME_MEAN_RTOL:g} relative) on the "
                     "episodes or on some bootstrap resample of them (the ratio is undefined).")
    if with_gap:
        note += (" gap_closed = G = (R - R_exact) / (R_hindsight - R_exact), R_hindsight = -reward_scale * the "
                 "certified hindsight bound (no policy reaches G > 1).")
        if _undefined(rows, "gap_closed"):
            note += (f" G or its interval is n/a where R_hindsight = R_exact (to {SAME_MEAN_RTOL:g} relative) on the "
                     "episodes or on some bootstrap resample of them (exact is hindsight-optimal there: no gap to "
                     "close, the ratio is undefined).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def text_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of rows of ready text, one column per key of the first row, in its order."""
    columns = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """The rows as CSV, columns in the rows' order (the union of their keys)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a :func:`write_csv` file, numbers as floats."""

    def convert(value: str) -> Any:
        try:
            return float(value)
        except ValueError:
            return value

    with Path(path).open(newline="") as handle:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(payload, indent=2, allow_nan=True))


def write_outputs(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    results: Sequence[PolicyResult],
    metadata: Mapping[str, Any],
    confidence: float = 0.95,
) -> dict[str, Path]:
    """``summary.md``, ``summary.csv`` and ``results.json`` (metadata, summary rows and every
    episode's metrics per policy) in ``out_dir``; returns their paths by kind.
    """
    paths = {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv", "json": out_dir / "results.json"}
    write_atomic(paths["markdown"], markdown_table(rows, confidence))
    write_csv(paths["csv"], rows)
    episodes = {r.name: {"seeds": r.seeds, **{m: v.tolist() for m, v in r.episodes.items()}} for r in results}
    write_json(paths["json"], {**metadata, "confidence": confidence, "summary": list(rows), "episodes": episodes})
    return paths


def print_score(name: str, policy: Any, env_id: str, episodes: int) -> dict[str, Any]:
    """Evaluate ``policy`` beside ``exact`` and ``random`` on ``episodes`` held-out episodes of ``env_id``
    (seeds ``EVAL_SEED`` on), print the table and the normalised score with its interval; return its row.
    What the training examples (CleanRL, TorchRL, RLlib) end with."""
    import gymnasium as gym

    from aigc_edge_env.evaluation.runner import EVAL_SEED, evaluate_all
    from aigc_edge_env.evaluation.statistics import summarize
    from aigc_edge_env.policies.registry import make_policy

    policies = {name: policy, "exact": make_policy("exact"), "random": make_policy("random")}
    seeds = range(EVAL_SEED, EVAL_SEED + episodes)
    rows = summarize(evaluate_all(policies, lambda: gym.make(env_id), seeds, progress=False))
    print(markdown_table(rows))
    row = rows[0]
    print(f"score {row['score']:.3f} [{row['score_low']:.3f}, {row['score_high']:.3f}] "
          f"on {episodes} held-out episodes (seeds {EVAL_SEED}...)", flush=True)
    return row
