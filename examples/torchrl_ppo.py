"""PPO on AIGCEdge-v0 with TorchRL: the package's per-user network as a TorchRL actor-critic, one file.

The same agent and hyperparameters as ``examples/cleanrl_ppo.py`` (same flag names), built from TorchRL's
parts: :class:`~aigc_edge_env.agents.per_user_net.PerUserActorCritic` (plain torch) inside a
``TensorDictModule``, a ``ProbabilisticActor`` whose distribution is one categorical per user over its
``2L`` (offload bit, level) pairs (:class:`PerUserPairs`: the log-probability of a joint action sums over
the users with a request only, as in the CleanRL example), a ``ValueOperator`` for the critic, a
``Collector`` over the package's numpy-batched vector env, ``GAE`` and ``ClipPPOLoss``.

Settings TorchRL needs (each found by trial; without it the script fails or learns nothing):

* ``gym.make_vec(..., autoreset_mode="same_step")``: TorchRL's ``GymWrapper`` refuses a vector env in
  Gymnasium's default ``NEXT_STEP`` mode (``RuntimeError: The auto-reset mode must be one of SAME_STEP or
  DISABLED``).  Under ``NEXT_STEP`` the step after a truncation only resets (reward 0, action ignored),
  which TorchRL would record as a real transition; under ``SAME_STEP`` the truncating step returns the new
  episode's first observation and the last one in ``info["final_obs"]``, which TorchRL's
  ``VecGymEnvTransform`` swaps back into ``("next", "observation")``.  (``DISABLED``, TorchRL's preferred
  mode, is not one the package's vector env implements.)
* ``GymWrapper(..., categorical_action_encoding=True)``: the action space is ``MultiDiscrete([2]*N +
  [L]*N)``; by default TorchRL encodes it one-hot (a ``MultiOneHot`` action of ``2N + NL`` entries),
  which neither the env's integer action nor :class:`PerUserPairs` speaks.  With the flag the action in
  the tensordict is the env's own vector of ``2N`` integers (``N`` offload bits, then ``N`` level indices).
* The value is returned as ``(..., 1)`` (``unsqueeze(-1)``): TorchRL's rewards and done flags carry a
  trailing dimension of 1 and GAE broadcasts values against them.

Rewards are standardised by TorchRL's ``VecNormV2`` transform (running mean and standard deviation; the
CleanRL example's Gymnasium ``NormalizeReward`` cannot wrap the vector env here: ``GymWrapper`` then
fails reading ``autoreset_mode``, which Gymnasium's vector wrappers do not forward).  ``gamma`` is 0
because a decision never changes later slots in AIGCEdge-v0 (``agents/hyperparams/ppo.yml`` explains).
At the end the greedy policy is scored by the package's evaluation engine beside ``exact`` and
``random`` on held-out episodes (seeds ``EVAL_SEED`` = 10000 on): ``(R - R_random) / (R_exact - R_random)``;
``--save PATH`` writes the network in the format ``aigc-edge evaluate --policies torch:PATH`` plays
(:mod:`aigc_edge_env.policies.torch_module`).

    pip install 'aigc-edge-env[torchrl]'
    python examples/torchrl_ppo.py --timesteps 100000 --seed 1 --save runs/torchrl_s1.pt
"""

from __future__ import annotations

import argparse
import random
import time

import gymnasium as gym
import numpy as np
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torch.distributions import Categorical, Distribution
from torchrl.collectors import Collector
from torchrl.envs import EnvBase, GymWrapper, VecNormV2
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import aigc_edge_env  # noqa: F401  (registers the env ids)
from aigc_edge_env.agents.example_flags import ppo_parser
from aigc_edge_env.agents.per_user_net import PerUserActorCritic, action_pairs, pair_actions
from aigc_edge_env.evaluation.writers import print_score
from aigc_edge_env.policies.torch_module import TorchModulePolicy, save_torch_policy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return ppo_parser(__doc__).parse_args(argv)


