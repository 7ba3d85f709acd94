"""Ray RLlib with the per-user network (aigc_edge_env.agents.rllib): the pair distribution against
torch's categoricals, users without a request pinned, one PPO iteration of the single and the
multi-agent configs, a checkpoint played by ``make_policy("rllib:PATH")``, and a plain
``ray.init()`` that starts after the module (no cluster left behind).

Skipped without the ``rllib`` extra.  One local Ray instance (2 CPUs) serves the module's tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.rllib") is None:
    pytest.skip("ray.rllib is not installed (the rllib extra)", allow_module_level=True)
try:
    import ray
    import torch
    from ray.rllib.core.columns import Columns

    from aigc_edge_env.agents.rllib import (
        SHARED_POLICY,
        PairCategorical,
        PerUserRLModule,
        multi_agent_ppo_config,
        ppo_config,
        team_share_env,
    )
except ImportError as error:  # RLlib's own dependencies (the rllib extra) missing
    pytest.skip(f"ray.rllib is not importable: {error}", allow_module_level=True)

import aigc_edge_env  # noqa: F401,E402  (registers the env ids)
from aigc_edge_env.agents.per_user_net import PerUserActorCritic, pair_actions  # noqa: E402
from aigc_edge_env.evaluation.runner import run_episode  # noqa: E402
from aigc_edge_env.policies.registry import make_policy  # noqa: E402
from aigc_edge_env.spaces import agent_observations  # noqa: E402

N_USERS, N_LEVELS = 3, 4
#: The driver of the two-node test: one PPO iteration with 2 env runners, then each runner's node id.
TWO_NODE_DRIVER = """
import sys, ray
from aigc_edge_env.agents.rllib import ppo_config
ray.init(address=sys.argv[1], log_to_driver=False)
algo = ppo_config(seed=0, timesteps=512, num_env_runners=2, num_envs_per_env_runner=16,
                  model_config={"hidden_dim": 8, "n_layers": 1}).build_algo()
algo.train()
nodes = algo.env_runner_group.foreach_env_runner(lambda r: ray.get_runtime_context().get_node_id(),
                                                 local_env_runner=False)
