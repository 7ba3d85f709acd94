"""Config validation: every invalid value raises ConfigError naming the field; overrides work."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import aigc_edge_env
from aigc_edge_env import SCENARIOS, AIGCEdgeConfig, ConfigError, TabulatedErrorCurve, make_config
from aigc_edge_env.config import FIELD_RANGES, default_config

INVALID = [
    # (overrides, field named in the message)
    ({"total_bandwidth_hz": -20e6}, "total_bandwidth_hz"),
    ({"total_bandwidth_hz": 0.0}, "total_bandwidth_hz"),
    ({"total_bandwidth_hz": math.nan}, "total_bandwidth_hz"),
    ({"step_levels": (50, 5)}, "step_levels"),  # S_min > S_max
    ({"step_levels": (5, 10, 10, 20)}, "step_levels"),  # not strictly increasing
    ({"step_levels": ()}, "step_levels"),
    ({"step_levels": (0, 5)}, "step_levels"),
    ({"step_levels": (5.5, 10)}, "step_levels"),
    ({"n_users": 0}, "n_users"),
    ({"n_users": -3}, "n_users"),
    ({"n_users": 2.5}, "n_users"),
    ({"n_users": True}, "n_users"),
    ({"horizon_slots": 0}, "horizon_slots"),
    ({"task_probability": 1.5}, "task_probability"),
    ({"task_probability": -0.1}, "task_probability"),
    ({"task_probability": math.nan}, "task_probability"),
    ({"fading_correlation": 1.1}, "fading_correlation"),
    ({"upload_mbit_range": (4.0, 1.0)}, "upload_mbit_range"),  # low > high
    ({"upload_mbit_range": (0.0, 1.0)}, "upload_mbit_range"),  # sizes must be > 0
    ({"distance_m_range": (20.0, 100.0, 300.0)}, "distance_m_range"),
    ({"device_clock_ghz_range": (-1.0, 3.0)}, "device_clock_ghz_range"),
    ({"deadline_s_range": (0.0, 30.0)}, "deadline_s_range"),
    ({"utility_weight_range": (-0.5, 1.5)}, "utility_weight_range"),
    ({"harvest_j_range": (5.0, 1.0)}, "harvest_j_range"),
    ({"battery_initial_j_range": (50.0, 150.0)}, "battery_initial_j_range"),  # above the capacity
    ({"user_tx_power_w": 0.0}, "user_tx_power_w"),
    ({"user_rx_power_w": -0.1}, "user_rx_power_w"),
    ({"weight_time_per_s": -1.0}, "weight_time_per_s"),
    ({"weight_energy_per_j": math.inf}, "weight_energy_per_j"),
    ({"edge_steps_per_s": 0.0}, "edge_steps_per_s"),
    ({"edge_step_capacity": -1}, "edge_step_capacity"),
    ({"edge_step_capacity": 60.5}, "edge_step_capacity"),
    ({"device_step_capacity": 3}, "device_step_capacity"),  # below the smallest level
    ({"reward_scale": 0.0}, "reward_scale"),
    ({"battery_enabled": "yes"}, "battery_enabled"),
    ({"noise_psd_dbm_per_hz": math.nan}, "noise_psd_dbm_per_hz"),
    ({"drop_cost": 1.0}, "drop_cost"),  # below the largest feasible request cost
    ({"drop_cost": math.nan}, "drop_cost"),
    ({"edge_error_curve": {"eps_inf": 4.0, "a": 550.0}}, "edge_error_curve"),  # missing key
    ({"edge_error_curve": {"eps_inf": 4.0, "a": 550.0, "b": 1.77, "c": 1.0}}, "edge_error_curve"),
    ({"edge_error_curve": {"eps_inf": -1.0, "a": 550.0, "b": 1.77}}, "edge_error_curve.eps_inf"),
    ({"edge_error_curve": {"eps_inf": 4.0, "a": 550.0, "b": 0.0}}, "edge_error_curve.b"),
    ({"device_error_curve": {"steps": [10, 20], "errors": [5.0]}}, "device_error_curve"),
    ({"device_error_curve": {"steps": [20, 10], "errors": [5.0, 6.0]}}, "device_error_curve.steps"),
    ({"device_error_curve": {"steps": [10, 20], "errors": [5.0, 6.0]}}, "device_error_curve.errors"),  # rising
    ({"device_error_curve": {"steps": [10, 20, 30], "errors": [9.0, 8.9, 5.0]}}, "device_error_curve.errors"),
    ({"device_error_curve": "power-law"}, "device_error_curve"),
    ({"edge_error_curve": {"steps": [20, 50], "errors": [9.0, 5.0]}}, "edge_error_curve.steps"),  # above S_min
    ({"edge_error_curve": {"eps_inf": "low", "a": 550.0, "b": 1.77}}, "edge_error_curve.eps_inf"),
    ({"edge_error_curve": {"eps_inf": 4.0, "a": None, "b": 1.77}}, "edge_error_curve.a"),
    ({"edge_error_curve": {"eps_inf": 4.0, "a": "550", "b": True}}, "edge_error_curve.a"),
    ({"device_error_curve": {"steps": 10, "errors": [5.0]}}, "device_error_curve.steps"),
    ({"device_error_curve": {"steps": [10, 20], "errors": "5,4"}}, "device_error_curve.errors"),
    ({"device_error_curve": {"steps": [10, "x"], "errors": [5.0, 4.0]}}, "device_error_curve.steps"),
    # outside the ranges that keep the model finite (FIELD_RANGES)
    ({"noise_psd_dbm_per_hz": 0.0}, "noise_psd_dbm_per_hz"),
    ({"noise_psd_dbm_per_hz": 7.0}, "noise_psd_dbm_per_hz"),
    ({"distance_m_range": (20.0, 1e300)}, "distance_m_range"),
    ({"device_clock_ghz_range": (0.5, 1e300)}, "device_clock_ghz_range"),
    ({"total_bandwidth_hz": 1e300}, "total_bandwidth_hz"),
    ({"device_energy_coefficient": 1e300}, "device_energy_coefficient"),
    ({"user_tx_power_w": 1e-300}, "user_tx_power_w"),
    ({"step_levels": (5, 10**30)}, "step_levels"),
    ({"edge_step_capacity": 10**30}, "edge_step_capacity"),
    ({"n_users": 10**30}, "n_users"),
    ({"weight_time_per_s": 1e300}, "weight_time_per_s"),
    ({"reward_scale": 1e300}, "reward_scale"),
    ({"distance_m_range": {20.0, 300.0}}, "distance_m_range"),  # a set has no order
    ({"step_levels": {5: 1, 10: 2}}, "step_levels"),
    ({"drop_cost": 1e300}, "drop_cost"),
]


@pytest.mark.parametrize("overrides, field", INVALID, ids=[f"{f}={list(o.values())[0]!r}" for o, f in INVALID])
def test_invalid_config_raises_config_error_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        make_config(None, overrides)
    assert f"'{field}'" in str(info.value)
    assert isinstance(info.value, ValueError)  # ConfigError is a ValueError


@pytest.mark.parametrize("field", ["upload_mbit_range", "step_levels"])
def test_non_sequence_ranges_raise_config_error(field):
    with pytest.raises(ConfigError, match=field):
        make_config(None, {field: 5.0})


@pytest.mark.parametrize("config", [5, "n_users=3", [("n_users", 3)]])
def test_a_config_that_is_not_a_mapping_is_refused(config):
    with pytest.raises(ConfigError, match="config must be a mapping"):
        gym.make("AIGCEdge-v0", config=config)


def _extreme(name: str, choice: int):
    """The low end, the high end, or the default of a field's accepted range (pairs: low-low, low-high, ...)."""
    low, high = FIELD_RANGES[name]
    default = getattr(AIGCEdgeConfig(), name)
    if name.endswith("_range"):
        return [(low, low), (low, high), (high, high), default][choice]
    if name == "step_levels":
        return [(low,), (low, high), (high,), default][choice]
    return [low, high, default, default][choice]