class PerUserPairs(Distribution):
    """One categorical per user over its ``2L`` (offload bit, level) pairs, as a distribution over the env's
    ``MultiDiscrete`` action (``N`` offload bits, then ``N`` levels); log-probability and entropy sum over
    the users with a request (``requesting``, observation block 0: the env ignores the others' entries)."""

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor, requesting: torch.Tensor) -> None:
        self.pairs = Categorical(logits=logits)
        self.requesting = requesting
        self.n_levels = logits.shape[-1] // 2
        super().__init__(batch_shape=logits.shape[:-2], event_shape=(2 * logits.shape[-2],), validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        return pair_actions(self.pairs.sample(sample_shape), self.n_levels)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return (self.pairs.log_prob(action_pairs(value, self.n_levels)) * self.requesting).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.pairs.entropy() * self.requesting).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return pair_actions(self.pairs.logits.argmax(-1), self.n_levels)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


class PolicyHead(nn.Module):
    """Observations -> (pair logits ``(..., N, 2L)``, request flags ``(..., N)``) of the shared network."""

    def __init__(self, net: PerUserActorCritic) -> None:
        super().__init__()
        self.net = net

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(observation)[0], observation[..., : self.net.n_users]


class ValueHead(nn.Module):
    """Observations -> the value ``(..., 1)`` of the shared network."""

    def __init__(self, net: PerUserActorCritic) -> None:
        super().__init__()
        self.net = net

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.net(observation)[1].unsqueeze(-1)


def make_env(env_id: str, n_envs: int) -> EnvBase:
    """The package's vector env as a TorchRL env (the settings of the module docstring), rewards standardised."""
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="same_step")
    return GymWrapper(envs, categorical_action_encoding=True).append_transform(VecNormV2(in_keys=["reward"]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    batch_size = args.n_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.timesteps // batch_size)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    env = make_env(args.env, args.n_envs)
    env.set_seed(args.seed)
    single = gym.make(args.env)
    net = PerUserActorCritic.from_spaces(single.observation_space, single.action_space,
                                         hidden_dim=args.hidden_dim, n_layers=args.n_layers)
    actor = ProbabilisticActor(
        TensorDictModule(PolicyHead(net), in_keys=["observation"], out_keys=["logits", "requesting"]),
        in_keys=["logits", "requesting"], distribution_class=PerUserPairs, return_log_prob=True,
        spec=env.action_spec)
    critic = ValueOperator(ValueHead(net), in_keys=["observation"])
    advantage = GAE(gamma=args.gamma, lmbda=args.gae_lambda, value_network=critic, average_gae=False)
    loss_fn = ClipPPOLoss(actor, critic, clip_epsilon=args.clip_coef, entropy_bonus=args.ent_coef > 0,
                          entropy_coeff=args.ent_coef, critic_coeff=args.vf_coef / 2,  # CleanRL's 0.5 (v - R)^2
                          loss_critic_type="l2",
                          normalize_advantage=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.learning_rate, eps=1e-5)
    collector = Collector(env, actor, frames_per_batch=batch_size, total_frames=num_iterations * batch_size,
                          auto_register_policy_transforms=False)  # the policy keeps no state: no InitTracker

    global_step, start = 0, time.time()
    for iteration, batch in enumerate(collector, start=1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate
        global_step += batch.numel()
        with torch.no_grad():
            advantage(batch)
        flat = batch.reshape(-1)
        for _ in range(args.update_epochs):
            for mb in torch.randperm(batch_size).split(minibatch_size):
                losses = loss_fn(flat[mb])
                loss = losses["loss_objective"] + losses["loss_critic"] + losses.get("loss_entropy", 0.0)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), args.max_grad_norm)
                optimizer.step()
        slot_cost = batch["next", "cost"].mean().item()
        print(f"iteration {iteration}/{num_iterations}  step {global_step}  slot cost {slot_cost:.2f}  "
              f"SPS {int(global_step / (time.time() - start))}", flush=True)
    collector.shutdown()
    print(f"trained {global_step} steps in {time.time() - start:.0f} s", flush=True)

    net.eval()
    if args.save is not None:
        save_torch_policy(args.save, net, args.env)
        print(f"saved {args.save} (aigc-edge evaluate --policies torch:{args.save})", flush=True)
    if args.eval_episodes > 0:
        print_score("ppo", TorchModulePolicy(net), args.env, args.eval_episodes)


if __name__ == "__main__":
    main()
