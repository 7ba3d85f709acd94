"""The per-user torch network (aigc_edge_env.agents.per_user_net): shapes, equivariance, SB3 shares it."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from aigc_edge_env.spaces import split_observation

torch = pytest.importorskip("torch")
per_user_net = pytest.importorskip("aigc_edge_env.agents.per_user_net")
PerUserActorCritic = per_user_net.PerUserActorCritic

N_USERS, N_LEVELS = 6, 8


def _observations(*batch: int, n_users: int = N_USERS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((*batch, 9 * n_users + 3)).astype(np.float32)


def _permute_users(observations: np.ndarray, perm: np.ndarray) -> np.ndarray:
    users, globals_ = split_observation(observations, len(perm))
    permuted = users[..., perm, :]  # user i of the result is user perm[i]
    return np.concatenate([permuted.swapaxes(-1, -2).reshape(*observations.shape[:-1], -1), globals_], axis=-1)


def test_split_observation_of_a_tensor_agrees_with_numpy() -> None:
    observations = _observations(4, 3)
    users, globals_ = split_observation(torch.as_tensor(observations), N_USERS)
    assert isinstance(users, torch.Tensor) and users.shape == (4, 3, N_USERS, 9)
    np_users, np_globals = split_observation(observations, N_USERS)
    np.testing.assert_array_equal(users.numpy(), np_users)
    np.testing.assert_array_equal(globals_.numpy(), np_globals)


@pytest.mark.parametrize("batch", [(), (5,), (3, 4)])
def test_output_shapes_for_any_batch_shape(batch: tuple[int, ...]) -> None:
    net = PerUserActorCritic(N_USERS, N_LEVELS, hidden_dim=16, vf_arch=(16,))
    logits, value = net(torch.as_tensor(_observations(*batch)))
    assert logits.shape == (*batch, N_USERS, 2 * N_LEVELS) and value.shape == batch


def test_permuting_users_permutes_logits_and_keeps_the_value() -> None:
    torch.manual_seed(0)
    net = PerUserActorCritic(N_USERS, N_LEVELS)
    observations = _observations(7)
    perm = np.random.default_rng(1).permutation(N_USERS)
    with torch.no_grad():
        logits, value = net(torch.as_tensor(observations))
        moved_logits, moved_value = net(torch.as_tensor(_permute_users(observations, perm)))
    np.testing.assert_allclose(moved_logits.numpy(), logits.numpy()[:, perm], atol=1e-6)
    np.testing.assert_allclose(moved_value.numpy(), value.numpy(), atol=1e-6)
    assert not np.allclose(logits.numpy()[:, perm], logits.numpy(), atol=1e-3)  # users do differ


def test_pairs_follow_the_option_columns_and_the_multidiscrete_order() -> None:
    pairs = torch.tensor([[0, N_LEVELS - 1, N_LEVELS, 2 * N_LEVELS - 1, N_LEVELS + 3, 2]])
    actions = per_user_net.pair_actions(pairs, N_LEVELS)
    assert actions.tolist() == [[0, 0, 1, 1, 1, 0, 0, N_LEVELS - 1, 0, N_LEVELS - 1, 3, 2]]  # bits, then levels
    torch.testing.assert_close(per_user_net.action_pairs(actions, N_LEVELS), pairs)


def test_a_pair_is_allowed_iff_its_offload_bit_and_its_level_are() -> None:
    n_users, n_levels = 2, 3
    masks = torch.tensor([[True, False, True, True,  # user 0 local only, user 1 both modes
                           True, False, True, False, True, True]])  # user 0 levels 0 and 2, user 1 levels 1 and 2
    allowed = per_user_net.pair_masks(masks, n_users, n_levels)
    assert allowed.shape == (1, n_users, 2 * n_levels)
    assert allowed[0].tolist() == [[True, False, True, False, False, False],
                                   [False, True, True, False, True, True]]


def test_from_spaces_reads_the_envs_spaces_and_rejects_others() -> None:
    env = gym.make("AIGCEdge-v0", config={"n_users": 3, "step_levels": (5, 10, 20)})
    net = PerUserActorCritic.from_spaces(env.observation_space, env.action_space, hidden_dim=8)
    assert (net.n_users, net.n_levels) == (3, 3)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        PerUserActorCritic.from_spaces(env.observation_space, gym.spaces.Discrete(4))
    with pytest.raises(ValueError, match="not the AIGC env's observation"):
        PerUserActorCritic.from_spaces(gym.spaces.Box(0, 1, (10,)), env.action_space)


def test_the_module_imports_no_stable_baselines3() -> None:
    script = ("import sys, aigc_edge_env.agents.per_user_net; "
              "print(sorted(m for m in ('stable_baselines3', 'sb3_contrib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_sb3_per_user_policy_is_built_from_the_same_module() -> None:
    pytest.importorskip("stable_baselines3")
    from aigc_edge_env.agents.networks import MaskablePerUserPolicy, PerUserPolicy

    env = gym.make("AIGCEdge-v0", config={"n_users": N_USERS})
    observations = torch.as_tensor(_observations(5))
    for cls in (PerUserPolicy, MaskablePerUserPolicy):
        policy = cls(env.observation_space, env.action_space, lambda _: 1e-3, hidden_dim=16, n_layers=2)
        encoder, head = policy.features_extractor.layers, policy.action_net
        assert isinstance(encoder, per_user_net.PerUserEncoder) and isinstance(head, per_user_net.PerUserHead)
        with torch.no_grad():
            sb3_logits = policy.get_distribution(observations).pairs.logits  # (B, N, 2L), normalised
            expected = per_user_net.PerUserHead.forward(head, encoder(observations))
        np.testing.assert_allclose(sb3_logits.numpy(), torch.log_softmax(expected, -1).numpy(), atol=1e-5)
