"""Where the per-slot optimum is myopic: ``AIGCEdge-Battery-v0`` with scarce harvesting.

The scenario as registered (harvest ``U[0, 1]`` J per slot); config overrides can vary it.
With the earlier battery defaults (harvest ``U[0, 10]`` J per slot) the phones harvest more
than the per-slot optimum spends, the battery never binds and planning has nothing to gain.
With harvest ``U[0, 1]`` J the energy of an episode is scarce (about 75 J initial + 50 J
harvested per phone, against ~400 J the unconstrained optimum would spend): the per-slot
optimum spends the initial charge of the fast phones in the first slots and then has to
offload them into a congested edge for the rest of the episode.

Policies compared on the same episode seeds (all policies of :mod:`aigc_edge_env.evaluation`,
played by its episode runner):

* ``exact``, ``sca_kkt`` and heuristics: per-slot solvers (myopic);
* ``exact+price<λ>``: the exact solver on the slot with ``w_E + λ`` in place of ``w_E`` (a
  shadow price ``λ`` per joule of battery energy, the simplest non-myopic rule: the future
  value of a joule); scored with the true costs;
* ``exact+price<λ>(1-t/H)``: the same with a price that decays to 0 at the horizon;
* trained agents (run directories of ``train.py``).

``python -m experiments battery --runs results/experiments/battery/runs/mppo_s*`` writes
``battery.csv`` (per policy: mean episode reward with its 95% bootstrap interval over
episodes, the paired difference to ``exact`` with its interval, drops, energy, offload share,
mean error), ``battery_episodes.csv`` (every episode's metrics) and ``battery.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from aigc_edge_env.evaluation import EVAL_SEED, PolicyResult, mean_interval, price_policy_name, write_csv
from experiments.common import parallel_map, save_figure, style

ENV_ID = "AIGCEdge-Battery-v0"
DEFAULT_PRICES = (0.3,)


def mean_battery_j(env) -> dict[str, float]:
    """The probe of the episode runner: mean battery level over the users (J) before the slot's action."""
    return {"battery_j": float(np.mean(env.unwrapped.current_problem().battery_j))}


def _policy_task(args: tuple) -> PolicyResult:
    label, run, overrides, seeds = args
    import gymnasium as gym

    import aigc_edge_env  # noqa: F401  (registers the env ids)
    from aigc_edge_env.evaluation import evaluate_policy, make_policy

    if run is None:
        policy = make_policy(label)
    else:
        import torch

        from aigc_edge_env.agents.policies import load_model_policy

        torch.set_num_threads(1)
        policy = load_model_policy(Path(run), ENV_ID, overrides)
    return evaluate_policy(label, lambda: gym.make(ENV_ID, config=dict(overrides)), policy, seeds,
                           probe=mean_battery_j)


def run_battery(
    solvers: Sequence[str], runs: Sequence[Path], episodes: int, out: Path, prices: Sequence[float] = DEFAULT_PRICES,
    overrides: dict[str, Any] | None = None, workers: int | None = None, progress: bool = True,
    confidence: float = 0.95, seed: int = EVAL_SEED, decaying_prices: Sequence[float] = (),
) -> dict[str, Path]:
    overrides = dict(overrides or {})
    seeds = list(range(seed, seed + episodes))
    labels = list(solvers) + [price_policy_name("exact", p) for p in prices]
    labels += [price_policy_name("exact", p, decaying=True) for p in decaying_prices]
    tasks = [(label, None, overrides, seeds) for label in labels]
    tasks += [(Path(r).name, str(r), overrides, seeds) for r in runs]
    results = {result.name: result for result in parallel_map(_policy_task, tasks, workers, progress,
                                                               desc="battery policies", unit="policy")}
    rows = summarize_battery(results, confidence)
    out = Path(out)
    paths = {"csv": out / "battery.csv", "episodes_csv": out / "battery_episodes.csv", "png": out / "battery.png"}
    write_csv(paths["csv"], rows)
    write_csv(paths["episodes_csv"], [
        {"policy": label, "seed": seed, **{m: float(v[i]) for m, v in result.episodes.items()}}
        for label, result in results.items() for i, seed in enumerate(result.seeds)
    ])
    plot_battery(results, rows, paths["png"])
    return paths


def _agent_group(label: str) -> str | None:
    """``mppo_s0`` -> ``mppo`` (runs of one algorithm with different training seeds)."""
    head, _, tail = label.rpartition("_s")
    return head if head and tail.isdigit() else None


