"""Shared helpers of the test suite (as session fixtures).

``hand_problem`` builds a :class:`SlotProblem` from plain per-user lists, so a test can
state a slot whose cost is worked out by hand; ``reference_outcome`` recomputes a slot's
outcome straight from docs/model.md's formulas with plain Python floats (no package code), an
independent oracle for the vectorised cost model.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from aigc_edge_env import AIGCEdgeConfig, SlotProblem

# Property tests run a modest number of examples with no per-example deadline (the first
# example of a config pays numpy warm-up), and share one profile so the suite stays fast.
settings.register_profile(
    "aigc", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
# A long bug hunt: AIGC_HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.load_profile(os.environ.get("AIGC_HYPOTHESIS_PROFILE", "aigc"))


@pytest.fixture(scope="session")
def hand_problem():
    """The :func:`build_hand_problem` helper."""
    return build_hand_problem


@pytest.fixture(scope="session")
def reference_outcome():
    """The :func:`compute_reference_outcome` oracle."""
    return compute_reference_outcome


def build_hand_problem(config: AIGCEdgeConfig, **per_user) -> SlotProblem:
    """A single slot from per-user lists; omitted fields get neutral values.

    Sizes are in bit, rates in bit/s, clocks in Hz, batteries in J (``inf`` = no battery).
    """
    n = len(next(iter(per_user.values())))
    defaults = {
        "has_request": [True] * n,
        "upload_bits": [1e6] * n,
        "download_bits": [1e6] * n,
        "utility_weight": [1.0] * n,
        "deadline_s": [30.0] * n,
        "uplink_rate_bps": [1e7] * n,
        "downlink_rate_bps": [1e7] * n,
        "device_clock_hz": [1e9] * n,
        "battery_j": [math.inf] * n,
    }
    unknown = set(per_user) - set(defaults)
    assert not unknown, unknown
    defaults.update(per_user)
    arrays = {name: np.asarray(values, dtype=bool if name == "has_request" else np.float64)
              for name, values in defaults.items()}
    return SlotProblem(config=config, **arrays)


def compute_reference_outcome(problem: SlotProblem, offload, steps) -> dict:
    """docs/model.md's repair rule and costs for one slot, written out per user in plain Python.

    Returns per-user lists ``served``, ``dropped``, ``time``, ``energy``, ``cost`` and the
    final ``Q`` (sum of sqrt(steps) over the served edge requests).
    """
    c = problem.config
    n = problem.n_users
    req = [bool(v) for v in problem.has_request]
    x = [bool(offload[i]) and req[i] for i in range(n)]
    s = [int(v) for v in steps]

    def error(curve, steps_n):
        return float(curve.error(steps_n))  # the curve itself is tested by hand elsewhere

    def request_time_energy(i, q):
        if x[i]:
            up = problem.upload_bits[i] / problem.uplink_rate_bps[i]
            down = problem.download_bits[i] / problem.downlink_rate_bps[i]
            t = up + math.sqrt(s[i]) * q / c.edge_steps_per_s + down
            e = c.user_tx_power_w * up + c.user_rx_power_w * down
        else:
            f = problem.device_clock_hz[i]
            t = s[i] * c.device_cycles_per_step / f
            e = c.device_energy_coefficient * f**2 * c.device_cycles_per_step * s[i]
        return t, e

    dropped = [False] * n
    for i in range(n):  # device capacity
        if req[i] and not x[i] and s[i] > c.device_step_capacity:
            dropped[i] = True
    running = 0
    full = False
    for i in range(n):  # edge capacity, prefix rule in user order
        if x[i]:
            running += s[i]
            if full or running > c.edge_step_capacity:
                full = True
                dropped[i] = True
    q = sum(math.sqrt(s[i]) for i in range(n) if x[i] and not dropped[i])
    for i in range(n):  # deadline and battery with Q over the admitted edge requests
        if req[i] and not dropped[i]:
            t, e = request_time_energy(i, q)
            if t > problem.deadline_s[i] or e > problem.battery_j[i]:
                dropped[i] = True
    served = [req[i] and not dropped[i] for i in range(n)]
    q = sum(math.sqrt(s[i]) for i in range(n) if x[i] and served[i])
    time, energy, cost = [0.0] * n, [0.0] * n, [0.0] * n
    for i in range(n):
        if served[i]:
            t, e = request_time_energy(i, q)
            curve = c.edge_error_curve if x[i] else c.device_error_curve
            u = problem.utility_weight[i] * math.log(1 + s[i])
            time[i], energy[i] = t, e
            cost[i] = (c.weight_time_per_s * t + c.weight_energy_per_j * e + c.weight_error * error(curve, s[i])
                       - c.weight_utility * u)
        elif req[i]:
            cost[i] = c.drop_cost
    return {"served": served, "dropped": [req[i] and dropped[i] for i in range(n)], "time": time,
            "energy": energy, "cost": cost, "Q": q, "offload": x, "steps": s}


@pytest.fixture(scope="session")
def permute_users():
    """``permute(observation, perm)``: the env's flat observation with its users reordered by ``perm``
    (each per-user block permuted; the global features stay)."""
    from aigc_edge_env.spaces import USER_FEATURES

    def permute(observation: np.ndarray, perm: np.ndarray) -> np.ndarray:
        n = len(perm)
        permuted = observation.copy()
        for k in range(len(USER_FEATURES)):
            permuted[k * n:(k + 1) * n] = observation[k * n:(k + 1) * n][perm]
        return permuted

    return permute
