"""The numpy-batched vector env: autoreset, rewards against the cost model, seeding, masks, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import aigc_edge_env
from aigc_edge_env import AIGCEdgeVectorEnv, evaluate_decision, spaces as env_spaces

ENV_IDS = tuple(aigc_edge_env.SCENARIOS)


def make(env_id="AIGCEdge-v0", num_envs=4, render_mode=None, autoreset_mode="next_step", **config):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", config=config,
                        render_mode=render_mode, autoreset_mode=autoreset_mode)


def random_actions(envs, rng):
    nvec = envs.single_action_space.nvec
    return rng.integers(0, nvec, size=(envs.num_envs, nvec.size))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rewards_equal_minus_cost_of_current_problem(env_id):
    """Each slot's reward is -reward_scale * cost of evaluate_decision on current_problem()."""
    envs = make(env_id, num_envs=6, horizon_slots=4, reward_scale=0.5)
    c = envs.unwrapped.config
    rng = np.random.default_rng(0)
    envs.reset(seed=1)
    resetting = np.zeros(6, dtype=bool)
    for _ in range(10):  # crosses two autoresets
        problem = envs.unwrapped.current_problem()
        assert problem.has_request.shape == (6, c.n_users)
        actions = random_actions(envs, rng)
        decision = env_spaces.actions_to_decision(actions, c)
        batched = evaluate_decision(problem, decision)
        singles = [evaluate_decision(problem.select(i), env_spaces.actions_to_decision(actions[i], c))
                   for i in range(6)]  # one sub-env at a time, as a single slot
        obs, rewards, terms, truncs, infos = envs.step(actions)
        for i, single in enumerate(singles):
            expected = 0.0 if resetting[i] else -0.5 * float(single.total_cost)
            assert rewards[i] == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert float(batched.total_cost[i]) == pytest.approx(float(single.total_cost), rel=1e-12)
            if not resetting[i]:
                assert infos["cost"][i] == pytest.approx(float(single.total_cost), rel=1e-12)
        assert envs.observation_space.contains(obs)
        resetting = truncs


def test_problems_handed_out_are_not_changed_by_later_steps():
    """A SlotProblem from current_problem() (e.g. kept by a solver or a replay buffer) keeps its
    values after further steps, autoresets included."""
    from aigc_edge_env.model import PROBLEM_ARRAY_FIELDS

    envs = make("AIGCEdge-Battery-v0", num_envs=3, horizon_slots=2)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(5):
        problem = envs.unwrapped.current_problem()
        kept.append((problem, {name: getattr(problem, name).copy() for name in PROBLEM_ARRAY_FIELDS}))
        envs.step(random_actions(envs, rng))
    for problem, snapshot in kept:
        for name, values in snapshot.items():
            np.testing.assert_array_equal(getattr(problem, name), values, err_msg=name)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_problems_handed_out_hold_the_present_slots_only(env_id):
    """The vector env draws one slot per step, and what a policy gets of it (current_problem(), call's per
    sub-env problems) holds that slot alone: no array's memory is larger than the array."""
    from aigc_edge_env.model import PROBLEM_ARRAY_FIELDS

    envs = make(env_id, num_envs=3, horizon_slots=2)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4):
        problems = (envs.unwrapped.current_problem(), *envs.unwrapped.call("current_problem"))
        for problem in problems:
            for name in (*PROBLEM_ARRAY_FIELDS, "energy_price_per_j"):
                array = getattr(problem, name)
                owner = array
                while isinstance(owner.base, np.ndarray):
                    owner = owner.base
                assert owner.size <= envs.num_envs * envs.unwrapped.config.n_users, name
        envs.step(random_actions(envs, rng))


def test_next_step_autoreset():
    """After a truncation, the next step ignores the action, returns the new episode's first
    observation, reward 0, no termination/truncation and masked-out infos."""
    envs = make(num_envs=3, horizon_slots=3)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    np.testing.assert_array_equal(obs[:, -1], 0.0)
    rng = np.random.default_rng(1)
    for t in range(1, 4):
        obs, rewards, terms, truncs, infos = envs.step(random_actions(envs, rng))
        assert not terms.any()
        assert truncs.tolist() == [t == 3] * 3
        np.testing.assert_allclose(obs[:, -1], t / 3, rtol=1e-6)  # episode progress
        assert np.all(rewards != 0.0) and infos["_cost"].all()
    # the autoreset step
    obs, rewards, terms, truncs, infos = envs.step(random_actions(envs, rng))
    np.testing.assert_array_equal(rewards, 0.0)
    assert not terms.any() and not truncs.any()
    np.testing.assert_array_equal(obs[:, -1], 0.0)  # first observation of the new episodes
    assert not infos["_cost"].any() and np.all(infos["cost"] == 0.0)
    # and the new episode runs its full horizon again
    flags = [envs.step(random_actions(envs, rng))[3].tolist() for _ in range(3)]
    assert flags == [[False] * 3, [False] * 3, [True] * 3]


