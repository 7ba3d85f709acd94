"""Training the amortised planner: imitation of ``mpc``'s prices with DAgger.

:class:`~aigc_edge_env.policies.price_network.PriceNetworkPolicy` decides with ``exact`` under
the prices of a per-user network.  This module fits that network to the prices ``mpc``
(:mod:`aigc_edge_env.policies.mpc`) plans:

1. **Imitation**: play ``mpc`` on training episodes and record, every ``label_every`` slots,
   each user's :func:`~aigc_edge_env.policies.price_network.price_features` with the price
   ``mpc`` plans there (its label).
2. **DAgger** (Ross, Gordon and Bagnell, AISTATS 2011): play the fitted network, label the
   states *it* visits with the price ``mpc`` would plan there (a teacher planning from that
   state with its own sampled futures, as ``mpc`` itself would), add them to the data and
   refit; repeated ``dagger_rounds`` times.

Each fit minimises the mean squared price error (cost per J) of a ``tanh`` network with a
``softplus`` output (torch, Adam), then copies its weights into the numpy policy.  Labels are
clipped at :data:`MAX_LABEL_PRICE_PER_J`: ``mpc`` played at most 5.1/J on 200 training episodes,
but a plan from a nearly empty battery in a state the network visited priced 627/J, and one
such label would dominate the squared error.  The
labels are noisy (each plan sees one sampled future), and the regression averages the noise
of many plans; all randomness comes from the seeds given (``torch.Generator`` for the fit).
"""

from __future__ import annotations

import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from aigc_edge_env.agents.hyperparameters import checked_entry, checked_number, load_hyperparams
from aigc_edge_env.env import unwrapped_env
from aigc_edge_env.files import write_npz
from aigc_edge_env.policies.mpc import MPC_DEFAULTS, MPCPolicy
from aigc_edge_env.policies.price_network import N_PRICE_FEATURES, PriceNetworkPolicy, price_features
from aigc_edge_env.policies.pricing import PricedPolicy

#: Labels above this price (cost per J) are clipped to it before a fit (module docstring).
MAX_LABEL_PRICE_PER_J = 5.0

__all__ = ["MAX_LABEL_PRICE_PER_J", "LabelledStates", "collect_labels", "fit_price_network", "resumable",
           "resume_price_network", "train_price_network"]


@dataclass
class LabelledStates:
    """Rows of per-user features with ``mpc``'s planned price (cost per J) for each."""

    features: list[np.ndarray] = field(default_factory=list)  # (N, F) per labelled slot
    prices_per_j: list[np.ndarray] = field(default_factory=list)  # (N,) per labelled slot

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.features), np.concatenate(self.prices_per_j)

    def __len__(self) -> int:
        return sum(len(p) for p in self.prices_per_j)


class _Labelling:
    """Plays ``behaviour`` and, every ``label_every`` slots, records the state and the teacher's plan there.

    With ``behaviour`` = the teacher itself the label is the price it plays (its own plan); otherwise
    a teacher ``MPCPolicy`` plans from the visited state (warm-started from its previous plan)."""

    def __init__(self, behaviour: PricedPolicy, teacher: MPCPolicy, label_every: int, data: LabelledStates) -> None:
        self.behaviour, self.teacher, self.label_every, self.data = behaviour, teacher, label_every, data

    def reset(self, seed: int | None) -> None:
        self.behaviour.reset(seed)
        if self.teacher is not self.behaviour:
            self.teacher.reset(seed)

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        base = unwrapped_env(env)
        t, problem = self.behaviour.slot_index, base.current_problem()
        if t % self.label_every and self.teacher is not self.behaviour:
            return self.behaviour.act(env, observation)
        if self.teacher is not self.behaviour:
            self.teacher.observe(base)
            self.teacher.slot_index = t
            self.teacher.planned_price_per_j = self.teacher.plan(problem)[0]
        action = self.behaviour.act(env, observation)  # the teacher as behaviour plans here itself
        if t % self.label_every == 0:
            assert self.teacher.planned_price_per_j is not None
            self.data.features.append(price_features(problem, observation))
            self.data.prices_per_j.append(np.array(self.teacher.planned_price_per_j, dtype=np.float64))
        return action


def collect_labels(env_id: str, seeds: Iterable[int], behaviour: PricedPolicy | None, data: LabelledStates,
                   label_every: int = MPC_DEFAULTS["every"], config: dict | None = None,
                   on_episode: Callable[[], None] | None = None) -> None:
    """Add to ``data`` the labelled states of one episode per seed, played by ``behaviour`` (``None``: ``mpc``)."""
    from aigc_edge_env.evaluation.runner import run_episode

    env = gym.make(env_id, config=config)
    teacher = MPCPolicy(every=label_every)
    policy = _Labelling(behaviour or teacher, teacher, label_every, data)
    for seed in seeds:
        run_episode(env, policy, seed)
        if on_episode is not None:
            on_episode()
    env.close()


