"""Property-based tests over random valid configs and random actions (hypothesis)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import aigc_edge_env
from aigc_edge_env import (
    PROBLEM_ARRAY_FIELDS,
    AIGCEdgeConfig,
    AIGCEdgeEnv,
    AIGCEdgeVectorEnv,
    Decision,
    evaluate_decision,
    option_table,
    spaces as env_spaces,
)


def positive_range(low_min, low_max, width_max):
    return st.tuples(st.floats(low_min, low_max), st.floats(0.0, width_max)).map(lambda p: (p[0], p[0] + p[1]))


@st.composite
def error_curves(draw, smallest_level=10):
    if draw(st.booleans()):
        return {"eps_inf": draw(st.floats(0.0, 10.0)), "a": draw(st.floats(0.0, 1000.0)),
                "b": draw(st.floats(0.1, 3.0))}
    # a convex, non-increasing table: increasing steps, slopes negative and rising towards 0
    n = draw(st.integers(2, 5))
    gaps = draw(st.lists(st.floats(1.0, 20.0), min_size=n - 1, max_size=n - 1))
    steps = np.concatenate([[draw(st.floats(1.0, float(smallest_level)))], gaps]).cumsum()  # from <= S_min
    slopes = -np.sort(draw(st.lists(st.floats(0.0, 5.0), min_size=n - 1, max_size=n - 1)))[::-1]
    errors = draw(st.floats(0.0, 5.0)) + np.concatenate([[0.0], np.cumsum(slopes * gaps)])
    errors = errors - min(errors.min(), 0.0)
    return {"steps": steps.tolist(), "errors": errors.tolist()}


@st.composite
def configs(draw, max_users=6):
    levels = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=8)))
    battery_capacity = draw(st.floats(0.0, 200.0))
    initial_low = draw(st.floats(0.0, battery_capacity))
    overrides = {
        "n_users": draw(st.integers(1, max_users)),
        "horizon_slots": draw(st.integers(1, 6)),
        "task_probability": draw(st.floats(0.0, 1.0)),
        "upload_mbit_range": draw(positive_range(0.01, 5.0, 5.0)),
        "download_mbit_range": draw(positive_range(0.01, 5.0, 5.0)),
        "utility_weight_range": draw(positive_range(0.0, 3.0, 3.0)),
        "deadline_s_range": draw(positive_range(0.5, 40.0, 20.0)),
        "distance_m_range": draw(positive_range(1.0, 1000.0, 1000.0)),
        "fading_correlation": draw(st.floats(0.0, 1.0)),
        "total_bandwidth_hz": draw(st.floats(1e5, 1e8)),
        "user_tx_power_w": draw(st.floats(0.01, 2.0)),
        "bs_tx_power_w": draw(st.floats(0.01, 40.0)),
        "user_rx_power_w": draw(st.floats(0.0, 1.0)),
        "step_levels": levels,
        "device_clock_ghz_range": draw(positive_range(0.1, 4.0, 3.0)),
        "device_step_capacity": draw(st.integers(levels[0], levels[-1] + 10)),
        "edge_steps_per_s": draw(st.floats(0.5, 100.0)),
        "edge_step_capacity": draw(st.integers(0, 400)),
        "edge_error_curve": draw(error_curves(levels[0])),
        "device_error_curve": draw(error_curves(levels[0])),
        "weight_time_per_s": draw(st.floats(0.0, 5.0)),
        "weight_energy_per_j": draw(st.floats(0.0, 5.0)),
        "weight_error": draw(st.floats(0.0, 5.0)),
        "weight_utility": draw(st.floats(0.0, 5.0)),
        "reward_scale": draw(st.floats(0.01, 10.0)),
        "battery_enabled": draw(st.booleans()),
        "battery_capacity_j": battery_capacity,
        "battery_initial_j_range": (initial_low, draw(st.floats(initial_low, battery_capacity))),
        "harvest_j_range": draw(positive_range(0.0, 20.0, 20.0)),
    }
    return AIGCEdgeConfig(**overrides)


def check_served_constraints(problem, decision, ev):
    """Every served request meets its constraints; drops cost C_drop and use nothing."""
    c = problem.config
    served, dropped = ev.served, ev.dropped
    assert not (served & dropped).any()
    assert ((served | dropped) == problem.has_request).all()
    at_edge = served & decision.offload
    local = served & ~decision.offload
    assert (ev.offloaded == at_edge).all()
    # edge capacity and the final Q over the served edge requests
    assert decision.steps[at_edge].sum() <= c.edge_step_capacity
    assert int(ev.edge_steps) == decision.steps[at_edge].sum()
    q = np.sqrt(decision.steps[at_edge].astype(float)).sum()
    assert math.isclose(float(ev.sqrt_steps_sum), q, rel_tol=1e-12, abs_tol=1e-12)
    # device capacity
    assert (decision.steps[local] <= c.device_step_capacity).all()
    # times: local s c_L / f, edge D/r + sqrt(s) Q / F_E + O/r_dl, all within the deadline
    s = decision.steps.astype(float)
    local_time = s * c.device_cycles_per_step / problem.device_clock_hz
    edge_time = (problem.upload_bits / problem.uplink_rate_bps + np.sqrt(s) * q / c.edge_steps_per_s
                 + problem.download_bits / problem.downlink_rate_bps)
    np.testing.assert_allclose(ev.time_s[local], local_time[local], rtol=1e-9)
    np.testing.assert_allclose(ev.time_s[at_edge], edge_time[at_edge], rtol=1e-9)
    assert (ev.time_s[served] <= problem.deadline_s[served] * (1 + 1e-12)).all()
    # battery
    assert (ev.energy_j[served] <= problem.battery_j[served] * (1 + 1e-12) + 1e-12).all()
    # drops: C_drop, no energy, no time; served requests never cost more than a drop
    np.testing.assert_array_equal(ev.cost[dropped], c.drop_cost)
    assert (ev.energy_j[~served] == 0).all() and (ev.time_s[~served] == 0).all()
    assert (ev.cost[served] <= c.drop_cost).all()
    assert (ev.cost[~problem.has_request] == 0).all()


@given(config=configs(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_random_configs_and_actions_keep_every_invariant(config, seed, data, reference_outcome):
    env = AIGCEdgeEnv(config=config)
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    nvec = env.action_space.nvec
    for _ in range(config.horizon_slots):
        action = np.array(data.draw(st.tuples(*[st.integers(0, int(k) - 1) for k in nvec])), dtype=np.int64)
        problem = env.current_problem()
        decision = env.action_to_decision(action)
        ev = evaluate_decision(problem, decision)
        obs, reward, terminated, truncated, info = env.step(action)

        assert obs.dtype == np.float32 and np.all(np.isfinite(obs)) and env.observation_space.contains(obs)
        assert type(reward) is float and math.isfinite(reward)
        assert all(type(v) is float and math.isfinite(v) for v in info.values())
        assert reward == -config.reward_scale * info["cost"]
        assert math.isclose(info["cost"], float(ev.total_cost), rel_tol=1e-12, abs_tol=1e-12)
        parts = (info["weighted_time"] + info["weighted_energy"] + info["weighted_error"]
                 - info["weighted_utility"] + info["drop_cost"])
        assert math.isclose(info["cost"], parts, rel_tol=1e-9, abs_tol=1e-9 * (1 + abs(parts)))
        check_served_constraints(problem, decision, ev)

        # the vectorised repair rule agrees with the per-user reference written from docs/model.md
        ref = reference_outcome(problem, decision.offload, decision.steps)
        assert ev.served.tolist() == ref["served"]
        np.testing.assert_allclose(ev.cost, ref["cost"], rtol=1e-9, atol=1e-9)
        assert not terminated
    assert truncated


@given(config=configs(max_users=5), seed=st.integers(0, 2**32 - 1))
def test_drop_free_cost_decomposes_into_option_table(config, seed):
    """For a drop-free decision: slot cost = sum of base costs + (w_T / F_E) Q^2, and the
    option table's feasibility flags agree with what the repair rule serves."""
    env = AIGCEdgeEnv(config=config)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    problem = env.current_problem()
    table = option_table(problem)
    n, n_levels = config.n_users, config.n_levels
    for _ in range(5):
        mode = rng.integers(0, 2, n).astype(bool)
        level = rng.integers(0, n_levels, n)
        decision = Decision(mode, table.levels[level])
        ev = evaluate_decision(problem, decision)
        users = np.arange(n)
        active = problem.has_request
        q = np.sqrt(table.levels[level][mode & active].astype(float)).sum()
        feasible_alone = np.where(mode, table.max_sqrt_steps_sum[users, level] >= q,
                                  table.local_feasible[users, level])
        capacity_ok = table.levels[level][mode & active].sum() <= config.edge_step_capacity
        expect_drop_free = bool(capacity_ok and feasible_alone[active].all())
        assert bool(ev.feasible) == expect_drop_free
        if expect_drop_free:
            base = np.where(mode, table.edge_base_cost[users, level], table.local_cost[users, level])
            expected = base[active].sum() + table.congestion_weight * q**2
            assert math.isclose(float(ev.total_cost), expected, rel_tol=1e-9, abs_tol=1e-9)