def test_autoreset_draws_a_new_system():
    """The autoreset step starts a new episode: new distances/clocks, fresh batteries."""
    envs = make("AIGCEdge-Battery-v0", num_envs=2, horizon_slots=2)
    envs.reset(seed=0)
    before = envs.unwrapped.current_problem().device_clock_hz.copy()
    for _ in range(3):
        envs.step(random_actions(envs, np.random.default_rng(0)))
    after = envs.unwrapped.current_problem().device_clock_hz
    assert not np.array_equal(before, after)
    low, high = envs.unwrapped.config.battery_initial_j_range
    battery = envs.unwrapped.current_problem().battery_j
    assert np.all((battery >= low) & (battery <= high))


def test_sub_envs_at_different_phases_reset_independently():
    """Only the truncated sub-envs restart; the others keep their slot counter and clocks."""
    envs = AIGCEdgeVectorEnv(num_envs=2, config={"horizon_slots": 3})
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    envs.step(random_actions(envs, rng))
    envs.reset(options={"reset_mask": np.array([False, True])})  # sub-env 1 one slot behind
    envs.step(random_actions(envs, rng))
    clock1 = envs.current_problem().device_clock_hz[1].copy()
    obs, rewards, _, truncs, infos = envs.step(random_actions(envs, rng))  # sub-env 0 truncates
    assert truncs.tolist() == [True, False]
    obs, rewards, _, truncs, infos = envs.step(random_actions(envs, rng))  # 0 restarts, 1 truncates
    assert rewards[0] == 0.0 and rewards[1] != 0.0
    assert truncs.tolist() == [False, True]
    assert infos["_cost"].tolist() == [False, True]
    np.testing.assert_array_equal(envs.current_problem().device_clock_hz[1], clock1)


def test_same_step_infos_follow_gymnasium():
    """``final_obs``/``final_info`` hold the ending sub-envs' last observation and step info, masked to them."""
    envs = make(num_envs=3, autoreset_mode="same_step", n_users=2, horizon_slots=2)
    envs.reset(seed=0)
    envs.step(np.zeros((3, 4), dtype=np.int64))
    envs.reset(options={"reset_mask": np.array([False, True, False])})  # sub-env 1 one slot behind
    last_obs = envs.unwrapped.current_problem()
    observation, _, _, truncations, infos = envs.step(np.zeros((3, 4), dtype=np.int64))
    assert truncations.tolist() == [True, False, True]
    assert infos["_final_obs"].tolist() == [True, False, True] and infos["final_obs"][1] is None
    assert infos["final_obs"][0].shape == observation[0].shape and infos["final_obs"][0][-1] == 1.0  # slot 2 of 2
    assert observation[0][-1] == 0.0  # the new episode's first slot
    assert infos["final_info"]["_cost"].tolist() == [True, False, True]
    assert infos["_cost"].tolist() == [False, True, False]
    assert last_obs.has_request.shape == (3, 2)


