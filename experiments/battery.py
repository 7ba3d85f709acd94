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
* ``exact+price<λ>``: the exact solver with a per-user energy price ``λ`` per joule (a shadow
  price of battery energy, the simplest non-myopic rule: the future value of a joule); scored
  with the true costs;
* ``exact+price<λ>(1-t/H)``: the same with a price that decays to 0 at the horizon;
* ``lyapunov(V=<V>,theta=<θ>)``: drift-plus-penalty, the price ``max(θ - battery, 0) / V``;
* ``mpc(every=<k>,slots=<m>)``: re-planning on a sampled future (:mod:`aigc_edge_env.policies.mpc`);
* the rules tuned on training seeds (``--tuned``: the ``rules_best.json`` of
  ``aigc-edge experiments rules``; by default ``<out>/rules_best.json`` when it exists);
* trained agents (run directories of ``aigc-edge train``);
* the *clairvoyant plan* of :func:`aigc_edge_env.baselines.hindsight_bound` (its actions
  replayed through the env), and the certified *hindsight bound* itself.

Every episode's hindsight bound (cached per env id, config and seed in ``--hindsight-cache``,
default ``results/hindsight``) gives each policy's share of the gap closed,
``G = (R - R_exact) / (R_hindsight - R_exact)`` (0 = myopic, 1 = the bound), with the
engine's paired interval.

