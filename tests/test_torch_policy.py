"""``torch:PATH`` policies: a saved per-user network played greedily by make_policy and ``aigc-edge evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigc_edge_env.agents.per_user_net import PerUserActorCritic  # noqa: E402
from aigc_edge_env.cli import main as cli_main  # noqa: E402
from aigc_edge_env.evaluation.runner import run_episode  # noqa: E402
from aigc_edge_env.policies.registry import make_policy  # noqa: E402
from aigc_edge_env.policies.torch_module import (  # noqa: E402
    FORMAT,
    TorchModulePolicy,
    TorchPolicyError,
    load_torch_policy,
    save_torch_policy,
)
from aigc_edge_env.spaces import split_observation  # noqa: E402

HORIZON = 5


def _tiny_net() -> PerUserActorCritic:
    """A small untrained network for the registered env (10 users, 8 levels) with weights far from uniform."""
    torch.manual_seed(0)
    net = PerUserActorCritic(10, 8, hidden_dim=8, n_layers=1, vf_arch=(6,), ortho_init=False)
    with torch.no_grad():
        net.actor.linear.weight.mul_(20.0)  # distinct argmaxes per user
    return net


@pytest.fixture()
def saved(tmp_path) -> tuple[Path, PerUserActorCritic]:
    net = _tiny_net()
    path = tmp_path / "nets" / "tiny.pt"
    save_torch_policy(path, net, "AIGCEdge-v0")
    return path, net


def _greedy_by_hand(net: PerUserActorCritic, observation: np.ndarray) -> np.ndarray:
    """Each user's most likely (mode, level) pair written out as the env's N offload bits then N levels."""
    with torch.no_grad():
        logits = net(torch.as_tensor(observation))[0].numpy()  # (N, 2L): device levels, then edge levels
    best = logits.argmax(-1)
    return np.concatenate([best // net.n_levels, best % net.n_levels])


def test_saved_network_round_trips_with_its_shape(saved) -> None:
    path, net = saved
    stored = torch.load(path, weights_only=True)
    assert stored["format"] == FORMAT and stored["env_id"] == "AIGCEdge-v0"
    assert stored["kwargs"] == {"n_users": 10, "n_levels": 8, "hidden_dim": 8, "n_layers": 1, "vf_arch": [6]}
    loaded = load_torch_policy(path).net
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_make_policy_plays_the_saved_network_greedily(saved) -> None:
    path, net = saved
    policy = make_policy(f"torch:{path}")
    assert policy.name == f"torch:{path}"
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": HORIZON})
    episode = run_episode(env, policy, seed=7)
    assert len(episode.actions) == HORIZON
    replay = gym.make("AIGCEdge-v0", config={"horizon_slots": HORIZON})
    observation, _ = replay.reset(seed=7)
    for action in episode.actions:
        expected = _greedy_by_hand(net, observation)
        assert np.array_equal(action, expected)
        observation, *_ = replay.step(expected)
    played = np.stack(episode.actions)
    assert played[:, :10].any() and not played[:, :10].all() and len(np.unique(played[:, 10:])) > 1  # not trivial


def test_evaluate_command_scores_a_torch_policy(saved, tmp_path, capsys) -> None:
    path, _ = saved
    out = tmp_path / "eval"
    code = cli_main(["evaluate", "--policies", "exact", "random", f"torch:{path}", "--episodes", "1",
                     "--horizon", str(HORIZON), "--out", str(out), "--no-plots", "--no-progress"])
    assert code == 0
    rows = {row["policy"]: row for row in json.loads((out / "results.json").read_text())["summary"]}
    assert set(rows) == {"exact", "random", f"torch:{path}"}
    assert np.isfinite(rows[f"torch:{path}"]["score"])
    assert f"| torch:{path} |" in capsys.readouterr().out


def test_a_network_plays_any_number_of_users_but_not_other_levels(saved) -> None:
    path, _ = saved
    policy = make_policy(f"torch:{path}")
    env = gym.make("AIGCEdge-v0", config={"n_users": 3})
    observation, _ = env.reset(seed=0)
    assert env.action_space.contains(policy.act(env, observation))  # built at 10 users, plays 3
    env = gym.make("AIGCEdge-v0", config={"step_levels": (5, 10, 20, 50)})
    observation, _ = env.reset(seed=0)
    with pytest.raises(TorchPolicyError, match=r"built for 8 step levels \(trained on AIGCEdge-v0\), "
                                               r"not this env's 4"):
        policy.act(env, observation)


def test_bad_files_are_refused_with_one_line(tmp_path) -> None:
    for prefix in ("torch:", "quantised:", "packed:"):
        with pytest.raises(ValueError, match=f"{prefix}PATH: the path of the saved network is missing"):
            make_policy(prefix)
    with pytest.raises(TorchPolicyError, match="packed:PATH: no file"):
        make_policy(f"packed:{tmp_path / 'missing.pt'}")
    with pytest.raises(ValueError, match=r"decode must be one of \['greedy', 'quantised', 'packed'\], got 'bad'"):
        load_torch_policy(tmp_path / "missing.pt", decode="bad")
    with pytest.raises(ValueError, match="no file .*missing.pt"):
        make_policy(f"torch:{tmp_path / 'missing.pt'}")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(TorchPolicyError, match="is not an aigc-edge-torch-policy file of version 1"):
        make_policy(f"torch:{other}")
    text = tmp_path / "text.pt"
    text.write_text("not a torch file")
    with pytest.raises(TorchPolicyError, match="is not a torch.save file of weights"):
        make_policy(f"torch:{text}")


def test_only_known_networks_are_saved(tmp_path) -> None:
    with pytest.raises(TorchPolicyError, match=r"net: a Linear cannot be saved .*\['PerUserActorCritic'\]"):
        save_torch_policy(tmp_path / "x.pt", torch.nn.Linear(2, 2), "AIGCEdge-v0")


@pytest.mark.parametrize(("n_users", "n_layers"), [(1, 3), (3, 3), (50, 3), (200, 3), (3, 1), (50, 0)])
def test_the_numpy_pass_gives_the_networks_logits_and_decisions(n_users: int, n_layers: int) -> None:
    torch.manual_seed(n_users)
    hidden_dim = 32 if n_layers else 12  # without a layer the head reads the 12 features
    net = PerUserActorCritic(10, 8, hidden_dim=hidden_dim, n_layers=n_layers, ortho_init=False)  # non-zero biases
    with torch.no_grad():
        net.actor.linear.weight.mul_(50.0)  # logits far from uniform, so the argmax is not a tie
        net.actor.linear.bias.uniform_(-5.0, 5.0)
    policy = TorchModulePolicy(net)
    env = gym.make("AIGCEdge-v0", config={"n_users": n_users})
    observations = np.random.default_rng(n_users).random((20, 9 * n_users + 3), dtype=np.float32)
    for observation in observations:
        with torch.no_grad():
            expected = net(torch.as_tensor(observation))[0].numpy()
        np.testing.assert_allclose(policy.greedy.logits(*split_observation(observation, n_users)), expected,
                                   rtol=1e-4, atol=1e-4)
        assert np.array_equal(policy.act(env, observation), _greedy_by_hand(net, observation))


def test_evaluate_threads_limit_numpys_blas_for_a_torch_policy(saved, tmp_path) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    path, _ = saved
    original = max(blas_threads())
    threadpool_limits(2, user_api="blas")
    try:
        assert cli_main(["evaluate", "--policies", f"torch:{path}", "--episodes", "1", "--horizon", "2", "--threads",
                         "1", "--out", str(tmp_path / "eval"), "--no-plots", "--no-progress"]) == 0
        assert blas_threads() == {1}  # the numpy pass decides on one core, as torch would
    finally:
        threadpool_limits(original, user_api="blas")


def test_packed_plays_the_fill_of_the_same_network(saved) -> None:
    """The wiring of ``packed:PATH``: the name, and the network's logits into ``order_preserving_fill`` with the
    env's levels and edge capacity (the fill itself: tests/test_quantisation.py)."""
    from aigc_edge_env.policies.quantisation import order_preserving_fill

    path, net = saved
    policy = make_policy(f"packed:{path}")
    assert policy.name == f"packed:{path}" and policy.decode == "packed"
    config = {"horizon_slots": HORIZON, "edge_step_capacity": 40}
    episode = run_episode(gym.make("AIGCEdge-v0", config=config), policy, seed=3)
    replay = gym.make("AIGCEdge-v0", config=config).unwrapped
    observation, _ = replay.reset(seed=3)
    for action in episode.actions:
        problem = replay.current_problem()
        with torch.no_grad():
            logits = net(torch.as_tensor(observation))[0].numpy()
        assert np.array_equal(action, order_preserving_fill(logits, problem.has_request, replay.config.step_levels, 40))
        observation, *_ = replay.step(action)
    with pytest.raises(ValueError, match=r"decode must be one of \['greedy', 'quantised', 'packed'\], got 'fill'"):
        TorchModulePolicy(net, decode="fill")