print("NODES", len(ray.nodes()), len(set(nodes)))
algo.stop()
"""


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of 2 CPUs for the module's tests, stopped after them."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _spaces(n_users: int = N_USERS, n_levels: int = N_LEVELS) -> tuple[gym.spaces.Box, gym.spaces.MultiDiscrete]:
    return (gym.spaces.Box(0.0, 1.0, (9 * n_users + 3,), np.float32),
            gym.spaces.MultiDiscrete([2] * n_users + [n_levels] * n_users))


def _module(**model_config) -> PerUserRLModule:
    obs_space, act_space = _spaces()
    return PerUserRLModule(observation_space=obs_space, action_space=act_space, model_config=model_config)


def test_pair_distribution_matches_one_categorical_per_user() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, N_USERS, 2 * N_LEVELS)
    dist = PairCategorical(logits.flatten(-2), n_levels=N_LEVELS)
    reference = torch.distributions.Categorical(logits=logits)
    pairs = reference.sample()
    actions = pair_actions(pairs, N_LEVELS)  # N offload bits, then N levels
    assert torch.allclose(dist.logp(actions), reference.log_prob(pairs).sum(-1))
    assert torch.allclose(dist.entropy(), reference.entropy().sum(-1))
    other = PairCategorical(torch.randn(5, N_USERS * 2 * N_LEVELS), n_levels=N_LEVELS)
    assert torch.allclose(dist.kl(other), torch.distributions.kl_divergence(reference, other._dist).sum(-1))
    sample = dist.sample()
    assert sample.shape == (5, 2 * N_USERS)
    assert ((sample[:, :N_USERS] >= 0) & (sample[:, :N_USERS] < 2)).all()
    assert ((sample[:, N_USERS:] >= 0) & (sample[:, N_USERS:] < N_LEVELS)).all()
    assert torch.equal(dist.to_deterministic().sample(), pair_actions(logits.argmax(-1), N_LEVELS))
    assert PairCategorical.required_input_dim(_spaces()[1]) == N_USERS * 2 * N_LEVELS


def test_module_is_the_per_user_network_with_users_without_a_request_pinned() -> None:
    torch.manual_seed(0)
    module = _module(hidden_dim=16, n_layers=1, vf_share_layers=False)  # a key RLlib adds is left alone
    assert isinstance(module.net, PerUserActorCritic) and module.net.encoder[0].own.out_features == 16
    obs = torch.rand(6, 9 * N_USERS + 3)
    obs[:, :N_USERS] = torch.tensor([1.0, 0.0, 1.0])  # user 1 has no request
    out = module.forward_train({Columns.OBS: obs})
    logits, value = module.net(obs)
    flat = out[Columns.ACTION_DIST_INPUTS].unflatten(-1, (N_USERS, 2 * N_LEVELS))
    assert torch.equal(flat[:, [0, 2]], logits[:, [0, 2]])
    assert torch.allclose(module.compute_values({Columns.OBS: obs}, out[Columns.EMBEDDINGS]), value)
    assert torch.allclose(module.compute_values({Columns.OBS: obs}), value)
    dist = module.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    actions = dist.sample()
    assert (actions[:, 1] == 0).all() and (actions[:, N_USERS + 1] == 0).all()  # pair 0: on the device, level 0
    requesting = torch.distributions.Categorical(logits=logits[:, [0, 2]])
    expected = requesting.log_prob(torch.stack([actions[:, 0], actions[:, 2]], -1) * N_LEVELS
                                   + torch.stack([actions[:, N_USERS], actions[:, N_USERS + 2]], -1)).sum(-1)
    assert torch.allclose(dist.logp(actions), expected)  # the idle user adds 0
    assert torch.allclose(dist.entropy(), requesting.entropy().sum(-1))


def test_the_shared_agent_module_acts_for_its_user_and_pools_the_mean_field_row() -> None:
    torch.manual_seed(0)
    module = PerUserRLModule(observation_space=gym.spaces.Box(0.0, 1.0, (21,), np.float32),
                             action_space=gym.spaces.MultiDiscrete([2, N_LEVELS]),
                             model_config={"hidden_dim": 16, "n_layers": 2})
    obs = torch.rand(6, 21)
    obs[:, 0] = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])  # agent 3 has no request
    out = module.forward_train({Columns.OBS: obs})
    own, mean_field, globals_ = obs[:, :9], obs[:, 9:18], obs[:, 18:]
    h = module.net.encoder.encode(torch.stack([own, mean_field], dim=-2), globals_)  # the mean row pools like a user
    expected = module.net.actor(h[:, 0])
    logits = out[Columns.ACTION_DIST_INPUTS]
    assert logits.shape == (6, 2 * N_LEVELS) and torch.allclose(logits[[0, 1, 2, 4, 5]], expected[[0, 1, 2, 4, 5]])
    assert logits[3, 0] == 0 and (logits[3, 1:] < -1e8).all()  # pinned
    value = module.net.critic(h.mean(dim=-2)).squeeze(-1)
    assert torch.allclose(module.compute_values({Columns.OBS: obs}, out[Columns.EMBEDDINGS]), value)
    mean_changed = obs.clone()
    mean_changed[:, 10] += 0.5  # another mean field: another action
    assert not torch.allclose(module.forward_train({Columns.OBS: mean_changed})[Columns.ACTION_DIST_INPUTS], logits)
    with pytest.raises(ValueError, match=r"one agent's observation has \[12, 21\] entries"):
        PerUserRLModule(observation_space=gym.spaces.Box(0.0, 1.0, (15,), np.float32),
                        action_space=gym.spaces.MultiDiscrete([2, N_LEVELS]), model_config={})


def test_team_share_rewards_sum_to_the_single_envs_reward() -> None:
    env = team_share_env({"env_id": "AIGCEdge-v0"})
    single = gym.make("AIGCEdge-v0")
    obs, _ = env.reset(seed=3)
    single.reset(seed=3)
    for _ in range(3):
        actions = {agent: env.action_space[agent].sample() for agent in obs}
        joint = np.concatenate([[actions[a][0] for a in sorted(obs, key=lambda a: int(a.split("_")[1]))],
                                [actions[a][1] for a in sorted(obs, key=lambda a: int(a.split("_")[1]))]])
        obs, rewards, *_ = env.step(actions)
        _, reward, *_ = single.step(joint)
        assert len(rewards) == 10 and np.isclose(sum(rewards.values()), reward)
        assert len(set(rewards.values())) == 1


def test_a_saved_agent_module_plays_every_user_on_the_rows_the_view_gives_them(tmp_path: Path) -> None:
    torch.manual_seed(1)
    module = PerUserRLModule(observation_space=gym.spaces.Box(0.0, 1.0, (21,), np.float32),
                             action_space=gym.spaces.MultiDiscrete([2, 8]), model_config={"hidden_dim": 16})
    with torch.no_grad():
        module.net.actor.linear.weight.mul_(30.0)  # distinct argmaxes
    module.save_to_path(tmp_path / "module")
    policy = make_policy(f"rllib:{tmp_path / 'module'}")
    env, view = gym.make("AIGCEdge-v0"), team_share_env({"observation": "mean_field"})
    observation, _ = env.reset(seed=5)
    rows, _ = view.reset(seed=5)
    agents = [f"user_{n}" for n in range(10)]
    with torch.no_grad():
        logits = module.forward_inference({Columns.OBS: torch.as_tensor(np.stack([rows[a] for a in agents]))})
    pairs = logits[Columns.ACTION_DIST_INPUTS].argmax(-1).numpy()
    requesting = observation[:10] > 0.5
    expected = np.concatenate([np.where(requesting, pairs // 8, 0), np.where(requesting, pairs % 8, 0)])
    assert requesting.any() and np.array_equal(policy.act(env, observation), expected)


def test_the_multi_agent_config_trains_on_the_mean_field_view() -> None:
    config = multi_agent_ppo_config()
    env = team_share_env(config.env_config)
    obs, _ = env.reset(seed=4)
    assert config.env_config["observation"] == "mean_field" and obs["user_0"].shape == (21,)
    expected = agent_observations(env.par_env.state(), 10, mean_field=True)
    assert all(np.array_equal(obs[f"user_{n}"], expected[n]) for n in range(10))


def test_every_config_trains_on_batches_of_512_slots() -> None:
    for config, minibatch, epochs in ((ppo_config(), 128, 10), (ppo_config(num_env_runners=2), 128, 10),
                                      (multi_agent_ppo_config(), 128, 10)):
        runners = max(1, config.num_env_runners)
        assert config.rollout_fragment_length * config.num_envs_per_env_runner * runners == 512
        assert (config.train_batch_size_per_learner, config.minibatch_size, config.num_epochs) == (512, minibatch,
                                                                                                   epochs)
    assert ppo_config().env_config == {"config": {"reward_scale": 0.15}}
    with pytest.raises(ValueError, match="num_envs_per_env_runner must be >= 1"):
        ppo_config(num_envs_per_env_runner=0)


@pytest.mark.slow
def test_one_ppo_iteration_then_the_checkpoint_plays_through_make_policy(local_ray, tmp_path: Path) -> None:
    algo = ppo_config(seed=0, timesteps=512, num_envs_per_env_runner=16,
                      model_config={"hidden_dim": 8, "n_layers": 1}).build_algo()
    result = algo.train()
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] == 512
    algo.save_to_path(tmp_path / "ckpt")
    algo.stop()
    policy = make_policy(f"rllib:{tmp_path / 'ckpt'}")
    episode = run_episode(gym.make("AIGCEdge-v0"), policy, seed=10_000)
    assert len(episode.actions) == 100 and np.isfinite(episode.metrics["reward"])


@pytest.mark.slow
def test_multi_agent_iteration_then_the_shared_module_plays_every_user(local_ray, tmp_path: Path) -> None:
    algo = multi_agent_ppo_config(seed=0, timesteps=64, num_envs_per_env_runner=4,
                                  model_config={"hidden_dim": 8, "n_layers": 1}).build_algo()
    algo.train()
    algo.save_to_path(tmp_path / "ckpt")
    algo.stop()
    assert (tmp_path / "ckpt" / "learner_group" / "learner" / "rl_module" / SHARED_POLICY).is_dir()
    episode = run_episode(gym.make("AIGCEdge-v0"), make_policy(f"rllib:{tmp_path / 'ckpt'}"), seed=10_000)
    assert np.isfinite(episode.metrics["reward"])


def test_a_missing_checkpoint_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        make_policy(f"rllib:{tmp_path / 'nothing'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """``ray start ... --block`` in a subprocess, returned once its node is up (stopping it stops what it started)."""
    node = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--block",
                             "--disable-usage-stats"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    for line in node.stdout:
        if "Ray runtime started" in line:
            return node
    pytest.fail(f"ray start {' '.join(args)} exited with {node.wait()}")


@pytest.mark.slow
def test_env_runners_spread_over_a_head_and_a_second_node_started_with_ray_start() -> None:
    """The distributed recipe of docs/rllib.md on one machine: ``ray start --head`` (1 CPU) and a second
    node joining it (``ray start --address``, 1 CPU), a driver on the head's address with 2 env runners of
    1 CPU each, so one runs on each node; then both nodes are stopped."""
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # no token authentication: the test is about the nodes
    temp_dir = Path(tempfile.mkdtemp(prefix="ray"))  # short (socket paths) and never Ray's default folder
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(_ray_start(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                                 f"--temp-dir={temp_dir}"], env))
        nodes.append(_ray_start([f"--address=127.0.0.1:{port}", "--num-cpus=1"], env))
        done = subprocess.run([sys.executable, "-c", TWO_NODE_DRIVER, f"127.0.0.1:{port}"], cwd=temp_dir, env=env,
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "NODES 2 2" in done.stdout  # two nodes in the cluster, one env runner on each
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_plain_ray_init_starts_after_the_tests(local_ray) -> None:
    """Last in the module: after the shared instance stops, a user's plain ``ray.init()`` starts a fresh
    local instance (no cluster file or ``RAY_ADDRESS`` left behind to join)."""
    ray.shutdown()
    assert not ray.is_initialized()
    context = ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        assert ray.is_initialized() and context.address_info["address"]
    finally:
        ray.shutdown()
