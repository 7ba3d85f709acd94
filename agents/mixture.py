"""One network for every number of users: the per-user network trained on a mixture of user counts, by PPO
(``ppo_mixture``) or by imitation of ``exact``'s decisions (``imitation_mixture``).

The per-user network (:class:`~aigc_edge_env.agents.per_user_net.PerUserActorCritic`) shares one rule
across users, and its weights do not depend on ``N``: the same network plays 5 users or 200.  This
trainer (``aigc-edge train --algo ppo_mixture``) shows it so: every iteration collects ``n_steps``
slots from each of ``n_envs`` sub-envs at every user count of ``n_users`` (one
:func:`gymnasium.make_vec` vector env per count, the env's config with ``n_users`` replaced), then
updates the one network on all of them: ``n_epochs`` passes of ``n_minibatches`` minibatches per
count, in shuffled order, each minibatch from one count (a batch of one shape).

It is PPO (clipped ratio 0.2 by default, Adam, learning rate decaying linearly to 0) for the myopic
scenarios: a slot's decision does not change later slots without batteries, so the discount is 0,
the value estimates the slot's reward and the advantage is ``reward - value`` (what ``ppo.yml``'s
``gamma: 0`` does for SB3).  Envs with batteries are refused.  Rewards are scaled per user count by
a running standard deviation (Gymnasium's ``NormalizeReward``: the reward grows with ``N``); the
log-probability of a joint action sums over the users with a request (the env ignores the others'
entries), as in ``examples/cleanrl_ppo.py``.  With ``n_users`` of one count it trains a policy for
that count only, with the same algorithm and budget: the per-``N`` baseline of the scale study
(``aigc-edge experiments scale``, docs/results.md).

``imitation_mixture`` (``aigc-edge train --algo imitation_mixture``) trains the same network by supervised
learning from the per-slot optimum, as "learning to optimise" does (DROO's network learns from the best of
its own quantised decisions; here ``exact``, the proven optimum, is the teacher): every iteration solves
each collected slot with :func:`~aigc_edge_env.baselines.exact.solve_many` and takes ``n_epochs`` passes
of the cross-entropy of each requesting user's (offload bit, level) pair against ``exact``'s, minibatches
as PPO's.  The envs step with the network's greedy decision, so the record's mean slot rewards follow the
greedy network; in the myopic scenarios the slots do not depend on the actions, so no DAgger is needed.
Played by filling the edge in its order (``packed:PATH``, :mod:`~aigc_edge_env.policies.quantisation`) it
scores 0.996-0.999 of ``exact`` from 5 to 200 users in under a tenth of ``exact``'s time at 50 and 100 users
(docs/results.md, section 6); played greedily it miscounts the users the edge can take.

All randomness comes from ``seed``: the network's initial weights, the sampled actions and the
minibatch order from one ``torch.Generator``, the training episodes from seeds ``10**6 (seed + 1) + i``
(never the held-out 10000-10009).  The run directory holds ``policy.pt`` (the ``torch:PATH`` format
of :mod:`aigc_edge_env.policies.torch_module`, saved every tenth of the run and at the end) and
``run.yml`` (config, hyperparameters, command, versions, per-count mean slot reward of each tenth, CPU
time) and ``training_state.pt`` (:data:`STATE_FILE`: the state of the last tenth).  Ctrl-C saves the network
reached and marks the run interrupted; ``aigc-edge train --resume RUN`` continues it from its last tenth
(:func:`resume_mixture`: the same network, optimiser, generator and reward scales, fresh episodes).
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from aigc_edge_env.agents.hyperparameters import HyperparamError, checked_entry, checked_number, load_hyperparams
from aigc_edge_env.agents.per_user_net import PerUserActorCritic, action_pairs, pair_actions
from aigc_edge_env.agents.price_imitation import episode_seeds
from aigc_edge_env.agents.runs import IMITATION_MIXTURE_ALGO, MIXTURE_ALGOS, PPO_MIXTURE_ALGO
from aigc_edge_env.agents.training import TrainingError, locked_run
from aigc_edge_env.files import write_atomic
from aigc_edge_env.vector_env import AIGCEdgeVectorEnv

__all__ = ["HYPERPARAMETERS", "REAL_HYPERPARAMETERS", "STATE_FILE", "check_mixture_hyperparams", "resumable",
           "resume_mixture", "train_imitation_mixture", "train_mixture"]

#: Integer hyperparameters of ``ppo_mixture.yml`` and ``imitation_mixture.yml`` entries with their accepted
#: ranges (``n_users`` is a list).
HYPERPARAMETERS = {"timesteps": (1, 10**9), "n_envs": (1, 4096), "n_steps": (1, 100_000), "n_epochs": (1, 1000),
                   "n_minibatches": (1, 4096), "hidden_dim": (1, 4096), "n_layers": (1, 64)}
#: Real hyperparameters of each trainer with their accepted ranges (low excluded).
REAL_HYPERPARAMETERS = {
    PPO_MIXTURE_ALGO: {"learning_rate": (0.0, 1.0), "clip_range": (0.0, 1.0), "vf_coef": (0.0, 100.0),
                       "max_grad_norm": (0.0, 1e6)},
    IMITATION_MIXTURE_ALGO: {"learning_rate": (0.0, 1.0), "max_grad_norm": (0.0, 1e6)},
}
#: Tenths of the run after which the network, the record and the training state are saved.
SAVES = 10
#: The training state of the last tenth (network, optimiser, generator, reward scales): what ``--resume`` continues.
STATE_FILE = "training_state.pt"


def check_mixture_hyperparams(hp: Mapping[str, Any], algo: str = PPO_MIXTURE_ALGO) -> dict[str, Any]:
    """The entry ``hp`` of ``algo`` (one of ``MIXTURE_ALGOS``) checked: every key known and present, each number
    in its range, ``n_users`` a non-empty list of distinct user counts in [1, 10000]; :class:`HyperparamError`
    names the key; ``ValueError`` for another ``algo``."""
    if algo not in REAL_HYPERPARAMETERS:
        raise ValueError(f"algo must be one of {list(REAL_HYPERPARAMETERS)}, got {algo!r}")
    checked = checked_entry(algo, hp, HYPERPARAMETERS, REAL_HYPERPARAMETERS[algo], ["n_users"])
    counts = hp["n_users"]
    if not isinstance(counts, list) or not counts:
        raise HyperparamError(f"hyperparameter {algo}.n_users must be a list of user counts, got {counts!r}")
    checked["n_users"] = [checked_number(f"{algo}.n_users", n, True, 1, 10_000) for n in counts]
    if len(set(checked["n_users"])) != len(counts):
        raise HyperparamError(f"hyperparameter {algo}.n_users lists a count twice: {counts}")
    if checked["n_envs"] * checked["n_steps"] < checked["n_minibatches"]:
        raise HyperparamError(f"{algo}: n_envs x n_steps = {checked['n_envs'] * checked['n_steps']} slots per "
                              f"count cannot make n_minibatches = {checked['n_minibatches']} minibatches")
    return checked


class _Count:
    """One user count's vector env, its last observations and its raw slot rewards since the last save."""

    def __init__(self, env_id: str, env_config: Mapping[str, Any], n_users: int, n_envs: int, seed: int) -> None:
        self.n_users = n_users
        env = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                           autoreset_mode="same_step",  # every step a decided slot (no reset step of reward 0)
                           config={**env_config, "n_users": n_users})
        self.base = cast(AIGCEdgeVectorEnv, env)  # its slots, for the labels of imitation_mixture
        raw = gym.wrappers.vector.TransformReward(env, self._record)  # sees the env's reward
        self.env = gym.wrappers.vector.NormalizeReward(raw, gamma=0.0)
        self.obs = torch.as_tensor(self.env.reset(seed=seed)[0])
        self.rewards: list[float] = []

    def _record(self, reward: np.ndarray) -> np.ndarray:
        self.rewards.append(float(np.mean(reward)))
        return reward

    def mean_reward(self) -> float:
        """The mean raw slot reward since the last call (nan if none)."""
        value = float(np.mean(self.rewards)) if self.rewards else float("nan")
        self.rewards = []
        return value