@st.composite
def extreme_configs(draw):
    """Configs with every numeric field at an end of its accepted range (or its default), batteries on or off."""
    fields = sorted(FIELD_RANGES)
    overrides = {name: _extreme(name, draw(st.integers(0, 3))) for name in fields if draw(st.booleans())}
    overrides["n_users"] = draw(st.sampled_from([1, 3, 10_000]))
    overrides["horizon_slots"] = 3
    overrides["battery_enabled"] = draw(st.booleans())
    levels = overrides.get("step_levels", AIGCEdgeConfig().step_levels)
    overrides["device_step_capacity"] = draw(st.sampled_from([levels[0], levels[-1]]))
    capacity = overrides.get("battery_capacity_j", AIGCEdgeConfig().battery_capacity_j)
    low, high = overrides.get("battery_initial_j_range", (0.0, 0.0))
    overrides["battery_initial_j_range"] = (min(low, capacity), min(high, capacity))
    for name in ("edge_error_curve", "device_error_curve"):
        overrides[name] = draw(st.sampled_from([
            {"eps_inf": 0.0, "a": 0.0, "b": 100.0}, {"eps_inf": 1e6, "a": 1e12, "b": 1e-9},
            {"steps": [1.0, 1e6], "errors": [1e12, 0.0]}, AIGCEdgeConfig().edge_error_curve]))
    return overrides


