"""Where the per-slot optimum is myopic: ``AIGCEdge-Battery-v0`` with scarce harvesting.

The scenario as registered (harvest ``U[0, 1]`` J per slot); config overrides can vary it.
With the earlier battery defaults (harvest ``U[0, 10]`` J per slot) the phones harvest more
than the per-slot optimum spends, the battery never binds and planning has nothing to gain.
With harvest ``U[0, 1]`` J the energy of an episode is scarce (about 75 J initial + 50 J
harvested per phone, against ~400 J the unconstrained optimum would spend): the per-slot
optimum spends the initial charge of the fast phones in the first slots and then has to
offload them into a congested edge for the rest of the episode.

Policies compared on the same episode seeds:

* ``exact``, ``sca_kkt`` and heuristics: per-slot solvers (myopic);
* ``exact+price<λ>``: the exact solver on the slot with ``w_E + λ`` in place of ``w_E`` (a
  shadow price ``λ`` per joule of battery energy, the simplest non-myopic rule: the future
  value of a joule); scored with the true costs;
* ``exact+price<λ>(1-t/H)``: the same with a price that decays to 0 at the horizon;
* trained agents (run directories of ``train.py``).

``python -m experiments battery --runs results/experiments/battery/runs/mppo_s*`` writes
``battery.csv`` (per policy: mean episode return with a 95% t-interval over episodes, the
paired difference to ``exact`` with its t-interval, drops, energy), ``battery_episodes.csv``
and ``battery.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from experiments.common import save_figure, style, t_interval, write_csv

ENV_ID = "AIGCEdge-Battery-v0"
DEFAULT_PRICES = (0.3,)
EVAL_SEED = 10_000


def shadow_price_solver(base: Callable, price: float) -> Callable:
    """``base`` solving the slot with the energy weight raised by ``price`` (per J)."""

    def solve(problem, rng=None):
        c = problem.config
        priced = dataclasses.replace(problem, config=c.replace(weight_energy_per_j=c.weight_energy_per_j + price))
        return base(priced, rng=rng)

    solve.__name__ = f"shadow_price_{price:g}"
    return solve


def _solver_actor(solve: Callable, seed: int):
    rng = np.random.default_rng(seed)

    class Actor:
        def act(self, env, observation):
            base = env.unwrapped
            return base.decision_to_action(solve(base.current_problem(), rng=rng))

    return Actor()


def _decaying_price_actor(base_solve: Callable, price: float, seed: int):
    """Shadow price ``price * (1 - t / H)``: a joule kept is worth less as the episode ends.

    ``t / H`` is the observation's last entry (the env's documented time-in-episode feature).
    """
    rng = np.random.default_rng(seed)

    class Actor:
        def act(self, env, observation):
            base = env.unwrapped
            solve = shadow_price_solver(base_solve, price * (1.0 - float(observation[-1])))
            return base.decision_to_action(solve(base.current_problem(), rng=rng))

    return Actor()


def play(env, actor, seed: int) -> dict[str, Any]:
    """One episode; totals plus per-slot cost and mean battery level (J)."""
    observation, _ = env.reset(seed=seed)
    base = env.unwrapped
    totals = {"return": 0.0, "n_dropped": 0.0, "energy_j": 0.0, "n_offloaded": 0.0, "n_requests": 0.0,
              "mean_error": 0.0}
    cost, battery = [], []
    while True:
        battery.append(float(np.mean(base.current_problem().battery_j)))
        observation, reward, terminated, truncated, info = env.step(actor.act(env, observation))
        totals["return"] += reward
        for k in ("n_dropped", "energy_j", "n_offloaded", "n_requests"):
            totals[k] += info[k]
        totals["mean_error"] += info["mean_error"]
        cost.append(info["cost"])
        if terminated or truncated:
            break
    totals["mean_error"] /= len(cost)
    totals["offload_share"] = totals["n_offloaded"] / max(totals["n_requests"], 1)
    return {**totals, "cost_per_slot": cost, "battery_per_slot": battery}


def _policy_task(args: tuple) -> tuple[str, list[dict[str, Any]]]:
    label, kind, spec, overrides, seeds = args
    import gymnasium as gym

    import aigc_edge_env  # noqa: F401  (registers the env ids)
    from aigc_edge_env.baselines import SOLVERS

    if kind == "solver":
        solve = SOLVERS[spec]
        make_actor = lambda seed: _solver_actor(solve, seed)  # noqa: E731
    elif kind == "priced":
        name, price = spec
        solve = shadow_price_solver(SOLVERS[name], price)
        make_actor = lambda seed: _solver_actor(solve, seed)  # noqa: E731
    elif kind == "decaying":
        name, price = spec
        make_actor = lambda seed: _decaying_price_actor(SOLVERS[name], price, seed)  # noqa: E731
    else:
        import torch

        from aigc_edge_env.agents.policies import load_model_policy

        torch.set_num_threads(1)
        policy = load_model_policy(Path(spec), ENV_ID, overrides)
        make_actor = lambda seed: policy  # noqa: E731
    env = gym.make(ENV_ID, config=dict(overrides))
    episodes = []
    for seed in seeds:
        result = play(env, make_actor(seed), seed)
        result["seed"] = seed
        episodes.append(result)
    env.close()
    return label, episodes


def run_battery(
    solvers: Sequence[str], runs: Sequence[Path], episodes: int, out: Path, prices: Sequence[float] = DEFAULT_PRICES,
    overrides: dict[str, Any] | None = None, workers: int | None = None, progress: bool = True,
    confidence: float = 0.95, seed: int = EVAL_SEED, decaying_prices: Sequence[float] = (),
) -> dict[str, Path]:
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from experiments.common import default_workers

    overrides = dict(overrides or {})
    seeds = list(range(seed, seed + episodes))
    tasks = [(name, "solver", name, overrides, seeds) for name in solvers]
    tasks += [(f"exact+price{p:g}", "priced", ("exact", p), overrides, seeds) for p in prices]
    tasks += [(f"exact+price{p:g}(1-t/H)", "decaying", ("exact", p), overrides, seeds) for p in decaying_prices]
    tasks += [(Path(r).name, "run", str(r), overrides, seeds) for r in runs]
    workers = default_workers() if workers is None else workers
    results: dict[str, list] = {}
    with tqdm(total=len(tasks), disable=not progress, desc="battery policies", unit="policy") as bar:
        if workers == 1:
            for task in tasks:
                label, eps = _policy_task(task)
                results[label] = eps
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for label, eps in pool.map(_policy_task, tasks):
                    results[label] = eps
                    bar.update()
    rows = summarize_battery(results, confidence)
    out = Path(out)
    paths = {"csv": out / "battery.csv", "episodes_csv": out / "battery_episodes.csv", "png": out / "battery.png"}
    write_csv(paths["csv"], rows)
    write_csv(paths["episodes_csv"], [
        {"policy": label, **{k: v for k, v in ep.items() if not k.endswith("_per_slot")}}
        for label, eps in results.items() for ep in eps
    ])
    plot_battery(results, rows, paths["png"])
    return paths


def _agent_group(label: str) -> str | None:
    """``mppo_s0`` -> ``mppo`` (runs of one algorithm with different training seeds)."""
    head, _, tail = label.rpartition("_s")
    return head if head and tail.isdigit() else None


def summarize_battery(results: dict[str, list], confidence: float = 0.95) -> list[dict[str, Any]]:
    reference = {ep["seed"]: ep["return"] for ep in results.get("exact", [])}
    rows = []

    def row_of(label: str, returns: np.ndarray, diffs: np.ndarray, eps: list, unit: str) -> dict[str, Any]:
        m, lo, hi = t_interval(returns, confidence)
        d, dlo, dhi = t_interval(diffs, confidence) if diffs.size else (np.nan,) * 3
        ref = np.mean(list(reference.values())) if reference else np.nan
        return {
            "policy": label, "interval_over": unit, "n": int(returns.size), "return": m, "return_low": lo,
            "return_high": hi, "diff_vs_exact": d, "diff_low": dlo, "diff_high": dhi,
            "diff_vs_exact_pct": 100 * d / abs(ref) if np.isfinite(ref) else np.nan,
            "drops_per_episode": float(np.mean([e["n_dropped"] for e in eps])),
            "energy_j_per_episode": float(np.mean([e["energy_j"] for e in eps])),
            "offload_share": float(np.mean([e["offload_share"] for e in eps])),
            "mean_error": float(np.mean([e["mean_error"] for e in eps])),
        }

    for label, eps in results.items():
        returns = np.array([e["return"] for e in eps])
        diffs = np.array([e["return"] - reference[e["seed"]] for e in eps if e["seed"] in reference])
        rows.append(row_of(label, returns, diffs, eps, "episodes (paired by seed for the difference)"))
    groups: dict[str, list[str]] = {}
    for label in results:
        group = _agent_group(label)
        if group:
            groups.setdefault(group, []).append(label)
    for group, labels in groups.items():
        if len(labels) < 2:
            continue
        # one value per training seed: its mean over the evaluation episodes
        returns = np.array([np.mean([e["return"] for e in results[lb]]) for lb in labels])
        diffs = np.array([np.mean([e["return"] - reference[e["seed"]] for e in results[lb]]) for lb in labels])
        eps = [e for lb in labels for e in results[lb]]
        rows.append(row_of(f"{group} (all seeds)", returns, diffs if reference else np.array([]), eps,
                           "training seeds"))
    return rows


def _color(label: str, priced: Sequence[str]):
    import matplotlib.pyplot as plt

    if label.startswith("exact+"):
        return plt.cm.autumn(0.15 + 0.7 * priced.index(label) / max(len(priced), 1))
    if _agent_group(label) is not None or label.endswith("(all seeds)"):
        return "tab:cyan"
    return style(label)[0]


def plot_battery(results: dict[str, list], rows: Sequence[dict[str, Any]], path: Path) -> None:
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
    ax.set_xlabel("episode return minus exact's (same seeds), 95% t-interval")
    ax.set_title("Return gain over the per-slot optimum")
    ax.grid(alpha=0.3, axis="x")
    shown = [lb for lb in results if lb in ("exact", "sca_kkt", "greedy") or lb.startswith("exact+price")]
    shown += [lb for lb in results if _agent_group(lb)][:1]
    priced = [lb for lb in shown if lb.startswith("exact+")]
    for lb in shown:
        cost = np.mean([e["cost_per_slot"] for e in results[lb]], axis=0)
        battery = np.mean([e["battery_per_slot"] for e in results[lb]], axis=0)
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