def _act(net: PerUserActorCritic, obs: torch.Tensor, generator: torch.Generator,
         action: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample (``action`` None) or score a joint action: ``(action, log_prob, value)``; the log-probability
    sums over the users with a request (observation block 0)."""
    logits, value = net(obs)  # (B, N, 2L)
    log_probs = torch.log_softmax(logits, dim=-1)
    n_users, n_levels = logits.shape[-2], logits.shape[-1] // 2
    if action is None:
        pairs = torch.multinomial(log_probs.exp().reshape(-1, 2 * n_levels), 1, generator=generator)
        action = pair_actions(pairs.reshape(logits.shape[:-1]), n_levels)
    chosen = log_probs.gather(-1, action_pairs(action, n_levels).unsqueeze(-1)).squeeze(-1)
    return action, (chosen * obs[..., :n_users]).sum(-1), value


def _rollout(net: PerUserActorCritic, count: _Count, n_steps: int, generator: torch.Generator) -> dict[str, Any]:
    """``n_steps`` slots of every sub-env: observations, actions, log-probabilities, scaled rewards, values."""
    batch: dict[str, list[torch.Tensor]] = {"obs": [], "action": [], "log_prob": [], "reward": [], "value": []}
    for _ in range(n_steps):
        with torch.no_grad():
            action, log_prob, value = _act(net, count.obs, generator)
        obs, reward, *_ = count.env.step(action.numpy())
        for key, item in (("obs", count.obs), ("action", action), ("log_prob", log_prob), ("value", value),
                          ("reward", torch.as_tensor(reward, dtype=torch.float32))):
            batch[key].append(item)
        count.obs = torch.as_tensor(obs)
    return {key: torch.cat(items) for key, items in batch.items()}


def _labelled(net: PerUserActorCritic, count: _Count, n_steps: int, generator: torch.Generator) -> dict[str, Any]:
    """``n_steps`` slots of every sub-env: observations and ``exact``'s (offload bit, level) pair of each user
    (``imitation_mixture``); the envs step with the network's greedy decision (``generator`` unused)."""
    from aigc_edge_env.baselines.exact import solve_many
    from aigc_edge_env.spaces import decision_to_actions

    vector_env, config = count.base, count.base.config
    batch: dict[str, list[torch.Tensor]] = {"obs": [], "pair": []}
    for _ in range(n_steps):
        problem = vector_env.current_problem()
        optimum = [result.decision for result in solve_many([problem.select(i) for i in range(len(count.obs))])]
        labels = torch.as_tensor(np.stack([decision_to_actions(decision, config) for decision in optimum]))
        with torch.no_grad():
            logits, _ = net(count.obs)
        obs, *_ = count.env.step(pair_actions(logits.argmax(-1), config.n_levels).numpy())
        batch["obs"].append(count.obs)
        batch["pair"].append(action_pairs(labels, config.n_levels))
        count.obs = torch.as_tensor(obs)
    return {key: torch.cat(items) for key, items in batch.items()}


def _minibatches(batches: Sequence[dict[str, Any]], hp: Mapping[str, Any],
                 generator: torch.Generator) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """One pass: ``n_minibatches`` minibatches of each count's batch, each of one count, in shuffled order."""
    minibatches = [(batch, index) for batch in batches for index in
                   torch.randperm(len(batch["obs"]), generator=generator).chunk(hp["n_minibatches"])]
    for k in torch.randperm(len(minibatches), generator=generator).tolist():
        yield minibatches[k]


def _step(net: PerUserActorCritic, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
          hp: Mapping[str, Any]) -> None:
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), hp["max_grad_norm"])
    optimizer.step()