def test_render_after_a_restart_shows_no_last_slot_and_problems_are_read_only():
    envs = make(num_envs=2, n_users=2, horizon_slots=1, render_mode="ansi")
    envs.reset(seed=np.arange(2))  # numpy integers are seeds too
    envs.step(np.zeros((2, 4), dtype=np.int64))
    assert all("last slot" in text for text in envs.render())
    envs.step(np.zeros((2, 4), dtype=np.int64))  # NEXT_STEP: both restart
    assert not any("last slot" in text for text in envs.render())
    with pytest.raises(ValueError, match="read-only"):
        envs.unwrapped.current_problem().has_request[0, 0] = True
    envs.close()
    for read in (envs.unwrapped.current_problem, envs.unwrapped.action_masks):  # no stale slot after close()
        with pytest.raises(RuntimeError, match="after close"):
            read()
    assert envs.render() is None
    with pytest.raises(RuntimeError, match="the first after close"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    envs.reset(seed=0)  # a reset after close() makes the env usable again, like the single env
    envs.step(np.zeros((2, 4), dtype=np.int64))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_batch_trajectory(env_id):
    traces = []
    for seed in (7, 7, 8):
        envs = make(env_id, num_envs=3, horizon_slots=5)
        rng = np.random.default_rng(0)
        obs, _ = envs.reset(seed=seed)
        trace = [obs]
        for _ in range(8):
            obs, rewards, _, truncs, infos = envs.step(random_actions(envs, rng))
            trace += [obs, rewards, truncs, infos["cost"], infos["n_dropped"]]
        traces.append(trace)
    assert all(np.array_equal(a, b) for a, b in zip(traces[0], traces[1], strict=True))
    assert not np.array_equal(traces[0][0], traces[2][0])


def test_one_sub_env_replays_the_single_env_within_an_episode():
    """With one sub-env, the batched env consumes the generator like the single env does, so
    the first episode is identical (an implementation property that shows both run the same
    dynamics and cost code)."""
    single = gym.make("AIGCEdge-Battery-v0", config={"n_users": 5})
    envs = make("AIGCEdge-Battery-v0", num_envs=1, n_users=5)
    obs_s, _ = single.reset(seed=3)
    obs_v, _ = envs.reset(seed=3)
    np.testing.assert_array_equal(obs_v[0], obs_s)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.integers(0, single.action_space.nvec)
        obs_s, r_s, _, _, info_s = single.step(action)
        obs_v, r_v, _, _, info_v = envs.step(action[None])
        np.testing.assert_array_equal(obs_v[0], obs_s)
        # The single env sums tabulated option rows, the vector env rows of the decision:
        # the same formulas, summed in another order, so equal up to rounding.
        assert r_v[0] == pytest.approx(r_s, rel=1e-12)
        assert {k: v[0] for k, v in info_v.items() if not k.startswith("_")} == pytest.approx(info_s, rel=1e-12)


def test_infos_have_one_entry_per_sub_env_with_masks():
    envs = make(num_envs=5)
    envs.reset(seed=0)
    _, rewards, _, _, infos = envs.step(envs.action_space.sample())
    single = gym.make("AIGCEdge-v0")
    single.reset(seed=0)
    single_info = single.step(single.action_space.sample())[4]
    names = [k for k in infos if not k.startswith("_")]
    assert set(names) == set(single_info)  # the same components as the single env
    assert {"cost", "time_s", "energy_j", "n_dropped", "drop_cost", "offload_share"} <= set(names)
    for name in names:
        assert infos[name].shape == (5,) and infos[f"_{name}"].dtype == bool
    np.testing.assert_allclose(rewards, -infos["cost"])
    parts = (infos["weighted_time"] + infos["weighted_energy"] + infos["weighted_error"]
             - infos["weighted_utility"] + infos["drop_cost"])
    np.testing.assert_allclose(infos["cost"], parts, rtol=1e-9)


def test_vector_action_masks_match_single_slot_masks():
    envs = make(num_envs=4, deadline_s_range=(2.0, 12.0))
    envs.reset(seed=0)
    masks = envs.unwrapped.action_masks()
    c = envs.unwrapped.config
    assert masks.shape == (4, 2 * c.n_users + c.n_levels * c.n_users) and masks.dtype == bool
    problem = envs.unwrapped.current_problem()
    for i in range(4):
        np.testing.assert_array_equal(masks[i], env_spaces.action_mask(problem.select(i)))


def test_vector_errors():
    envs = make(num_envs=2, n_users=3)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((2, 6), dtype=np.int64))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros((3, 6), dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        envs.step(np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="offload"):
        envs.step(np.array([[0, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="level"):
        envs.step(np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 8]]))
    with pytest.raises(ValueError, match="options"):
        envs.reset(options={"x": 1})
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="num_envs"):
            AIGCEdgeVectorEnv(num_envs=bad)
    with pytest.raises(ValueError, match=r"render_mode must be one of \['ansi'\]"):
        AIGCEdgeVectorEnv(num_envs=2, render_mode="human")
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        AIGCEdgeVectorEnv(num_envs=2, autoreset_mode="disabled")
    with pytest.raises(ValueError, match="one seed per sub-env"):
        envs.reset(seed=[1, 2, 3])
    for bad in ([0.5, 1.5], [1, -2]):  # not truncated to integers, as the single env refuses them too
        with pytest.raises(ValueError, match=r"takes integers >= 0 or None"):
            envs.reset(seed=bad)
    for bad in (1.5, "1", -1, True):
        with pytest.raises(ValueError, match=r"takes an integer >= 0, a list of them"):
            envs.reset(seed=bad)
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": [True, False]})
    envs.close()
    with pytest.raises(RuntimeError, match="after close"):
        envs.step(np.zeros((2, 6), dtype=np.int64))