@settings(max_examples=60, deadline=None)
@given(overrides=extreme_configs(), seed=st.integers(0, 2**16))
def test_every_accepted_config_gives_finite_observations_rewards_and_costs(overrides, seed):
    """Construction's accepted ranges keep the model finite: any action, any slot, both envs."""
    config = AIGCEdgeConfig(**overrides)
    rng = np.random.default_rng(seed)
    env = aigc_edge_env.AIGCEdgeEnv(config)
    observation, _ = env.reset(seed=seed)
    for _ in range(config.horizon_slots):
        assert np.all(np.isfinite(observation)) and np.all((observation >= 0) & (observation <= 1))
        observation, reward, _, _, info = env.step(rng.integers(0, env.action_space.nvec))
        assert np.isfinite(reward) and all(np.isfinite(value) for value in info.values()), info
    envs = aigc_edge_env.AIGCEdgeVectorEnv(num_envs=2, config=config)
    envs.reset(seed=seed)
    _, rewards, _, _, infos = envs.step(rng.integers(0, envs.single_action_space.nvec, size=(2, 2 * config.n_users)))
    assert np.all(np.isfinite(rewards)) and all(np.all(np.isfinite(v)) for k, v in infos.items() if k[0] != "_")


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ConfigError, match="n_user_count"):
        make_config(None, {"n_user_count": 5})
    with pytest.raises(ConfigError, match="n_user_count"):
        AIGCEdgeConfig().replace(n_user_count=5)
    with pytest.raises(ConfigError, match="AIGCEdge-v9"):
        make_config("AIGCEdge-v9")


def test_invalid_config_through_gym_make_names_the_field():
    with pytest.raises(ConfigError, match="task_probability"):
        gym.make("AIGCEdge-v0", config={"task_probability": 2.0})
    with pytest.raises(ConfigError, match="bogus"):
        gym.make("AIGCEdge-v0", config={"bogus": 1})
    with pytest.raises(ConfigError, match="n_users"):
        gym.make_vec("AIGCEdge-v0", num_envs=2, vectorization_mode="vector_entry_point", config={"n_users": 0})


