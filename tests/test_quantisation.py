"""DROO's order-preserving quantisation (aigc_edge_env.policies.quantisation) against candidates built by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import aigc_edge_env
from aigc_edge_env import Decision, SlotProblem, evaluate_decision
from aigc_edge_env.policies.quantisation import (
    WINDOW,
    order_preserving_candidates,
    order_preserving_decision,
    order_preserving_fill,
)

#: Scenarios where the edge capacity, the deadlines or the batteries bind (drops happen).
SCENARIOS = {
    "plain": {"n_users": 12},
    "edge_capacity": {"n_users": 12, "edge_step_capacity": 60},
    "deadline": {"n_users": 12, "deadline_s_range": (1.0, 8.0)},
    "battery": {"n_users": 12, "battery_enabled": True, "battery_initial_j_range": (0.0, 3.0)},
}


def _problem(overrides: dict, seed: int) -> SlotProblem:
    env = aigc_edge_env.AIGCEdgeEnv(config=overrides)
    env.reset(seed=seed)
    return env.current_problem()


def _candidate(problem: SlotProblem, logits: np.ndarray, count: int) -> Decision:
    """Offload the ``count`` requesting users of largest margin (best edge minus best device logit), each at
    its best level of its mode, written out user by user."""
    n_levels = problem.config.n_levels
    levels = np.asarray(problem.config.step_levels)
    margins = {n: logits[n, n_levels:].max() - logits[n, :n_levels].max()
               for n in range(problem.n_users) if problem.has_request[n]}
    edge_users = sorted(margins, key=lambda n: (-margins[n], n))[:count]
    offload = np.zeros(problem.n_users, dtype=bool)
    steps = np.full(problem.n_users, problem.config.min_steps)
    for n in range(problem.n_users):
        offload[n] = n in edge_users
        if problem.has_request[n]:
            steps[n] = levels[logits[n, n_levels:].argmax() if offload[n] else logits[n, :n_levels].argmax()]
    return Decision(offload, steps)


def _cost(problem: SlotProblem, decision: Decision) -> float:
    """What the solvers minimise: the slot cost plus the energy prices times the served energy."""
    served = evaluate_decision(problem, decision)
    return float(served.total_cost + served.energy_j @ problem.energy_price_per_j)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("seed", range(8))
def test_the_decision_is_the_cheapest_candidate_and_never_worse_than_greedy(scenario: str, seed: int) -> None:
    problem = _problem(SCENARIOS[scenario], seed)
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (problem.n_users, 2 * problem.config.n_levels))
    logits[:, problem.config.n_levels:] += rng.normal(0.0, 2.0)  # some slots lean to the edge, some to the device
    n_requests = int(problem.has_request.sum())
    n_levels = problem.config.n_levels
    greedy_count = sum(logits[n, n_levels:].max() > logits[n, :n_levels].max() for n in range(problem.n_users)
                       if problem.has_request[n])
    greedy = _candidate(problem, logits, greedy_count)
    for window in (0, 1, WINDOW, problem.n_users):
        counts = range(max(0, greedy_count - window), min(n_requests, greedy_count + window) + 1)
        best = min(_cost(problem, _candidate(problem, logits, k)) for k in counts)
        decision = order_preserving_decision(problem, logits, window)
        assert _cost(problem, decision) == pytest.approx(best, rel=1e-12, abs=1e-12)
        assert _cost(problem, decision) <= _cost(problem, greedy) + 1e-9
    played = order_preserving_decision(problem, logits, 0)  # no other candidate: the greedy decision itself
    assert np.array_equal(played.offload & problem.has_request, greedy.offload)
    assert np.array_equal(played.steps[problem.has_request], greedy.steps[problem.has_request])


@pytest.mark.parametrize("seed", range(6))
def test_energy_prices_are_part_of_what_it_minimises(seed: int) -> None:
    problem = _problem({"n_users": 12, "task_probability": 1.0}, seed)
    logits = np.random.default_rng(seed).normal(0.0, 3.0, (problem.n_users, 2 * problem.config.n_levels))
    chosen = {}
    for price in (0.0, 5.0, 50.0):
        priced = dataclasses.replace(problem, energy_price_per_j=np.full(problem.n_users, price))
        best = min(_cost(priced, _candidate(priced, logits, k)) for k in range(problem.n_users + 1))
        chosen[price] = order_preserving_decision(priced, logits, problem.n_users)
        assert _cost(priced, chosen[price]) == pytest.approx(best, rel=1e-12)
    assert not np.array_equal(chosen[0.0].offload, chosen[50.0].offload)  # the price moves the decision


@pytest.mark.parametrize("seed", range(20))
def test_window_zero_is_the_argmax_of_the_pairs_even_under_ties(seed: int) -> None:
    """Integer logits tie often: between a user's best edge and best device logit (the device wins, as in
    the argmax over the 2L pairs, devices first) and between levels (the lowest index wins)."""
    problem = _problem({"n_users": 10}, seed)
    n_levels = problem.config.n_levels
    logits = np.random.default_rng(seed).integers(0, 3, (problem.n_users, 2 * n_levels)).astype(float)
    pairs = logits.argmax(axis=-1)
    played = order_preserving_decision(problem, logits, 0)
    request = problem.has_request
    assert np.array_equal(played.offload[request], pairs[request] >= n_levels)
    assert np.array_equal(played.steps[request], np.asarray(problem.config.step_levels)[pairs % n_levels][request])


def test_a_wider_window_finds_a_cheaper_decision_somewhere() -> None:
    """Not a property of every slot, but of these: quantisation can beat the greedy decision."""
    gains = []
    for seed in range(8):
        problem = _problem(SCENARIOS["edge_capacity"], seed)
        logits = np.random.default_rng(seed).normal(0.0, 3.0, (problem.n_users, 2 * problem.config.n_levels))
        gains.append(_cost(problem, order_preserving_decision(problem, logits, 0))
                     - _cost(problem, order_preserving_decision(problem, logits, problem.n_users)))
    assert min(gains) >= -1e-9 and max(gains) > 1.0


def test_bad_input_is_refused_naming_it() -> None:
    problem = _problem(SCENARIOS["plain"], 0)
    with pytest.raises(ValueError, match=r"logits: expected shape \(12, 16\)"):
        order_preserving_decision(problem, np.zeros((12, 8)))
    with pytest.raises(ValueError, match="logits: expected finite values"):
        order_preserving_decision(problem, np.full((12, 16), np.nan))
    for window in (-1, 2.5, True, None, "4"):
        with pytest.raises(ValueError, match=f"window must be an integer >= 0, got {window!r}"):
            order_preserving_decision(problem, np.zeros((12, 16)), window=window)  # type: ignore[arg-type]


def test_candidates_are_env_actions_in_the_order_of_their_counts() -> None:
    """The candidates as env actions: counts k0 - window .. k0 + window clipped to [0, requests], nested,
    and every user without a request on the device at level 0 (an entry the env ignores)."""
    problem = _problem(SCENARIOS["plain"], 1)
    logits = np.random.default_rng(1).normal(0.0, 3.0, (problem.n_users, 16))
    actions = order_preserving_candidates(logits, problem.has_request, 2)
    offload, levels = actions[:, :12].astype(bool), actions[:, 12:]
    greedy = int(np.count_nonzero((logits[:, 8:].max(axis=1) > logits[:, :8].max(axis=1)) & problem.has_request))
    counts = range(max(0, greedy - 2), min(int(problem.has_request.sum()), greedy + 2) + 1)
    assert offload.sum(axis=1).tolist() == list(counts)
    assert (offload[:-1] <= offload[1:]).all()  # nested: candidate k + 1 adds one user to candidate k
    assert not offload[:, ~problem.has_request].any() and not levels[:, ~problem.has_request].any()
    for action, count in zip(actions, counts, strict=True):
        decision = _candidate(problem, logits, count)
        assert np.array_equal(action[:12], decision.offload)
        assert np.array_equal(np.asarray(problem.config.step_levels)[action[12:]][problem.has_request],
                              decision.steps[problem.has_request])
    with pytest.raises(ValueError, match=r"logits: expected shape \(12, 2L\)"):
        order_preserving_candidates(np.zeros((12, 7)), problem.has_request)
    for has_request in (True, problem.has_request[None], problem.has_request.astype(float), np.zeros(0, bool)):
        with pytest.raises(ValueError, match=r"has_request: expected booleans of shape \(N,\) with N >= 1"):
            order_preserving_candidates(np.zeros((12, 16)), has_request)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("seed", range(4))
def test_the_fill_is_the_largest_order_preserving_candidate_within_the_edge_capacity(scenario: str, seed: int) -> None:
    """``order_preserving_fill`` against the candidates built by hand: the most users in the order of their
    margins whose edge steps fit ``S^E_max`` together; served with no edge-capacity drop."""
    from aigc_edge_env.model import DropReason

    problem = _problem(SCENARIOS[scenario], seed)
    c = problem.config
    logits = np.random.default_rng(seed).normal(0.0, 3.0, (problem.n_users, 2 * c.n_levels))
    action = order_preserving_fill(logits, problem.has_request, c.step_levels, c.edge_step_capacity)
    n_requests = int(problem.has_request.sum())
    fits = [count for count in range(n_requests + 1)
            if (_candidate(problem, logits, count).steps * _candidate(problem, logits, count).offload).sum()
            <= c.edge_step_capacity]
    expected = _candidate(problem, logits, max(fits))  # counts that fit form a prefix: the edge steps only add up
    assert np.array_equal(action[:problem.n_users], expected.offload)
    decision = Decision(action[:problem.n_users].astype(bool), np.asarray(c.step_levels)[action[problem.n_users:]])
    assert np.array_equal(decision.steps[problem.has_request], expected.steps[problem.has_request])
    served = evaluate_decision(problem, decision)
    assert not (served.drop_reason == int(DropReason.EDGE_CAPACITY)).any()


def test_the_fill_never_offloads_a_user_without_a_request_when_the_edge_has_room_for_all() -> None:
    problem = _problem(SCENARIOS["plain"], 1)
    assert not problem.has_request.all()
    logits = np.random.default_rng(1).normal(0.0, 3.0, (12, 16))
    logits[~problem.has_request, 8:] += 100.0  # the idle users lean hardest to the edge
    action = order_preserving_fill(logits, problem.has_request, problem.config.step_levels, 10**6)
    assert np.array_equal(action[:12].astype(bool), problem.has_request)  # every request fits, no idle user
    assert not action[12:][~problem.has_request].any()


def test_integer_logits_are_ranked_as_floats() -> None:
    """Integer logits (ties everywhere) with users without a request: the same candidates as the same logits
    as floats."""
    problem = _problem(SCENARIOS["plain"], 3)
    assert not problem.has_request.all()
    logits = np.random.default_rng(3).integers(-3, 4, (12, 16))
    for window in (0, 4):
        assert np.array_equal(order_preserving_candidates(logits, problem.has_request, window),
                              order_preserving_candidates(logits.astype(float), problem.has_request, window))
    levels = problem.config.step_levels
    assert np.array_equal(order_preserving_fill(logits, problem.has_request, levels, 60),
                          order_preserving_fill(logits.astype(float), problem.has_request, levels, 60))


def test_the_fill_refuses_levels_or_a_capacity_that_do_not_fit() -> None:
    problem = _problem(SCENARIOS["plain"], 0)
    levels = problem.config.step_levels
    for bad in (levels[:4], (-5, 2, 3, 4, 5, 6, 7, 8), (1.5,) * 8, ("a",) * 8):
        with pytest.raises(ValueError, match=r"step_levels: expected the 8 step counts \(integers >= 1\)"):
            order_preserving_fill(np.zeros((12, 16)), problem.has_request, bad, 60)
    for capacity in (-1, 2.5, True):
        with pytest.raises(ValueError, match="edge_step_capacity must be an integer >= 0"):
            order_preserving_fill(np.zeros((12, 16)), problem.has_request, levels, capacity)  # type: ignore[arg-type]
    nothing = order_preserving_fill(np.zeros((12, 16)), problem.has_request, levels, 0)
    assert not nothing[:12].any()  # no room at the edge: everyone on the device


def test_a_masked_pair_is_accepted_and_a_nan_or_infinity_refused() -> None:
    """A ``-inf`` logit beside finite ones masks a pair (never a user's best); a NaN or ``+inf`` anywhere, or a
    user whose logits of a mode are all ``-inf``, is refused."""
    problem = _problem(SCENARIOS["plain"], 2)
    logits = np.random.default_rng(2).normal(0.0, 3.0, (12, 16))
    masked = logits.copy()
    masked[:, 15] = -np.inf  # the edge's last level masked for everyone
    played = order_preserving_candidates(masked, problem.has_request)
    assert ((played[:, 12:] != 7) | (played[:, :12] == 0)).all()  # no user offloaded at the masked level
    for value, where in ((np.nan, (3, 2)), (np.inf, (5, 9))):
        bad = logits.copy()
        bad[where] = value
        with pytest.raises(ValueError, match="logits: expected finite values"):
            order_preserving_candidates(bad, problem.has_request)
    all_masked = logits.copy()
    all_masked[4, :8] = -np.inf
    with pytest.raises(ValueError, match="logits: expected finite values"):
        order_preserving_fill(all_masked, problem.has_request, problem.config.step_levels, 60)
