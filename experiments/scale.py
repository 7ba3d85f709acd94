"""Score and time per decision against the number of users: the scale table and the zero-shot transfer table.

``aigc-edge experiments scale`` plays every policy on the same held-out episodes of ``AIGCEdge-v0`` with
``n_users`` replaced by each count of ``--n-users`` (the edge, its step capacity and the total bandwidth
stay those of ``AIGCEdge-v0``: more users share them; ``AIGCEdge-Large-v0`` is the point ``N = 50``) and
writes, in ``--out``:

* ``scale.csv``: per (N, policy) the normalised score ``(R - R_random) / (R_exact - R_random)`` with its
  paired bootstrap interval over the episodes, the mean return and the time per decision in ms and in
  multiples of one ``AIGCEdge-v0`` step (its CPU time measured when the tables are written,
  :func:`aigc_edge_env.benchmarks.env_speed.env_step_cpu_s`);
* ``scale.md``: the scale table (score and ms per decision, one row per N) and the transfer table (score of
  each policy at each N: for networks trained at one count, their zero-shot transfer to the others);
* ``scale.png``: score and ms per decision against N, log scales.

Policies are the registry's names (:func:`~aigc_edge_env.policies.registry.make_policy`); ``{n}`` in a name
is replaced by each count (``torch:runs/scale/n{n}_s0/policy.pt``: a network trained at each N), and
``LABEL=NAME`` labels a policy in the tables.  ``exact`` and ``random`` are always played (the score's
references).  Each (N, policy) runs as one task on Ray (kept in ``<out>/.tasks``, so an interrupted
study resumes); times per decision are wall times of the decision alone, so measure them with
``--workers 1`` on an idle machine.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from aigc_edge_env.evaluation.runner import PolicyResult, evaluate_policy
from aigc_edge_env.evaluation.statistics import SCORE_REFERENCES, summarize
from aigc_edge_env.evaluation.writers import text_table, write_csv
from aigc_edge_env.experiments.common import content_digest, resumable_map
from aigc_edge_env.files import write_atomic
from aigc_edge_env.plotting import STYLE, pyplot, save_figure, style

__all__ = ["ENV_ID", "N_USERS", "parse_policies", "run_scale"]

#: The scenario whose ``n_users`` the study varies.
ENV_ID = "AIGCEdge-v0"
#: ``LABEL=NAME``: a policy with a label (a word before the first ``=``).
LABELLED = re.compile(r"([A-Za-z_][\w.-]*)=(.+)")
#: The default counts (DROO's anchor, near-optimal in under 0.1 s at N = 30, among them).
N_USERS = (5, 10, 20, 30, 50, 100, 200)


def parse_policies(specs: Sequence[str]) -> dict[str, str]:
    """``LABEL=NAME`` or ``NAME`` items -> ``{label: name}``, ``exact`` and ``random`` added;
    ``ValueError`` for a label given twice.  A label is a word (letters, digits, ``_.-``): ``mpc(every=5)``
    is a name, not a label."""
    policies: dict[str, str] = {}
    for spec in [*SCORE_REFERENCES, *specs]:
        labelled = LABELLED.fullmatch(spec)
        label, name = labelled.groups() if labelled else (spec, spec)
        if label in policies and policies[label] != name:
            raise ValueError(f"policy label {label!r} given twice ({policies[label]!r} and {name!r})")
        policies[label] = name
    return policies


def _task(args: tuple[str, str, int, tuple[int, ...], dict[str, Any]]) -> PolicyResult:
    from aigc_edge_env.policies.registry import make_policy

    label, name, n_users, seeds, base = args
    policy = make_policy(name.format(n=n_users))
    if "torch" in sys.modules:  # a network decides on one thread: times per decision are one core's
        sys.modules["torch"].set_num_threads(1)
    config = {**base, "n_users": n_users}
    return evaluate_policy(label, lambda: gym.make(ENV_ID, config=config), policy, seeds)


def _identity(task: tuple[str, str, int, tuple[int, ...], dict[str, Any]]) -> Any:
    """A task's identity: its settings and the bytes of the network files it reads (a retrained file reruns)."""
    from aigc_edge_env.policies.registry import policy_files

    label, name, n_users, *_ = task
    return (task, content_digest(policy_files(name.format(n=n_users))))