@given(config=configs(max_users=4), seed=st.integers(0, 2**32 - 1))
def test_feasible_alone_is_what_a_single_request_gets_and_what_the_mask_allows(config, seed):
    """option_table's local_feasible and edge_feasible_alone equal a brute force (each
    option served by evaluate_decision as the slot's only request), and action_mask allows
    exactly the options they mark, mode by mode."""
    env = AIGCEdgeEnv(config=config)
    env.reset(seed=seed)
    problem = env.current_problem()
    table = option_table(problem)
    n, n_levels = config.n_users, config.n_levels
    user, mode, level = (axis.ravel() for axis in np.meshgrid(np.arange(n), [0, 1], np.arange(n_levels),
                                                               indexing="ij"))
    only = np.arange(n)[None, :] == user[:, None]  # one slot per option: its user is the only request
    arrays = {name: np.broadcast_to(getattr(problem, name), only.shape) for name in PROBLEM_ARRAY_FIELDS}
    alone = dataclasses.replace(problem, **{**arrays, "has_request": only})
    decision = Decision(only & (mode[:, None] == 1), np.broadcast_to(table.levels[level][:, None], only.shape))
    served = ~evaluate_decision(alone, decision).dropped.any(axis=1)
    flags = np.where(mode == 1, table.edge_feasible_alone[user, level], table.local_feasible[user, level])
    np.testing.assert_array_equal(served, flags)

    mask = env_spaces.action_mask(problem)
    mode_ok, level_ok = mask[: 2 * n].reshape(n, 2), mask[2 * n:].reshape(n, n_levels)
    feasible = np.stack([table.local_feasible, table.edge_feasible_alone], axis=1)  # (N, 2, L)
    for u in np.flatnonzero(problem.has_request & feasible.any(axis=(1, 2))):
        np.testing.assert_array_equal(mode_ok[u], feasible[u].any(axis=1))
        np.testing.assert_array_equal(level_ok[u], (feasible[u] & mode_ok[u][:, None]).any(axis=0))