def summarize_battery(results: Mapping[str, PolicyResult], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per policy: mean episode reward and its difference to ``exact``'s (paired by seed), with
    intervals over the episodes; per group of agent runs (``<algo>_s<seed>``, two or more): the
    same over the training seeds' means.  Drops, energy, offload share and mean error are means
    over the episodes."""
    exact = results.get("exact")
    reference = dict(zip(exact.seeds, exact.episodes["reward"], strict=True)) if exact else {}
    reference_mean = float(np.mean(list(reference.values()))) if reference else np.nan

    def diffs_of(result: PolicyResult) -> np.ndarray:
        pairs = zip(result.seeds, result.episodes["reward"], strict=True)
        return np.array([reward - reference[seed] for seed, reward in pairs if seed in reference])

    def row_of(label: str, rewards: np.ndarray, diffs: np.ndarray, members: list[PolicyResult],
               unit: str) -> dict[str, Any]:
        m, lo, hi = mean_interval(rewards, confidence)
        d, dlo, dhi = mean_interval(diffs, confidence)

        def mean_over_episodes(metric: str) -> float:
            return float(np.mean(np.concatenate([member.episodes[metric] for member in members])))

        return {
            "policy": label, "interval_over": unit, "n": int(rewards.size), "reward": m, "reward_low": lo,
            "reward_high": hi, "diff_vs_exact": d, "diff_low": dlo, "diff_high": dhi,
            "diff_vs_exact_pct": 100 * d / abs(reference_mean),
            "drops_per_episode": mean_over_episodes("n_dropped"),
            "energy_j_per_episode": mean_over_episodes("energy_j"),
            "offload_share": mean_over_episodes("offload_share"),
            "mean_error": mean_over_episodes("mean_error"),
        }

    rows = [row_of(label, result.episodes["reward"], diffs_of(result), [result],
                   "episodes (paired by seed for the difference)") for label, result in results.items()]
    groups: dict[str, list[PolicyResult]] = {}
    for label, result in results.items():
        group = _agent_group(label)
        if group:
            groups.setdefault(group, []).append(result)
    for group, members in groups.items():
        if len(members) < 2:
            continue
        # one value per training seed: its mean over the evaluation episodes
        rewards = np.array([np.mean(member.episodes["reward"]) for member in members])
        diffs = np.array([np.mean(diffs_of(member)) for member in members] if reference else [])
        rows.append(row_of(f"{group} (all seeds)", rewards, diffs, members, "training seeds"))
    return rows


def _color(label: str, priced: Sequence[str]):
    import matplotlib.pyplot as plt

    if label.startswith("exact+"):
        return plt.cm.autumn(0.15 + 0.7 * priced.index(label) / max(len(priced), 1))
    if _agent_group(label) is not None or label.endswith("(all seeds)"):
        return "tab:cyan"
    return style(label)[0]


def plot_battery(results: Mapping[str, PolicyResult], rows: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    labels = [r["policy"] for r in rows]
    y = np.array([r["diff_vs_exact"] for r in rows])
    err = np.array([[r["diff_vs_exact"] - r["diff_low"], r["diff_high"] - r["diff_vs_exact"]] for r in rows]).T
    priced_all = [lb for lb in labels if lb.startswith("exact+")]
    colors = [_color(lb, priced_all) for lb in labels]
    ax.barh(range(len(rows)), y, xerr=np.nan_to_num(err), color=colors, capsize=3)
    ax.set_yticks(range(len(rows)), labels)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("episode reward minus exact's (same seeds), 95% bootstrap interval")
    ax.set_title("Return gain over the per-slot optimum")
    ax.grid(alpha=0.3, axis="x")
    shown = [lb for lb in results if lb in ("exact", "sca_kkt", "greedy") or lb.startswith("exact+price")]
    shown += [lb for lb in results if _agent_group(lb)][:1]
    priced = [lb for lb in shown if lb.startswith("exact+")]
    for lb in shown:
        cost = results[lb].per_slot["cost"].mean(axis=0)
        battery = results[lb].per_slot["battery_j"].mean(axis=0)
        color = _color(lb, priced)
        axes[1].plot(battery, label=lb, color=color)
        axes[2].plot(np.cumsum(cost), label=lb, color=color)
    axes[1].set_xlabel("slot")
    axes[1].set_ylabel("mean battery level over users (J)")
    axes[1].set_title("Battery trajectory (mean over episodes)")
    axes[2].set_xlabel("slot")
    axes[2].set_ylabel("cumulative cost")
    axes[2].set_title("Cumulative cost (mean over episodes)")
    for ax in axes[1:]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("AIGCEdge-Battery-v0 (harvest U[0, 1] J/slot): myopic per-slot solvers vs planning")
    fig.tight_layout()
    save_figure(fig, path)
