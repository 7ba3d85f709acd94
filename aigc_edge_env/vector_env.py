"""A numpy-batched vector version of :class:`~aigc_edge_env.env.AIGCEdgeEnv` (the fast path).

``gym.make_vec("AIGCEdge-v0", num_envs=64, vectorization_mode="vector_entry_point")``
builds it.  Every sub-env runs the same dynamics and cost model as the single env, with
all users of all sub-envs evaluated in one vectorised call per step.

Differences from a list of single envs, by design:

* One random generator (seeded by ``reset(seed=...)``) drives all sub-envs, so a
  vector run is reproducible but its sub-envs do not replay single-env seeds.  Slots are
  drawn by the single env's function (:func:`~aigc_edge_env.dynamics.draw_slots`), one
  slot of every sub-env per step, so both envs draw from the same distributions.
* Autoreset follows Gymnasium's ``NEXT_STEP`` mode: the step after a truncation resets
  that sub-env and returns its first observation with reward 0.
* ``info`` holds one array of length ``num_envs`` per component (Gymnasium's vector
  convention, with ``_name`` masks), the same names as the single env's ``info``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from aigc_edge_env import dynamics, spaces as env_spaces
from aigc_edge_env.config import AIGCEdgeConfig, make_config
from aigc_edge_env.model import SlotProblem, evaluate_decision

__all__ = ["AIGCEdgeVectorEnv"]


class AIGCEdgeVectorEnv(VectorEnv):
    """``num_envs`` independent AIGC edge systems stepped together with numpy."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
        scenario: str = "AIGCEdge-v0",
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError(f"AIGCEdgeVectorEnv does not render, got render_mode={render_mode!r}")
        self.num_envs = int(num_envs)
        self.config = make_config(scenario, config)
        self.render_mode = None
        self.single_observation_space = env_spaces.observation_space(self.config)
        self.single_action_space = env_spaces.action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._state: dynamics.SystemState | None = None
        self._slot_index = np.zeros(self.num_envs, dtype=np.int64)  # slots elapsed in each sub-env's episode
        self._problem: SlotProblem | None = None
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported, got {options!r}")
        self._state = dynamics.reset_state(self.config, self.np_random, self.num_envs)
        self._slot_index[:] = 0
        self._autoreset[:] = False
        self._problem = self._draw_slot(first_is_current=True)
        return env_spaces.encode_observation(self._problem, self._slot_index), {}

    def step(self, actions):
        if self._problem is None:
            raise RuntimeError("call reset() before step()")
        actions = env_spaces.validate_actions(actions, self.config, batch_shape=(self.num_envs,))
        evaluation = evaluate_decision(self._problem, env_spaces.actions_to_decision(actions, self.config))
        resetting = self._autoreset
        rewards = np.where(resetting, 0.0, -self.config.reward_scale * evaluation.total_cost)
        battery_j = self._state.battery_j
        self._reset_state_of(resetting)
        self._problem = self._draw_slot(first_is_current=resetting, battery_j=battery_j,
                                        energy_used_j=evaluation.energy_j)
        self._slot_index = np.where(resetting, 0, self._slot_index + 1)
        truncations = self._slot_index >= self.config.horizon_slots
        self._autoreset = truncations
        observations = env_spaces.encode_observation(self._problem, self._slot_index)
        infos: dict[str, np.ndarray] = {}
        for name, values in evaluation.summary().items():
            infos[name] = np.where(resetting, 0.0, values)
            infos[f"_{name}"] = ~resetting
        return observations, rewards, np.zeros(self.num_envs, dtype=bool), truncations, infos

    def current_problem(self) -> SlotProblem:
        """The batched :class:`SlotProblem` (arrays of shape ``(num_envs, N)``) the next actions decide."""
        if self._problem is None:
            raise RuntimeError("call reset() before current_problem()")
        return self._problem

    def action_masks(self) -> np.ndarray:
        """Per sub-env MaskablePPO masks, shape ``(num_envs, 2N + LN)``."""
        return env_spaces.action_mask(self.current_problem())

    def _draw_slot(self, first_is_current: bool | np.ndarray, battery_j: np.ndarray | None = None,
                   energy_used_j: np.ndarray | None = None) -> SlotProblem:
        """Draw every sub-env's next slot (:func:`dynamics.draw_slots`) and update the batteries.

        ``battery_j`` is the level before the slot that used ``energy_used_j`` (J); sub-envs
        whose slot is current (``first_is_current``: just reset) keep their fresh battery.
        """
        slots, harvest_j = dynamics.draw_slots(self.config, self._state, self.np_random, 1,
                                               first_is_current=first_is_current)
        if harvest_j is not None and battery_j is not None and energy_used_j is not None:
            recharged = dynamics.recharge(self.config, battery_j, energy_used_j, harvest_j[0])
            self._state.battery_j = np.where(np.asarray(first_is_current)[..., None], self._state.battery_j, recharged)
        return dataclasses.replace(slots.select(0), battery_j=self._state.battery_j)

    def _reset_state_of(self, which: np.ndarray) -> None:
        """Start new episodes in the sub-envs ``which`` (NEXT_STEP autoreset)."""
        if not which.any():
            return
        fresh = dynamics.reset_state(self.config, self.np_random, int(which.sum()))
        for field in dataclasses.fields(fresh):
            # New arrays, not in-place writes: earlier SlotProblems share these arrays.
            values = getattr(self._state, field.name).copy()
            values[which] = getattr(fresh, field.name)
            setattr(self._state, field.name, values)