def _fit(net: PerUserActorCritic, optimizer: torch.optim.Optimizer, batches: Sequence[dict[str, Any]],
         hp: Mapping[str, Any], generator: torch.Generator) -> None:
    """``n_epochs`` passes of the cross-entropy of the requesting users' pairs against ``exact``'s."""
    for _ in range(hp["n_epochs"]):
        for batch, index in _minibatches(batches, hp, generator):
            obs, pairs = batch["obs"][index], batch["pair"][index]
            logits, _ = net(obs)  # (B, N, 2L)
            request = obs[..., :logits.shape[-2]]  # observation block 0
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), pairs.flatten(), reduction="none")
            _step(net, optimizer, (loss * request.flatten()).sum() / request.sum().clamp(min=1.0), hp)


def _update(net: PerUserActorCritic, optimizer: torch.optim.Optimizer, batches: Sequence[dict[str, Any]],
            hp: Mapping[str, Any], generator: torch.Generator) -> None:
    """``n_epochs`` passes of clipped PPO over every count's batch (:func:`_minibatches`)."""
    clip = hp["clip_range"]
    for _ in range(hp["n_epochs"]):
        for batch, index in _minibatches(batches, hp, generator):
            _, log_prob, value = _act(net, batch["obs"][index], generator, batch["action"][index])
            advantage = batch["reward"][index] - batch["value"][index]  # gamma 0: the slot's reward is the return
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            ratio = (log_prob - batch["log_prob"][index]).exp()
            policy_loss = torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - clip, 1 + clip)).mean()
            value_loss = 0.5 * ((value - batch["reward"][index]) ** 2).mean()
            _step(net, optimizer, policy_loss + hp["vf_coef"] * value_loss, hp)