def _single_env_trace(env_id: str, config: dict, seed: int, actions: np.ndarray, same_step: bool) -> list:
    """Observations and rewards of the single env from ``reset(seed)``, resetting (unseeded) at each truncation,
    arranged as a vector env's sub-env reports them (``same_step``: the reset's observation at once)."""
    env = aigc_edge_env.AIGCEdgeEnv(config, env_id=env_id)
    trace = [(env.reset(seed=seed)[0], None)]
    restart = False
    for action in actions:
        if restart:  # NEXT_STEP: this step only resets, with reward 0
            trace.append((env.reset()[0], 0.0))
            restart = False
            continue
        observation, reward, _, truncated, _ = env.step(action)
        if truncated and same_step:
            observation = env.reset()[0]
        restart = truncated and not same_step
        trace.append((observation, reward))
    return trace


@pytest.mark.parametrize("env_id", ["AIGCEdge-v0", "AIGCEdge-Battery-v0"])
@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_each_sub_env_replays_the_single_env_seeded_like_it(env_id, mode):
    """Sub-env ``i`` of ``reset(seed=s)`` is the single env of ``reset(seed=s + i)``, across autoresets."""
    config = {"n_users": 3, "horizon_slots": 4}
    envs = make(env_id, num_envs=3, autoreset_mode=mode, **config)
    actions = np.random.default_rng(0).integers(0, envs.single_action_space.nvec, size=(11, 3, 6))
    observation, _ = envs.reset(seed=40)
    vector = [[(observation[i], None)] for i in range(3)]
    for step_actions in actions:
        observation, rewards, _, truncations, infos = envs.step(step_actions)
        for i in range(3):
            vector[i].append((observation[i], rewards[i]))
        if mode == "same_step" and truncations.any():
            assert infos["_final_obs"].tolist() == truncations.tolist()
    for i in range(3):
        single = _single_env_trace(env_id, config, 40 + i, actions[:, i], same_step=mode == "same_step")
        for t, ((obs_v, reward_v), (obs_s, reward_s)) in enumerate(zip(vector[i], single, strict=True)):
            np.testing.assert_array_equal(obs_v, obs_s, err_msg=f"sub-env {i}, step {t}")
            # the vector env sums the decision's rows, the single env tabulated rows: equal up to rounding
            assert reward_v == (None if reward_s is None else pytest.approx(reward_s, rel=1e-12, abs=1e-12))


def test_seed_lists_and_partial_resets():
    """One seed per sub-env; ``reset_mask`` restarts only the marked sub-envs (a seed in the list for them)."""
    envs = make("AIGCEdge-Battery-v0", num_envs=3, n_users=2)
    observation, _ = envs.reset(seed=[7, None, 9])
    single = aigc_edge_env.AIGCEdgeEnv({"n_users": 2}, env_id="AIGCEdge-Battery-v0")
    np.testing.assert_array_equal(observation[0], single.reset(seed=7)[0])
    np.testing.assert_array_equal(observation[2], single.reset(seed=9)[0])
    envs.step(np.zeros((3, 4), dtype=np.int64))
    before = envs.unwrapped.current_problem()
    observation, _ = envs.reset(seed=[None, 5, None], options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(observation[1], single.reset(seed=5)[0])
    after = envs.unwrapped.current_problem()
    for name in aigc_edge_env.PROBLEM_ARRAY_FIELDS:  # the other sub-envs keep their slot, battery included
        np.testing.assert_array_equal(getattr(after, name)[[0, 2]], getattr(before, name)[[0, 2]])
    np.testing.assert_array_equal(observation[[0, 2], -1], np.float32(1 / 100))  # still at slot 1 of 100


def test_call_get_attr_and_render():
    envs = make(num_envs=2, n_users=3, render_mode="ansi")
    envs.reset(seed=0)
    texts = envs.call("render")
    assert len(texts) == 2 and all(text.startswith("slot 0/100") for text in texts)
    envs.step(np.zeros((2, 6), dtype=np.int64))
    assert "last slot: cost" in envs.render()[1]
    assert envs.get_attr("config") == (envs.unwrapped.config,) * 2
    assert envs.get_attr("observation_space") == (envs.single_observation_space,) * 2
    problems = envs.call("current_problem")
    assert problems[1].has_request.shape == (3,)
    np.testing.assert_array_equal(envs.call("action_masks")[0], aigc_edge_env.spaces.action_mask(problems[0]))
    with pytest.raises(AttributeError, match="not 'bogus'"):
        envs.get_attr("bogus")