def run_scale(n_users: Sequence[int], policies: Mapping[str, str], seeds: Sequence[int], out: Path,
              base: Mapping[str, Any] | None = None, workers: int | None = None, progress: bool = True,
              address: str | None = None) -> dict[str, Path]:
    """The study of the module docstring; returns the paths written."""
    from aigc_edge_env.benchmarks.env_speed import env_step_cpu_s

    tasks = [(label, name, int(n), tuple(int(s) for s in seeds), dict(base or {}))
             for n in n_users for label, name in policies.items()]
    results = resumable_map(_task, tasks, out, workers, address, progress, "N x policy", identity=_identity)
    step_ms = 1e3 * env_step_cpu_s()
    rows = []
    for n in n_users:
        for row in summarize([r for t, r in zip(tasks, results, strict=True) if t[2] == n]):
            rows.append({"n_users": n, "policy": row["policy"], "score": row["score"], "score_low": row["score_low"],
                         "score_high": row["score_high"], "reward": row["reward"], "decision_ms": row["decision_ms"],
                         "decision_env_steps": row["decision_ms"] / step_ms})
    out = Path(out)
    paths = {"csv": out / "scale.csv", "md": out / "scale.md", "png": out / "scale.png"}
    write_csv(paths["csv"], rows)
    write_atomic(paths["md"], scale_markdown(rows, list(policies), len(seeds), step_ms))
    plot_scale(rows, list(policies), paths["png"])
    return paths


def _score(row: Mapping[str, Any]) -> str:
    return f"{row['score']:.3f} [{row['score_low']:.3f}, {row['score_high']:.3f}]"


def scale_markdown(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], episodes: int, step_ms: float) -> str:
    """The scale table (score, ms per decision and env-step multiples per N and policy) and the transfer table."""
    counts = sorted({row["n_users"] for row in rows})
    by = {(row["n_users"], row["policy"]): row for row in rows}
    learned = [label for label in labels if label not in SCORE_REFERENCES]
    scores = [{"N": n, **{label: _score(by[n, label]) for label in labels if label != "random"}} for n in counts]
    times = [{"N": n, **{label: f"{by[n, label]['decision_ms']:.3f} ({by[n, label]['decision_env_steps']:.0f})"
                         for label in labels}} for n in counts]
    transfer = [{"policy": label, **{f"N = {n}": f"{by[n, label]['score']:.3f}" for n in counts}} for label in learned]
    return (f"Normalised score [95% interval] over {episodes} held-out episodes\n\n{text_table(scores)}\n"
            f"ms per decision (in multiples of one AIGCEdge-v0 step, {1e3 * step_ms:.1f} us of CPU)\n\n"
            f"{text_table(times)}\nScore of each policy at each N (transfer: a network trained at one N played at "
            f"the others)\n\n{text_table(transfer)}")


def plot_scale(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], path: Path) -> None:
    """Score (left, from 0: lower scores leave the chart) and ms per decision (right) against N, log scales;
    the solvers in their :data:`~aigc_edge_env.plotting.STYLE`, the other policies dashed in viridis colours."""
    plt = pyplot()
    others = [label for label in labels if label not in STYLE]
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(1, len(others))))
    fig, (score_ax, time_ax) = plt.subplots(1, 2, figsize=(14, 5))
    for label in labels:
        mine = sorted((row for row in rows if row["policy"] == label), key=lambda row: row["n_users"])
        n = [row["n_users"] for row in mine]
        colour, marker = style(label) if label in STYLE else (colours[others.index(label)], "o")
        line = {"color": colour, "marker": marker, "label": label, "linestyle": "-" if label in STYLE else "--"}
        if label != "random":
            score_ax.plot(n, [row["score"] for row in mine], **line)
        time_ax.plot(n, [row["decision_ms"] for row in mine], **line)
    score_ax.set(xscale="log", xlabel="users N", ylabel="normalised score (exact = 1, random = 0)", ylim=(0.0, 1.02))
    time_ax.set(xscale="log", yscale="log", xlabel="users N", ylabel="ms per decision")
    for ax in (score_ax, time_ax):
        ax.grid(alpha=0.3, which="both")
    time_ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Score and time per decision against the number of users ({ENV_ID} with n_users = N)")
    save_figure(fig, path)
