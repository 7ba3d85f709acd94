"""A numpy-batched vector version of :class:`~aigc_edge_env.env.AIGCEdgeEnv` (the fast path).

``gym.make_vec("AIGCEdge-v0", num_envs=64, vectorization_mode="vector_entry_point")``
builds it.  Every sub-env runs the same dynamics and cost model as the single env, with
all users of all sub-envs evaluated in one vectorised call per step.

* **Seeding as Gymnasium's vector envs.** Each sub-env has its own random generator and
  draws its slots with the single env's function (:func:`~aigc_edge_env.dynamics.draw_slots`),
  so sub-env ``i`` of ``reset(seed=s)`` replays the single env's ``reset(seed=s + i)``
  episode after episode (the same observations; rewards equal to rounding, about 1e-13, as the
  batch sums the cost terms in another order) (``reset(seed=[s_0, s_1, ...])``: one seed per sub-env; ``None``
  keeps each sub-env's stream going, or seeds it from the OS on first use).  Episode after
  episode means whole episodes: the single env draws its slots in chunks, so after a reset
  *without* a seed in the middle of an episode the two streams go on from different points
  (seed the reset to compare them).
* **Autoreset**: Gymnasium's ``NEXT_STEP`` (default: the step after a truncation resets
  that sub-env and returns its first observation with reward 0) or ``SAME_STEP`` (the
  truncating step returns the new episode's first observation; the last one is in
  ``info["final_obs"]`` and its info in ``info["final_info"]``), chosen with
  ``gym.make_vec(..., autoreset_mode="same_step")``.
* **Partial reset**: ``reset(options={"reset_mask": mask})`` resets only the sub-envs
  where the boolean ``mask`` is true (Gymnasium 1.x).
* ``info`` holds one array of length ``num_envs`` per component (Gymnasium's vector
  convention, with ``_name`` masks), the same names as the single env's ``info``.
* ``render_mode="ansi"``: :meth:`render` returns one text per sub-env.  There are no
  sub-env objects: :meth:`call` and :meth:`get_attr` answer for every sub-env from the
  batch (e.g. ``call("render")``, ``get_attr("config")``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from aigc_edge_env import dynamics, spaces as env_spaces
from aigc_edge_env.checks import is_count
from aigc_edge_env.config import AIGCEdgeConfig, make_config
from aigc_edge_env.env import render_text
from aigc_edge_env.model import PROBLEM_ARRAY_FIELDS, SlotEvaluation, SlotProblem, evaluate_decision

__all__ = ["PER_ENV_CALLS", "AIGCEdgeVectorEnv"]

#: The methods :meth:`AIGCEdgeVectorEnv.call` answers per sub-env beyond the attributes of ``get_attr``.
PER_ENV_CALLS = ("action_masks", "current_problem", "render")
#: The autoreset modes this env implements.
AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)


class AIGCEdgeVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` independent AIGC edge systems stepped together with numpy."""

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
        env_id: str = "AIGCEdge-v0",
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, "
                             f"got {render_mode!r}")
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = int(num_envs)
        self.config = make_config(env_id, config)
        self.render_mode = render_mode
        self.single_observation_space = env_spaces.observation_space(self.config)
        self.single_action_space = env_spaces.action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._generators: list[np.random.Generator] = []  # one per sub-env, from the first reset on
        self._state: dynamics.SystemState | None = None
        self._slot_index = np.zeros(self.num_envs, dtype=np.int64)  # slots elapsed in each sub-env's episode
        self._problem: SlotProblem | None = None
        self._last_evaluation: SlotEvaluation | None = None
        self._rendered_last = np.zeros(self.num_envs, dtype=bool)  # sub-envs whose last evaluation is of this episode
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    # --- Gymnasium API ----------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = dict(options or {})
        reset_mask = self._reset_mask(options.pop("reset_mask", None))
        if options:
            raise ValueError(f"reset options other than 'reset_mask' are not supported, got {options!r}")
        seeds = self._seeds(seed)
        if not reset_mask.all() and (not self._generators or self.closed):
            raise RuntimeError("the first reset() and the first after close() must reset every sub-env "
                               "(no reset_mask)")
        if not self._generators:
            self._generators = [seeding.np_random(s)[0] for s in seeds]
        for i in np.flatnonzero(reset_mask):
            if seeds[i] is not None:
                self._generators[i] = seeding.np_random(seeds[i])[0]
        if reset_mask.all():
            self._state, self._problem, self._last_evaluation = None, None, None
            self.closed = False
        self._restart(reset_mask)
        self._autoreset = self._autoreset & ~reset_mask
        return env_spaces.encode_observation(self.current_problem(), self._slot_index), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.closed:
            raise RuntimeError("step() called after close()")
        if self._problem is None:
            raise RuntimeError("call reset() before step()")
        actions = env_spaces.validate_actions(actions, self.config, batch_shape=(self.num_envs,))
        evaluation = self._last_evaluation = evaluate_decision(
            self._problem, env_spaces.actions_to_decision(actions, self.config))
        self._rendered_last = np.ones(self.num_envs, dtype=bool)
        resetting = self._autoreset  # NEXT_STEP: these sub-envs start a new episode, reward 0
        rewards = np.where(resetting, 0.0, -self.config.reward_scale * evaluation.total_cost)
        infos: dict[str, Any] = {}
        for name, values in evaluation.summary().items():
            infos[name] = np.where(resetting, 0.0, values)
            infos[f"_{name}"] = ~resetting
        self._advance(~resetting, evaluation.energy_j)
        if resetting.any():
            self._restart(resetting)
        truncations = self._slot_index >= self.config.horizon_slots
        observations = env_spaces.encode_observation(self._problem, self._slot_index)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and truncations.any():
            infos = _same_step_infos(infos, observations, truncations)
            self._restart(truncations)
            observations = env_spaces.encode_observation(self._problem, self._slot_index)
        else:
            self._autoreset = truncations
        return observations, rewards, np.zeros(self.num_envs, dtype=bool), truncations, infos

    def render(self) -> tuple[str, ...] | None:
        """One ``"ansi"`` text per sub-env (None without ``render_mode="ansi"``, before reset or after close)."""
        if self.render_mode != "ansi" or self._problem is None or self.closed:
            return None
        last = self._last_evaluation
        return tuple(render_text(self._problem.select(i), int(self._slot_index[i]),
                                 _select_evaluation(last, i) if last is not None and self._rendered_last[i] else None)
                     for i in range(self.num_envs))

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Per sub-env results of ``name``: one of :data:`PER_ENV_CALLS`, or any attribute :meth:`get_attr`
        serves (callables are called with ``args``)."""
        if name == "render":
            return self.render() or (None,) * self.num_envs
        if name == "current_problem":
            problem = self.current_problem()
            return tuple(problem.select(i) for i in range(self.num_envs))
        if name == "action_masks":
            return tuple(self.action_masks())
        values = self.get_attr(name)
        return tuple(value(*args, **kwargs) if callable(value) else value for value in values)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """An attribute of every sub-env; they share the config, spaces, metadata and render mode."""
        single = {"observation_space": self.single_observation_space, "action_space": self.single_action_space}
        shared = ("config", "metadata", "render_mode", "spec")
        if name in single:
            return (single[name],) * self.num_envs
        if name in shared:
            return (getattr(self, name),) * self.num_envs
        raise AttributeError(f"AIGCEdgeVectorEnv serves get_attr/call for {sorted({*single, *shared})} "
                             f"and call for {list(PER_ENV_CALLS)}, not {name!r}")

    # --- the slot, for solvers --------------------------------------------------------
    def current_problem(self) -> SlotProblem:
        """The batched :class:`SlotProblem` (arrays of shape ``(num_envs, N)``) the next actions decide."""
        if self.closed:
            raise RuntimeError("current_problem() called after close()")
        if self._problem is None:
            raise RuntimeError("call reset() before current_problem()")
        return self._problem

    def action_masks(self) -> np.ndarray:
        """Per sub-env MaskablePPO masks, shape ``(num_envs, 2N + LN)``."""
        return env_spaces.action_mask(self.current_problem())

    # --- helpers -------------------------------------------------------------------
    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if is_count(seed, 0):
            return [int(seed) + i for i in range(self.num_envs)]
        if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence | np.ndarray):
            raise ValueError(f"reset(seed=...) takes an integer >= 0, a list of them (one per sub-env, None to keep "
                             f"a sub-env's stream) or None, got {seed!r}")
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seed=[...]) needs one seed per sub-env ({self.num_envs}), got {len(seeds)}")
        bad = [s for s in seeds if s is not None and not is_count(s, 0)]
        if bad:
            raise ValueError(f"reset(seed=[...]) takes integers >= 0 or None, got {bad}")
        return [None if s is None else int(s) for s in seeds]

    def _reset_mask(self, mask: Any) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, dtype=bool)
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape ({self.num_envs},), "
                             f"got {mask!r}")
        if not mask.any():
            raise ValueError("options['reset_mask'] must mark at least one sub-env")
        return mask

    def _advance(self, which: np.ndarray, energy_used_j: np.ndarray) -> None:
        """Sub-envs ``which`` move to their next slot: draw it, then drain and recharge the batteries."""
        if not which.any():
            return
        state = self._require_state()
        battery_j = state.battery_j
        harvest_j = self._draw(which, first_is_current=False)
        if harvest_j is not None:
            recharged = dynamics.recharge(self.config, battery_j[which], energy_used_j[which], harvest_j)
            state.battery_j = _with_rows(battery_j, which, recharged)
        self._slot_index = np.where(which, self._slot_index + 1, self._slot_index)
        self._set_problem(dataclasses.replace(self.current_problem(), battery_j=state.battery_j))

    def _restart(self, which: np.ndarray) -> None:
        """Sub-envs ``which`` start a new episode: a fresh state from their generators, then its first slot."""
        generators = [self._generators[i] for i in np.flatnonzero(which)]
        fresh = dynamics.reset_state(self.config, generators, len(generators))
        if self._state is None:
            self._state = fresh
        else:  # new arrays, not in-place writes: earlier SlotProblems share the state's arrays
            old = self._state
            self._state = dynamics.SystemState(**{
                field.name: _with_rows(getattr(old, field.name), which, getattr(fresh, field.name))
                for field in dataclasses.fields(fresh)})
        self._draw(which, first_is_current=True)
        self._slot_index = np.where(which, 0, self._slot_index)
        self._rendered_last = self._rendered_last & ~which
        self._set_problem(dataclasses.replace(self.current_problem(), battery_j=self._state.battery_j))

    def _require_state(self) -> dynamics.SystemState:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def _draw(self, which: np.ndarray, first_is_current: bool) -> np.ndarray | None:
        """Draw the next slot of sub-envs ``which`` into the current problem; their harvests (J) or None."""
        rows = np.flatnonzero(which)
        everyone = rows.size == self.num_envs
        full = self._require_state()
        state = full if everyone else dynamics.SystemState(
            **{field.name: getattr(full, field.name)[rows] for field in dataclasses.fields(full)})
        slots, harvest_j = dynamics.draw_slots(self.config, state, [self._generators[i] for i in rows], 1,
                                               first_is_current=first_is_current)
        if not everyone:
            for name in ("fading", "trace_position"):  # what draw_slots moves on
                setattr(full, name, _with_rows(getattr(full, name), which, getattr(state, name)))
        drawn = slots.select(0)
        if self._problem is not None:
            drawn = SlotProblem(config=self.config, **{
                name: _with_rows(getattr(self._problem, name), which, getattr(drawn, name))
                for name in PROBLEM_ARRAY_FIELDS})
        self._set_problem(drawn)
        return None if harvest_j is None else harvest_j[0]

    def _set_problem(self, problem: SlotProblem) -> None:
        """The problem the next actions decide, read-only (handed out; the step evaluates it)."""
        for name in PROBLEM_ARRAY_FIELDS:
            getattr(problem, name).flags.writeable = False
        self._problem = problem


def _autoreset_mode(value: str | AutoresetMode) -> AutoresetMode:
    """An :class:`AutoresetMode`, its value (``"SameStep"``) or its name in any case (``"same_step"``)."""
    for mode in AUTORESET_MODES:
        if value is mode or value == mode.value or str(value).upper() == mode.name:
            return mode
    accepted = [m.name.lower() for m in AUTORESET_MODES]
    raise ValueError(f"autoreset_mode must be one of {accepted} (or an AutoresetMode), got {value!r}")


def _same_step_infos(infos: dict[str, Any], observations: np.ndarray, ended: np.ndarray) -> dict[str, Any]:
    """Gymnasium's ``SAME_STEP`` infos: the ending sub-envs' step infos move to ``final_info`` (masked to
    them), their observations to ``final_obs`` (an object array, None elsewhere); the step infos of the
    ending sub-envs are masked out (their reset's info is empty)."""
    names = [name for name in infos if not name.startswith("_")]
    final_obs = np.full(len(ended), None, dtype=object)
    for i in np.flatnonzero(ended):
        final_obs[i] = observations[i]
    final_info = {**{name: infos[name] for name in names}, **{f"_{name}": infos[f"_{name}"] & ended for name in names}}
    out = {**{name: infos[name] for name in names}, **{f"_{name}": infos[f"_{name}"] & ~ended for name in names}}
    return {**out, "final_obs": final_obs, "_final_obs": ended, "final_info": final_info, "_final_info": ended}


def _with_rows(values: np.ndarray, which: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values`` with the rows ``which`` replaced by ``rows`` (a new array; ``rows`` itself when all are)."""
    if which.all():
        return np.asarray(rows)
    out = np.array(values)
    out[which] = rows
    return out


def _select_evaluation(evaluation: SlotEvaluation, index: int) -> SlotEvaluation:
    """Sub-env ``index`` of a batched evaluation."""
    return dataclasses.replace(
        evaluation, rows=evaluation.rows[:, index], admitted=evaluation.admitted[index],
        meets_deadline=evaluation.meets_deadline[index], kept=evaluation.kept[index],
        sqrt_steps_sum=evaluation.sqrt_steps_sum[index], served_totals=evaluation.served_totals[:, index])
