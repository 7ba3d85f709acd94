"""Registration of the scenario ids with Gymnasium (idempotent)."""

from __future__ import annotations

import gymnasium as gym

from aigc_edge_env.config import SCENARIOS


def register_envs() -> None:
    """Register every id of :data:`~aigc_edge_env.config.SCENARIOS`; a no-op when already registered."""
    for env_id in SCENARIOS:
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="aigc_edge_env.env:AIGCEdgeEnv",
            vector_entry_point="aigc_edge_env.vector_env:AIGCEdgeVectorEnv",
            kwargs={"env_id": env_id},
            max_episode_steps=None,
        )