def test_scenarios_are_configs_of_the_same_class():
    assert set(SCENARIOS) == {"AIGCEdge-v0", "AIGCEdge-Battery-v0", "AIGCEdge-Large-v0", "AIGCEdge-Measured-v0"}
    assert make_config("AIGCEdge-v0") == AIGCEdgeConfig()
    assert make_config("AIGCEdge-Battery-v0").battery_enabled
    assert not make_config("AIGCEdge-v0").battery_enabled
    assert make_config("AIGCEdge-Large-v0").n_users == 50
    assert make_config("AIGCEdge-Large-v0", {"task_probability": 0.3}).n_users == 50  # overrides keep the base


def test_replace_and_derived_drop_cost_follow_the_new_values():
    base = AIGCEdgeConfig()
    assert base.drop_cost == base.min_drop_cost()
    longer = base.replace(deadline_s_range=(60.0, 60.0))
    # C_drop bound grows with w_T * Tmax: +30 s of deadline adds at least 30 to it
    assert longer.drop_cost == longer.min_drop_cost() >= base.drop_cost + 30.0
    explicit = base.replace(drop_cost=base.min_drop_cost() + 100.0)
    assert explicit.drop_cost == base.min_drop_cost() + 100.0
    assert explicit.replace(n_users=3).drop_cost == explicit.drop_cost  # an explicit C_drop is kept
    with pytest.raises(dataclass_frozen_error()):
        base.n_users = 3  # type: ignore[misc]


def dataclass_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_config_dict_round_trip_and_full_config_override():
    config = AIGCEdgeConfig(n_users=3, device_error_curve={"steps": [5, 10, 50], "errors": [30.0, 13.0, 5.0]})
    assert isinstance(config.device_error_curve, TabulatedErrorCurve)
    again = make_config(None, config.to_dict())
    assert again == config
    assert make_config("AIGCEdge-Large-v0", config) is config  # a full config is used as is
    assert isinstance(config.step_levels, tuple) and isinstance(config.upload_mbit_range, tuple)


def test_an_override_without_effect_is_refused():
    for overrides, needs in (({"harvest_j_range": (0.0, 5.0)}, "battery_enabled=True"),
                             ({"battery_capacity_j": 1e6}, "battery_enabled=True"),
                             ({"trace_uplink_fraction": 0.5}, "channel_model='trace'")):
        message = f"'{next(iter(overrides))}' = .* has no effect unless {re.escape(needs)}"
        with pytest.raises(ConfigError, match=message):
            make_config("AIGCEdge-v0", overrides)
    assert make_config(None, {"battery_enabled": True, "harvest_j_range": (0.0, 5.0)}).harvest_j_range == (0.0, 5.0)
    assert make_config(None, {"channel_model": "trace", "trace_uplink_fraction": 0.3}).trace_uplink_fraction == 0.3
    assert make_config(None, default_config().to_dict()) == default_config()  # a full dict restates the defaults
    assert not make_config("AIGCEdge-Battery-v0", {"battery_enabled": False}).battery_enabled


