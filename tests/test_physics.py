"""Hand-computed cases of docs/model.md's formulas, the slot cost and the repair rule.

Every expected number is worked out by hand in the comment beside it (not by calling the
package), so these tests pin the formulas themselves.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from aigc_edge_env import (
    AIGCEdgeConfig,
    AIGCEdgeEnv,
    Decision,
    DropReason,
    PowerLawErrorCurve,
    TabulatedErrorCurve,
    evaluate_decision,
    option_grid,
    option_rows,
    option_table,
    physics,
    serve,
)

# Every parameter a hand computation uses is pinned here (docs/model.md's values), so the
# tests do not move when the project retunes its defaults.  Simple error curves:
# eps(s) = 1 + 100/s at the edge and 2 + 100/s on the device (eps(20) = 6 / 7, eps(25) = 5 / 6,
# eps(16) = 7.25 / 8.25).
HAND = {
    "edge_error_curve": {"eps_inf": 1.0, "a": 100.0, "b": 1.0},
    "device_error_curve": {"eps_inf": 2.0, "a": 100.0, "b": 1.0},
    "step_levels": (5, 10, 15, 20, 25, 30, 40, 50),
    "weight_time_per_s": 1.0, "weight_energy_per_j": 0.1, "weight_error": 0.2, "weight_utility": 1.0,
    "edge_steps_per_s": 10.0, "edge_step_capacity": 200, "device_step_capacity": 50,
    "device_cycles_per_step": 0.3e9, "device_energy_coefficient": 5e-28,
    "user_tx_power_w": 0.2, "user_rx_power_w": 0.1, "bs_tx_power_w": 1.0,
    "total_bandwidth_hz": 20e6, "noise_psd_dbm_per_hz": -174.0, "n_users": 10,
    "deadline_s_range": (30.0, 30.0), "device_clock_ghz_range": (0.5, 3.0), "utility_weight_range": (0.5, 1.5),
}
DDIM_EDGE = PowerLawErrorCurve(eps_inf=4.04, a=550.0, b=1.77)  # docs/model.md's fit to DDIM's table
DDIM_DEVICE = PowerLawErrorCurve(eps_inf=6.0, a=550.0, b=1.77)


def hand_config(**overrides) -> AIGCEdgeConfig:
    return AIGCEdgeConfig(**{**HAND, **overrides})


# --- channel ------------------------------------------------------------------------------
def test_path_loss_at_100_m_and_1_km():
    # 100 m: 128.1 + 37.6 * log10(0.1) = 128.1 - 37.6 = 90.5 dB
    # 1 km:  128.1 + 37.6 * log10(1)   = 128.1 dB
    # 2 km:  128.1 + 37.6 * 0.30103    = 139.4187 dB
    assert physics.path_loss_db(100.0) == pytest.approx(90.5, abs=1e-9)
    assert physics.path_loss_db(1000.0) == pytest.approx(128.1, abs=1e-9)
    assert physics.path_loss_db(np.array([2000.0]))[0] == pytest.approx(139.4187, abs=1e-4)


def test_channel_gain_includes_fading_power():
    # 1 km, g = 1 + 1j so |g|^2 = 2: h = 2 * 10^(-12.81) = 2 * 1.548817e-13 = 3.097634e-13
    assert physics.faded_gain(physics.path_gain(1000.0), 1 + 1j) == pytest.approx(3.097634e-13, rel=1e-6)


def test_shannon_rate_for_simple_snr():
    # b = 1 MHz, N0 = 1e-9 W/Hz -> noise 1e-3 W; p = 3 mW, h = 1 -> SNR 3: r = 1e6 log2(4) = 2 Mbit/s
    assert physics.shannon_rate_bps(1e6, 3e-3, 1.0, 1e-9) == pytest.approx(2e6, rel=1e-12)
    # same with h = 5 -> SNR 15: r = 1e6 log2(16) = 4 Mbit/s
    assert physics.shannon_rate_bps(1e6, 3e-3, np.array([5.0]), 1e-9)[0] == pytest.approx(4e6, rel=1e-12)


def test_uplink_rate_at_100_m():
    # docs/model.md values: b = 20 MHz / 10 = 2 MHz, N0 = -174 dBm/Hz = 10^-20.4 W/Hz = 3.981072e-21 W/Hz,
    # noise = 7.962143e-15 W; h(100 m, |g| = 1) = 10^-9.05 = 8.912509e-10; p h = 1.782502e-10 W;
    # SNR = 22387.2; r = 2e6 * log2(22388.2) = 2e6 * 14.45048 = 28.9010 Mbit/s.
    c = hand_config()
    assert c.bandwidth_per_user_hz == 2e6
    assert c.noise_psd_w_per_hz == pytest.approx(3.981072e-21, rel=1e-6)
    gain = physics.faded_gain(physics.path_gain(100.0), 1.0)
    rate = physics.shannon_rate_bps(c.bandwidth_per_user_hz, c.user_tx_power_w, gain, c.noise_psd_w_per_hz)
    assert rate == pytest.approx(28.9010e6, rel=1e-5)


def test_gauss_markov_fading_keeps_unit_power_and_correlation():
    rng = np.random.default_rng(0)
    g0 = physics.complex_normal(rng, (200_000,))
    g1 = physics.gauss_markov_path(g0, 0.9, physics.complex_normal(rng, (1, 200_000)))[0]
    # E|g|^2 = rho^2 + (1 - rho^2) = 1 and E[g1 conj(g0)] = rho = 0.9 (sampling error ~ 0.005)
    assert np.mean(np.abs(g0) ** 2) == pytest.approx(1.0, abs=0.02)
    assert np.mean(np.abs(g1) ** 2) == pytest.approx(1.0, abs=0.02)
    assert np.mean(g1 * np.conj(g0)).real == pytest.approx(0.9, abs=0.02)
    # rho = 1 freezes the fading, rho = 0 makes it independent
    assert np.array_equal(physics.gauss_markov_path(g0[:5], 1.0, physics.complex_normal(rng, (1, 5)))[0], g0[:5])


def test_gauss_markov_path_is_the_recursion_step_by_step():
    rng = np.random.default_rng(1)
    start, innovations = physics.complex_normal(rng, (4,)), physics.complex_normal(rng, (6, 4))
    expected, fading = [], start
    for innovation in innovations:
        fading = 0.7 * fading + math.sqrt(1 - 0.7**2) * innovation
        expected.append(fading)
    np.testing.assert_array_equal(physics.gauss_markov_path(start, 0.7, innovations), expected)


# --- computation --------------------------------------------------------------------------
def test_local_time_and_energy():
    # c_L = 0.3e9 cycles/step, f = 1.5 GHz: 0.3e9 / 1.5e9 = 0.2 s per step -> 20 steps: 4 s
    # kappa f^2 c_L = 5e-28 * 2.25e18 * 3e8 = 0.3375 J per step -> 20 steps: 6.75 J
    c = hand_config()
    assert physics.local_step_time_s(c.device_cycles_per_step, 1.5e9) * 20 == pytest.approx(4.0, rel=1e-12)
    energy = physics.local_step_energy_j(c.device_energy_coefficient, c.device_cycles_per_step, 1.5e9)
    assert energy * 20 == pytest.approx(6.75, rel=1e-12)


def test_edge_compute_time_with_kkt_split_three_users():
    # s = (4, 9, 16), F_E = 10: sqrt = (2, 3, 4), Q = 9.
    # f_n = 10 sqrt(s_n) / 9 = (20/9, 30/9, 40/9) (sums to 10);
    # compute time sqrt(s_n) Q / F_E = (1.8, 2.7, 3.6) = s_n / f_n; total Q^2 / F_E = 8.1.
    steps = np.array([4.0, 9.0, 16.0])
    alloc = physics.edge_allocation_steps_per_s(steps, 10.0)
    np.testing.assert_allclose(alloc, [20 / 9, 30 / 9, 40 / 9], rtol=1e-12)
    times = physics.edge_compute_time_s(steps, 9.0, 10.0)
    np.testing.assert_allclose(times, [1.8, 2.7, 3.6], rtol=1e-12)
    np.testing.assert_allclose(steps / alloc, times, rtol=1e-12)
    assert times.sum() == pytest.approx(8.1)


def test_edge_compute_time_two_equal_users():
    # s = (25, 25), F_E = 10: Q = 10, each gets 5 steps/s and needs 25 / 5 = 5 s.
    steps = np.array([25.0, 25.0])
    np.testing.assert_allclose(physics.edge_allocation_steps_per_s(steps, 10.0), [5.0, 5.0])
    np.testing.assert_allclose(physics.edge_compute_time_s(steps, 10.0, 10.0), [5.0, 5.0])


@pytest.mark.parametrize("seed", range(5))
def test_kkt_allocation_matches_numerical_optimum(seed):
    """f_n = F_E sqrt(s_n) / Q minimises sum s_n / f_n s.t. sum f_n <= F_E (checked with scipy)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    steps = rng.uniform(1.0, 50.0, n)
    capacity = float(rng.uniform(2.0, 20.0))
    start = np.full(n, capacity / n)
    scale = np.sum(steps / start)  # objective scaled to 1 at the start, which SLSQP needs
    result = minimize(
        lambda f: np.sum(steps / f) / scale,
        x0=start,
        jac=lambda f: -steps / f**2 / scale,
        bounds=[(1e-6, capacity)] * n,
        constraints=[{"type": "ineq", "fun": lambda f: capacity - f.sum(), "jac": lambda f: -np.ones(n)}],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert result.success, result.message
    closed = physics.edge_allocation_steps_per_s(steps, capacity)
    q = np.sqrt(steps).sum()
    assert closed.sum() == pytest.approx(capacity)
    assert np.sum(steps / closed) == pytest.approx(q**2 / capacity, rel=1e-12)
    # the closed form is at least as good as the numerical optimum, and they agree
    assert np.sum(steps / closed) <= result.fun * scale * (1 + 1e-9)
    assert np.sum(steps / closed) == pytest.approx(result.fun * scale, rel=1e-8)
    np.testing.assert_allclose(result.x, closed, rtol=1e-4)


# --- quality and utility ------------------------------------------------------------------
def test_power_law_error_at_10_and_20_steps():
    # eps(10) = 4.04 + 550 * 10^-1.77 = 4.04 + 550 * 0.01698244 = 4.04 + 9.340341 = 13.380341
    #   (DDIM's FID at 10 steps: 13.36)
    # eps(20) = 4.04 + 550 * 20^-1.77 = 4.04 + 550 * exp(-1.77 * 2.995732) = 4.04 + 550 * 4.979399e-3
    #         = 4.04 + 2.738669 = 6.778669  (DDIM: 6.84)
    curve = DDIM_EDGE
    assert float(curve.error(10)) == pytest.approx(13.380341, rel=1e-6)
    assert float(curve.error(20)) == pytest.approx(6.778669, rel=1e-6)
    # device curve: same a, b, floor 6.0 -> 6.0 + 9.340341 = 15.340341
    assert float(DDIM_DEVICE.error(10)) == pytest.approx(15.340341, rel=1e-6)
    # slope -a b s^(-b-1) at 10: -550 * 1.77 * 10^-2.77 = -973.5 * 1.698244e-3 = -1.653240
    assert float(curve.slope(10)) == pytest.approx(-1.653240, rel=1e-6)


def test_power_law_is_decreasing_and_convex_on_the_levels():
    for curve in (DDIM_EDGE, DDIM_DEVICE, AIGCEdgeConfig().edge_error_curve, AIGCEdgeConfig().device_error_curve):
        levels = np.arange(1, 200, dtype=float)
        eps = curve.error(levels)
        assert np.all(np.diff(eps) < 0)
        assert np.all(np.diff(eps, 2) > 0)
        # slope agrees with a central difference of width 2e-4
        central = (curve.error(levels + 1e-4) - curve.error(levels - 1e-4)) / 2e-4
        np.testing.assert_allclose(curve.slope(levels), central, rtol=1e-6)


def test_tabulated_curve_interpolates_linearly_and_extrapolates_flat():
    # DDIM points (10, 13.36), (20, 6.84), (50, 4.67):
    # at 15: halfway -> (13.36 + 6.84) / 2 = 10.10
    # at 35: halfway between 20 and 50 -> 6.84 + (4.67 - 6.84) / 2 = 5.755
    # below 10 and above 50: flat 13.36 and 4.67
    curve = TabulatedErrorCurve(steps=(10.0, 20.0, 50.0), errors=(13.36, 6.84, 4.67))
    np.testing.assert_allclose(curve.error([15, 35, 5, 100, 20]), [10.10, 5.755, 13.36, 4.67, 6.84])
    # slopes: (6.84 - 13.36) / 10 = -0.652 on [10, 20), (4.67 - 6.84) / 30 = -0.0723333 on [20, 50), 0 outside
    np.testing.assert_allclose(curve.slope([15, 35, 5, 100]), [-0.652, -0.0723333333, 0.0, 0.0])


def test_tabulated_curve_works_in_the_env_cost(hand_problem):
    # a tabulated device curve with eps = 13.36 at 10 steps changes a local request's cost
    # by w_Q * (13.36 - power-law 15.340341) = 0.2 * (-1.980341) = -0.3960682
    table = {"steps": [5, 10, 20, 50], "errors": [30.0, 13.36, 6.84, 4.67]}
    base, tab = hand_config(device_error_curve=DDIM_DEVICE), hand_config(device_error_curve=table)
    assert isinstance(tab.device_error_curve, TabulatedErrorCurve)
    problem_b, problem_t = hand_problem(base, device_clock_hz=[1e9]), hand_problem(tab, device_clock_hz=[1e9])
    decision = Decision(offload=[False], steps=[10])
    diff = evaluate_decision(problem_t, decision).total_cost - evaluate_decision(problem_b, decision).total_cost
    assert float(diff) == pytest.approx(-0.3960682, rel=1e-6)


def test_utility_is_weighted_log_one_plus_steps():
    # 1.5 ln(1 + 9) = 1.5 * 2.302585 = 3.453878;  0.5 ln(26) = 0.5 * 3.258097 = 1.629048
    assert physics.step_utility(1.5, 9) == pytest.approx(3.453878, rel=1e-6)
    np.testing.assert_allclose(physics.step_utility(np.array([0.5, 0.0]), np.array([25, 50])), [1.629048, 0.0],
                               rtol=1e-6)


# --- one full slot by hand ----------------------------------------------------------------
def _two_user_slot(hand_problem):
    """User 0 local, user 1 offloaded, user 2 without request (weights 1, 0.1, 0.2, 1; F_E = 10).

    user 0: local, 20 steps, 1.5 GHz, u = 1: T = 4 s, E = 6.75 J, eps = 2 + 100/20 = 7,
            U = ln 21 = 3.044522; C = 4 + 0.675 + 1.4 - 3.044522 = 3.030478
    user 1: edge, 25 steps, D = 2 Mbit at 4 Mbit/s (0.5 s), O = 3 Mbit at 6 Mbit/s (0.5 s),
            Q = sqrt(25) = 5 -> compute 5 * 5 / 10 = 2.5 s; T = 3.5 s;
            E = 0.2 * 0.5 + 0.1 * 0.5 = 0.15 J; eps = 1 + 100/25 = 5; U = 0.5 ln 26 = 1.629048;
            C = 3.5 + 0.015 + 1.0 - 1.629048 = 2.885952
    user 2: no request -> 0.   Slot cost 3.030478 + 2.885952 = 5.916430.
    """
    config = hand_config()
    problem = hand_problem(
        config,
        has_request=[True, True, False],
        upload_bits=[1e6, 2e6, 1e6],
        download_bits=[1e6, 3e6, 1e6],
        uplink_rate_bps=[1e7, 4e6, 1e7],
        downlink_rate_bps=[1e7, 6e6, 1e7],
        device_clock_hz=[1.5e9, 1e9, 1e9],
        utility_weight=[1.0, 0.5, 1.0],
    )
    return problem, Decision(offload=[False, True, True], steps=[20, 25, 50])


def test_full_slot_cost_by_hand(hand_problem):
    problem, decision = _two_user_slot(hand_problem)
    ev = evaluate_decision(problem, decision)
    assert float(ev.total_cost) == pytest.approx(5.916430, abs=2e-6)
    np.testing.assert_allclose(ev.cost, [3.030478, 2.885952, 0.0], atol=2e-6)
    np.testing.assert_allclose(ev.time_s, [4.0, 3.5, 0.0], rtol=1e-12)
    np.testing.assert_allclose(ev.energy_j, [6.75, 0.15, 0.0], rtol=1e-12)
    np.testing.assert_allclose(ev.error, [7.0, 5.0, 0.0], rtol=1e-12)
    assert ev.served.tolist() == [True, True, False]
    assert ev.offloaded.tolist() == [False, True, False]  # user 2's offload bit is ignored
    assert not ev.dropped.any()
    assert float(ev.sqrt_steps_sum) == pytest.approx(5.0)
    assert int(ev.edge_steps) == 25


def test_congestion_couples_offloaded_users_by_hand(hand_problem):
    """Add user 3 offloading 16 steps (1 Mbit up at 2 Mbit/s, 1 Mbit down at 2 Mbit/s, u = 1).

    Q = 5 + 4 = 9: user 1's compute time becomes 5 * 9 / 10 = 4.5 s (T = 5.5 s, C = 4.885952);
    user 3: T = 0.5 + 4 * 9 / 10 + 0.5 = 4.6 s, E = 0.15 J, eps = 1 + 100/16 = 7.25,
    U = ln 17 = 2.833213, C = 4.6 + 0.015 + 1.45 - 2.833213 = 3.231787.
    Slot: 3.030478 + 4.885952 + 3.231787 = 11.148217.
    """
    config = hand_config()
    problem = hand_problem(
        config,
        has_request=[True, True, False, True],
        upload_bits=[1e6, 2e6, 1e6, 1e6],
        download_bits=[1e6, 3e6, 1e6, 1e6],
        uplink_rate_bps=[1e7, 4e6, 1e7, 2e6],
        downlink_rate_bps=[1e7, 6e6, 1e7, 2e6],
        device_clock_hz=[1.5e9, 1e9, 1e9, 1e9],
        utility_weight=[1.0, 0.5, 1.0, 1.0],
    )
    ev = evaluate_decision(problem, Decision(offload=[False, True, False, True], steps=[20, 25, 5, 16]))
    assert float(ev.total_cost) == pytest.approx(11.148217, abs=3e-6)
    np.testing.assert_allclose(ev.time_s, [4.0, 5.5, 0.0, 4.6], rtol=1e-12)
    assert float(ev.sqrt_steps_sum) == pytest.approx(9.0)
    # the option table's decomposition: sum of congestion-free base costs + (w_T / F_E) Q^2
    # = 3.030478 + (4.885952 - 4.5) + (3.231787 - 3.6) + 0.1 * 81 = 11.148217
    table = option_table(problem.select(slice(0, 2)))  # users 0, 1 on the default levels 20, 25
    base = table.local_cost[0, 3] + table.edge_base_cost[1, 4]
    assert table.levels[3] == 20 and table.levels[4] == 25
    assert base + table.congestion_weight * 25 == pytest.approx(3.030478 + 2.885952, abs=2e-6)


# --- repair rule --------------------------------------------------------------------------
def test_device_capacity_drop(hand_problem):
    # S^L_max = 20: a local request with 25 steps is dropped, one with 20 is served.
    config = hand_config(device_step_capacity=20)
    problem = hand_problem(config, device_clock_hz=[3e9, 3e9])
    ev = evaluate_decision(problem, Decision(offload=[False, False], steps=[25, 20]))
    assert ev.dropped.tolist() == [True, False]
    assert ev.drop_reason.tolist() == [DropReason.DEVICE_CAPACITY, DropReason.NONE]
    assert ev.cost[0] == config.drop_cost
    assert ev.energy_j[0] == 0.0 and ev.time_s[0] == 0.0 and ev.utility[0] == 0.0
    # the capacity limits local runs only: offloading 25 steps is fine
    assert evaluate_decision(problem, Decision(offload=[True, False], steps=[25, 20])).feasible


def test_edge_capacity_prefix_rule(hand_problem):
    # S^E_max = 40; users 0, 1, 3, 4 offload 20, 15, 10, 5 steps, user 2 runs 50 locally.
    # Running edge totals in user order: 20, 35, 45 (> 40: drop user 3), and every later
    # offloaded request is dropped too (user 4, though its 5 steps would still fit: prefix rule).
    config = hand_config(edge_step_capacity=40)
    problem = hand_problem(config, device_clock_hz=[3e9] * 5)
    ev = evaluate_decision(problem, Decision(offload=[True, True, False, True, True], steps=[20, 15, 50, 10, 5]))
    assert ev.served.tolist() == [True, True, True, False, False]
    assert ev.drop_reason.tolist() == [0, 0, 0, DropReason.EDGE_CAPACITY, DropReason.EDGE_CAPACITY]
    assert int(ev.edge_steps) == 35 <= config.edge_step_capacity
    # Q over the served edge requests only: sqrt(20) + sqrt(15)
    assert float(ev.sqrt_steps_sum) == pytest.approx(math.sqrt(20) + math.sqrt(15))
    np.testing.assert_allclose(ev.cost[3:], config.drop_cost)
    np.testing.assert_allclose(ev.energy_j[3:], 0.0)


def test_edge_capacity_zero_drops_every_offload(hand_problem):
    config = hand_config(edge_step_capacity=0)
    problem = hand_problem(config, device_clock_hz=[3e9] * 2)
    ev = evaluate_decision(problem, Decision(offload=[True, False], steps=[5, 5]))
    assert ev.drop_reason.tolist() == [DropReason.EDGE_CAPACITY, DropReason.NONE]


def test_deadline_drop_local(hand_problem):
    # 20 steps at 1.5 GHz take 4 s; a 3 s deadline drops it, a 4 s deadline serves it.
    config = hand_config(deadline_s_range=(3.0, 4.0))
    problem = hand_problem(config, device_clock_hz=[1.5e9, 1.5e9], deadline_s=[3.0, 4.0])
    ev = evaluate_decision(problem, Decision(offload=[False, False], steps=[20, 20]))
    assert ev.drop_reason.tolist() == [DropReason.DEADLINE, DropReason.NONE]
    assert ev.time_s[1] == pytest.approx(4.0)


def test_q_is_recomputed_after_drops(hand_problem):
    """Two offloads sharing the GPU; the first misses its deadline, the second uses the final Q.

    Both: 1 Mbit up and down at 2 Mbit/s (transfer 1 s). With both admitted Q = sqrt(25) + sqrt(16)
    = 9: user 0 needs 1 + 5 * 9 / 10 = 5.5 s > its 2 s deadline -> dropped. Then Q = 4 and user 1
    needs 1 + 4 * 4 / 10 = 2.6 s (not 1 + 4 * 9 / 10 = 4.6 s with the stale Q).
    """
    config = hand_config(deadline_s_range=(1.0, 30.0))
    problem = hand_problem(config, uplink_rate_bps=[2e6, 2e6], downlink_rate_bps=[2e6, 2e6], deadline_s=[2.0, 30.0])
    ev = evaluate_decision(problem, Decision(offload=[True, True], steps=[25, 16]))
    assert ev.drop_reason.tolist() == [DropReason.DEADLINE, DropReason.NONE]
    assert float(ev.sqrt_steps_sum) == pytest.approx(4.0)
    assert ev.time_s[1] == pytest.approx(2.6)
    assert ev.offloaded.tolist() == [False, True]
    assert int(ev.edge_steps) == 16


def test_battery_drop_local_and_edge(hand_problem):
    # Local: 20 steps at 1.5 GHz need 6.75 J > 5 J battery -> dropped; 10 steps (3.375 J) fit.
    # Edge: radio energy 0.2 * 0.5 + 0.1 * 0.5 = 0.15 J > 0.1 J battery -> dropped.
    config = hand_config(battery_enabled=True)
    problem = hand_problem(
        config, device_clock_hz=[1.5e9, 1.5e9, 1e9], battery_j=[5.0, 5.0, 0.1],
        uplink_rate_bps=[2e6] * 3, downlink_rate_bps=[2e6] * 3,
    )
    ev = evaluate_decision(problem, Decision(offload=[False, False, True], steps=[20, 10, 5]))
    assert ev.drop_reason.tolist() == [DropReason.BATTERY, DropReason.NONE, DropReason.BATTERY]
    assert ev.energy_j.tolist() == [0.0, pytest.approx(3.375), 0.0]
    assert float(ev.total_cost) == pytest.approx(2 * config.drop_cost + ev.cost[1])


def test_deadline_takes_precedence_over_battery(hand_problem):
    config = hand_config(battery_enabled=True, deadline_s_range=(1.0, 30.0))
    problem = hand_problem(config, device_clock_hz=[1.5e9], battery_j=[1.0], deadline_s=[1.0])
    ev = evaluate_decision(problem, Decision(offload=[False], steps=[20]))  # 4 s > 1 s, 6.75 J > 1 J
    assert ev.drop_reason.tolist() == [DropReason.DEADLINE]


def test_users_without_request_are_ignored_even_with_out_of_range_steps(hand_problem):
    config = hand_config(device_step_capacity=10)
    problem = hand_problem(config, has_request=[False, True])
    ev = evaluate_decision(problem, Decision(offload=[False, False], steps=[999, 5]))
    assert ev.drop_reason.tolist() == [0, 0] and ev.cost[0] == 0.0
    with pytest.raises(ValueError, match="steps"):
        evaluate_decision(problem, Decision(offload=[False, False], steps=[5, 999]))


def test_options_with_non_finite_costs_raise_instead_of_a_nan_slot_cost(hand_problem):
    """A zero rate would give infinite transfer time and energy: the problem is refused when built, also for a
    user without a request (a padded slot), rather than giving a NaN slot cost."""
    for has_request in ([True, True], [True, False]):
        with pytest.raises(ValueError, match=r"SlotProblem.uplink_rate_bps must be finite and > 0 for every user"):
            hand_problem(hand_config(), has_request=has_request, uplink_rate_bps=[1e7, 0.0])
        # values in range whose times overflow: the evaluation names the users instead of a NaN slot cost
        problem = hand_problem(hand_config(), has_request=has_request, upload_bits=[1e6, 1e300],
                               uplink_rate_bps=[1e7, 1e-300])
        with np.errstate(over="ignore", invalid="ignore"), pytest.raises(ValueError, match=r"users \[1\] have non"):
            evaluate_decision(problem, Decision(offload=[False, True], steps=[5, 5]))


def test_energy_prices_are_checked_when_the_problem_is_built(hand_problem):
    """Also a user without a request: a NaN price there made the solvers return a NaN objective, unproven."""
    problem = hand_problem(hand_config(), has_request=[False, True])
    for price in ([np.nan, 0.1], [0.1, np.inf]):
        with pytest.raises(ValueError, match=r"SlotProblem.energy_price_per_j must be finite"):
            dataclasses.replace(problem, energy_price_per_j=np.array(price))
    for price in ([1.0, 2.0, 3.0], "cheap", "1.5", True, None):
        with pytest.raises(ValueError, match=r"SlotProblem.energy_price_per_j must be a number or an array"):
            dataclasses.replace(problem, energy_price_per_j=price)
    negative = dataclasses.replace(problem, energy_price_per_j=-0.5)  # either sign (the online bound's penalties)
    assert negative.energy_price_per_j.tolist() == [-0.5, -0.5]


def test_repair_matches_reference_on_a_congested_slot(hand_problem, reference_outcome):
    config = hand_config(edge_step_capacity=60, deadline_s_range=(2.0, 8.0), battery_enabled=True)
    rng = np.random.default_rng(3)
    n = 8
    problem = hand_problem(
        config,
        upload_bits=rng.uniform(0.05e6, 4e6, n), download_bits=rng.uniform(1.6e6, 3.2e6, n),
        uplink_rate_bps=rng.uniform(1e6, 3e7, n), downlink_rate_bps=rng.uniform(1e6, 3e7, n),
        device_clock_hz=rng.uniform(0.5e9, 3e9, n), deadline_s=rng.uniform(2.0, 8.0, n),
        battery_j=rng.uniform(0.0, 10.0, n), utility_weight=rng.uniform(0.5, 1.5, n),
    )
    offload = rng.random(n) < 0.6
    steps = rng.choice(config.step_levels, n)
    ev = evaluate_decision(problem, Decision(offload=offload, steps=steps))
    ref = reference_outcome(problem, offload, steps)
    assert ev.served.tolist() == ref["served"]
    assert ev.dropped.any() and ev.served.any()  # the case exercises both
    np.testing.assert_allclose(ev.cost, ref["cost"], rtol=1e-12)
    np.testing.assert_allclose(ev.time_s, ref["time"], rtol=1e-12)


# --- drop cost ------------------------------------------------------------------------------
def test_drop_cost_exceeds_worst_feasible_request(hand_problem):
    """The most expensive feasible requests one can build stay below C_drop.

    Local: fastest device (3 GHz) at S_max = 50 steps, no utility, deadline just met:
      T = 50 * 0.1 s = 5 s, E = 5e-28 * 9e18 * 3e8 * 50 = 67.5 J, eps_device(50) with w_Q.
    Edge: deadline met exactly with all of it spent on the radio, no utility.
    """
    config = hand_config(utility_weight_range=(0.0, 1.5), device_error_curve=DDIM_DEVICE,
                         edge_error_curve=DDIM_EDGE)
    assert config.drop_cost == pytest.approx(config.min_drop_cost())
    local = hand_problem(config, device_clock_hz=[3e9], utility_weight=[0.0], deadline_s=[30.0])
    ev = evaluate_decision(local, Decision(offload=[False], steps=[50]))
    assert ev.feasible and ev.energy_j[0] == pytest.approx(67.5)
    assert float(ev.total_cost) < config.drop_cost
    # 29.49 s of upload plus 5 steps alone on the GPU (sqrt(5) sqrt(5) / 10 = 0.5 s): T = 29.99 s,
    # radio energy 0.2 * 29.49 + 0.1 * 0.001 = 5.898 J, near the time and energy bounds
    edge = hand_problem(config, upload_bits=[29.49e6], uplink_rate_bps=[1e6], download_bits=[1e3],
                        downlink_rate_bps=[1e6], utility_weight=[0.0], deadline_s=[30.0])
    ev = evaluate_decision(edge, Decision(offload=[True], steps=[5]))
    assert ev.feasible and ev.time_s[0] == pytest.approx(29.991)
    assert ev.energy_j[0] == pytest.approx(5.8981)
    assert float(ev.total_cost) < config.drop_cost
    # a request that misses its deadline (50 * 0.6 s = 30 s > 29 s) is charged exactly C_drop
    tight = hand_problem(config.replace(deadline_s_range=(29.0, 29.0)), device_clock_hz=[0.5e9], deadline_s=[29.0])
    dropped = evaluate_decision(tight, Decision(offload=[False], steps=[50]))
    assert not dropped.feasible and float(dropped.total_cost) == tight.config.drop_cost


@pytest.mark.parametrize("env_id", ["AIGCEdge-v0", "AIGCEdge-Battery-v0"])
def test_drop_cost_exceeds_every_feasible_option_of_sampled_slots(env_id):
    """Over sampled slots, every feasible option (edge at its largest feasible Q) costs < C_drop."""
    import gymnasium as gym

    env = gym.make(env_id).unwrapped
    env.reset(seed=11)
    c = env.config
    worst = -np.inf
    for _ in range(30):
        problem = env.current_problem()
        table = option_table(problem)
        local = np.where(table.local_feasible, table.local_cost, -np.inf)
        q_max = table.max_sqrt_steps_sum  # T = Tmax there, the costliest feasible edge time
        edge = np.where(np.isfinite(q_max) & (q_max >= np.sqrt(table.levels)),
                        table.edge_base_cost + c.weight_time_per_s * np.sqrt(table.levels) * np.maximum(q_max, 0)
                        / c.edge_steps_per_s, -np.inf)
        busy = problem.has_request
        worst = max(worst, local[busy].max(initial=-np.inf), edge[busy].max(initial=-np.inf))
        env.step(env.action_space.sample())
    assert np.isfinite(worst) and worst < c.drop_cost


# --- the env's fast path: option rows tabulated ahead, then served -----------------------------
@pytest.mark.parametrize("env_id", ["AIGCEdge-v0", "AIGCEdge-Battery-v0"])
def test_gathered_option_grid_rows_serve_like_evaluate_decision(env_id):
    """Rows gathered from :func:`option_grid` equal :func:`option_rows` of the decision, and
    serving them gives :func:`evaluate_decision`'s outcome (the env's step vs the model)."""
    env = AIGCEdgeEnv(env_id=env_id)
    env.reset(seed=11)
    rng = np.random.default_rng(11)
    levels = np.asarray(env.config.step_levels)
    users = np.arange(env.config.n_users)
    for _ in range(30):
        problem = env.current_problem()
        action = rng.integers(0, env.action_space.nvec)
        offload, level = action[: users.size], action[users.size:]
        gathered = option_grid(problem)[:, offload, level, users]
        np.testing.assert_allclose(gathered, option_rows(problem, offload.astype(bool), levels[level]), rtol=1e-14)
        served = serve(gathered, problem.battery_j, problem.config)
        expected = evaluate_decision(problem, Decision(offload.astype(bool), levels[level]))
        np.testing.assert_array_equal(served.drop_reason, expected.drop_reason)
        assert served.summary() == pytest.approx(expected.summary(), rel=1e-12, abs=1e-12)
        env.step(action)


def test_option_rows_rejects_an_out_array_of_the_wrong_shape():
    env = AIGCEdgeEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out has shape"):
        option_grid(env.current_problem(), out=np.empty((3, 2)))