``aigc-edge experiments battery --runs results/experiments/battery/runs/mppo_s*`` writes
``battery.csv`` (per policy: mean episode reward with its 95% bootstrap interval over
episodes, the paired difference to ``exact``, ``G``, drops, energy, offload share, mean error),
``battery_episodes.csv`` (every episode's metrics), ``hindsight.csv`` (per episode: the bound,
the plan, their gap, the time taken) and ``battery.png`` (``G`` per policy, battery trajectories,
the bound's gap per episode).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import aigc_edge_env  # noqa: F401  (registers the env ids)
from aigc_edge_env.baselines import HindsightBound
from aigc_edge_env.baselines.hindsight import hindsight_bounds
from aigc_edge_env.config import make_config
from aigc_edge_env.evaluation.runner import EVAL_SEED, PolicyResult, evaluate_policy
from aigc_edge_env.evaluation.statistics import mean_interval, normalised_interval, paired_by_seed, rewards_by_seed
from aigc_edge_env.evaluation.writers import write_csv
from aigc_edge_env.experiments.common import content_digest, resumable_map
from aigc_edge_env.plotting import pyplot, save_figure, style
from aigc_edge_env.policies.base import ReplayPolicy
from aigc_edge_env.policies.registry import lyapunov_policy_name, make_policy, policy_files, price_policy_name

ENV_ID = "AIGCEdge-Battery-v0"
DEFAULT_PRICES = (0.3,)
#: The slot solvers the battery study plays (the others are far below the myopic optimum there).
BATTERY_SOLVERS = ("exact", "sca_kkt", "greedy", "all_edge", "local_search")


def mean_battery_j(env) -> dict[str, float]:
    """The probe of the episode runner: mean battery level over the users (J) before the slot's action."""
    return {"battery_j": float(np.mean(env.unwrapped.current_problem().battery_j))}


def policy_task(args: tuple) -> PolicyResult:
    """``(label, run directory or None, overrides, seeds)`` -> the policy's :class:`PolicyResult` (battery probe)."""
    label, run, overrides, seeds = args
    if run is None:
        policy = make_policy(label)
    else:
        import torch

        from aigc_edge_env.agents.policies import load_model_policy

        torch.set_num_threads(1)
        policy = load_model_policy(Path(run), ENV_ID, overrides)
    return evaluate_policy(label, lambda: gym.make(ENV_ID, config=dict(overrides)), policy, seeds,
                           probe=mean_battery_j)


def policy_labels(solvers: Sequence[str], prices: Sequence[float] = DEFAULT_PRICES,
                  decaying_prices: Sequence[float] = (), lyapunov: Sequence[tuple[float, float]] = (),
                  policies: Sequence[str] = ()) -> list[str]:
    """The names of the policies (not the trained runs) the battery study plays, in its order."""
    labels = list(solvers) + [price_policy_name("exact", p) for p in prices]
    labels += [price_policy_name("exact", p, decaying=True) for p in decaying_prices]
    labels += [lyapunov_policy_name(v, theta) for v, theta in lyapunov]
    return labels + [name for name in policies if name not in labels]


def check_compare_to(compare_to: Sequence[str], known: Sequence[str]) -> None:
    """``ValueError`` unless every policy of ``compare_to`` is among the ``known`` rows of the study."""
    unknown = [name for name in compare_to if name not in known]
    if unknown:
        raise ValueError(f"compare_to = {list(compare_to)}: {unknown} not among the policies evaluated, {list(known)}")


def policy_identity(task: tuple) -> tuple:
    """What identifies a :func:`policy_task`'s result: the task and the bytes of the model files it reads
    (:func:`~aigc_edge_env.experiments.common.content_digest`: a run trained again, or a network file
    replaced, is evaluated again)."""
    label, run = task[0], task[1]
    if run is None:
        return (*task, content_digest(policy_files(label)))
    from aigc_edge_env.agents.runs import RUN_RECORD, model_file, normalizer_path

    model = model_file(Path(run))
    return (*task, content_digest([model, normalizer_path(model), model.parent / RUN_RECORD]))


def run_battery(
    solvers: Sequence[str], runs: Sequence[Path], episodes: int, out: Path, prices: Sequence[float] = DEFAULT_PRICES,
    overrides: dict[str, Any] | None = None, workers: int | None = None, progress: bool = True,
    confidence: float = 0.95, seed: int = EVAL_SEED, decaying_prices: Sequence[float] = (),
    lyapunov: Sequence[tuple[float, float]] = (), policies: Sequence[str] = (),
    hindsight_cache: Path | None = Path("results/hindsight"), hindsight: bool = True, address: str | None = None,
    compare_to: Sequence[str] = (),
) -> dict[str, Path]:
    """Play every policy on episodes ``seed ...`` and write the study (module docstring).

    ``policies``: further :func:`~aigc_edge_env.policies.registry.make_policy` names (e.g. the tuned rules);
    ``lyapunov``: ``(V, theta)`` pairs.  ``hindsight=False`` skips the bounds (and ``G``).
    ``compare_to``: policies every row is compared with (:func:`summarize_battery`'s ``diff_vs[...]``).
    """
    overrides = dict(overrides or {})
    seeds = list(range(seed, seed + episodes))
    labels = policy_labels(solvers, prices, decaying_prices, lyapunov, policies)
    tasks: list[tuple[str, str | None, dict[str, Any], list[int]]] = [(label, None, overrides, seeds)
                                                                      for label in labels]
    tasks += [(Path(r).name, str(r), overrides, seeds) for r in runs]
    check_compare_to(compare_to, [task[0] for task in tasks] + ([PLAN] if hindsight else []))
    bounds: dict[int, HindsightBound] = {}
    if hindsight:
        bounds = hindsight_bounds(ENV_ID, seeds, overrides, hindsight_cache, workers, address, progress)
    results = {result.name: result for result in resumable_map(policy_task, tasks, out, workers, address, progress,
                                                                 desc="battery policies", unit="policy",
                                                                 identity=policy_identity)}
    if bounds:
        plan = ReplayPolicy({s: b.plan_actions for s, b in bounds.items()})
        results[PLAN] = evaluate_policy(PLAN, lambda: gym.make(ENV_ID, config=dict(overrides)), plan, seeds,
                                        probe=mean_battery_j)
    reward_scale = make_config(ENV_ID, overrides).reward_scale
    hindsight_rewards = {s: -reward_scale * b.lower_bound for s, b in bounds.items()} or None
    rows = summarize_battery(results, confidence, hindsight_rewards, compare_to)
    out = Path(out)
    paths = {"csv": out / "battery.csv", "episodes_csv": out / "battery_episodes.csv", "png": out / "battery.png"}
    write_csv(paths["csv"], rows)
    write_csv(paths["episodes_csv"], [
        {"policy": label, "seed": seed, **{m: float(v[i]) for m, v in result.episodes.items()}}
        for label, result in results.items() for i, seed in enumerate(result.seeds)
    ])
    if bounds:
        paths["hindsight_csv"] = out / "hindsight.csv"
        write_csv(paths["hindsight_csv"], hindsight_rows(bounds, results))
    plot_battery(results, rows, paths["png"], bounds)
    return paths


#: Runs whose label starts so are learned-price agents (``train.py --wrapper priced``): drawn in their own colour.
PRICED_AGENT_PREFIX = "priced"
#: The label of the clairvoyant plan's row.
PLAN = "clairvoyant plan"
#: Left end of the G axis of the figure (heuristics far below the myopic optimum get their value written).
G_AXIS_LEFT = -1.0


def hindsight_rows(bounds: Mapping[int, HindsightBound], results: Mapping[str, PolicyResult]) -> list[dict[str, Any]]:
    """Per episode: the bound, the plan, their gap (cost and % of the plan), the master's value, rounds,
    the winning plan variant, seconds for the bound and in all, and exact's episode cost."""
    exact = results.get("exact")
    exact_cost = dict(zip(exact.seeds, exact.episodes["cost"], strict=True)) if exact else {}
    return [{"seed": seed, "lower_bound": b.lower_bound, "plan_cost": b.plan_cost, "gap": b.gap,
             "gap_pct": 100 * b.relative_gap, "dual_upper": b.dual_upper, "rounds": b.rounds, "plan": b.plan,
             "bound_s": b.bound_s, "elapsed_s": b.elapsed_s, "exact_cost": float(exact_cost.get(seed, np.nan))}
            for seed, b in sorted(bounds.items())]


def _agent_group(label: str) -> str | None:
    """``mppo_s0`` -> ``mppo`` (runs of one algorithm with different training seeds)."""
    head, _, tail = label.rpartition("_s")
    return head if head and tail.isdigit() else None


def summarize_battery(results: Mapping[str, PolicyResult], confidence: float = 0.95,
                      hindsight_rewards: Mapping[int, float] | None = None,
                      compare_to: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per policy: mean episode reward and its difference to ``exact``'s (paired by seed), with
    intervals over the episodes, and (given each seed's hindsight return) the share of the gap
    closed ``G`` with its paired interval; per group of agent runs (``<algo>_s<seed>``, two or
    more): the same over the training seeds' means.  Drops, energy, offload share and mean error
    are means over the episodes.

    For every policy ``r`` of ``compare_to`` among the results, ``diff_vs[r]`` (``diff_vs[r]_low``,
    ``_high``): the mean episode reward minus ``r``'s, paired by episode seed, interval over the
    episodes; for a group of runs, of the episode rewards averaged over its training seeds (the
    interval then covers the episodes' variation, not the training seeds')."""
    exact = results.get("exact")
    reference = rewards_by_seed(exact) if exact else {}
    reference_mean = float(np.mean(list(reference.values()))) if reference else np.nan

    def paired(result: PolicyResult) -> list[np.ndarray]:
        """``[reward, exact's reward, hindsight return]`` paired by seed (the last two empty when absent)."""
        references: dict[str, Mapping[int, float]] = {"exact": reference} if reference else {}
        if reference and hindsight_rewards:
            references["the hindsight bound"] = hindsight_rewards
        samples = paired_by_seed(result.name, result.seeds, result.episodes["reward"], references)
        return samples + [np.zeros(0)] * (3 - len(samples))

    def row_of(label: str, rewards: np.ndarray, diffs: np.ndarray, closed: tuple[float, float, float],
               members: list[PolicyResult], unit: str) -> dict[str, Any]:
        m, lo, hi = mean_interval(rewards, confidence)
        d, dlo, dhi = mean_interval(diffs, confidence)

        def mean_over_episodes(metric: str) -> float:
            return float(np.mean(np.concatenate([member.episodes[metric] for member in members])))

        return {
            "policy": label, "interval_over": unit, "n": int(rewards.size), "reward": m, "reward_low": lo,
            "reward_high": hi, "diff_vs_exact": d, "diff_low": dlo, "diff_high": dhi,
            "diff_vs_exact_pct": 100 * d / abs(reference_mean),
            "gap_closed": closed[0], "gap_closed_low": closed[1], "gap_closed_high": closed[2],
            "drops_per_episode": mean_over_episodes("n_dropped"),
            "energy_j_per_episode": mean_over_episodes("energy_j"),
            "offload_share": mean_over_episodes("offload_share"),
            "mean_error": mean_over_episodes("mean_error"),
        }

    def closed_of(samples: list[np.ndarray]) -> tuple[float, float, float]:
        if not hindsight_rewards or samples[2].size == 0:
            return np.nan, np.nan, np.nan
        return normalised_interval(samples, confidence)

    def diffs_of(samples: list[np.ndarray]) -> np.ndarray:
        return samples[0] - samples[1] if samples[1].size else np.zeros(0)

    def compared(row: dict[str, Any], own: Mapping[int, float]) -> dict[str, Any]:
        for name in compare_to:
            other = rewards_by_seed(results[name])
            seeds = [s for s in own if s in other]
            d, dlo, dhi = mean_interval([own[s] - other[s] for s in seeds], confidence)
            row.update({f"diff_vs[{name}]": d, f"diff_vs[{name}]_low": dlo, f"diff_vs[{name}]_high": dhi})
        return row

    rows = []
    for label, result in results.items():
        samples = paired(result)
        rows.append(compared(row_of(label, result.episodes["reward"], diffs_of(samples), closed_of(samples),
                                    [result], "episodes (paired by seed for the difference and G)"),
                             rewards_by_seed(result)))
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
        member_samples = [paired(member) for member in members]
        diffs = np.array([np.mean(diffs_of(s)) for s in member_samples] if reference else [])
        gs = np.array([closed_of(s)[0] for s in member_samples])
        closed = mean_interval(gs, confidence) if hindsight_rewards else (np.nan, np.nan, np.nan)
        averaged = {seed: float(np.mean([rewards_by_seed(m)[seed] for m in members])) for seed in members[0].seeds}
        rows.append(compared(row_of(f"{group} (all seeds)", rewards, diffs, closed, members, "training seeds"),
                             averaged))
    return rows


def _color(label: str, priced: Sequence[str]) -> Any:
    plt = pyplot()
    if label == PLAN:
        return "tab:green"
    if label.startswith(PRICED_AGENT_PREFIX):
        return "tab:purple"
    if label.startswith("mpc"):
        return "tab:brown"
    if label in priced:
        return plt.cm.autumn(0.1 + 0.75 * priced.index(label) / max(len(priced) - 1, 1))
    if _agent_group(label) is not None or label.endswith("(all seeds)"):
        return "tab:cyan"
    return style(label)[0]


def _is_rule(label: str) -> bool:
    return label.startswith(("exact+", "mpc")) or "lyapunov" in label


def plot_battery(results: Mapping[str, PolicyResult], rows: Sequence[dict[str, Any]], path: Path,
                 bounds: Mapping[int, HindsightBound] | None = None) -> None:
    """Three panels: ``G`` per policy with its interval (or, without bounds, the return gain over
    exact), the mean battery trajectory, and the bound's gap per episode."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    ax = axes[0]
    key, low, high = ("gap_closed", "gap_closed_low", "gap_closed_high") if bounds else (
        "diff_vs_exact", "diff_low", "diff_high")
    shown_rows = [r for r in rows if np.isfinite(r[key])]
    labels = [r["policy"] for r in shown_rows]
    priced_all = [lb for lb in labels if _is_rule(lb)]
    y = np.array([r[key] for r in shown_rows])
    err = np.array([[r[key] - r[low], r[high] - r[key]] for r in shown_rows]).T.reshape(2, -1)
    ax.barh(range(len(shown_rows)), y, xerr=np.nan_to_num(err), color=[_color(lb, priced_all) for lb in labels],
            capsize=3)
    ax.set_yticks(range(len(shown_rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    if bounds:
        ax.axvline(1, color="black", lw=0.8, ls="--")
        ax.set_xlabel("G = (R - R_exact) / (R_hindsight - R_exact), 95% paired bootstrap interval")
        ax.set_title("Share of the myopic-to-hindsight gap closed")
        left = G_AXIS_LEFT
        ax.set_xlim(left, 1.1)
        for i, value in enumerate(y):
            if value < left:  # far below the myopic optimum: the value, not the bar
                ax.text(left + 0.02, i, f"G = {value:.1f}", va="center", fontsize=7, color="white")
    else:
        ax.set_xlabel("episode reward minus exact's (same seeds), 95% bootstrap interval")
        ax.set_title("Return gain over the per-slot optimum")
    ax.grid(alpha=0.3, axis="x")
    shown = [lb for lb in results if lb in ("exact", "sca_kkt", "greedy", PLAN) or _is_rule(lb)]
    groups_shown: set[str | None] = set()
    for lb in results:  # the first run of each group of agents
        if _agent_group(lb) is not None and _agent_group(lb) not in groups_shown:
            groups_shown.add(_agent_group(lb))
            shown.append(lb)
    priced = [lb for lb in shown if _is_rule(lb)]
    for lb in shown:
        battery = results[lb].per_slot["battery_j"].mean(axis=0)
        axes[1].plot(battery, label=lb, color=_color(lb, priced), lw=2.5 if lb == PLAN else 1.2,
                     ls="--" if lb == PLAN else "-")
    axes[1].set_xlabel("slot")
    axes[1].set_ylabel("mean battery level over users (J)")
    axes[1].set_title("Battery trajectory (mean over users and episodes)")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    ax = axes[2]
    if bounds:
        seeds = sorted(bounds)
        gaps = [100 * bounds[s].relative_gap for s in seeds]
        ax.bar(range(len(seeds)), gaps, color="tab:gray")
        ax.set_xticks(range(len(seeds)), [str(s) for s in seeds], rotation=45, fontsize=8)
        ax.set_xlabel("episode seed")
        ax.set_ylabel("(plan cost - lower bound) / plan cost (%)")
        ax.set_title(f"Certified gap of the clairvoyant plan (mean {np.mean(gaps):.2f}%)")
        ax.grid(alpha=0.3, axis="y")
    else:
        ax.set_visible(False)
    fig.suptitle("AIGCEdge-Battery-v0 (harvest U[0, 1] J/slot): myopic per-slot solvers, planning rules and the "
                 "hindsight bound")
    fig.tight_layout()
    save_figure(fig, path)