def test_quantised_plays_the_cheapest_order_preserving_candidate_of_the_same_network(saved) -> None:
    """The wiring of ``quantised:PATH`` (the name, its files, the network's logits into the quantisation);
    tests/test_quantisation.py checks the quantisation against candidates built by hand."""
    from aigc_edge_env.model import evaluate_decision
    from aigc_edge_env.policies.quantisation import order_preserving_decision
    from aigc_edge_env.policies.registry import policy_files

    path, net = saved
    policy = make_policy(f"quantised:{path}")
    assert policy.name == f"quantised:{path}" and policy_files(policy.name) == [path]
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": HORIZON})
    episode = run_episode(env, policy, seed=7)
    replay = gym.make("AIGCEdge-v0", config={"horizon_slots": HORIZON}).unwrapped
    observation, _ = replay.reset(seed=7)
    for action in episode.actions:
        problem = replay.current_problem()
        with torch.no_grad():
            logits = net(torch.as_tensor(observation))[0].numpy()
        expected = replay.decision_to_action(order_preserving_decision(problem, logits))
        assert np.array_equal(action, expected)
        greedy = replay.action_to_decision(_greedy_by_hand(net, observation))
        assert evaluate_decision(problem, replay.action_to_decision(action)).total_cost <= \
            evaluate_decision(problem, greedy).total_cost + 1e-9
        observation, *_ = replay.step(expected)
