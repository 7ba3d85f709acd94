"""RLlib PPO (new API stack) on AIGCEdge-v0 with the package's per-user network: one file.

The config is :func:`aigc_edge_env.agents.rllib.ppo_config` (``--multi-agent``:
:func:`~aigc_edge_env.agents.rllib.multi_agent_ppo_config`, the PettingZoo view with one shared
per-agent policy): :class:`~aigc_edge_env.agents.rllib.PerUserRLModule` with its per-user
(offload bit, level) pair distribution and gamma 0; the single env with the settings of
``examples/cleanrl_ppo.py`` (8 envs x 64 steps, 10 epochs of 4 minibatches of 128, learning rate 1e-3
decaying to 0, reward_scale 0.15), the multi-agent view the same (reward_scale 1.5 for each agent's
share of the team reward) on each agent's mean-field observation.
Training stops once ``--timesteps`` env steps (slots) are sampled;
the module is saved (``--checkpoint``) and, as in ``examples/cleanrl_ppo.py``, scored greedily
by the package's evaluation engine beside ``exact`` and ``random`` on held-out episodes (seeds
``EVAL_SEED`` = 10000 on).  The CPU time printed (user + system) sums this process and its
descendants on this machine, read from Linux's ``/proc`` at the end of training (with a local
Ray instance: Ray's own processes and its workers, the env runners among them; on a cluster,
``--address``, the driver's share only).

    .venv/bin/python examples/rllib_ppo.py --timesteps 100000 --seed 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray

import aigc_edge_env  # noqa: F401  (registers the env ids)
from aigc_edge_env.agents.example_flags import example_parser
from aigc_edge_env.agents.rllib import RLlibPolicy, multi_agent_ppo_config, ppo_config
from aigc_edge_env.evaluation.writers import print_score


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = example_parser(__doc__)
    p.add_argument("--multi-agent", action="store_true", help="the PettingZoo view, one shared per-user policy")
    p.add_argument("--num-env-runners", type=int, default=0, help="0: sample in this process")
    p.add_argument("--address", default=None,
                   help="a Ray cluster's head (HOST:PORT, started by `ray start --head`); default: a local instance")
    p.add_argument("--num-envs-per-env-runner", type=int, default=None,
                   help="sub-envs per env runner (default: the config function's, 8)")
    p.add_argument("--learning-rate", type=float, default=None, help="default: the config function's")
    p.add_argument("--reward-scale", type=float, default=None,
                   help="the env's reward_scale while training (default: the config function's)")
    p.add_argument("--agent-observation", choices=("own", "mean_field"), default=None,
                   help="with --multi-agent, each agent's observation (default: the config function's, mean_field)")
    p.add_argument("--checkpoint", default=None, help="where to save the algorithm (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.agent_observation is not None and not args.multi_agent:
        p.error("--agent-observation needs --multi-agent")
    return args


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its descendants, running (Linux's ``/proc``) or reaped."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parents[pid], ticks[pid] = int(fields[1]), sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    make_config = multi_agent_ppo_config if args.multi_agent else ppo_config
    kwargs = {key: value for key, value in (("num_envs_per_env_runner", args.num_envs_per_env_runner),
                                            ("learning_rate", args.learning_rate),
                                            ("reward_scale", args.reward_scale),
                                            ("observation", args.agent_observation)) if value is not None}
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:  # never a cluster a `ray start` left running here
        ray.init(address="local", num_cpus=max(1, args.num_env_runners) + 1, include_dashboard=False,
                 log_to_driver=False)
    algo = make_config(args.env, seed=args.seed, timesteps=args.timesteps, num_env_runners=args.num_env_runners,
                       **kwargs).build_algo()
    start, steps, episode_return = time.time(), 0, float("nan")
    while steps < args.timesteps:
        result = algo.train()
        steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
        # the mean return of the episodes that ended in this iteration (none in most: the sub-envs end together)
        episode_return = result["env_runners"].get("episode_return_mean", episode_return)
        print(f"iteration {result['training_iteration']}  step {steps}  episode return {episode_return:.2f} "
              f"(x reward_scale)  SPS {int(steps / (time.time() - start))}", flush=True)
    wall_s, cpu_s = time.time() - start, cpu_seconds()  # before Ray's workers stop
    checkpoint = args.checkpoint or tempfile.mkdtemp(prefix="rllib_ppo_")
    algo.save_to_path(checkpoint)
    algo.stop()
    ray.shutdown()
    print(f"trained {steps} steps in {wall_s:.0f} s, CPU {cpu_s:.0f} s; saved {checkpoint}", flush=True)

    if args.eval_episodes > 0:
        print_score("rllib", RLlibPolicy(checkpoint), args.env, args.eval_episodes)


if __name__ == "__main__":
    main()
