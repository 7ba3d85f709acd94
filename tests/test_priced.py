"""The priced wrapper (aigc_edge_env.priced) and agents trained through it.

* it passes Gymnasium's and stable-baselines3's env checkers;
* a zero action is the base hand rule, slot for slot (decaying price and lyapunov bases);
* the training options: a relative reward that is exactly 0 for a zero action and sums to the
  episode return minus the base rule's, and a pool of episode seeds (common random numbers);
* prices are the base's plus the scaled action, clipped at 0, and reach the solver;
* the hindsight bound is at most the episode cost of a learned-price policy (a tiny trained run,
  reloaded as evaluate.py does);
* bad wrapper arguments, actions and hyperparameter files give errors naming what is wrong.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from aigc_edge_env import AIGCEdgeEnv
from aigc_edge_env.agents.environments import make_env
from aigc_edge_env.agents.hyperparameters import HyperparamError, load_hyperparams, parse_overrides
from aigc_edge_env.agents.networks import PerUserBoxPolicy
from aigc_edge_env.agents.policies import load_model_policy
from aigc_edge_env.agents.training import TrainingError, TrainRequest, train
from aigc_edge_env.baselines import hindsight_bound
from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.policies.registry import make_policy
from aigc_edge_env.priced import BASE_POLICY, PricedActionWrapper, ResidualPricePolicy, policy_kwargs

SHORT = {"horizon_slots": 12}
#: Scarce batteries and a slow edge on a short episode (tests/test_hindsight.py's): the battery binds.
SMALL = {"n_users": 3, "horizon_slots": 8, "battery_enabled": True, "battery_initial_j_range": (5.0, 20.0),
         "harvest_j_range": (0.0, 2.0), "edge_steps_per_s": 6.0, "device_clock_ghz_range": (1.5, 3.0)}


class ConstantAction:
    """A policy of the priced wrapper: the same action every slot."""

    def __init__(self, value: float) -> None:
        self.value = value

    def reset(self, seed: int | None) -> None:
        return None

    def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
        return np.full(env.action_space.shape, self.value, dtype=np.float32)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_wrapper_passes_the_gymnasium_and_sb3_checkers() -> None:
    env = make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="priced")
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (10,), dtype=np.float32)
    assert env.observation_space == env.unwrapped.observation_space
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="priced"))
    sb3_check_env(make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="priced",
                           wrapper_kwargs={"relative_reward": True, "episode_seeds": 4}))


@pytest.mark.parametrize("base", [BASE_POLICY, "lyapunov", "exact+price0.3"])
def test_zero_action_is_the_base_rule(base: str) -> None:
    wrapped = PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT), base_policy=base)
    for seed in (0, 5):
        played = run_episode(wrapped, ConstantAction(0.0), seed)
        rule = run_episode(gym.make("AIGCEdge-Battery-v0", config=SHORT), make_policy(base), seed)
        assert played.per_slot["cost"] == rule.per_slot["cost"]  # bit for bit
        assert played.metrics == {**rule.metrics, "decision_s": played.metrics["decision_s"]}


def test_relative_reward_is_the_env_reward_minus_the_base_rules_in_the_same_slot() -> None:
    rule = run_episode(gym.make("AIGCEdge-Battery-v0", config=SHORT), make_policy(BASE_POLICY), 4)
    for value in (0.0, 0.6):
        env = PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT), relative_reward=True)
        plain = run_episode(PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT)),
                            ConstantAction(value), 4)
        env.reset(seed=4)
        rewards, env_rewards = [], []
        for _ in range(SHORT["horizon_slots"]):
            _, reward, _, _, info = env.step(np.full(10, value, dtype=np.float32))
            rewards.append(reward)
            env_rewards.append(info["env_reward"])
        assert env_rewards == [-c for c in plain.per_slot["cost"]]  # info keeps the env's reward (reward_scale 1)
        if value == 0.0:
            assert rewards == [0.0] * SHORT["horizon_slots"]  # the base rule itself: exactly 0 in every slot
        else:
            assert sum(rewards) == pytest.approx(plain.metrics["reward"] - rule.metrics["reward"], rel=1e-9)
            assert sum(rewards) != 0.0
    # without a seed the episode still gets one, so the base rule replays it: zero actions earn 0
    env.reset()
    assert all(env.step(np.zeros(10, dtype=np.float32))[1] == 0.0 for _ in range(SHORT["horizon_slots"]))


def test_episode_seeds_replay_a_pool_of_episodes() -> None:
    def first_observations(pool: int, seed: int, resets: int) -> list[np.ndarray]:
        env = PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT), episode_seeds=pool)
        return [env.reset(seed=seed)[0]] + [env.reset()[0] for _ in range(resets - 1)]

    plain = [gym.make("AIGCEdge-Battery-v0", config=SHORT).reset(seed=k)[0] for k in range(3)]
    drawn = first_observations(3, seed=7, resets=12)
    matches = [next(k for k in range(3) if np.array_equal(obs, plain[k])) for obs in drawn]  # each a pool episode
    assert set(matches) == {0, 1, 2}
    assert all(np.array_equal(a, b) for a, b in zip(drawn, first_observations(3, seed=7, resets=12), strict=True))
    assert all(np.array_equal(obs, plain[0]) for obs in first_observations(1, seed=5, resets=3))


def test_prices_are_the_base_plus_the_scaled_action_clipped_at_zero() -> None:
    env = PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT), price_scale_per_j=0.5)
    observation, _ = env.reset(seed=3)
    action = np.linspace(-1.0, 1.0, 10, dtype=np.float32)
    prices = []
    for t in range(SHORT["horizon_slots"]):
        base = 1.1 * (1.0 - float(observation[-1]))
        assert observation[-1] == pytest.approx(t / SHORT["horizon_slots"])
        observation, _, _, _, info = env.step(action)
        np.testing.assert_allclose(info["energy_price_per_j"], np.maximum(base + 0.5 * action.astype(np.float64), 0.0),
                                   rtol=1e-12)
        prices.append(info["energy_price_per_j"])
    assert min(min(p) for p in prices) == 0.0  # clipped late in the episode
    # the prices reach the solver: all-high prices keep more energy in the batteries than all-low ones
    energy = {v: run_episode(PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT)), ConstantAction(v),
                             3).metrics["energy_j"] for v in (-1.0, 1.0)}
    assert energy[1.0] < energy[-1.0]


@pytest.mark.slow
def test_hindsight_bound_is_below_a_learned_price_policy(tmp_path) -> None:
    run_dir = train(TrainRequest(
        out=tmp_path / "priced", algo="ppo", env_id="AIGCEdge-Battery-v0", timesteps=64, n_envs=2, env_config=SMALL,
        wrapper="priced", hyperparams=parse_overrides(["n_steps:16", "batch_size:32", "n_epochs:2"]),
        eval_every=32, eval_episodes=1, checkpoint_every=0, progress_bar=False,
    ))
    policy = load_model_policy(run_dir, "AIGCEdge-Battery-v0", SMALL)
    assert policy.priced is not None

    class Model:  # the trained model acting directly in its training wrapper
        def reset(self, seed: int | None) -> None:
            return None

        def act(self, env: gym.Env, observation: np.ndarray) -> np.ndarray:
            return policy.model.predict(policy.normalizer.normalize_obs(observation), deterministic=True)[0]

    for seed in (0, 1):
        result = hindsight_bound("AIGCEdge-Battery-v0", seed, SMALL)
        episode = run_episode(AIGCEdgeEnv(config=SMALL, env_id="AIGCEdge-Battery-v0"), policy, seed)
        assert result.lower_bound <= episode.metrics["cost"] + 1e-9
        # the engine's policy plays the same decisions as the model in its training wrapper
        wrapped = make_env("AIGCEdge-Battery-v0", SMALL, env_wrapper="priced",
                           wrapper_kwargs=policy_kwargs(load_hyperparams("ppo", "AIGCEdge-Battery-v0",
                                                                         wrapper="priced")["wrapper_kwargs"]))
        assert run_episode(wrapped, Model(), seed).per_slot["cost"] == episode.per_slot["cost"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"base_policy": "exact"}, "base_policy must name a priced policy"),
    ({"base_policy": "nonsense"}, "unknown policy 'nonsense'"),
    ({"price_scale_per_j": -0.1}, "price_scale_per_j must be a finite number >= 0"),
    ({"price_scale_per_j": float("nan")}, "price_scale_per_j must be a finite number >= 0"),
    ({"price_scale_per_j": "big"}, "price_scale_per_j must be a finite number >= 0"),
    ({"relative_reward": "yes"}, "relative_reward must be true or false"),
    ({"episode_seeds": 0}, "episode_seeds must be None or an integer >= 1"),
    ({"episode_seeds": 2.5}, "episode_seeds must be None or an integer >= 1"),
])
def test_bad_wrapper_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT), **kwargs)


def test_numpy_numbers_are_good_wrapper_arguments() -> None:
    wrapper = PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT), price_scale_per_j=np.float32(0.5),
                                  episode_seeds=np.int64(3))
    assert wrapper.policy.price_scale_per_j == 0.5 and wrapper.episode_seeds == 3


def test_bad_actions_and_wrapper_settings_are_named(tmp_path) -> None:
    env = make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="priced")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(10, dtype=np.float32))
    env.reset(seed=0)
    for bad in (np.zeros(9), np.full(10, 1.5), np.full(10, np.nan), "abc"):
        with pytest.raises(ValueError, match="price action"):
            env.step(bad)
    with pytest.raises(TypeError, match="needs an AIGC edge env"):
        PricedActionWrapper(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"unknown wrapper_kwargs \['scale'\]"):
        make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="priced", wrapper_kwargs={"scale": 1.0})
    with pytest.raises(ValueError, match=r"unknown wrapper_kwargs \['price_scale_per_j'\] for env_wrapper 'none'"):
        make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="none", wrapper_kwargs={"price_scale_per_j": 1.0})
    with pytest.raises(RuntimeError, match="price_action or set_action"):
        ResidualPricePolicy().act(env, env.reset(seed=0)[0])
    with pytest.raises(HyperparamError, match="no hyperparameters for dqn with wrapper 'priced'"):
        load_hyperparams("dqn", "AIGCEdge-Battery-v0", wrapper="priced")
    with pytest.raises(HyperparamError, match="must keep env_wrapper: priced"):
        load_hyperparams("ppo", "AIGCEdge-Battery-v0", {"env_wrapper": "none"}, wrapper="priced")
    with pytest.raises(TrainingError, match="unknown wrapper_kwargs"):
        train(TrainRequest(out=tmp_path / "run", algo="ppo", env_id="AIGCEdge-Battery-v0", wrapper="priced",
                           hyperparams={"wrapper_kwargs": {"scale": 1.0}}))
    assert not (tmp_path / "run").exists()


def test_per_user_box_policy_is_permutation_equivariant_and_checks_its_space(permute_users) -> None:
    env = make_env("AIGCEdge-Battery-v0", SHORT, env_wrapper="priced")
    n = env.unwrapped.config.n_users
    policy = PerUserBoxPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden_dim=16, n_layers=2)
    obs = np.random.default_rng(0).random(env.observation_space.shape).astype(np.float32)
    perm = np.random.default_rng(1).permutation(n)
    permuted = permute_users(obs, perm)

    def means(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.get_distribution(policy.obs_to_tensor(o)[0]).distribution.mean[0].numpy()

    np.testing.assert_allclose(means(permuted), means(obs)[perm], atol=1e-6)
    assert np.all(np.abs(means(obs)) < 0.1)  # starts near the base rule (zero action)
    with pytest.raises(ValueError, match=r"PerUserBoxPolicy needs a Box action, one entry per user"):
        PerUserBoxPolicy(env.observation_space, env.unwrapped.action_space, lambda _: 1e-3)
    with pytest.raises(ValueError, match=r"PerUserBoxPolicy needs a Box action of shape \(10,\)"):
        PerUserBoxPolicy(env.observation_space, gym.spaces.Box(-1.0, 1.0, (n + 1,)), lambda _: 1e-3)


def test_resets_without_a_seed_reseed_the_base_policy_from_the_last_seed() -> None:
    """SB3 resets with ``seed=None`` after the first episode: the base policy's generator must
    then follow from the last seed given, not from the OS, so a training run is reproducible."""
    def states(seed: int | None) -> list[dict]:
        env = PricedActionWrapper(gym.make("AIGCEdge-Battery-v0", config=SHORT))
        env.reset(seed=seed)
        drawn = []
        for _ in range(2):
            env.reset()
            drawn.append(env.policy.base.rng.bit_generator.state)
        return drawn

    assert states(3) == states(3)
    assert states(3) != states(4)
