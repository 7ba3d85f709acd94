"""Learned agents: per-user wrapper, SB3 vector adapter, hyperparameters, training and reloading."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aigc_edge_env.agents.environments import make_env
from aigc_edge_env.agents.hyperparameters import HyperparamError, algorithm_kwargs, load_hyperparams, parse_overrides
from aigc_edge_env.agents.networks import PerUserPolicy
from aigc_edge_env.agents.policies import load_model_policy
from aigc_edge_env.agents.runs import read_record
from aigc_edge_env.agents.training import TrainRequest, train
from aigc_edge_env.agents.vec_env import SB3VectorEnv, sub_env_seeds
from aigc_edge_env.agents.wrappers import (
    DECISION_REWARD_MODES,
    USER_ORDERS,
    PerUserDecisionWrapper,
    SlotChoices,
    decision_order,
)
from aigc_edge_env.baselines import SOLVERS
from aigc_edge_env.evaluation.runner import COMPONENTS, EPISODE_METRICS, evaluate_policy
from aigc_edge_env.model import option_table

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"horizon_slots": 6}
# Few users and requests, so some slots have none (the wrapper's empty-slot step).
SPARSE = {"horizon_slots": 12, "n_users": 3, "task_probability": 0.3}


def _env_episode(config: dict, seed: int, solver: str) -> tuple[list[np.ndarray], float, list[dict]]:
    """Actions, return and infos of one episode of the plain env under a solver."""
    env = gym.make("AIGCEdge-v0", config=config)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions, infos, total = [], [], 0.0
    done = False
    while not done:
        base = env.unwrapped
        action = base.decision_to_action(SOLVERS[solver](base.current_problem(), rng=rng))
        _, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        infos.append(info)
        total += reward
        done = terminated or truncated
    return actions, total, infos


@pytest.mark.parametrize("user_order", USER_ORDERS)
@pytest.mark.parametrize("reward_mode", DECISION_REWARD_MODES)
@pytest.mark.parametrize(("config", "solver"), [(SMALL, "random"), (SMALL, "greedy"), (SPARSE, "random")])
def test_wrapper_return_equals_env_return(config: dict, solver: str, reward_mode: str, user_order: str) -> None:
    actions, expected_return, expected_infos = _env_episode(config, seed=7, solver=solver)
    env = PerUserDecisionWrapper(gym.make("AIGCEdge-v0", config=config), reward_mode=reward_mode,
                                 user_order=user_order)
    obs, _ = env.reset(seed=7)
    n, n_levels = env.unwrapped.config.n_users, env.unwrapped.config.n_levels
    total, infos, steps = 0.0, [], 0
    for action in actions:
        users = decision_order(env.unwrapped.current_problem(), user_order)
        choices = [int(action[u] * n_levels + action[n + u]) for u in users] or [0]  # empty slot: one ignored step
        for k, choice in enumerate(choices):
            assert env.observation_space.contains(obs)
            one_hot = obs[-(4 * n + 1):-(3 * n + 1)]
            assert one_hot.sum() == (1 if users.size else 0)
            assert not users.size or one_hot[users[k]] == 1  # the user being decided is the order's k-th
            obs, reward, terminated, truncated, info = env.step(choice)
            total += reward
            steps += 1
            completing = k == len(choices) - 1
            assert bool(info) == completing
        infos.append(info)
    assert truncated and not terminated
    assert total == pytest.approx(expected_return, rel=1e-12, abs=1e-9)
    assert [i["cost"] for i in infos] == pytest.approx([i["cost"] for i in expected_infos])
    assert steps >= len(actions)


def test_edge_gain_order_puts_the_users_who_gain_most_from_the_edge_first() -> None:
    env = gym.make("AIGCEdge-v0")
    env.reset(seed=3)
    seen_reordered = False
    for _ in range(20):
        problem = env.unwrapped.current_problem()
        order = decision_order(problem, "edge_gain")
        np.testing.assert_array_equal(np.sort(order), np.flatnonzero(problem.has_request))
        table = option_table(problem)
        local = np.where(table.local_feasible, table.local_cost, np.inf).min(axis=-1)
        edge = np.where(table.edge_feasible_alone, table.edge_base_cost + table.congestion_weight * table.levels,
                        np.inf).min(axis=-1)
        gains = (local - edge)[order]
        assert np.all(np.diff(gains) <= 0)
        seen_reordered |= not np.array_equal(order, np.sort(order))
        env.step(env.action_space.sample())
    assert seen_reordered
    with pytest.raises(ValueError, match="user_order must be one of"):
        decision_order(problem, "random")
    with pytest.raises(ValueError, match="user_order must be one of"):
        make_env("AIGCEdge-v0", SMALL, env_wrapper="per_user", wrapper_kwargs={"user_order": "random"})


def test_slot_episodes_end_every_slot_and_continue_the_env_episode() -> None:
    plain = PerUserDecisionWrapper(gym.make("AIGCEdge-v0", config=SPARSE), reward_mode="marginal")
    sliced = make_env("AIGCEdge-v0", SPARSE, env_wrapper="per_user", wrapper_reward="marginal",
                      wrapper_kwargs={"slot_episodes": True})
    horizon = SPARSE["horizon_slots"]
    for episode_seed in (5, None):  # the second env episode starts from reset() without a seed
        obs_plain, _ = plain.reset(seed=episode_seed)
        obs_sliced, _ = sliced.reset(seed=episode_seed)
        np.testing.assert_array_equal(obs_sliced, obs_plain)
        for slot in range(horizon):
            done = False
            while not done:  # one wrapper episode: the requesting users of one slot
                obs_plain, r_plain, term_plain, trunc_plain, _ = plain.step(1)
                obs_sliced, r_sliced, terminated, truncated, info = sliced.step(1)
                assert r_sliced == r_plain and not truncated
                np.testing.assert_array_equal(obs_sliced, obs_plain)
                done = terminated
                assert bool(info) == done  # the slot ends exactly at its completing step
            assert trunc_plain == (slot == horizon - 1)
            if slot < horizon - 1:
                obs_sliced, _ = sliced.reset()  # continues with the env's next slot
                np.testing.assert_array_equal(obs_sliced, obs_plain)
    obs_a, _ = sliced.reset(seed=5)
    obs_b, _ = plain.reset(seed=5)
    np.testing.assert_array_equal(obs_a, obs_b)  # a seed always resets the env
    with pytest.raises(ValueError, match="slot_episodes needs independent slots"):
        make_env("AIGCEdge-Battery-v0", env_wrapper="per_user", wrapper_kwargs={"slot_episodes": True})
    with pytest.raises(ValueError, match="slot_episodes must be true or false"):
        PerUserDecisionWrapper(gym.make("AIGCEdge-v0", config=SMALL), slot_episodes="yes")
    with pytest.raises(ValueError, match=r"unknown wrapper_kwargs \['price_scale_per_j'\] for env_wrapper 'per_user'"):
        make_env("AIGCEdge-v0", SMALL, env_wrapper="per_user", wrapper_kwargs={"price_scale_per_j": 1.0})


@pytest.mark.parametrize("user_order", USER_ORDERS)
def test_per_user_ceiling_benchmark_takes_the_wrappers_least_marginal_cost(user_order: str) -> None:
    """benchmarks/per_user_ceiling.py's first pass is the gamma-0 optimum of the wrapper's marginal reward."""
    spec = importlib.util.spec_from_file_location("per_user_ceiling", ROOT / "benchmarks" / "per_user_ceiling.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    env = gym.make("AIGCEdge-v0", config=SMALL)
    obs, _ = env.reset(seed=1)
    policy = bench.SequentialBestResponse(user_order, passes=1)
    n_levels = env.unwrapped.config.n_levels
    for _ in range(SMALL["horizon_slots"]):
        action = policy.act(env, obs)
        choices = SlotChoices(env.unwrapped.current_problem(), user_order)
        while not choices.complete:
            costs = []
            for choice in range(2 * n_levels):
                trial = copy.deepcopy(choices)
                trial.record(choice)
                costs.append(trial.decided_cost())  # the wrapper's C_k: its reward is C_(k-1) - C_k
            user = choices.current_user
            chosen = int(np.argmin(costs))
            assert divmod(chosen, n_levels) == (action[user], action[env.unwrapped.config.n_users + user])
            choices.record(chosen)
        obs, *_ = env.step(action)


@pytest.mark.parametrize("slot_episodes", [False, True])
def test_wrapper_needs_a_reset_after_its_episode_and_rebuilds_from_its_spec(slot_episodes: bool) -> None:
    env = PerUserDecisionWrapper(gym.make("AIGCEdge-v0", config=SPARSE), reward_mode="marginal",
                                 slot_episodes=slot_episodes)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=2)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(1)
        done = terminated or truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)  # past the episode's end (before, it went on costing slots past the horizon)
    env.reset()
    env.step(0)
    rebuilt = gym.make(env.spec)
    assert isinstance(rebuilt, PerUserDecisionWrapper)
    assert (rebuilt.reward_mode, rebuilt.slot_episodes) == ("marginal", slot_episodes)
    np.testing.assert_array_equal(rebuilt.reset(seed=3)[0], env.reset(seed=3)[0])


def test_wrapper_spaces_and_bad_action() -> None:
    env = make_env("AIGCEdge-v0", SMALL, env_wrapper="per_user")
    config = env.unwrapped.config
    assert env.action_space == gym.spaces.Discrete(2 * config.n_levels)
    assert env.observation_space.shape == (9 * config.n_users + 3 + 4 * config.n_users + 1,)
    env.reset(seed=0)
    for bad_action in (2 * config.n_levels, -1, 1.5, np.nan, np.array([0, 1])):
        with pytest.raises(ValueError, match="per-user action"):
            env.step(bad_action)
    env.step(np.array([1]))  # a one-element integer array, as SB3's DQN passes it
    env.step(1.0)  # an integral float, as the env itself accepts


def test_sb3_vector_env_autoresets_on_the_same_step() -> None:
    horizon = 3
    raw = gym.make_vec("AIGCEdge-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       config={"horizon_slots": horizon})
    adapter = SB3VectorEnv(gym.make_vec("AIGCEdge-v0", num_envs=2, vectorization_mode="vector_entry_point",
                                        config={"horizon_slots": horizon}))
    raw_obs, _ = raw.reset(seed=sub_env_seeds(3, 2))
    adapter.seed(3)
    np.testing.assert_array_equal(adapter.reset(), raw_obs)
    assert not set(sub_env_seeds(0, 8)) & set(sub_env_seeds(1, 8))  # runs seeded 0 and 1 share no sub-env stream
    actions = np.zeros((2, raw.single_action_space.shape[0]), dtype=np.int64)
    for _ in range(horizon):
        raw_obs, raw_rewards, _, raw_trunc, raw_infos = raw.step(actions)
        obs, rewards, dones, infos = adapter.step(actions)
        np.testing.assert_allclose(rewards, raw_rewards, rtol=1e-6)
        assert [info["cost"] for info in infos] == pytest.approx(list(raw_infos["cost"]))
        np.testing.assert_array_equal(dones, raw_trunc)
    assert dones.all()
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"], raw_obs[i])
        assert info["TimeLimit.truncated"] is True
    assert np.all(obs[:, -1] == 0.0)  # episode progress of the new episodes' first slot
    _, rewards, dones, _ = adapter.step(actions)
    assert not dones.any() and np.all(rewards < 0)  # no dummy zero-reward autoreset step
    masks = adapter.env_method("action_masks")
    assert len(masks) == 2 and masks[0].dtype == bool


def test_sb3_vector_env_answers_per_sub_env_and_refuses_what_it_cannot_do() -> None:
    venv = gym.make_vec("AIGCEdge-v0", num_envs=3, vectorization_mode="vector_entry_point", render_mode="ansi")
    adapter = SB3VectorEnv(venv)
    adapter.reset()
    assert adapter.get_attr("observation_space", indices=[1]) == [venv.single_observation_space]
    problem = adapter.env_method("current_problem", indices=[2])[0]
    np.testing.assert_array_equal(problem.has_request, venv.unwrapped.current_problem().has_request[2])
    assert [type(text) for text in adapter.env_method("render")] == [str] * 3
    assert adapter.has_attr("action_masks") and adapter.has_attr("config") and not adapter.has_attr("bogus")
    with pytest.raises(ValueError, match="every sub-env"):
        adapter.set_attr("render_mode", None, indices=[0])
    adapter.set_options({"reset_mask": np.array([True, False, False])})
    with pytest.raises(ValueError, match="takes no options"):
        adapter.reset()
    with pytest.raises(ValueError, match="NEXT_STEP"):
        SB3VectorEnv(gym.make_vec("AIGCEdge-v0", num_envs=2, vectorization_mode="vector_entry_point",
                                  autoreset_mode="same_step"))
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec("AIGCEdge-v0", num_envs=2,
                                                                       vectorization_mode="vector_entry_point"))
    adapter = SB3VectorEnv(wrapped)  # under a vector wrapper, which passes neither get_attr nor call on
    assert adapter.reset().shape == (2, *venv.single_observation_space.shape)
    assert len(adapter.env_method("action_masks")) == 2 and adapter.get_attr("render_mode") == [None, None]


def test_hyperparameter_overrides_and_errors() -> None:
    overrides = parse_overrides(["learning_rate:3e-4", "n_steps:64", "policy_kwargs:{net_arch: [32, 32]}"])
    assert overrides == {"learning_rate": 3e-4, "n_steps": 64, "policy_kwargs": {"net_arch": [32, 32]}}
    from stable_baselines3 import PPO

    hp = load_hyperparams("ppo", "AIGCEdge-v0", {**overrides, "clip_range": "lin_0.2"})
    kwargs = algorithm_kwargs(PPO, hp)
    assert kwargs["n_steps"] == 64 and kwargs["clip_range"](0.5) == pytest.approx(0.1)
    with pytest.raises(HyperparamError, match="not of the form"):
        parse_overrides(["learning_rate=3e-4"])
    with pytest.raises(HyperparamError, match="unknown hyperparameter"):
        algorithm_kwargs(PPO, {"n_stepz": 3})
    with pytest.raises(HyperparamError, match="no hyperparameters for env"):
        load_hyperparams("ppo", "CartPole-v1")


def test_per_user_policy_is_permutation_equivariant(permute_users) -> None:
    env = make_env("AIGCEdge-v0", SMALL)
    n, n_levels = env.unwrapped.config.n_users, env.unwrapped.config.n_levels
    policy = PerUserPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden_dim=16, n_layers=2)
    obs = np.random.default_rng(0).random(env.observation_space.shape).astype(np.float32)
    perm = np.random.default_rng(1).permutation(n)
    permuted = permute_users(obs, perm)

    def probabilities(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            dist = policy.get_distribution(policy.obs_to_tensor(o)[0])
        return dist.pairs.probs[0].numpy()  # (N, 2L): each user's (offload bit, level) pairs

    base, moved = probabilities(obs), probabilities(permuted)
    assert moved.shape == (n, 2 * n_levels)
    np.testing.assert_allclose(moved, base[perm], atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_per_user_pair_categoricals_with_additive_logits_are_the_sb3_distributions(masked: bool) -> None:
    """Pair logits ``a_m + b_l`` make the offload bit and the level independent: SB3's (sb3-contrib's
    masked) distribution over the ``2N`` entries with offload logits ``a`` and level logits ``b``."""
    from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution
    from stable_baselines3.common.distributions import MultiCategoricalDistribution

    from aigc_edge_env.agents.networks import MaskablePerUserCategorical, PerUserCategorical

    n, n_levels, batch = 3, 4, 5
    dims = [2] * n + [n_levels] * n
    generator = torch.Generator().manual_seed(0)
    offload = torch.randn(batch, n, 2, generator=generator)
    levels = torch.randn(batch, n, n_levels, generator=generator)
    pair_logits = (offload[..., :, None] + levels[..., None, :]).flatten(1)  # (B, N * 2L), user by user
    entry_logits = torch.cat([offload.flatten(1), levels.flatten(1)], dim=1)  # MultiDiscrete order
    ours_cls, reference_cls = ((MaskablePerUserCategorical, MaskableMultiCategoricalDistribution) if masked
                               else (PerUserCategorical, MultiCategoricalDistribution))
    ours = ours_cls(n, n_levels).proba_distribution(pair_logits)
    reference = reference_cls(dims).proba_distribution(entry_logits)
    if masked:  # the env's masks: some levels of each user ruled out, never all
        masks = np.random.default_rng(0).random((batch, sum(dims))) < 0.7
        masks[:, 2 * n::n_levels] = True
        masks[:, : 2 * n] = True
        ours.apply_masking(masks)
        reference.apply_masking(masks)
    actions = ours.sample()
    assert actions.shape == (batch, 2 * n) and int(actions[:, :n].max()) <= 1 and int(actions[:, n:].max()) < n_levels
    torch.testing.assert_close(ours.log_prob(actions.float()), reference.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), reference.entropy())
    torch.testing.assert_close(ours.mode(), reference.mode())
    if masked:
        levels_drawn = actions[:, n:].numpy()
        level_masks = masks[:, 2 * n:].reshape(batch, n, n_levels)
        assert all(level_masks[b, u, levels_drawn[b, u]] for b in range(batch) for u in range(n))  # allowed levels


def test_per_user_pair_categoricals_tie_the_level_to_the_mode() -> None:
    """Logits favouring (device, level 0) and (edge, level 3): every draw is one of those two pairs,
    which no product of an offload and a level distribution can do."""
    from aigc_edge_env.agents.networks import MaskablePerUserCategorical

    n, n_levels = 2, 4
    logits = torch.full((1000, n, 2 * n_levels), -20.0)
    logits[..., 0] = logits[..., n_levels + 3] = 0.0
    distribution = MaskablePerUserCategorical(n, n_levels).proba_distribution(logits.flatten(1))
    actions = distribution.sample()
    bits, levels = actions[:, :n], actions[:, n:]
    assert set(zip(bits.flatten().tolist(), levels.flatten().tolist(), strict=True)) == {(0, 0), (1, 3)}
    masks = np.ones((1000, 2 * n + n * n_levels), dtype=bool)
    masks[:, 2 * n + n_levels - 1] = False  # user 0 may not take level 3: only (device, level 0) remains for it
    distribution.apply_masking(masks)
    assert set(distribution.sample()[:, [0, n]].flatten().tolist()) == {0}
    torch.testing.assert_close(distribution.pairs.probs[:, 0, 0], torch.ones(1000))


def test_capacity_categorical_never_overfills_the_edge_and_scores_its_own_draws() -> None:
    """Steps 10/20/30 at the edge, capacity 40, 4 users: every draw keeps the offloaded steps within 40;
    ``log_prob`` of a draw is the sum over users of the log-probability of its pair under the mask that the
    earlier users' pairs leave (computed by hand here), and ``mode`` is the in-order masked argmax."""
    from aigc_edge_env.agents.networks import CapacityPerUserCategorical

    n, n_levels, batch, steps = 4, 3, 2000, torch.tensor([10.0, 20.0, 30.0])
    logits = torch.randn(batch, n, 2 * n_levels, generator=torch.Generator().manual_seed(1))
    logits[..., n_levels:] += 2.0  # the edge favoured, so the capacity binds often
    distribution = CapacityPerUserCategorical(n, n_levels, (10, 20, 30), 40).proba_distribution(logits.flatten(1))
    actions = distribution.sample()
    edge_steps = (actions[:, :n] * steps[actions[:, n:]]).sum(1)
    assert float(edge_steps.max()) <= 40 and float(edge_steps.max()) == 40  # binds, never exceeded
    drawn_entropy = distribution.entropy()
    expected = torch.zeros(batch)
    used = torch.zeros(batch)
    for user in range(n):
        allowed = torch.cat([torch.ones(batch, n_levels, dtype=torch.bool), steps <= 40 - used[:, None]], dim=1)
        log_probs = torch.log_softmax(torch.where(allowed, logits[:, user], -1e8), dim=1)
        pair = actions[:, user] * n_levels + actions[:, n + user]
        expected += log_probs.gather(1, pair[:, None]).squeeze(1)
        used += actions[:, user] * steps[actions[:, n + user]]
    torch.testing.assert_close(distribution.log_prob(actions.float()), expected)
    torch.testing.assert_close(distribution.entropy(), drawn_entropy)  # the same prefixes, the same masks
    mode = distribution.mode()
    assert float((mode[:, :n] * steps[mode[:, n:]]).sum(1).max()) <= 40
    first = logits[:, 0].argmax(1)  # user 0 sees the whole capacity: its unmasked argmax
    torch.testing.assert_close(mode[:, 0] * n_levels + mode[:, n], first)