@given(config=configs(max_users=4), seed=st.integers(0, 2**32 - 1), num_envs=st.integers(1, 5))
def test_vector_env_random_configs(config, seed, num_envs):
    envs = AIGCEdgeVectorEnv(num_envs=num_envs, config=config)
    obs, _ = envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    nvec = envs.single_action_space.nvec
    for _ in range(config.horizon_slots + 2):  # through an autoreset
        problem = envs.current_problem()
        actions = rng.integers(0, nvec, size=(num_envs, nvec.size))
        ev = evaluate_decision(problem, env_spaces.actions_to_decision(actions, config))
        for i in range(num_envs):  # a batch evaluates as its slots do one by one
            sub = problem.select(i)
            decision = env_spaces.actions_to_decision(actions[i], config)
            sub_ev = evaluate_decision(sub, decision)
            check_served_constraints(sub, decision, sub_ev)
            np.testing.assert_array_equal(ev.served[i], sub_ev.served)
            assert ev.total_cost[i] == pytest.approx(float(sub_ev.total_cost), rel=1e-12, abs=1e-12)
        obs, rewards, terms, truncs, infos = envs.step(actions)
        assert envs.observation_space.contains(obs) and np.all(np.isfinite(rewards))
        assert all(np.all(np.isfinite(v)) for v in infos.values())
        np.testing.assert_array_equal(rewards, np.where(infos["_cost"], -config.reward_scale * infos["cost"], 0.0))
        masks = envs.action_masks()
        offsets = np.concatenate([[0], np.cumsum(nvec)])
        for lo, hi in zip(offsets[:-1], offsets[1:], strict=True):
            assert masks[:, lo:hi].any(axis=1).all()  # one allowed choice per sub-space


def test_package_registers_every_scenario():
    import gymnasium as gym

    for env_id in aigc_edge_env.SCENARIOS:
        assert env_id in gym.registry
