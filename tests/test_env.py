"""The single env: API checkers, registration, seeding, spaces, info, actions, masks, rendering."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import aigc_edge_env
from aigc_edge_env import AIGCEdgeEnv, AIGCEdgeVectorEnv, Decision, dynamics, evaluate_decision, spaces as env_spaces

ENV_IDS = tuple(aigc_edge_env.SCENARIOS)


def rollout(env, seed, actions):
    """Observations, rewards and infos of ``actions`` from ``reset(seed=seed)`` (unseeded resets at truncations)."""
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info))
        if truncated:
            trace.append(env.reset())
    return trace


def assert_same_trace(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        for u, v in zip(x, y, strict=True):
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and np.array_equal(u, v)
            else:
                assert u == v


def fixed_actions(env, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, env.action_space.nvec) for _ in range(n)]


# --- API checkers -------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker_passes_without_warnings(env_id):
    for render_mode in (None, "ansi"):
        env = gym.make(env_id, render_mode=render_mode)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # the checker wants the raw env (it warns about wrappers otherwise)
            gym_check_env(env.unwrapped, skip_render_check=False)
        assert [str(w.message) for w in caught] == []
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker_passes_without_warnings(env_id):
    sb3_check_env = pytest.importorskip("stable_baselines3.common.env_checker").check_env  # the [agents] extra
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True, skip_render_check=True)
    assert [str(w.message) for w in caught] == []


# --- registration -------------------------------------------------------------------------
def test_make_by_module_path_in_a_fresh_interpreter():
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'aigc_edge_env' not in sys.modules\n"
        "env = gym.make('aigc_edge_env:AIGCEdge-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "obs, r, term, trunc, info = env.step(env.action_space.sample())\n"
        "assert obs.shape == (93,) and isinstance(r, float) and not term\n"
        "for env_id in ('AIGCEdge-Battery-v0', 'AIGCEdge-Large-v0'):\n"
        "    gym.make(env_id).reset(seed=1)\n"
        "print('ok', type(env.unwrapped).__name__)\n"
    )
    # Gymnasium's checks warn with UserWarning, numpy's float trouble with RuntimeWarning: both fail here.
    flags = ["-W", "error::UserWarning", "-W", "error::RuntimeWarning"]
    done = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok AIGCEdgeEnv"


def test_registration_is_idempotent():
    import importlib

    specs = {env_id: gym.spec(env_id) for env_id in ENV_IDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering an id would warn "Overriding environment"
        aigc_edge_env.register_envs()
        aigc_edge_env.register_envs()
        importlib.reload(aigc_edge_env)  # the second `import` of the package runs register_envs() again
    for env_id, spec in specs.items():
        assert gym.spec(env_id) == spec
        assert spec.entry_point == "aigc_edge_env.env:AIGCEdgeEnv"
        assert spec.vector_entry_point == "aigc_edge_env.vector_env:AIGCEdgeVectorEnv"
        assert spec.max_episode_steps is None  # the env truncates itself at horizon_slots
    gym.make("AIGCEdge-v0").reset(seed=0)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_sync_and_async_step(mode):
    envs = gym.make_vec("AIGCEdge-v0", num_envs=3, vectorization_mode=mode, config={"n_users": 4})
    try:
        obs, _ = envs.reset(seed=3)
        assert obs.shape == (3, 9 * 4 + 3) and obs.dtype == np.float32
        for _ in range(3):
            obs, rewards, terms, truncs, infos = envs.step(envs.action_space.sample())
            assert obs.shape == (3, 39) and rewards.shape == (3,) and np.all(np.isfinite(rewards))
            assert not terms.any() and not truncs.any()
            np.testing.assert_allclose(rewards, -infos["cost"])
        assert envs.observation_space.contains(obs)
    finally:
        envs.close()


def test_make_vec_vector_entry_point_gives_the_batched_env():
    envs = gym.make_vec("AIGCEdge-Large-v0", num_envs=5, vectorization_mode="vector_entry_point")
    assert isinstance(envs.unwrapped, AIGCEdgeVectorEnv)
    assert envs.num_envs == 5 and envs.unwrapped.config.n_users == 50
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (5, 9 * 50 + 3)


# --- seeding and episodes ------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory_different_seed_differs(env_id):
    env_a, env_b = gym.make(env_id), gym.make(env_id)
    actions = fixed_actions(env_a, 25)
    trace_a = rollout(env_a, 42, actions)
    assert_same_trace(trace_a, rollout(env_b, 42, actions))
    assert_same_trace(trace_a, rollout(env_a, 42, actions))  # reseeding the same env replays too
    other = rollout(env_b, 43, actions)
    assert not np.array_equal(trace_a[0][0], other[0][0])
    assert [t[1] for t in trace_a[1:]] != [t[1] for t in other[1:]]


def test_reset_without_seed_continues_the_stream_and_options_are_rejected():
    env = gym.make("AIGCEdge-v0")
    first, _ = env.reset(seed=1)
    second, _ = env.reset()
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"foo": 1})


SLOT_FIELDS = ("has_request", "upload_bits", "download_bits", "utility_weight", "deadline_s",
               "uplink_rate_bps", "downlink_rate_bps", "device_clock_hz")


@pytest.mark.parametrize("env_id", ["AIGCEdge-v0", "AIGCEdge-Battery-v0"])
def test_draw_slots_ahead_or_one_at_a_time_draw_the_same_slots(env_id):
    """Slots (and harvests) drawn 6 + 2 ahead are those of 8 one-slot draws, from the same stream."""
    config = aigc_edge_env.make_config(env_id, {"n_users": 4})
    rng_ahead, rng_stepwise = np.random.default_rng(5), np.random.default_rng(5)
    ahead = dynamics.reset_state(config, rng_ahead, None)
    stepwise = dynamics.reset_state(config, rng_stepwise, None)
    slots, harvest_j = dynamics.draw_slots(config, ahead, rng_ahead, 6, first_is_current=True)
    more, more_harvest_j = dynamics.draw_slots(config, ahead, rng_ahead, 2, first_is_current=False)
    for k in range(8):
        expected, expected_harvest_j = dynamics.draw_slots(config, stepwise, rng_stepwise, 1, first_is_current=k == 0)
        got = slots.select(k) if k < 6 else more.select(k - 6)
        for name in SLOT_FIELDS:
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name)[0], err_msg=f"slot {k} {name}")
        if config.battery_enabled and k:
            got_harvest_j = harvest_j[k] if k < 6 else more_harvest_j[k - 6]
            np.testing.assert_array_equal(got_harvest_j, expected_harvest_j[0])
    assert (harvest_j is None) == (not config.battery_enabled)
    assert rng_ahead.random() == rng_stepwise.random()  # the same amount of the stream consumed


@pytest.mark.parametrize("first_is_current", [True, False])
def test_a_batch_of_systems_draws_each_system_as_one_system(first_is_current):
    """Each system of a batch draws from its own generator exactly what it would alone."""
    config = aigc_edge_env.make_config("AIGCEdge-Battery-v0", {"n_users": 2})
    seeds = (1, 2, 3)
    generators = [np.random.default_rng(seed) for seed in seeds]
    batch = dynamics.reset_state(config, generators, 3)
    slots, harvest_j = dynamics.draw_slots(config, batch, generators, 3, first_is_current=first_is_current)
    for system, seed in enumerate(seeds):
        generator = np.random.default_rng(seed)
        alone = dynamics.reset_state(config, generator, None)
        alone_slots, alone_harvest_j = dynamics.draw_slots(config, alone, generator, 3,
                                                           first_is_current=first_is_current)
        for name in SLOT_FIELDS:
            np.testing.assert_array_equal(getattr(slots, name)[:, system], getattr(alone_slots, name))
        np.testing.assert_array_equal(harvest_j[:, system], alone_harvest_j)
        np.testing.assert_array_equal(batch.fading[system], alone.fading)
        assert generators[system].random() == generator.random()
    with pytest.raises(ValueError, match="need 3 generators"):
        dynamics.draw_slots(config, batch, generators[:2], 1, first_is_current=False)
    with pytest.raises(ValueError, match="one generator per system"):
        dynamics.draw_slots(config, batch, generators[0], 1, first_is_current=False)


@pytest.mark.parametrize("env_id", ["AIGCEdge-v0", "AIGCEdge-Battery-v0"])
def test_trajectories_do_not_depend_on_how_many_slots_are_drawn_ahead(env_id, monkeypatch):
    """Chunks of 2 slots give the trajectory of one chunk per episode, across episodes and a reset at slot 4 of 5
    (where both chunk sizes have drawn the episode's last slot; earlier unseeded resets depend on the chunk
    size, as docs/model.md says)."""
    config = {"n_users": 3, "horizon_slots": 5}
    actions = fixed_actions(AIGCEdgeEnv(config, env_id=env_id), 9, seed=3)
    traces = []
    for chunk_options in (aigc_edge_env.env.CHUNK_OPTIONS, 1):
        monkeypatch.setattr(aigc_edge_env.env, "CHUNK_OPTIONS", chunk_options)
        env = AIGCEdgeEnv(config, env_id=env_id)
        trace = rollout(env, 4, actions)  # 9 steps: a second episode after the horizon
        trace += rollout(env, None, actions[:6])  # a reset that continues the stream
        traces.append(trace)
    assert_same_trace(*traces)


def test_current_problem_is_read_only_and_draw_slots_needs_a_slot():
    env = AIGCEdgeEnv(env_id="AIGCEdge-Battery-v0")
    env.reset(seed=0)
    problem = env.current_problem()
    for name in aigc_edge_env.PROBLEM_ARRAY_FIELDS:
        with pytest.raises(ValueError, match="read-only"):
            getattr(problem, name)[0] = 1.0
    with pytest.raises(ValueError, match="n_slots must be >= 1"):
        dynamics.draw_slots(env.config, env._state, env.np_random, 0, first_is_current=False)


def memory_owner(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory (the end of its chain of ``.base`` views)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_current_problem_holds_the_present_slot_only(env_id):
    """The env draws the slots ahead (here the whole episode at reset), yet a policy reaches none of the later ones
    through the API: each array of current_problem() holds the present slot's values and its memory holds no more
    (copies, not views of the slots drawn ahead), and the last evaluation shares no memory with them either."""
    horizon = 6
    env = AIGCEdgeEnv({"horizon_slots": horizon}, env_id=env_id)
    env.reset(seed=5)
    ahead = env._chunk
    assert ahead.first_slot == 0 and ahead.n_slots == horizon + 1  # every slot of the episode is drawn
    drawn = [*(getattr(ahead.problem, name) for name in aigc_edge_env.PROBLEM_ARRAY_FIELDS),
             ahead.problem.energy_price_per_j, ahead.option_grid, ahead.observations]
    for t, action in enumerate(fixed_actions(env, horizon, seed=1)):
        problem, slot = env.current_problem(), ahead.problem.select(t)
        for name in (*aigc_edge_env.PROBLEM_ARRAY_FIELDS, "energy_price_per_j"):
            array = getattr(problem, name)
            assert array.shape == (env.config.n_users,) and memory_owner(array).size <= array.size, name
            assert not any(np.shares_memory(array, other) for other in drawn), name
            expected = env._state.battery_j if name == "battery_j" else getattr(slot, name)
            np.testing.assert_array_equal(array, expected)
        env.step(action)
        evaluation = env.last_evaluation
        for array in (evaluation.rows, evaluation.kept, evaluation.served_totals, evaluation.cost):
            assert not any(np.shares_memory(array, other) for other in drawn)
    assert env._chunk is ahead  # the whole episode was drawn at reset


def test_truncates_at_horizon_never_terminates():
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": 5})
    obs, _ = env.reset(seed=0)
    progress = [obs[-1]]
    flags = []
    for _ in range(5):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        progress.append(obs[-1])
        flags.append((terminated, truncated))
    assert flags == [(False, False)] * 4 + [(False, True)]
    np.testing.assert_allclose(progress, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], rtol=1e-6)
    obs, _ = env.reset()
    assert obs[-1] == 0.0


# --- observations, rewards, info ------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_long_random_episodes_stay_in_spaces_with_consistent_info(env_id):
    env = gym.make(env_id)
    c = env.unwrapped.config
    space = env.observation_space
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, info = env.reset(seed=100 + episode)
        assert space.contains(obs) and info == {}
        for t in range(c.horizon_slots):
            action = rng.integers(0, env.action_space.nvec)
            obs, reward, terminated, truncated, info = env.step(action)
            assert space.contains(obs), (episode, t)
            assert type(reward) is float and np.isfinite(reward)
            assert all(type(v) is float and np.isfinite(v) for v in info.values()), info
            assert reward == -c.reward_scale * info["cost"]
            parts = (info["weighted_time"] + info["weighted_energy"] + info["weighted_error"]
                     - info["weighted_utility"] + info["drop_cost"])
            assert info["cost"] == pytest.approx(parts, rel=1e-9, abs=1e-9)
            assert info["n_served"] + info["n_dropped"] == info["n_requests"]
            assert info["drop_cost"] == c.drop_cost * info["n_dropped"]
            assert 0 <= info["offload_share"] <= 1 and 0 <= info["edge_load"] <= 1
            assert info["edge_steps"] <= c.edge_step_capacity
            assert not terminated and truncated == (t == c.horizon_slots - 1)


def test_info_components_match_the_slot_evaluation():
    env = gym.make("AIGCEdge-Battery-v0", config={"reward_scale": 0.01}).unwrapped
    env.reset(seed=5)
    c = env.config
    for action in fixed_actions(env, 20, seed=5):
        problem = env.current_problem()
        ev = evaluate_decision(problem, env.action_to_decision(action))
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(-0.01 * float(ev.total_cost), rel=1e-12)
        assert float(ev.total_cost) == ev.summary()["cost"] == pytest.approx(info["cost"], rel=1e-12)
        assert info["energy_j"] == pytest.approx(float(ev.energy_j.sum()))
        assert info["time_s"] == pytest.approx(float(ev.time_s.sum()))
        assert info["n_offloaded"] == ev.offloaded.sum()
        assert info["weighted_error"] == pytest.approx(c.weight_error * float(ev.error.sum()))
        served = ev.served.sum()
        assert info["mean_error"] == pytest.approx(float(ev.error.sum()) / served if served else 0.0)


def test_action_costs_are_the_costs_steps_report_and_do_not_step():
    """Battery scenario, chunk boundaries inside the episode (at N = 200 a chunk is 10 slots): each action's
    cost from ``action_costs`` is the cost ``step`` reports for it, batteries included, and valuing actions
    changes nothing the next step returns."""
    env = gym.make("AIGCEdge-Battery-v0", config={"n_users": 200, "horizon_slots": 30}).unwrapped
    twin = gym.make("AIGCEdge-Battery-v0", config={"n_users": 200, "horizon_slots": 30}).unwrapped
    env.reset(seed=3)
    twin.reset(seed=3)
    env.action_space.seed(3)
    assert env._slots_per_chunk == 10  # what the docstring says: the episode crosses two chunk boundaries
    assert env.action_costs(np.zeros((0, 400), dtype=np.int64)).shape == (0,)
    for _ in range(30):
        actions = np.stack([env.action_space.sample() for _ in range(4)])
        costs = env.action_costs(actions)
        assert costs.shape == (4,)
        for action, cost in zip(actions, costs, strict=True):
            assert cost == pytest.approx(evaluate_decision(env.current_problem(),
                                                           env.action_to_decision(action)).total_cost, rel=1e-12)
        observation, _, _, _, info = env.step(actions[1])
        twin_observation, _, _, _, twin_info = twin.step(actions[1])
        assert info["cost"] == pytest.approx(costs[1], rel=1e-12)
        assert info == twin_info and np.array_equal(observation, twin_observation)


def test_action_costs_refuse_a_single_action_bad_entries_and_a_finished_or_closed_episode():
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": 1}).unwrapped
    with pytest.raises(RuntimeError, match=r"call reset\(\) before action_costs"):
        env.action_costs(np.zeros((1, 20), dtype=np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions: expected shape \(K, 20\)"):
        env.action_costs(np.zeros(20, dtype=np.int64))
    with pytest.raises(ValueError, match="offload bits"):
        env.action_costs(np.full((2, 20), 2))
    env.step(np.zeros(20, dtype=np.int64))
    with pytest.raises(RuntimeError, match="episode ended at the horizon"):
        env.action_costs(np.zeros((1, 20), dtype=np.int64))
    env.close()
    with pytest.raises(RuntimeError, match=r"action_costs\(\) called after close"):
        env.action_costs(np.zeros((1, 20), dtype=np.int64))


def test_observation_features_of_a_known_slot():
    env = gym.make("AIGCEdge-v0", config={"n_users": 3}).unwrapped
    obs, _ = env.reset(seed=9)
    problem, c = env.current_problem(), env.config
    blocks = obs[:27].reshape(9, 3)
    np.testing.assert_array_equal(blocks[0], problem.has_request.astype(np.float32))
    req = problem.has_request
    np.testing.assert_allclose(blocks[2], req * problem.upload_bits / (c.upload_mbit_range[1] * 1e6), rtol=1e-6)
    np.testing.assert_allclose(blocks[4], c.device_clock_ghz_range[0] * 1e9 / problem.device_clock_hz, rtol=1e-6)
    np.testing.assert_array_equal(blocks[8], 1.0)  # no batteries
    assert obs[27] == pytest.approx(req.mean())


def test_split_observation_gives_per_user_rows_and_globals_for_any_batch_shape():
    n = 4
    observations = np.random.default_rng(0).random((2, 3, 9 * n + 3)).astype(np.float32)
    users, globals_ = env_spaces.split_observation(observations, n)
    assert users.shape == (2, 3, n, 9) and globals_.shape == (2, 3, 3) and users.dtype == np.float32
    for k in range(9):  # block k, user i -> users[..., i, k]
        np.testing.assert_array_equal(users[..., k], observations[..., k * n:(k + 1) * n])
    np.testing.assert_array_equal(globals_, observations[..., -3:])
    assert np.shares_memory(users, observations)  # views, no copy
    single_users, single_globals = env_spaces.split_observation(observations[1, 2], n)
    np.testing.assert_array_equal(single_users, users[1, 2])
    np.testing.assert_array_equal(single_globals, globals_[1, 2])
    assert env_spaces.observation_n_users(9 * n + 3) == n
    with pytest.raises(ValueError, match="does not end in"):
        env_spaces.split_observation(observations, n + 1)
    with pytest.raises(ValueError, match="not the AIGC env's observation"):
        env_spaces.observation_n_users(9 * n + 4)


def test_last_evaluation_is_the_last_steps_per_user_outcome():
    env = AIGCEdgeEnv(config={"n_users": 5})
    env.reset(seed=2)
    assert env.last_evaluation is None
    action = np.array([1, 1, 0, 1, 0, 7, 3, 2, 5, 0])
    expected = evaluate_decision(env.current_problem(), env.action_to_decision(action))
    _, reward, _, _, info = env.step(action)
    np.testing.assert_allclose(env.last_evaluation.cost, expected.cost, rtol=1e-12)
    np.testing.assert_array_equal(env.last_evaluation.dropped, expected.dropped)
    assert env.last_evaluation.cost.sum() == pytest.approx(info["cost"], rel=1e-12)
    env.reset(seed=2)
    assert env.last_evaluation is None


def test_battery_drains_by_served_energy_and_recharges_within_capacity():
    env = gym.make("AIGCEdge-Battery-v0", config={"n_users": 4}).unwrapped
    env.reset(seed=2)
    c = env.config
    low, high = c.harvest_j_range
    for action in fixed_actions(env, 40, seed=2):
        problem = env.current_problem()
        ev = evaluate_decision(problem, env.action_to_decision(action))
        env.step(action)
        after = env.current_problem().battery_j
        drained = problem.battery_j - ev.energy_j
        assert np.all(drained >= 0)
        assert np.all(after >= np.minimum(c.battery_capacity_j, drained + low) - 1e-9)
        assert np.all(after <= np.minimum(c.battery_capacity_j, drained + high) + 1e-9)


# --- actions ------------------------------------------------------------------------------
BAD_ACTIONS = [
    (lambda n, L: np.zeros(2 * n - 1, dtype=np.int64), "shape"),
    (lambda n, L: np.zeros((1, 2 * n), dtype=np.int64), "shape"),
    (lambda n, L: np.zeros(2 * n + 1, dtype=np.int64), "shape"),
    (lambda n, L: np.full(2 * n, np.nan), "integers"),
    (lambda n, L: np.full(2 * n, 0.5), "integers"),
    (lambda n, L: np.full(2 * n, np.inf), "integers"),
    (lambda n, L: np.array(["0"] * (2 * n)), "integers"),
    (lambda n, L: np.r_[[2] + [0] * (n - 1), [0] * n], "offload"),
    (lambda n, L: np.r_[[-1] + [0] * (n - 1), [0] * n], "offload"),
    (lambda n, L: np.r_[[0] * n, [0] * (n - 1) + [L]], "level"),
    (lambda n, L: np.r_[[0] * n, [-1] + [0] * (n - 1)], "level"),
    (lambda n, L: np.full(2 * n, 2.0**63), "int64's range"),  # the cast would wrap it to a negative number
    (lambda n, L: np.full(2 * n, 2**64 - 1, dtype=np.uint64), "int64's range"),
]


@pytest.mark.parametrize("make_action, word", BAD_ACTIONS)
def test_malformed_actions_raise_value_error(make_action, word):
    env = gym.make("AIGCEdge-v0", config={"n_users": 3})
    env.reset(seed=0)
    c = env.unwrapped.config
    with pytest.raises(ValueError, match=word):
        env.step(make_action(c.n_users, c.n_levels))
    # the failed step changed nothing: the env still steps normally
    assert env.step(env.action_space.sample())[0].shape == env.observation_space.shape


def test_integer_valued_actions_of_other_types_are_accepted():
    env_a = gym.make("AIGCEdge-v0", config={"n_users": 3})
    env_b = gym.make("AIGCEdge-v0", config={"n_users": 3})
    env_a.reset(seed=4)
    env_b.reset(seed=4)
    action = np.array([1, 0, 1, 7, 0, 3])
    reward = env_a.step(action)[1]
    assert env_b.step([1.0, 0.0, 1.0, 7.0, 0.0, 3.0])[1] == reward  # a list of integral floats


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        AIGCEdgeEnv().step(np.zeros(20, dtype=np.int64))
    with pytest.raises(RuntimeError, match="reset"):
        AIGCEdgeEnv().current_problem()
    with pytest.raises(gym.error.ResetNeeded):
        gym.make("AIGCEdge-v0").step(np.zeros(20, dtype=np.int64))


def test_action_decision_round_trip():
    env = gym.make("AIGCEdge-v0").unwrapped
    env.reset(seed=0)
    action = env.action_space.sample()
    decision = env.action_to_decision(action)
    assert decision.steps.tolist() == [env.config.step_levels[i] for i in action[10:]]
    assert np.array_equal(env.decision_to_action(decision), action)
    with pytest.raises(ValueError, match="step levels"):
        env.decision_to_action(Decision(offload=[False] * 10, steps=[7] * 10))
    with pytest.raises(ValueError, match=r"a decision of shape \(3,\) for an env of 10 users"):
        env.decision_to_action(Decision(offload=[False] * 3, steps=[5] * 3))


# --- masks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_action_masks_shape_idle_users_and_one_choice_per_subspace(env_id):
    env = gym.make(env_id).unwrapped
    c = env.config
    n, n_levels = c.n_users, c.n_levels
    env.reset(seed=1)
    for action in fixed_actions(env, 10):
        mask = env.action_masks()
        assert mask.dtype == bool and mask.shape == (int(env.action_space.nvec.sum()),) == (2 * n + n_levels * n,)
        modes, levels = mask[: 2 * n].reshape(n, 2), mask[2 * n:].reshape(n, n_levels)
        assert modes.any(axis=1).all() and levels.any(axis=1).all()
        idle = ~env.current_problem().has_request
        assert (modes[idle] == [True, False]).all()
        assert levels[idle, 0].all() and not levels[idle, 1:].any()
        env.step(action)


def test_action_masks_allow_exactly_the_options_feasible_alone():
    """A (mode, level) is feasible for a user alone (a one-user slot) iff both mask entries allow it.

    Deadlines are tight, so some options of some users are infeasible.
    """
    env = gym.make("AIGCEdge-v0", config={"deadline_s_range": (2.0, 12.0), "n_users": 6}).unwrapped
    env.reset(seed=3)
    c = env.config
    n, levels = c.n_users, c.step_levels
    saw_masked = False
    for _ in range(10):
        problem, mask = env.current_problem(), env.action_masks()
        modes, level_ok = mask[: 2 * n].reshape(n, 2), mask[2 * n:].reshape(n, len(levels))
        for user in np.flatnonzero(problem.has_request):
            alone = problem.select([user])
            feasible = np.array([[bool(evaluate_decision(alone, Decision([bool(m)], [s])).feasible[()])
                                  for s in levels] for m in (0, 1)])
            if not feasible.any():
                assert modes[user].all() and level_ok[user].all()  # nothing helps: all open
                continue
            np.testing.assert_array_equal(modes[user], feasible.any(axis=1))
            np.testing.assert_array_equal(level_ok[user], feasible.any(axis=0))
            saw_masked |= not mask[2 * n:].reshape(n, -1)[user].all() or not modes[user].all()
        env.step(env.action_space.sample())
    assert saw_masked


def test_action_masks_work_with_maskable_ppo_distribution():
    torch = pytest.importorskip("torch")  # the [agents] extra
    pytest.importorskip("sb3_contrib", reason="the agents extra (sb3-contrib) is not installed")
    from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    env = gym.make("AIGCEdge-v0", config={"deadline_s_range": (2.0, 12.0)})
    env.reset(seed=0)
    assert is_masking_supported(env)
    mask = get_action_masks(env)
    nvec = env.action_space.nvec.tolist()
    dist = MaskableMultiCategoricalDistribution(nvec)
    dist.proba_distribution(torch.zeros(256, sum(nvec)))
    dist.apply_masking(np.repeat(mask[None], 256, axis=0))
    samples = dist.sample().numpy()
    assert torch.isfinite(dist.log_prob(torch.as_tensor(samples))).all()
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    assert mask[samples + offsets].all()  # every sampled sub-action is allowed


# --- rendering ------------------------------------------------------------------------------
def test_render_ansi_mentions_the_slot():
    env = gym.make("AIGCEdge-v0", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and "slot 0/100" in text
    env.step(env.action_space.sample())
    text = env.render()
    assert "slot 1/100" in text and "last slot: cost" in text
    assert gym.make("AIGCEdge-v0").unwrapped.render() is None
    # gym.make itself warns about the unknown mode before the env refuses it
    with pytest.warns(UserWarning, match="render_mode"), pytest.raises(ValueError, match="render_mode"):
        gym.make("AIGCEdge-v0", render_mode="human")


def test_decode_rejects_batch_shape_mismatch():
    c = aigc_edge_env.default_config()
    with pytest.raises(ValueError, match="shape"):
        env_spaces.validate_actions(np.zeros((3, 20), dtype=np.int64), c, batch_shape=(2,))


def test_step_after_the_horizon_or_close_raises():
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": 2})
    env.reset(seed=0)
    for _ in range(2):
        env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="episode ended at the horizon"):
        env.step(env.action_space.sample())
    env.reset()
    env.step(env.action_space.sample())
    env.close()
    with pytest.raises(RuntimeError, match="after close"):
        env.unwrapped.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="after close"):
        _ = env.unwrapped.distance_m
    with pytest.raises(ValueError, match=r"render_mode must be one of \['ansi'\]"):
        aigc_edge_env.AIGCEdgeEnv(render_mode="human")