def test_config_overrides_through_gym_make():
    env = gym.make("AIGCEdge-v0", config={"n_users": 3, "step_levels": [5, 25, 50], "horizon_slots": 4,
                                          "task_probability": 1.0})
    assert env.unwrapped.config.n_users == 3
    assert env.action_space.nvec.tolist() == [2, 2, 2, 3, 3, 3]
    assert env.observation_space.shape == (9 * 3 + 3,)
    obs, _ = env.reset(seed=0)
    assert obs[:3].tolist() == [1.0, 1.0, 1.0]  # every user has a request with p_task = 1
    truncated = [env.step(env.action_space.sample())[3] for _ in range(4)]
    assert truncated == [False, False, False, True]
    vec = gym.make_vec("AIGCEdge-Battery-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       config={"n_users": 4})
    assert vec.unwrapped.config.battery_enabled and vec.single_action_space.nvec.tolist() == [2] * 4 + [8] * 4


def test_numpy_scalars_are_accepted():
    config = AIGCEdgeConfig(n_users=np.int64(4), task_probability=np.float32(0.5), step_levels=np.array([5, 10]))
    assert config.n_users == 4 and config.step_levels == (5, 10)


def test_numpy_scalars_and_0d_arrays_become_python_numbers():
    config = make_config("AIGCEdge-v0", {"n_users": np.uint8(200), "weight_error": np.array(0.3),
                                         "distance_m_range": np.array([np.float32(10), 50])})
    assert type(config.n_users) is int and config.n_users == 200  # a uint8 would overflow in the env's sums
    assert type(config.weight_error) is float and config.distance_m_range == (10.0, 50.0)
    assert all(type(v) is float for v in config.distance_m_range)
    env = gym.make("AIGCEdge-v0", config={"n_users": np.uint8(200)})
    env.reset(seed=0)
    assert env.unwrapped.config.n_users == 200 and env.observation_space.shape[0] > 200
    with pytest.raises(ConfigError, match="'distance_m_range' = array\\(5.\\) is invalid: accepted an ordered "
                                          "sequence"):
        make_config("AIGCEdge-v0", {"distance_m_range": np.array(5.0)})


def test_error_curve_objects_holding_strings_are_refused_by_field():
    from aigc_edge_env.error_curves import PowerLawErrorCurve

    with pytest.raises(ConfigError, match="'edge_error_curve.eps_inf' = '1' is invalid: accepted a real number"):
        make_config("AIGCEdge-v0", {"edge_error_curve": PowerLawErrorCurve("1", "2", "3")})
    with pytest.raises(ConfigError, match="'device_error_curve.steps' = 'abc' is invalid"):
        make_config("AIGCEdge-v0", {"device_error_curve": TabulatedErrorCurve("abc", (1.0, 0.5))})


def test_package_exports():
    for name in aigc_edge_env.__all__:
        assert hasattr(aigc_edge_env, name), name


@settings(max_examples=40, deadline=None)
@given(overrides=extreme_configs(), seed=st.integers(0, 2**16))
@example(overrides={"n_users": 4, "edge_step_capacity": FIELD_RANGES["edge_step_capacity"][1]}, seed=0)
@example(overrides={"n_users": 4, "step_levels": (1, 10**6), "device_step_capacity": 10**6,
                    "edge_step_capacity": 10**12}, seed=1)
def test_every_solver_runs_on_every_accepted_config(overrides, seed):
    """Every solver decides, and the certified bounds hold, at the ends of the accepted ranges."""
    from aigc_edge_env.baselines import SOLVERS, lower_bound, solve_exact

    config = AIGCEdgeConfig(**{**overrides, "n_users": min(overrides["n_users"], 4)})
    env = aigc_edge_env.AIGCEdgeEnv(config)
    env.reset(seed=seed)
    problem = env.current_problem()
    exact = solve_exact(problem)
    bound = lower_bound(problem)
    assert np.isfinite(exact.cost) and np.isfinite(bound) and bound <= exact.cost + 1e-9 * max(1.0, abs(exact.cost))
    for name, solve in SOLVERS.items():
        cost = aigc_edge_env.evaluate_decision(problem, solve(problem, rng=np.random.default_rng(0))).total_cost
        assert np.isfinite(cost) and cost >= exact.lower_bound - 1e-9 * max(1.0, abs(cost)), name


def test_make_config_refuses_a_base_that_is_not_an_env_id_or_config() -> None:
    """Overrides passed as the first argument by mistake used to come back as they were, not as a config."""
    for base in ({"n_users": 3}, 3):
        for overrides in (None, AIGCEdgeConfig()):  # also beside a full config, which is returned as it is
            with pytest.raises(ConfigError, match=r"base \(the env id\) must be a scenario id of .* got"):
                make_config(base, overrides)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown scenario 'Nope-v9'"):
        make_config("Nope-v9", AIGCEdgeConfig())