def _network(n_users: int, n_levels: int, hp: Mapping[str, Any], seed: int) -> PerUserActorCritic:
    """The network, its initial weights drawn from ``seed`` without touching torch's global generator."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return PerUserActorCritic(n_users, n_levels, hidden_dim=hp["hidden_dim"], n_layers=hp["n_layers"])


def train_mixture(out: Path, env_id: str, env_config: Mapping[str, Any], seed: int,
                  overrides: Mapping[str, Any], command: Sequence[str], progress: bool = True) -> Path:
    """Train the per-user network by PPO as the ``ppo_mixture.yml`` entry of ``env_id`` (with ``overrides``)
    says and save the run in ``out`` (module docstring); ``TrainingError`` before any work for a bad request."""
    return _start(PPO_MIXTURE_ALGO, out, env_id, env_config, seed, overrides, command, progress)


def train_imitation_mixture(out: Path, env_id: str, env_config: Mapping[str, Any], seed: int,
                            overrides: Mapping[str, Any], command: Sequence[str], progress: bool = True) -> Path:
    """Train the per-user network by imitation of ``exact`` as the ``imitation_mixture.yml`` entry of
    ``env_id`` (with ``overrides``) says and save the run in ``out`` (module docstring); ``TrainingError``
    before any work for a bad request."""
    return _start(IMITATION_MIXTURE_ALGO, out, env_id, env_config, seed, overrides, command, progress)


def _start(algo: str, out: Path, env_id: str, env_config: Mapping[str, Any], seed: int,
           overrides: Mapping[str, Any], command: Sequence[str], progress: bool) -> Path:
    """A new run of ``algo`` (one of ``MIXTURE_ALGOS``) in ``out``, its request checked before any work."""
    from aigc_edge_env.agents.runs import RUN_RECORD, write_record
    from aigc_edge_env.agents.training import refusing_requests
    from aigc_edge_env.cli.common import check_output_dir
    from aigc_edge_env.config import make_config
    from aigc_edge_env.versions import package_versions

    with refusing_requests():
        check_output_dir(out)
        if (out / RUN_RECORD).exists():
            raise ValueError(f"{out} already holds a run; choose another --out (or --resume it)")
        config = make_config(env_id, dict(env_config))  # the env id's; each count replaces its n_users
        if config.battery_enabled:
            raise ValueError(f"{algo} trains myopic policies (gamma 0): {env_id} has batteries, whose "
                             "decisions change later slots; train it with --algo ppo")
        hp = check_mixture_hyperparams(load_hyperparams(algo, env_id, dict(overrides)), algo)
        for n in hp["n_users"]:  # each count's config checked before any work
            make_config(env_id, {**env_config, "n_users": n})
    with locked_run(out):
        if (out / RUN_RECORD).exists():  # another process started it meanwhile
            raise TrainingError(f"{out} already holds a run; choose another --out (or --resume it)")
        record: dict[str, Any] = {"algo": algo, "env_id": env_id, "seed": seed,
                                  "env_config_overrides": dict(env_config), "env_config": config.to_dict(),
                                  "hyperparams": hp, "hyperparam_overrides": dict(overrides),
                                  "versions": package_versions(), "command": list(command), "progress": []}
        write_record(out, record)
        net = _network(config.n_users, config.n_levels, hp, seed)
        return _train(out, record, net, torch.Generator().manual_seed(seed), None, progress)


def resume_mixture(out: Path, command: Sequence[str], progress: bool = True) -> Path:
    """Continue the interrupted (or killed) ``ppo_mixture`` or ``imitation_mixture`` run in ``out`` from its last
    tenth (:data:`STATE_FILE`): the same network, optimiser, generator and reward scales; each count's episodes
    start afresh from new seeds, so the run ends near an uninterrupted one, not equal to it.  ``TrainingError``
    before any work when there is nothing to resume, or when another process holds the run."""
    from aigc_edge_env.config import make_config

    with locked_run(out, MIXTURE_ALGOS) as record:
        assert record is not None
        if record.get("state") == "finished":
            raise TrainingError(f"{out} is a finished run: nothing to resume")
        state = _read_state(out, len(record["hyperparams"]["n_users"]))
        config = make_config(record["env_id"], record["env_config_overrides"])
        net = _network(config.n_users, config.n_levels, record["hyperparams"], record["seed"])
        net.load_state_dict(state["net"])
        generator = torch.Generator()
        generator.set_state(state["generator"])
        record.setdefault("resumed", []).append({"from_slots": int(state["slots"]), "command": list(command)})
        print(f"resuming {out} from its state after {int(state['slots']):,} slots (iteration {state['iteration']})",
              file=sys.stderr, flush=True)
        return _train(out, record, net, generator, state, progress)


#: What :data:`STATE_FILE` holds.
STATE_KEYS = {"iteration", "slots", "cpu_s", "net", "optimizer", "generator", "reward_scales"}


def _read_state(out: Path, n_counts: int) -> dict[str, Any]:
    """The training state of ``out``; ``TrainingError`` naming the file when it is missing or not a complete one."""
    path = out / STATE_FILE
    if not path.is_file():
        raise TrainingError(f"{out} holds no {STATE_FILE}: the run stopped before its first tenth; train again "
                            "into a new --out")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for a file that is not a complete torch.save
        state = None
    if not isinstance(state, dict) or set(state) != STATE_KEYS or len(state["reward_scales"]) != n_counts:
        raise TrainingError(f"{path} is not a complete training state of this run; train again into a new --out")
    return state


def resumable(out: Path) -> bool:
    """``out`` holds what :func:`resume_mixture` continues from (the state of a tenth)."""
    return (out / STATE_FILE).is_file()


def _train(out: Path, record: dict[str, Any], net: PerUserActorCritic, generator: torch.Generator,
           state: Mapping[str, Any] | None, progress: bool) -> Path:
    """The iterations of the run from the start (``state`` None) or from ``state``; saves every tenth: the
    training state first, then the network and the record, so a killed run resumes from a state its record
    may not show yet (the tenth is written again)."""
    from aigc_edge_env.agents.runs import MIXTURE_FILE, write_record
    from aigc_edge_env.policies.torch_module import save_torch_policy
    from aigc_edge_env.progress import progress_bar

    hp, env_id, seed = record["hyperparams"], record["env_id"], record["seed"]
    env_config = record["env_config_overrides"]
    optimizer = torch.optim.Adam(net.parameters(), lr=hp["learning_rate"], eps=1e-5)
    done = 0 if state is None else int(state["iteration"])
    # a session draws one episode seed per sub-env and count; a resumed one starts past the sessions before it
    first_episode = len(record.get("resumed", [])) * hp["n_envs"] * len(hp["n_users"])
    counts = [_Count(env_id, env_config, n, hp["n_envs"],
                     episode_seeds(seed, first_episode + i * hp["n_envs"], 1)[0]) for i, n in enumerate(hp["n_users"])]
    per_iteration = hp["n_envs"] * hp["n_steps"] * len(counts)
    iterations = max(1, hp["timesteps"] // per_iteration)
    saves = {round(iterations * k / SAVES) for k in range(1, SAVES + 1)}
    cpu_start = time.process_time() - (0.0 if state is None else float(state["cpu_s"]))
    slots = done * per_iteration
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        for count, (mean, var, n) in zip(counts, state["reward_scales"], strict=True):  # float64, as the wrapper's
            rms = count.env.return_rms
            rms.mean, rms.var, rms.count = np.float64(mean), np.float64(var), float(n)

    def save(iteration: int, run_state: str) -> None:
        cpu_s = round(time.process_time() - cpu_start, 1)
        if run_state != "interrupted":  # a tenth's state: the one a resumed run continues from
            buffer = io.BytesIO()
            torch.save({"iteration": iteration, "slots": slots, "cpu_s": cpu_s, "net": net.state_dict(),
                        "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                        "reward_scales": [(float(c.env.return_rms.mean), float(c.env.return_rms.var),
                                           float(c.env.return_rms.count)) for c in counts]}, buffer)
            write_atomic(out / STATE_FILE, buffer.getvalue())
        save_torch_policy(out / MIXTURE_FILE, net, env_id, hp["n_users"])
        record["progress"].append({"slots": slots, "cpu_s": cpu_s,
                                   "mean_slot_reward": {c.n_users: round(c.mean_reward(), 4) for c in counts},
                                   **({"interrupted": True} if run_state == "interrupted" else {})})
        record.update(state=run_state, training_slots=slots, training_cpu_s=cpu_s)
        write_record(out, record)

    # how each count's slots are collected, and how the network learns from them (looked up here: tests patch them)
    collect, update = (_rollout, _update) if record["algo"] == PPO_MIXTURE_ALGO else (_labelled, _fit)
    try:
        if done >= iterations:  # killed after the last tenth's state, before its record: write the end again
            save(done, "finished")
        with progress_bar(iterations * per_iteration, record["algo"], "slot", progress) as bar:
            bar.update(slots)
            for iteration in range(done + 1, iterations + 1):
                optimizer.param_groups[0]["lr"] = hp["learning_rate"] * (1 - (iteration - 1) / iterations)
                update(net, optimizer, [collect(net, count, hp["n_steps"], generator) for count in counts], hp,
                       generator)
                slots += per_iteration
                bar.update(per_iteration)
                if iteration in saves:
                    save(iteration, "finished" if iteration == iterations else "running")
    except KeyboardInterrupt:
        save(done, "interrupted")
        raise
    finally:
        for count in counts:
            count.env.close()
    return out
