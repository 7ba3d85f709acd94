"""The AIGC edge-offloading Gymnasium environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from aigc_edge_env import dynamics, spaces as env_spaces
from aigc_edge_env.config import AIGCEdgeConfig, make_config
from aigc_edge_env.memory import keep_heap_for
from aigc_edge_env.model import (
    OPTION_COLUMNS,
    PROBLEM_ARRAY_FIELDS,
    Decision,
    SlotEvaluation,
    SlotProblem,
    option_grid,
    serve,
)

__all__ = ["AIGCEdgeEnv", "render_text", "slot_info", "unwrapped_env"]


def slot_info(evaluation: SlotEvaluation) -> dict[str, float]:
    """``info`` of one slot: :meth:`SlotEvaluation.summary` as Python floats."""
    return {name: float(value) for name, value in evaluation.summary().items()}


def render_text(problem: SlotProblem, slot_index: int, last_evaluation: SlotEvaluation | None) -> str:
    """The ``"ansi"`` rendering of one system: the slot ``problem`` at ``slot_index`` and the last slot's outcome."""
    c = problem.config
    lines = [f"slot {slot_index}/{c.horizon_slots}  requests {int(problem.has_request.sum())}/{c.n_users}",
             "user req  up_Mbps  upload_Mbit  clock_GHz  battery_J"]
    for n in range(c.n_users):
        lines.append(
            f"{n:4d} {'yes' if problem.has_request[n] else ' no'} {problem.uplink_rate_bps[n] / 1e6:8.2f} "
            f"{problem.upload_bits[n] / 1e6:12.2f} {problem.device_clock_hz[n] / 1e9:10.2f} "
            f"{problem.battery_j[n]:10.1f}"
        )
    if last_evaluation is not None:
        info = slot_info(last_evaluation)
        lines.append(
            f"last slot: cost {info['cost']:.3f}  time {info['time_s']:.2f} s  energy {info['energy_j']:.2f} J  "
            f"mean error {info['mean_error']:.2f}  offloaded {info['n_offloaded']:.0f}  "
            f"dropped {info['n_dropped']:.0f}  edge load {info['edge_load']:.2f}"
        )
    return "\n".join(lines)


#: The single env computes the option rows of this many (user, mode, level) options at a
#: time (slots are drawn ahead in chunks of ``CHUNK_OPTIONS // (2 N L)`` slots, at least 2).
CHUNK_OPTIONS = 32_768
#: The per-user arrays of a slot that are drawn ahead (the battery is the state's, not drawn).
_DRAWN_FIELDS = tuple(name for name in PROBLEM_ARRAY_FIELDS if name != "battery_j")


@dataclass(frozen=True)
class _SlotChunk:
    """Slots drawn ahead: ``first_slot .. first_slot + n_slots - 1`` of the episode."""

    first_slot: int
    n_slots: int
    problem: SlotProblem  # arrays (n_slots, N); battery_j is a placeholder
    harvest_j: np.ndarray | None  # (n_slots, N) energy harvested on entering each slot
    option_grid: np.ndarray  # (K, 2, L, n_slots, N), model.option_grid
    observations: np.ndarray  # (n_slots, 9N + 3) float32, battery block patched per step


class AIGCEdgeEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    A base station with an edge GPU serves ``N`` phones that ask for AI-generated images.
    In each slot every phone has a new request with probability ``p_task``; the agent
    decides, per request, whether to run the diffusion model locally or offload it, and
    how many reverse-diffusion steps to run.  More steps give better images (lower
    average error, higher utility) but cost time and energy; offloaded tasks share the
    edge GPU (KKT-optimal split), so each extra offloaded task slows the others.  The
    full model, with every choice made, is ``docs/model.md``; the cost formulas live in
    :mod:`aigc_edge_env.model` and nowhere else.

    ## Action Space

    ``MultiDiscrete([2] * N + [L] * N)``: entries ``0..N-1`` are offload bits (1 = edge),
    entries ``N..2N-1`` index the step levels ``config.step_levels`` (default
    ``5, 10, 15, 20, 25, 30, 40, 50``).  Entries of users without a request are ignored.
    A malformed action (shape, dtype, NaN, out of range) raises ``ValueError``; a
    well-formed action that breaks a constraint is repaired by the documented rule
    (:mod:`aigc_edge_env.model`) and each dropped request costs ``config.drop_cost``.

    ## Observation Space

    ``Box(0, 1, (9N + 3,), float32)``: nine blocks of ``N`` per-user features, then three
    global features.  Block ``k`` occupies indices ``k*N .. k*N + N - 1``.

    | block | feature | normalisation |
    |-------|---------|---------------|
    | 0 | request present | 0 or 1 |
    | 1 | uplink spectral efficiency ``log2(1 + p h / (N0 b))`` (monotone in the gain ``h``) | / 30 bit/s/Hz, max 1 |
    | 2 | upload size ``D_n`` | / upper end of its range (0 without request) |
    | 3 | download size ``O_n`` | / upper end of its range (0 without request) |
    | 4 | device seconds per step ``c_L / f_n`` | / the slowest possible device's |
    | 5 | device joules per step ``kappa f_n^2 c_L`` | / the fastest possible device's |
    | 6 | deadline ``Tmax_n`` | / upper end of its range (0 without request) |
    | 7 | utility weight ``u_n`` | / upper end of its range (0 without request) |
    | 8 | battery level | / capacity; 1 when batteries are disabled |

    | index | global feature | normalisation |
    |-------|----------------|---------------|
    | 9N | share of users with a request | in [0, 1] |
    | 9N + 1 | edge capacity ``S^E_max`` | / (N * S_max), clipped to 1 |
    | 9N + 2 | time in episode ``t`` | / horizon |

    ## Rewards

    ``reward = -reward_scale * sum_n C_n`` (``reward_scale`` 1 by default: rewards in cost
    units, comparable with the solvers' costs) with
    ``C_n = w_T T_n + w_E E_n + w_Q eps(s_n) - w_U u_n ln(1 + s_n)`` per served request and
    ``C_drop`` per dropped one.  ``info`` carries every component as floats: ``cost``,
    ``time_s``, ``energy_j``, ``mean_error``, ``utility``, their weighted forms,
    ``n_requests``, ``n_served``, ``n_dropped``, ``n_offloaded``, ``offload_share``,
    ``edge_steps``, ``edge_load`` and ``drop_cost``.

    Per-slot rewards grow with ``N``: at ``reward_scale`` 1 the per-slot optimum earns about
    -16 in ``AIGCEdge-v0`` (uniformly random actions about -114 on seeds 10000-10009), -23 in the battery
    scenario and -113 in ``AIGCEdge-Large-v0``.  For RL code that does not normalise
    rewards, ``config={"reward_scale": 0.1 / n_users}`` puts them near -0.2 (optimum) to -1.8
    (random) in every scenario; ``info`` keeps the costs in cost units whatever the scale.

    ## Starting State

    Distances ``U[20, 300] m``, device clocks ``U[0.5, 3] GHz``, fading ``CN(0, 1)``,
    batteries (battery scenario) uniform on their initial range; then the first slot's
    requests.  All randomness comes from ``reset(seed=...)``.

    ## Episode End

    Never terminates; truncates after ``horizon_slots`` slots (default 100).  A ``step()``
    after the truncation, or after ``close()``, raises ``RuntimeError`` until ``reset()``.

    ## Arguments

    ``gym.make("AIGCEdge-v0", config={...}, render_mode="ansi")``: ``config`` is a dict of
    :class:`~aigc_edge_env.config.AIGCEdgeConfig` overrides (unknown keys and bad values
    raise :class:`~aigc_edge_env.config.ConfigError` naming the field) or a full config.
    Registered scenarios: ``AIGCEdge-v0`` (N = 10), ``AIGCEdge-Battery-v0`` (batteries),
    ``AIGCEdge-Large-v0`` (N = 50), ``AIGCEdge-Measured-v0`` (measured and sourced parameters,
    docs/environments/measured.md).

    ## Version History

    * v0: the only version of every id.  A new version number is given when the same seed
      and actions would give other observations, rewards or infos.  Within v0 the single env's
      episodes have not changed for any seed; the vector env's sub-env ``i`` of
      ``reset(seed=s)`` replays the single env's ``reset(seed=s + i)`` (from package 0.2.0 on;
      earlier, one generator drove every sub-env).  Package releases: CHANGELOG.md.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
        env_id: str = "AIGCEdge-v0",
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = make_config(env_id, config)
        self.render_mode = render_mode
        self.observation_space = env_spaces.observation_space(self.config)
        self.action_space = env_spaces.action_space(self.config)
        self._users = np.arange(self.config.n_users)
        self._slots_per_chunk = max(2, min(CHUNK_OPTIONS // (2 * self.config.n_users * self.config.n_levels),
                                           self.config.horizon_slots + 1))
        self._grid_shape = (len(OPTION_COLUMNS), 2, self.config.n_levels, self._slots_per_chunk, self.config.n_users)
        self._grid_buffer: np.ndarray | None = None  # reused by every chunk: no fresh pages per chunk
        keep_heap_for(2 * 8 * int(np.prod(self._grid_shape)))  # glibc: reuse chunk temporaries
        self._state: dynamics.SystemState | None = None
        self._chunk: _SlotChunk | None = None
        self._slot_index = 0
        self._problem: SlotProblem | None = None  # built on demand from the chunk
        self._last_evaluation: SlotEvaluation | None = None
        self._closed = False

    # --- Gymnasium API ----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported, got {options!r}")
        self._closed = False
        state = self._state = dynamics.reset_state(self.config, self.np_random, n_systems=None)
        self._slot_index = 0
        self._problem = None
        chunk = self._draw_chunk(state, first_is_current=True)
        self._last_evaluation = None
        return self._observation(chunk, state), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        c = self.config
        chunk, state = self._current_slot("step()")
        evaluation = self._last_evaluation = self._serve(chunk, state, action, ())
        battery_j = state.battery_j if c.battery_enabled else None
        info = evaluation.summary()  # Python floats for one slot
        self._slot_index += 1
        self._problem = None
        if self._slot_index == chunk.first_slot + chunk.n_slots:
            chunk = self._draw_chunk(state, first_is_current=False)
        if battery_j is not None and chunk.harvest_j is not None:
            harvest_j = chunk.harvest_j[self._slot_index - chunk.first_slot]
            state.battery_j = dynamics.recharge(c, battery_j, evaluation.energy_j, harvest_j)
        truncated = self._slot_index >= c.horizon_slots
        return self._observation(chunk, state), -c.reward_scale * float(info["cost"]), False, truncated, info

    def action_costs(self, actions: np.ndarray) -> np.ndarray:
        """The cost of each of ``K`` actions ``(K, 2N)`` in the current slot, shape ``(K,)``, without stepping.

        Each is the ``info["cost"]`` that :meth:`step` would report for that action (its reward is
        ``-reward_scale`` times it): the same table of the slot's options, repair rule and batteries, no
        energy prices.  For policies that value candidate actions before playing one (``quantised:PATH``,
        :mod:`~aigc_edge_env.policies.quantisation`); it reads the current slot only, as
        :meth:`current_problem` does.  ``ValueError`` as :meth:`step`'s for malformed actions."""
        chunk, state = self._current_slot("action_costs()")
        shape = np.shape(actions)
        if len(shape) != 2:
            raise ValueError(f"actions: expected shape (K, {2 * self.config.n_users}) (K actions, each N offload "
                             f"bits then N level indices), got shape {shape}")
        return self._serve(chunk, state, actions, shape[:1]).total_cost

    def close(self) -> None:
        """Free the drawn slots; a later ``step()`` raises until ``reset()``."""
        self._chunk, self._grid_buffer, self._problem, self._closed = None, None, None, True
        super().close()

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._chunk is None:
            return None
        return render_text(self.current_problem(), self._slot_index, self._last_evaluation)

    @property
    def last_evaluation(self) -> SlotEvaluation | None:
        """The outcome of the last ``step()`` (per-user ``cost``, ``served``, ``dropped``, ...), ``None`` before
        the first step of an episode.  Read-only: its arrays are the env's own, do not modify them."""
        return self._last_evaluation

    # --- the slot, for solvers --------------------------------------------------------
    def current_problem(self) -> SlotProblem:
        """The :class:`SlotProblem` the next action decides (read-only per-user arrays ``(N,)``).

        It holds the present slot only: its arrays are copies, not views of the slots drawn ahead,
        so no policy can read a later slot through it."""
        chunk, state = self._chunk, self._state
        if chunk is None or state is None:
            raise RuntimeError("call reset() before current_problem()")
        if self._problem is None:
            k = self._slot_index - chunk.first_slot
            arrays = {name: _read_only_copy(getattr(chunk.problem, name)[k]) for name in _DRAWN_FIELDS}
            self._problem = SlotProblem(config=self.config, **arrays, battery_j=_read_only_copy(state.battery_j))
        return self._problem

    @property
    def distance_m(self) -> np.ndarray:
        """Each user's distance to the base station (m; drawn at reset, fixed over the episode): what a
        base station knows of its users beyond the current slot, read by planning policies."""
        if self._state is None or self._closed:
            raise RuntimeError("call reset() before distance_m" if self._state is None else
                               "distance_m read after close()")
        return self._state.distance_m.copy()

    def action_to_decision(self, action: np.ndarray) -> Decision:
        actions = env_spaces.validate_actions(action, self.config, batch_shape=())
        return env_spaces.actions_to_decision(actions, self.config)

    def decision_to_action(self, decision: Decision) -> np.ndarray:
        return env_spaces.decision_to_actions(decision, self.config)

    def action_masks(self) -> np.ndarray:
        """Boolean mask over the flattened MultiDiscrete choices (sb3-contrib MaskablePPO)."""
        return env_spaces.action_mask(self.current_problem())

    # --- helpers -------------------------------------------------------------------
    def _current_slot(self, caller: str) -> tuple[_SlotChunk, dynamics.SystemState]:
        """The chunk holding the slot the next action decides, and the state; ``RuntimeError`` naming
        ``caller`` before ``reset()``, after ``close()`` or at the horizon."""
        chunk, state = self._chunk, self._state
        if chunk is None or state is None:
            raise RuntimeError(f"{caller} called after close()" if self._closed else f"call reset() before {caller}")
        if self._slot_index >= self.config.horizon_slots:
            raise RuntimeError(f"the episode ended at the horizon ({self.config.horizon_slots} slots): "
                               f"call reset() before {caller}")
        return chunk, state

    def _serve(self, chunk: _SlotChunk, state: dynamics.SystemState, action: np.ndarray,
               batch_shape: tuple[int, ...]) -> SlotEvaluation:
        """The current slot served under ``action`` (shape ``batch_shape + (2N,)``), from the table of its options."""
        c = self.config
        actions = env_spaces.validate_actions(action, c, batch_shape=batch_shape)
        n = c.n_users
        rows = chunk.option_grid[:, actions[..., :n], actions[..., n:], self._slot_index - chunk.first_slot,
                                 self._users]
        return serve(rows, state.battery_j if c.battery_enabled else None, c)

    def _draw_chunk(self, state: dynamics.SystemState, first_is_current: bool) -> _SlotChunk:
        """Draw the next slots (the current one too after a reset) and tabulate their options.

        Channels and requests do not depend on the actions, so they are drawn ahead (in the
        order the slot-by-slot dynamics would draw them, see :func:`dynamics.draw_slots`)
        and every option of every slot is costed in one vectorised call; a step then
        gathers its action's rows.  Batteries do depend on the actions: they stay in
        ``state`` and patch the observation.  Returns the new chunk (also ``self._chunk``).
        """
        c = self.config
        n_slots = max(1, min(self._slots_per_chunk, c.horizon_slots + 1 - self._slot_index))
        problem, harvest_j = dynamics.draw_slots(c, state, self.np_random, n_slots,
                                                 first_is_current=first_is_current)
        if self._grid_buffer is None:
            self._grid_buffer = np.empty(self._grid_shape)
        slot_indices = np.arange(self._slot_index, self._slot_index + n_slots)
        self._chunk = _SlotChunk(
            first_slot=self._slot_index, n_slots=n_slots, problem=problem, harvest_j=harvest_j,
            option_grid=option_grid(problem, out=self._grid_buffer[:, :, :, :n_slots]),
            observations=env_spaces.encode_observation(problem, slot_indices),
        )
        return self._chunk

    def _observation(self, chunk: _SlotChunk, state: dynamics.SystemState) -> np.ndarray:
        observation = chunk.observations[self._slot_index - chunk.first_slot].copy()
        if self.config.battery_enabled:
            env_spaces.write_battery_feature(observation, state.battery_j, self.config)
        return observation


def _read_only_copy(values: np.ndarray) -> np.ndarray:
    copy = values.copy()
    copy.flags.writeable = False
    return copy


def unwrapped_env(env: gym.Env) -> AIGCEdgeEnv:
    """The :class:`AIGCEdgeEnv` under ``env``'s wrappers (``env.unwrapped``); ``TypeError`` if it is another env."""
    base = env.unwrapped
    if not isinstance(base, AIGCEdgeEnv):
        raise TypeError(f"expected an AIGC edge env (AIGCEdgeEnv under any wrappers), got {base}")
    return base
