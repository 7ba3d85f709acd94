"""The amortised planner's network (core, numpy): features, forward pass, files, and its policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import aigc_edge_env  # noqa: F401
from aigc_edge_env.baselines import SOLVERS
from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.policies.price_network import (
    N_PRICE_FEATURES,
    PriceNetworkPolicy,
    price_features,
)
from aigc_edge_env.policies.pricing import SlotPricesPolicy


def _network(rng: np.random.Generator, hidden: int = 8, bias: float = 0.0) -> PriceNetworkPolicy:
    return PriceNetworkPolicy([rng.normal(size=(N_PRICE_FEATURES, hidden)), rng.normal(size=(hidden, 1))],
                              [rng.normal(size=hidden), np.array([bias])])


def _slot(env_id: str = "AIGCEdge-Battery-v0", seed: int = 3):
    env = gym.make(env_id)
    observation, _ = env.reset(seed=seed)
    return env, env.unwrapped.current_problem(), observation


def test_features_state_the_energy_budget_by_hand():
    env, problem, observation = _slot()
    c = problem.config
    features = price_features(problem, observation)
    assert features.shape == (c.n_users, N_PRICE_FEATURES)
    n = 2  # user 2 at t = 0: r = 1, budget (b + E[h] H) / C, log1p(budget / (H E_step)) / 5
    to_come = problem.battery_j[n] + 0.5 * (c.harvest_j_range[0] + c.harvest_j_range[1]) * c.horizon_slots
    assert features[n, 9] == 1.0
    assert features[n, 10] == pytest.approx(to_come / c.battery_capacity_j, rel=1e-12)
    assert features[n, 11] == pytest.approx(np.log1p(to_come / (c.horizon_slots * problem.local_step_energy_j[n])) / 5,
                                            rel=1e-12)
    # the users' mean features are the same for every user; the user's own come first
    assert np.all(features[:, -9:] == features[0, -9:])
    assert features[n, 8] == pytest.approx(problem.battery_j[n] / c.battery_capacity_j, rel=1e-6)


def test_forward_is_a_tanh_network_with_softplus_output():
    rng = np.random.default_rng(0)
    net = _network(rng)
    x = rng.normal(size=(5, N_PRICE_FEATURES))
    expected = np.log1p(np.exp(np.tanh(x @ net.weights[0] + net.biases[0]) @ net.weights[1] + net.biases[1]))[:, 0]
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-12)
    assert np.all(_network(rng, bias=-50.0).forward(x) >= 0.0)


def test_policy_is_exact_under_the_predicted_prices():
    rng = np.random.default_rng(1)
    net = _network(rng)
    env, problem, observation = _slot()
    prices = net.prices_per_j(problem, observation)
    rule = SlotPricesPolicy(SOLVERS["exact"], prices[None, :])
    assert np.array_equal(net.act(env, observation), rule.act(env, observation))


def test_without_batteries_it_is_exact():
    net = _network(np.random.default_rng(2))
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": 5})
    played = run_episode(env, net, seed=4)
    reference = run_episode(env, SlotPricesPolicy(SOLVERS["exact"], np.zeros((5, 10))), seed=4)
    assert played.metrics["reward"] == reference.metrics["reward"]


def test_save_and_load_round_trip(tmp_path):
    net = _network(np.random.default_rng(3))
    net.save(tmp_path / "n.npz")
    loaded = PriceNetworkPolicy.load(tmp_path / "n.npz")
    x = np.random.default_rng(4).normal(size=(3, N_PRICE_FEATURES))
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))


def test_another_feature_version_is_refused(tmp_path):
    net = _network(np.random.default_rng(5))
    np.savez(tmp_path / "old.npz", features_version=np.array(0), w0=net.weights[0], w1=net.weights[1],
             b0=net.biases[0], b1=net.biases[1])
    with pytest.raises(ValueError, match="features version 0"):
        PriceNetworkPolicy.load(tmp_path / "old.npz")


def test_layers_that_do_not_chain_are_refused():
    with pytest.raises(ValueError, match="do not chain"):
        PriceNetworkPolicy([np.zeros((N_PRICE_FEATURES, 4)), np.zeros((5, 1))], [np.zeros(4), np.zeros(1)])
    with pytest.raises(ValueError, match="as many weight matrices"):
        PriceNetworkPolicy([np.zeros((N_PRICE_FEATURES, 1))], [])