def _torch_network(hidden: Sequence[int], generator: torch.Generator) -> torch.nn.Sequential:
    sizes = [N_PRICE_FEATURES, *hidden]
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    layers.append(torch.nn.Linear(sizes[-1], 1))
    net = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for module in net:
            if isinstance(module, torch.nn.Linear):
                bound = 1.0 / np.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
    return net


def fit_price_network(features: np.ndarray, prices_per_j: np.ndarray, hidden: Sequence[int] = (64, 64),
                      epochs: int = 60, batch_size: int = 512, learning_rate: float = 3e-3,
                      seed: int = 0) -> PriceNetworkPolicy:
    """A :class:`PriceNetworkPolicy` fitted to ``prices_per_j[i] ~ network(features[i])`` (mean squared error,
    labels clipped at :data:`MAX_LABEL_PRICE_PER_J`)."""
    generator = torch.Generator().manual_seed(seed)
    net = _torch_network(hidden, generator)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(np.minimum(prices_per_j, MAX_LABEL_PRICE_PER_J), dtype=torch.float32)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            index = order[start:start + batch_size]
            loss = torch.mean((torch.nn.functional.softplus(net(x[index])[:, 0]) - y[index]) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    return PriceNetworkPolicy([m.weight.detach().numpy().T.astype(np.float64) for m in linear],
                              [m.bias.detach().numpy().astype(np.float64) for m in linear])


#: The hyperparameters of ``price_network.yml`` entries, with their accepted ranges.
HYPERPARAMETERS = {"episodes": (1, 100_000), "dagger_rounds": (0, 100), "dagger_episodes": (1, 100_000),
                   "label_every": (1, 1_000), "epochs": (1, 10_000), "batch_size": (1, 1_000_000)}


def check_price_network_hyperparams(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The entry ``hp`` checked (every key known, each integer in its range, ``hidden`` a list of widths,
    ``learning_rate`` in (0, 1]); ``ValueError`` names the key and the accepted values."""
    checked = checked_entry("price_network", hp, HYPERPARAMETERS, {"learning_rate": (0, 1)}, ["hidden"])
    hidden = hp["hidden"]
    if not isinstance(hidden, list) or not hidden:
        raise ValueError(f"hyperparameter price_network.hidden must be a list of layer widths, got {hidden!r}")
    checked["hidden"] = [checked_number("price_network.hidden", width, True, 1, 4096) for width in hidden]
    total = checked["episodes"] + checked["dagger_rounds"] * checked["dagger_episodes"]
    if total >= SEED_STRIDE:  # the next run seed's episodes start SEED_STRIDE later (episode_seeds)
        raise ValueError(f"price_network plays episodes + dagger_rounds x dagger_episodes = {total} episodes; "
                         f"accepted fewer than {SEED_STRIDE}")
    return checked


#: Episode seeds of run seed ``s`` start at ``SEED_STRIDE (s + 1)`` (:func:`episode_seeds`).
SEED_STRIDE = 10**6


def episode_seeds(seed: int, start: int, count: int) -> list[int]:
    """Seeds of training episodes ``start..start+count-1`` of run seed ``seed``: ``10**6 (seed + 1) + i``,
    apart from the held-out seeds 10000-10009 and the rules' tuning seeds 0-19 (docs/results.md)."""
    return [SEED_STRIDE * (seed + 1) + i for i in range(start, start + count)]


def train_price_network(out: Path, env_id: str, env_config: Mapping[str, Any], seed: int,
                        overrides: Mapping[str, Any], command: Sequence[str], progress: bool = True) -> Path:
    """Train a price network as the ``price_network.yml`` entry of ``env_id`` (with ``overrides``) says and
    save the run in ``out``: ``price_network.npz`` (the final network), ``price_network_step<k>.npz``
    (after imitation, k = 0, and after each DAgger round), ``labels.npz`` (every labelled state, saved
    after each step: a stopped run keeps them) and ``run.yml`` (the record, which lists the finished steps);
    ``TrainingError`` before any work for a bad request.  An interrupted run resumes
    (:func:`resume_price_network`)."""
    from aigc_edge_env.agents.runs import RUN_RECORD, write_record
    from aigc_edge_env.agents.training import TrainingError, locked_run, refusing_requests
    from aigc_edge_env.cli.common import check_output_dir
    from aigc_edge_env.config import make_config
    from aigc_edge_env.versions import package_versions

    with refusing_requests():
        check_output_dir(out)
        if (out / RUN_RECORD).exists():
            raise ValueError(f"{out} already holds a run; choose another --out (or --resume it)")
        config = make_config(env_id, dict(env_config))
        if not config.battery_enabled:
            raise ValueError(f"price_network learns energy prices: it needs an env with batteries, not {env_id} "
                             f"(battery_enabled false)")
        hp = check_price_network_hyperparams(load_hyperparams("price_network", env_id, dict(overrides)))
    with locked_run(out):
        if (out / RUN_RECORD).exists():  # another process started it meanwhile
            raise TrainingError(f"{out} already holds a run; choose another --out (or --resume it)")
        record: dict[str, Any] = {"algo": "price_network", "env_id": env_id, "seed": seed,
                                  "env_config_overrides": dict(env_config), "env_config": config.to_dict(),
                                  "hyperparams": hp, "hyperparam_overrides": dict(overrides),
                                  "versions": package_versions(), "command": list(command), "steps": []}
        write_record(out, record)
        return _fit_steps(out, record, LabelledStates(), None, progress)


def resume_price_network(out: Path, command: Sequence[str], progress: bool = True) -> Path:
    """Continue the interrupted (or killed) ``price_network`` run in ``out`` after its last finished step (the
    steps ``run.yml`` lists): its labels up to that step and its network, then the next steps as they would have
    run, so the run ends with the network an uninterrupted run trains.  ``TrainingError`` before any work
    when there is nothing to resume, or when another process holds the run."""
    from aigc_edge_env.agents.runs import PRICE_NETWORK_ALGO
    from aigc_edge_env.agents.training import TrainingError, locked_run

    with locked_run(out, PRICE_NETWORK_ALGO) as record:
        assert record is not None
        if "training_cpu_s" in record:
            raise TrainingError(f"{out} is a finished run: nothing to resume")
        done = record["steps"]
        if not done:
            raise TrainingError(f"{out} finished no step (its imitation episodes) before it stopped; train "
                                "again into a new --out")
        try:
            with np.load(out / "labels.npz") as labels:
                rows = done[-1]["labelled_rows"]  # labels of an unfinished step come after these
                features, prices = labels["features"][:rows], labels["prices_per_j"][:rows]
            network = PriceNetworkPolicy.load(out / f"price_network_step{len(done) - 1}.npz")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise TrainingError(f"{out}: the labels or the network of step {len(done) - 1} cannot be read "
                                f"({type(exc).__name__}); train again into a new --out") from None
        if len(prices) != rows or len(features) != rows:
            raise TrainingError(f"{out}/labels.npz holds {len(features)} feature and {len(prices)} price rows, "
                                f"not the {rows} of step {len(done) - 1}; train again into a new --out")
        record.setdefault("resumed", []).append({"after_step": done[-1]["step"], "command": list(command)})
        print(f"resuming {out} after its step {done[-1]['step']}", file=sys.stderr, flush=True)
        return _fit_steps(out, record, LabelledStates([features], [prices]), network, progress)


def resumable(out: Path) -> bool:
    """``out`` holds what :func:`resume_price_network` continues from (a finished step in its record)."""
    from aigc_edge_env.agents.runs import RunError, read_record

    try:
        return bool(read_record(out).get("steps"))
    except RunError:
        return False


def _fit_steps(out: Path, record: dict[str, Any], data: LabelledStates, network: PriceNetworkPolicy | None,
               progress: bool) -> Path:
    """The steps of the run that ``record["steps"]`` does not list yet (imitation, then the DAgger rounds), from
    ``data`` and ``network`` (those of the last step listed, or empty and ``None``)."""
    from aigc_edge_env.agents.runs import PRICE_NETWORK_FILE, write_record
    from aigc_edge_env.progress import progress_bar

    hp, env_id, seed = record["hyperparams"], record["env_id"], record["seed"]
    env_config = record["env_config_overrides"]
    counts = [hp["episodes"]] + [hp["dagger_episodes"]] * hp["dagger_rounds"]
    first = len(record["steps"])
    cpu_start = time.process_time() - (record["steps"][-1]["cpu_s"] if first else 0.0)
    with progress_bar(sum(counts), "price_network", "episode", progress) as bar:
        bar.update(sum(counts[:first]))
        for step in range(first, len(counts)):
            seeds = episode_seeds(seed, sum(counts[:step]), counts[step])
            collect_labels(env_id, seeds, network, data, hp["label_every"], dict(env_config), on_episode=bar.update)
            features, prices = data.arrays()
            write_npz(out / "labels.npz", {"features": features, "prices_per_j": prices})
            network = fit_price_network(features, prices, hp["hidden"], hp["epochs"], hp["batch_size"],
                                        hp["learning_rate"], seed)
            network.save(out / f"price_network_step{step}.npz")
            record["steps"].append({"step": "imitation" if step == 0 else f"dagger_round_{step}",
                                    "episodes": f"{seeds[0]}..{seeds[-1]}", "labelled_rows": len(prices),
                                    "cpu_s": round(time.process_time() - cpu_start, 1)})
            write_record(out, record)
    assert network is not None
    network.save(out / PRICE_NETWORK_FILE)
    record["training_cpu_s"] = round(time.process_time() - cpu_start, 1)
    write_record(out, record)
    return out
