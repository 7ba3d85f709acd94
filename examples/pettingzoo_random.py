"""The multi-agent view (PettingZoo ``ParallelEnv``, one agent per phone) played by independent agents.

Each agent sees its own 12 features (its 9 per-user features, then the 3 global ones) and
picks ``(offload, step level)``; agents without a request (observation entry 0 is 0) are
left out of the actions dict, as the env ignores their actions anyway.  Two kinds of
agents: ``random`` (a uniform action) and ``local`` (run locally at a fixed level, a
simple independent rule).  With ``--reward own`` every agent gets its own cost, and the
script checks that the own rewards add up to the team reward.

    .venv/bin/python examples/pettingzoo_random.py --episodes 2 --reward own
"""

from __future__ import annotations

import argparse

import numpy as np

from aigc_edge_env.multi_agent import REWARD_MODES, parallel_env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="AIGCEdge-v0")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--max-slots", type=int, default=None, help="stop each episode after this many slots")
    p.add_argument("--reward", choices=REWARD_MODES, default="team")
    p.add_argument("--policy", choices=("random", "local"), default="random")
    p.add_argument("--level", type=int, default=3, help="step-level index of the local policy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    env = parallel_env(args.env, reward=args.reward, render_mode="ansi")
    for episode in range(args.episodes):
        observations, _ = env.reset(seed=args.seed + episode)
        for i, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(args.seed + 1000 * episode + i)
        returns = dict.fromkeys(env.possible_agents, 0.0)
        slot_cost = 0.0
        slots = 0
        while env.agents and (args.max_slots is None or slots < args.max_slots):
            actions = {
                agent: env.action_space(agent).sample() if args.policy == "random" else np.array([0, args.level])
                for agent in env.agents
                if observations[agent][0] > 0.5  # only agents with a request act
            }
            observations, rewards, terminations, truncations, infos = env.step(actions)
            for agent, reward in rewards.items():
                returns[agent] += reward
            slot = next(iter(infos.values()))["slot"]  # the slot totals, the same for every agent
            slot_cost += slot["cost"]
            if args.reward == "own":
                assert np.isclose(sum(rewards.values()), -env.config.reward_scale * slot["cost"])
            slots += 1
        best = max(returns, key=returns.__getitem__)
        print(f"episode {episode}: {slots} slots, slot cost {slot_cost:.1f}, "
              f"team return {-env.config.reward_scale * slot_cost:.1f}; "
              f"{args.reward} returns per agent from {min(returns.values()):.1f} to {returns[best]:.1f} ({best})")
    print(env.render())
    env.close()


if __name__ == "__main__":
    main()