TINY = {
    "ppo": ["n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:{hidden_dim: 16, n_layers: 1}"],
    "maskable_ppo": ["n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:{hidden_dim: 16, n_layers: 1}"],
    "dqn": ["learning_starts:64", "buffer_size:2000", "policy_kwargs:{net_arch: [32, 32]}"],
}


@pytest.mark.parametrize("algo", sorted(TINY))
def test_train_save_reload_evaluate(algo: str, tmp_path) -> None:
    run_dir = train(TrainRequest(
        out=tmp_path / algo, algo=algo, env_id="AIGCEdge-v0", timesteps=256, n_envs=2, env_config=SMALL,
        hyperparams=parse_overrides(TINY[algo]), eval_every=128, eval_episodes=1, checkpoint_every=128,
        progress_bar=False, command=["pytest"],
    ))
    record = read_record(run_dir)
    assert record["algo"] == algo and record["env_config"]["horizon_slots"] == SMALL["horizon_slots"]
    assert record["sessions"][0]["total_timesteps"] >= 256 and record["sessions"][0]["peak_rss_mib"] > 0
    for name in ("model.zip", "model.vecnormalize.pkl", "best_model.zip", "checkpoints/model_128_steps.zip"):
        assert (run_dir / name).exists(), name

    policy = load_model_policy(run_dir, "AIGCEdge-v0", SMALL)
    assert policy.normalizer is not None and not policy.normalizer.training
    if algo == "dqn":  # the policy asks the users in the order the run was trained with (dqn.yml)
        assert policy.user_order == record["hyperparams"]["wrapper_kwargs"]["user_order"] == "edge_gain"
    result = evaluate_policy(algo, lambda: make_env("AIGCEdge-v0", SMALL), policy, [1, 2])
    assert set(EPISODE_METRICS) <= set(result.episodes) and np.all(np.isfinite(result.episodes["reward"]))

    (events,) = {p.parent for p in (run_dir / "tb").rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    scalars = set(accumulator.Tags()["scalars"])
    for metric in COMPONENTS + ("reward",):
        assert f"episode/{metric}" in scalars and f"eval/{metric}" in scalars
    assert all(np.isfinite(e.value) for e in accumulator.Scalars("episode/cost"))


def test_capacity_categorical_lets_the_users_without_an_affordable_device_level_decide_first() -> None:
    """User 1's battery affords no device level, so it decides before user 0 and always takes the edge, though
    user 0 prefers the whole capacity; user 0 then keeps the capacity left and its affordable device levels.
    ``log_prob`` is the product of the conditionals in that order (by hand)."""
    from aigc_edge_env.agents.networks import CapacityPerUserCategorical

    steps = torch.tensor([10.0, 20.0, 30.0])
    logits = torch.zeros(1, 2, 6)
    logits[0, 0, 5] = 5.0  # user 0: edge at 30 steps
    logits[0, 1, 3] = 1.0  # user 1: edge at 10 steps, mildly
    affordable = torch.tensor([[25.0, 0.0]])  # user 0 affords 10 and 20 steps on its device, user 1 none
    distribution = CapacityPerUserCategorical(2, 3, (10, 20, 30), 30).proba_distribution(logits.flatten(1), affordable)
    mode = distribution.mode()
    assert mode.tolist() == [[0, 1, 0, 0]]  # user 1 at the edge (10 steps); user 0: a tie, the first
    by_hand = torch.log_softmax(torch.tensor([-1e8, -1e8, -1e8, 1.0, 0.0, 0.0]), 0)[3]
    by_hand = by_hand + torch.log_softmax(torch.tensor([0.0, 0.0, -1e8, 0.0, 0.0, -1e8]), 0)[0]
    torch.testing.assert_close(distribution.log_prob(mode.float()), by_hand.reshape(1))
    for _ in range(20):
        action = distribution.sample()
        assert int(action[0, 1]) == 1 and float((action[0, :2] * steps[action[0, 2:]]).sum()) <= 30


def test_capacity_policy_takes_the_envs_limits_and_never_drops_for_them(tmp_path) -> None:
    """CapacityPerUserPolicy: training fills its edge steps, capacity and energy scales from the env's config
    (a user may not set them; the observation may not be normalised), the saved model keeps them, and its
    actions, random or greedy, drop no request for the edge's capacity or a battery, even at a capacity of 25
    steps for 5 users and batteries of 2 J that harvest 0-1 J per slot."""
    from aigc_edge_env.model import DropReason

    config = {"horizon_slots": 8, "n_users": 5, "edge_step_capacity": 25, "task_probability": 1.0,
              "battery_enabled": True, "battery_capacity_j": 2.0, "battery_initial_j_range": [0.0, 2.0],
              "harvest_j_range": [0.0, 1.0]}
    raw = "normalize:{norm_obs: false, norm_reward: true}"
    hyperparams = parse_overrides(TINY["ppo"] + ["policy:CapacityPerUserPolicy", raw])
    run_dir = train(TrainRequest(out=tmp_path / "run", algo="ppo", env_id="AIGCEdge-v0", timesteps=128, n_envs=2,
                                 env_config=config, hyperparams=hyperparams, eval_every=0, checkpoint_every=0,
                                 progress_bar=False, command=["pytest"]))
    policy = load_model_policy(run_dir, "AIGCEdge-v0", config)
    assert policy.model.policy.action_dist.capacity == 25.0 and policy.model.policy._battery_capacity_j == 2.0
    env = make_env("AIGCEdge-v0", config)
    local_drops = 0
    for deterministic in (True, False):
        observation, _ = env.reset(seed=3)
        for _ in range(8):
            problem = env.unwrapped.current_problem()
            affords_a_level = problem.battery_j >= problem.local_step_energy_j * problem.config.min_steps
            action, _ = policy.model.predict(observation, deterministic=deterministic)
            observation, *_ = env.step(action)
            reasons = env.unwrapped.last_evaluation.drop_reason
            assert not np.any(reasons == DropReason.EDGE_CAPACITY)
            local_drops += int(np.sum((reasons == DropReason.BATTERY) & (action[:5] == 0) & affords_a_level))
    assert local_drops == 0  # the device levels a battery cannot afford are never chosen while one is
    for bad, match in ((["policy_kwargs:{edge_step_capacity: 99}", raw], "come from the env's config"),
                       ([], "reads the raw observation")):
        with pytest.raises(Exception, match=match):
            train(TrainRequest(out=tmp_path / "bad", algo="ppo", env_id="AIGCEdge-v0", timesteps=128, n_envs=2,
                               env_config=config,
                               hyperparams=parse_overrides([*TINY["ppo"], "policy:CapacityPerUserPolicy", *bad]),
                               eval_every=0, checkpoint_every=0, progress_bar=False, command=["pytest"]))


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_resume_continues_the_run(algo: str, tmp_path) -> None:
    request = TrainRequest(out=tmp_path / "run", algo=algo, env_id="AIGCEdge-v0", timesteps=128, n_envs=2,
                           env_config=SMALL, hyperparams=parse_overrides(TINY[algo]), eval_every=0,
                           checkpoint_every=0, progress_bar=False)
    train(request)
    if algo == "dqn":
        assert (tmp_path / "run" / "model.replay_buffer.pkl").exists()
    train(TrainRequest(out=tmp_path / "run", timesteps=128, resume=True, eval_every=0, checkpoint_every=0,
                       progress_bar=False))
    sessions = read_record(tmp_path / "run")["sessions"]
    assert len(sessions) == 2 and sessions[1]["total_timesteps"] >= 256
