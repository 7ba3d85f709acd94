"""An SB3 ``VecEnv`` over the numpy-batched :class:`~aigc_edge_env.AIGCEdgeVectorEnv`.

SB3 expects *same-step* autoreset: the step that ends an episode returns the first
observation of the next one, with the final observation in ``info["terminal_observation"]``
(and ``info["TimeLimit.truncated"]`` for a truncation, so PPO and DQN bootstrap from it).
The Gymnasium vector env autoresets on the *next* step (``NEXT_STEP``), returning a dummy
transition with reward 0.  :class:`SB3VectorEnv` converts: when its sub-envs truncate, it
keeps their final observation for ``info`` and resets the vector env at once, so SB3 never
sees the dummy transition.

This needs every sub-env to end its episode on the same step, which holds for the AIGC envs
(episodes end only by truncation, after ``horizon_slots`` slots, and all sub-envs start
together); a partial ending raises ``RuntimeError`` rather than silently corrupting data.
Infos are converted from Gymnasium's dict of arrays to SB3's list of per-env dicts of floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from aigc_edge_env.vector_env import PER_ENV_CALLS, AIGCEdgeVectorEnv

__all__ = ["SB3VectorEnv", "sub_env_seeds"]


def sub_env_seeds(seed: int | None, num_envs: int) -> list[int] | None:
    """Independent seeds for the sub-envs of a run seeded ``seed`` (None: fresh entropy).

    SB3's ``VecEnv.seed(s)`` means ``s, s + 1, ...``, so runs seeded 0, 1, 2 would share all
    but one sub-env stream (in ``AIGCEdge-v0`` the slots do not depend on the actions); the
    seeds spawned by ``numpy.random.SeedSequence(seed)`` do not overlap between runs.
    """
    if seed is None:
        return None
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(num_envs)]


class SB3VectorEnv(VecEnv):
    """SB3 view of an :class:`~aigc_edge_env.AIGCEdgeVectorEnv` with ``NEXT_STEP`` autoreset (module docstring)."""

    def __init__(self, vector_env: AIGCEdgeVectorEnv) -> None:
        autoreset_mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)  # wrappers pass it on
        if autoreset_mode is not AutoresetMode.NEXT_STEP:
            raise ValueError("SB3VectorEnv needs the vector env's autoreset_mode NEXT_STEP (its default), "
                             f"got {autoreset_mode}")
        self.venv = vector_env
        self._actions: np.ndarray | None = None
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)

    def reset(self) -> np.ndarray:
        if any(self._options):
            raise ValueError(f"SB3VectorEnv.reset takes no options (the AIGC envs accept none), got {self._options}")
        observations, _ = self.venv.reset(seed=sub_env_seeds(self._seeds[0], self.num_envs))
        self._reset_seeds()
        self._reset_options()
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_async() must come before step_wait()")
        observations, rewards, terminations, truncations, infos = self.venv.step(self._actions)
        dones = terminations | truncations
        step_infos = self._split_infos(infos)
        if dones.any():
            if not dones.all():
                raise RuntimeError(
                    f"SB3VectorEnv needs all sub-envs to end their episodes together, got dones={dones.tolist()}"
                )
            for i, info in enumerate(step_infos):
                info["terminal_observation"] = observations[i]
                info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            observations, _ = self.venv.reset()
        return observations, np.asarray(rewards, dtype=np.float32), dones, step_infos

    def _split_infos(self, infos: dict[str, Any]) -> list[dict[str, Any]]:
        per_env: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for name, values in infos.items():
            if name.startswith("_"):
                continue
            present = infos.get(f"_{name}", np.ones(self.num_envs, dtype=bool))
            if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype != object:
                items = values.tolist()  # Python scalars, in one call rather than one .item() per env
            else:
                items = [value.item() if isinstance(value, np.generic) else value for value in values]
            for i in np.flatnonzero(present).tolist():
                per_env[i][name] = items[i]
        return per_env

    # --- attribute access: the vector env (under any Gymnasium vector wrappers) answers for every sub-env ---
    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        results = self.venv.unwrapped.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        values = self.venv.unwrapped.get_attr(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def has_attr(self, attr_name: str) -> bool:
        return attr_name in PER_ENV_CALLS or super().has_attr(attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("SB3VectorEnv.set_attr sets an attribute of the one vector env, so of every sub-env; "
                             f"got indices={indices!r}")
        setattr(self.venv, attr_name, value)

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
