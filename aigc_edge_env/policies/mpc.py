"""Planning on sampled futures: model predictive control with the hindsight dual (the ``mpc`` policy).

The hindsight bound (:mod:`aigc_edge_env.baselines.hindsight`) prices each joule of a battery
with the whole episode known.  An online policy does not know the future, but it knows how the
future is drawn (docs/model.md: requests, sizes, deadlines, the Gauss-Markov fading, the uniform
harvest) and what persists (each phone's clock and distance, its battery, the current fading).
:class:`MPCPolicy` re-plans on *one sampled future*: every ``every`` slots it

1. draws the rest of the episode once from the model, starting from the present (the current
   slot as it is; the fading from the current uplink rate and the user's distance; the
   batteries as they are), with its own generator (seeded by ``reset(seed)``, a stream apart
   from the env's, so it never sees the real future);
2. maximises the hindsight dual of that sampled episode (the same column generation, at most
   :data:`MAX_ROUNDS` rounds, relative tolerance :data:`TOLERANCE`, warm-started from its last
   plan), which prices each user's joule so that its sampled energy use fits its battery and
   harvests;
3. plays the first slot's prices with ``exact`` for this slot and the next ``every - 1``.

This is certainty-equivalent re-planning on a sample average approximation with one sample
(Kleywegt, Shapiro, Homem-de-Mello, SIAM J. Optim. 2002; re-solving heuristics, Jasin and Kumar,
Math. Oper. Res. 2012): the plan is wrong about the future, and re-planning corrects it with
what the batteries actually did.  To keep a plan cheap, a rest of the episode longer than
``slots`` is sampled as ``slots`` slots with the battery scaled by ``slots / remaining`` (about
the same energy per slot, so about the same price); shorter rests are sampled whole.

Parameters (the name ``mpc(every=<k>,slots=<m>)``; plain ``mpc`` takes :data:`MPC_DEFAULTS`,
tuned on training seeds by ``aigc-edge experiments rules``, docs/results.md section 3): ``every``
(slots between plans, >= 1) and ``slots`` (length of the sampled future, >= 1).  Cost: about
``(H / every)`` plans of at most ``(3 + MAX_ROUNDS) * slots`` exact solves each.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from aigc_edge_env import dynamics, physics
from aigc_edge_env.baselines import SOLVERS, Solver
from aigc_edge_env.baselines.hindsight import INITIAL_PRICES_PER_J, maximise_dual, relaxed_episode
from aigc_edge_env.model import SlotProblem
from aigc_edge_env.policies.base import policy_rng
from aigc_edge_env.policies.pricing import PricedPolicy

__all__ = ["MAX_ROUNDS", "MPCPolicy", "MPC_DEFAULTS", "TOLERANCE", "mpc_policy_name"]

#: ``mpc``'s parameters, tuned on training seeds (``aigc-edge experiments rules``; docs/results.md).
MPC_DEFAULTS = {"every": 5, "slots": 20}
#: Column-generation rounds per plan (after the initial pricing points) and the relative tolerance.
MAX_ROUNDS = 8
TOLERANCE = 1e-3
#: Tag of the sampled futures' random stream (:func:`~aigc_edge_env.policies.base.policy_rng`).
STREAM = 0x6D7063


def mpc_policy_name(every: int, slots: int) -> str:
    """The :func:`~aigc_edge_env.policies.registry.make_policy` name of ``mpc`` with these parameters."""
    return f"mpc(every={every},slots={slots})"


class MPCPolicy(PricedPolicy):
    """``solve`` (default ``exact``) under the prices of the hindsight dual of a sampled future,
    re-planned every ``every`` slots on ``slots`` sampled slots (module docstring).  The plans
    themselves always price slots with ``exact`` (the bound's column generation)."""

    def __init__(self, every: int = MPC_DEFAULTS["every"], slots: int = MPC_DEFAULTS["slots"],
                 solve: Solver = SOLVERS["exact"], name: str | None = None) -> None:
        for label, value in (("every", every), ("slots", slots)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"mpc's {label} must be an integer number of slots >= 1, got {value!r}")
        super().__init__(solve, name or mpc_policy_name(int(every), int(slots)))
        self.every, self.slots = int(every), int(slots)
        self.future_rng = np.random.default_rng()
        self.distance_m: np.ndarray | None = None
        self.planned_price_per_j: np.ndarray | None = None  # the last plan's first-slot prices (N,)

    def reset(self, seed: int | None) -> None:
        super().reset(seed)
        self.future_rng = policy_rng(seed, STREAM)
        self.distance_m = None  # read again by observe() in the new episode
        self.planned_price_per_j = None

    def observe(self, env: Any) -> None:
        self.distance_m = env.distance_m

    def prices_per_j(self, problem: SlotProblem, observation: np.ndarray) -> np.ndarray:
        if not problem.config.battery_enabled:
            return np.zeros(problem.n_users)
        if self.planned_price_per_j is None or self.slot_index % self.every == 0:
            self.planned_price_per_j = self.plan(problem)[0]
        return self.planned_price_per_j

    def plan(self, problem: SlotProblem) -> np.ndarray:
        """The dual prices ``(n, N)`` of one sampled rest of the episode that starts with ``problem``."""
        if self.distance_m is None:
            raise RuntimeError("MPCPolicy.plan needs the env's distances: act() reads them (observe)")
        c = problem.config
        remaining = c.horizon_slots - self.slot_index
        n = max(1, min(remaining, self.slots))
        gain = physics.gain_from_rate_bps(c.bandwidth_per_user_hz, c.user_tx_power_w, problem.uplink_rate_bps,
                                          c.noise_psd_w_per_hz)
        path_gain = physics.path_gain(self.distance_m)
        # only |g| matters for the future fading (the innovations are circular), so the phase is 0
        state = dynamics.SystemState(distance_m=self.distance_m, path_gain=path_gain,
                                     device_clock_hz=np.array(problem.device_clock_hz),
                                     fading=np.sqrt(gain / path_gain).astype(np.complex128),
                                     battery_j=np.array(problem.battery_j))
        problems, harvest_j = [problem], np.zeros((0, c.n_users))
        if n > 1:
            future, harvest = dynamics.draw_slots(c, state, self.future_rng, n - 1, first_is_current=False)
            problems += [future.select(k) for k in range(n - 1)]
            harvest_j = np.asarray(harvest)
        episode = relaxed_episode(problems, harvest_j, np.asarray(problem.battery_j) * (n / max(remaining, 1)))
        warm = INITIAL_PRICES_PER_J if self.planned_price_per_j is None else (self.planned_price_per_j,)
        return maximise_dual(episode, max_rounds=MAX_ROUNDS, tolerance=TOLERANCE, initial_prices_per_j=warm,
                             final_master=False).prices_per_j
