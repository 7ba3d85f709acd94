"""The ``mpc`` policy (aigc_edge_env/policies/mpc.py): re-planning on sampled futures.

* the inverse of the Shannon rate, the env's distances;
* names, defaults and bad parameters;
* without batteries it is ``exact`` bit for bit (no prices);
* it decides from the slot, the distances and its own stream alone, and the same seed replays;
* where batteries bind it beats the myopic ``exact`` and stays above the hindsight bound;
* the priced wrapper on an ``mpc`` base: a zero action is ``mpc``.
"""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import seeding

from aigc_edge_env import dynamics, physics
from aigc_edge_env.baselines import hindsight_bound
from aigc_edge_env.baselines.hindsight import dual_bound, episode_slots, maximise_dual
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.policies.mpc import MPC_DEFAULTS, MPCPolicy
from aigc_edge_env.policies.registry import make_policy, mpc_policy_name
from aigc_edge_env.priced import PricedActionWrapper

#: Scarce batteries and a slow edge on a short episode (tests/test_hindsight.py's): the battery binds.
SMALL = {"n_users": 3, "horizon_slots": 8, "battery_enabled": True, "battery_initial_j_range": (5.0, 20.0),
         "harvest_j_range": (0.0, 2.0), "edge_steps_per_s": 6.0, "device_clock_ghz_range": (1.5, 3.0)}
MPC = mpc_policy_name(2, 6)


def cost(config: dict, name: str, seed: int) -> float:
    return run_episode(AIGCEdgeEnv(config=config), make_policy(name), seed).metrics["cost"]


def test_gain_from_rate_inverts_the_shannon_rate() -> None:
    gain = np.array([1e-20, 3e-15, 1e-12, 4e-9, 2e-7])
    rate = physics.shannon_rate_bps(1e6, 0.2, gain, 4e-21)
    np.testing.assert_allclose(physics.gain_from_rate_bps(1e6, 0.2, rate, 4e-21), gain, rtol=1e-9)


