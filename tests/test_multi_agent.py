"""The PettingZoo view (aigc_edge_env.multi_agent): PettingZoo's API and seed tests, and the single env's costs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aigc_edge_env import SCENARIOS, AIGCEdgeEnv, evaluate_decision
from aigc_edge_env.spaces import split_observation

pettingzoo_test = pytest.importorskip("pettingzoo.test")
multi_agent = pytest.importorskip("aigc_edge_env.multi_agent")
parallel_env = multi_agent.parallel_env

SMALL = {"n_users": 5, "horizon_slots": 12}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("reward", multi_agent.REWARD_MODES)
def test_pettingzoo_parallel_api_test(scenario: str, reward: str) -> None:
    pettingzoo_test.parallel_api_test(parallel_env(scenario, render_mode="ansi", reward=reward), num_cycles=1000)


def test_pettingzoo_parallel_api_test_of_the_mean_field_view() -> None:
    pettingzoo_test.parallel_api_test(parallel_env("AIGCEdge-v0", observation="mean_field"), num_cycles=1000)


def test_the_mean_field_observation_is_own_features_then_every_users_mean_then_the_globals() -> None:
    single = AIGCEdgeEnv(config=SMALL)
    env = parallel_env(config=SMALL, observation="mean_field")
    observation, _ = single.reset(seed=3)
    obs, _ = env.reset(seed=3)
    users, globals_ = split_observation(observation, 5)
    mean = users.sum(axis=0) / 5  # by hand: every user's 9 features, averaged
    for i, agent in enumerate(env.possible_agents):
        assert env.observation_space(agent).shape == (21,) and obs[agent] in env.observation_space(agent)
        np.testing.assert_allclose(obs[agent], np.concatenate([users[i], mean, globals_]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"observation must be one of \('own', 'mean_field'\), got 'all'"):
        parallel_env(observation="all")


@pytest.mark.parametrize("reward", multi_agent.REWARD_MODES)
def test_pettingzoo_parallel_seed_test(reward: str) -> None:
    pettingzoo_test.parallel_seed_test(lambda: parallel_env("AIGCEdge-Battery-v0", reward=reward))


def _agent_actions(env, joint: np.ndarray) -> dict[str, np.ndarray]:
    n = env.config.n_users
    return {agent: np.array([joint[i], joint[n + i]]) for i, agent in enumerate(env.possible_agents)}


@pytest.mark.parametrize("scenario", ["AIGCEdge-v0", "AIGCEdge-Battery-v0"])
def test_same_seed_and_decisions_give_the_single_envs_costs(scenario: str) -> None:
    single = AIGCEdgeEnv(config=SMALL, env_id=scenario)
    team = parallel_env(scenario, config=SMALL)
    own = parallel_env(scenario, config=SMALL, reward="own")
    observation, _ = single.reset(seed=7)
    team_obs, _ = team.reset(seed=7)
    own.reset(seed=7)
    rng = np.random.default_rng(0)
    n = single.config.n_users
    for _ in range(SMALL["horizon_slots"]):
        users, globals_ = split_observation(observation, n)
        for i, agent in enumerate(team.possible_agents):
            np.testing.assert_array_equal(team_obs[agent], np.concatenate([users[i], globals_]))
            assert team_obs[agent] in team.observation_space(agent)
        np.testing.assert_array_equal(team.state(), observation)
        joint = rng.integers(0, [2] * n + [single.config.n_levels] * n)
        per_user_cost = evaluate_decision(single.current_problem(), single.action_to_decision(joint)).cost
        observation, reward, _, truncated, info = single.step(joint)
        team_obs, team_rewards, terminations, truncations, infos = team.step(_agent_actions(team, joint))
        _, own_rewards, _, _, _ = own.step(_agent_actions(own, joint))
        assert set(team_rewards.values()) == {reward}
        assert not any(terminations.values()) and set(truncations.values()) == {truncated}
        for i, agent in enumerate(team.possible_agents):
            assert infos[agent]["slot"] == info
            assert infos[agent]["cost"] == pytest.approx(per_user_cost[i], abs=1e-9)
            assert own_rewards[agent] == pytest.approx(-single.config.reward_scale * per_user_cost[i], abs=1e-9)
        # the own costs split the slot cost exactly (each C_n carries its own edge compute time)
        assert sum(own_rewards.values()) == pytest.approx(reward, rel=1e-12, abs=1e-9)
    assert truncated and team.agents == [] and own.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        team.step({})


def test_idle_agents_actions_are_ignored_and_may_be_left_out() -> None:
    envs = [parallel_env(config=SMALL) for _ in range(3)]
    observations = [env.reset(seed=3)[0] for env in envs]
    requesting = {agent: obs[0] > 0.5 for agent, obs in observations[0].items()}  # feature 0: request flag
    assert not all(requesting.values()), "seed 3 should start with an idle user"
    base = {agent: np.array([0, 2]) for agent in envs[0].possible_agents}
    other = {agent: (a if requesting[agent] else np.array([1, 7])) for agent, a in base.items()}
    fewer = {agent: a for agent, a in base.items() if requesting[agent]}
    results = [env.step(actions) for env, actions in zip(envs, (base, other, fewer), strict=True)]
    for result in results[1:]:
        assert result[1] == results[0][1]
        for agent in base:
            np.testing.assert_array_equal(result[0][agent], results[0][0][agent])


def test_bad_actions_raise_value_errors() -> None:
    env = parallel_env(config=SMALL)
    observations, infos = env.reset(seed=3)
    assert infos == {agent: {} for agent in env.possible_agents}
    actions = {agent: np.array([0, 1]) for agent in env.possible_agents}
    requesting = next(agent for agent, obs in observations.items() if obs[0] > 0.5)
    with pytest.raises(ValueError, match="not in play"):
        env.step({**actions, "user_99": np.array([0, 0])})
    with pytest.raises(ValueError, match=f"no action for agents with a request: .*{requesting}"):
        env.step({agent: a for agent, a in actions.items() if agent != requesting})
    with pytest.raises(ValueError, match="shape"):
        env.step({**actions, requesting: np.array([0, 1, 2])})
    with pytest.raises(ValueError, match="integers"):
        env.step({**actions, requesting: np.array([0.5, 1.0])})
    n_levels = env.config.n_levels
    for bad in ([2, 1], [0, n_levels], [-1, 0]):  # named against the agent, not the joint action
        message = (f"action of {requesting} = {bad} is out of range: offload 0 or 1, "
                   f"level an index in [0, {n_levels - 1}]")
        with pytest.raises(ValueError, match=re.escape(message)):
            env.step({**actions, requesting: np.array(bad)})
    idle_agents = [agent for agent, obs in observations.items() if obs[0] <= 0.5]
    assert idle_agents, "seed 3 should start with an idle user"
    idle = idle_agents[0]
    for bad in ("not an action", [7, 99], None):  # ignored, but checked as the single env checks every entry
        with pytest.raises(ValueError, match=f"action of {idle}"):
            env.step({**actions, idle: bad})
    with pytest.raises(ValueError, match="reward must be one of"):
        parallel_env(reward="selfish")
    env.step(actions)  # the env is still usable after the rejected actions


def test_render_is_the_single_envs_text() -> None:
    env = parallel_env(config=SMALL, render_mode="ansi")
    single = AIGCEdgeEnv(config=SMALL, render_mode="ansi")
    env.reset(seed=1)
    single.reset(seed=1)
    assert env.render() == single.render() and "slot 0/12" in env.render()
    env.step({agent: np.array([1, 3]) for agent in env.possible_agents})
    single.step(np.array([1] * 5 + [3] * 5))
    assert env.render() == single.render() and "last slot: cost" in env.render()
    assert parallel_env(config=SMALL).render() is None