def test_env_distances_are_the_episodes_and_a_copy() -> None:
    env = AIGCEdgeEnv(config=SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        _ = env.distance_m
    env.reset(seed=3)
    distance = env.distance_m
    assert np.all((distance >= env.config.distance_m_range[0]) & (distance <= env.config.distance_m_range[1]))
    distance[:] = 0.0
    assert np.all(env.distance_m > 0)
    start = dynamics.reset_state(env.config, seeding.np_random(3)[0], n_systems=None)  # the episode's first state
    np.testing.assert_array_equal(env.distance_m, start.distance_m)
    problem = env.current_problem()  # the distance and the first fading explain the first slot's rate
    faded = physics.gain_from_rate_bps(env.config.bandwidth_per_user_hz, env.config.user_tx_power_w,
                                       problem.uplink_rate_bps, env.config.noise_psd_w_per_hz)
    np.testing.assert_allclose(faded / physics.path_gain(env.distance_m), np.abs(start.fading) ** 2, rtol=1e-6)


def test_names_defaults_and_bad_parameters() -> None:
    default = make_policy("mpc")
    assert isinstance(default, MPCPolicy) and (default.every, default.slots) == (MPC_DEFAULTS["every"],
                                                                                  MPC_DEFAULTS["slots"])
    named = make_policy("mpc(every=3,slots=7)")
    assert isinstance(named, MPCPolicy) and (named.every, named.slots, named.name) == (3, 7, "mpc(every=3,slots=7)")
    assert mpc_policy_name(3, 7) == "mpc(every=3,slots=7)"
    with pytest.raises(ValueError, match="every must be an integer number of slots >= 1"):
        make_policy("mpc(every=0,slots=7)")
    with pytest.raises(ValueError, match="slots must be an integer number of slots >= 1"):
        MPCPolicy(every=2, slots=1.5)  # type: ignore[arg-type]
    for bad in ("mpc(every=3)", "mpc(slots=3,every=2)", "exact+mpc", "mpc(every=-1,slots=2)"):
        with pytest.raises(ValueError, match="unknown policy"):
            make_policy(bad)


def test_without_batteries_it_is_exact() -> None:
    config = {"n_users": 4, "horizon_slots": 6}
    env = AIGCEdgeEnv(config=config)
    played = run_episode(env, make_policy(MPC), 1)
    assert played.per_slot["cost"] == run_episode(AIGCEdgeEnv(config=config), make_policy("exact"), 1).per_slot["cost"]


def test_it_decides_from_the_slot_the_distances_and_its_own_stream() -> None:
    env = AIGCEdgeEnv(config=SMALL)
    played = make_policy(MPC)
    observation, _ = env.reset(seed=2)
    replay = make_policy(MPC)  # sees nothing of the env but the slot and the distances
    replay.reset(2)
    played.reset(2)
    for _ in range(SMALL["horizon_slots"]):
        problem = env.current_problem()
        replay.observe(SimpleNamespace(distance_m=env.distance_m))
        action = played.act(env, observation)
        np.testing.assert_array_equal(env.decision_to_action(replay.decide(problem, observation)), action)
        observation = env.step(action)[0]
    first, second = (run_episode(AIGCEdgeEnv(config=SMALL), make_policy(MPC), 2).per_slot["cost"] for _ in range(2))
    assert first == second  # the same seed, the same sampled futures


def test_where_batteries_bind_it_beats_exact_and_stays_above_the_bound() -> None:
    for seed in range(3):
        planned = cost(SMALL, MPC, seed)
        assert planned < cost(SMALL, "exact", seed) - 1.0, seed  # 3-7 cost units of 59-63 on these seeds
        assert hindsight_bound("AIGCEdge-v0", seed, SMALL).lower_bound <= planned + 1e-9


def test_zero_action_on_an_mpc_base_is_mpc() -> None:
    env = PricedActionWrapper(gym.make("AIGCEdge-v0", config=SMALL), base_policy=MPC)
    env.reset(seed=5)
    costs = [env.step(np.zeros(3, dtype=np.float32))[4]["cost"] for _ in range(SMALL["horizon_slots"])]
    assert costs == run_episode(AIGCEdgeEnv(config=SMALL), make_policy(MPC), 5).per_slot["cost"]


def test_the_dual_refuses_warm_starts_that_would_not_bound() -> None:
    episode = episode_slots("AIGCEdge-v0", 1, SMALL)
    for bad in ((), (-0.1,), (np.array([0.2, -0.1, 0.3]),), (np.linspace(0.0, 1.0, 8)[:, None],)):
        with pytest.raises(ValueError, match="initial_prices_per_j"):
            maximise_dual(episode, max_rounds=0, tolerance=1e-3, initial_prices_per_j=bad)
    warm = maximise_dual(episode, max_rounds=0, tolerance=1e-3, initial_prices_per_j=(np.array([0.2, 0.0, 0.4]),))
    assert warm.lower_bound == pytest.approx(dual_bound(episode, np.tile([0.2, 0.0, 0.4], (8, 1))))


def test_the_dual_without_its_final_master_has_the_same_prices() -> None:
    """``final_master=False`` (mpc's plans) skips only the master LP after the last round."""
    episode = episode_slots("AIGCEdge-v0", 0, SMALL)
    for rounds in (0, 1, 3):
        full = maximise_dual(episode, max_rounds=rounds, tolerance=1e-12)
        short = maximise_dual(episode, max_rounds=rounds, tolerance=1e-12, final_master=False)
        assert full.rounds == short.rounds == rounds  # the tolerance is never met: every round runs
        np.testing.assert_array_equal(short.prices_per_j, full.prices_per_j)
        assert short.lower_bound == full.lower_bound
        assert short.master is not None and len(short.columns.slot) == len(full.columns.slot)
