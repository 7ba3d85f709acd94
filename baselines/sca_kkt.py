"""``sca_kkt``: the paper's slot solver (arXiv 2312.06203): relaxation, SCA, KKT, rounding, repair.

The derivation is written out in ``docs/solver.md``; this module follows its sections.

1. **Relaxation.**  Offload bits ``x_n`` become continuous in ``[0, 1]`` and each user gets a
   continuous step count per mode (``s^L_n`` on the device, ``s^E_n`` at the edge) within
   its feasible box.  Per-user costs as functions of continuous steps are
   :class:`ContinuousCosts` (checked against :func:`~aigc_edge_env.model.option_table` at
   the integer levels by the tests).
2. **SCA.**  The only non-convex term is the congestion cost ``congestion_weight * Q^2``
   with the concave ``Q = sum_n x_n sqrt(s^E_n)``.  Each iteration replaces ``sqrt(s)`` by
   its tangent at ``t_n`` (AM-GM: ``x sqrt(s) <= x (sqrt(t)/2 + s/(2 sqrt(t)))``), an upper
   surrogate that is tight at the current point, so the iterations decrease the relaxed
   objective (majorisation-minimisation) while the deadline caps (taken from the previous
   iterate) stay fixed.
3. **KKT.**  Each convex surrogate is solved through its KKT conditions: for a congestion
   price ``pi`` and an edge-capacity price ``mu`` the problem separates per user (a monotone
   1-D search for the stationary step count in a tabulated marginal cost, a sign test for
   ``x_n``); ``pi = 2 congestion_weight Qbar`` (``Qbar`` the surrogate's ``Q``) and, when the
   capacity binds, ``mu`` are found by nested monotone searches (batched K-section: many
   candidate prices per numpy call).
4. **Rounding and repair.**  Over the solver view of :mod:`.options` (every candidate of the
   slot, drops penalised): ``x`` is rounded at 1/2 and the steps to the better neighbouring
   level; the repair of :mod:`.repair` (its least-cost move rule) restores capacity and
   deadlines; the local search of :mod:`.local_search` (single and pair moves, then kicks)
   runs from the repaired point and from an all-device baseline, and the better result is kept.

Energy prices (``SlotProblem.energy_price_per_j``) add to ``w_E`` per user in the relaxation
(:class:`ContinuousCosts`); drops, which are options at ``C_drop`` under prices
(:mod:`.options`), enter through the option costs the rounding, repair and local search use.

Only the config's step levels are decided; users without a request get ``offload=False``
and the smallest level; users that cannot be served (no feasible option, or an edge-only
user beyond the most that a drop-free decision can fit) get the device at the smallest
level, which the env drops.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aigc_edge_env import physics
from aigc_edge_env.baselines.local_search import local_search
from aigc_edge_env.baselines.options import SlotOptions, slot_options
from aigc_edge_env.baselines.repair import repair
from aigc_edge_env.error_curves import ErrorCurve
from aigc_edge_env.model import Decision, SlotProblem

__all__ = [
    "ContinuousCosts",
    "EdgeTable",
    "Relaxation",
    "RelaxedPoint",
    "RelaxedSolution",
    "Surrogate",
    "TableRows",
    "argmin_convex",
    "build_relaxation",
    "relaxation_users",
    "relaxed_objective",
    "respond",
    "solve",
    "solve_relaxation",
    "solve_surrogate",
]

STEP_SECTIONS = 15  # device step search: interior points tried at once per round (a round shrinks 16x)
STEP_ROUNDS = 8  # rounds of the device step search: the bracket shrinks by 16**-8 = 2**-32
_SECTION_FRACTIONS = (np.arange(1, STEP_SECTIONS + 1) / (STEP_SECTIONS + 1))[:, None]
EDGE_GRID_POINTS = 256  # grid of the edge cost table (geometric in steps)
PRICE_CANDIDATES = 14  # interior congestion prices tried at once per row and round (a round shrinks 15x)
_PRICE_FRACTIONS = np.arange(PRICE_CANDIDATES + 2) / (PRICE_CANDIDATES + 1)
PRICE_TOLERANCE = 1e-3  # final width of a pi cell relative to 2 congestion_weight Qbar(0, 0)
CAPACITY_CANDIDATES = 7  # capacity prices tried at once per round (geometric; a round shrinks 8x in log)
CAPACITY_TOLERANCE = 1e-2  # final width of the mu bracket relative to mu
GEOMETRIC_FLOOR = 1e-6  # lowest positive mu tried, relative to the bracket's upper end
CAPACITY_MAX_ROUNDS = 12  # ~4 rounds reach the tolerance; more only when the root sits at mu = 0
SCA_MAX_ITERATIONS = 12
SCA_TOLERANCE = 1e-3  # stop once an iteration changes the relaxed objective by less than this (relative)


# --------------------------------------------------------------------------------------
# Continuous costs
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContinuousCosts:
    """Per-user request costs as smooth functions of continuous steps ``s >= 1``.

    Device: ``L_n(s) = a_n s + w_Q eps_L(s) - w_U u_n ln(1 + s)``; edge without compute
    time: ``E_n(s) = b_n + w_Q eps_E(s) - w_U u_n ln(1 + s)``.  Each is convex (linear
    plus a convex error curve minus a concave utility), so its slope is non-decreasing.
    Arrays have one entry per user; ``s`` broadcasts against them (users on the last axis).
    """

    device_rate: np.ndarray  # a_n = w_T c_L/f_n + (w_E + pi_n) kappa f_n^2 c_L, cost per device step
    edge_fixed: np.ndarray  # b_n = w_T (D/r + O/r_dl) + (w_E + pi_n) (p D/r + p_rx O/r_dl), cost
    utility_weight: np.ndarray  # w_U u_n, cost per unit of ln(1 + s)
    weight_error: float  # w_Q, cost per unit of error
    device_curve: ErrorCurve
    edge_curve: ErrorCurve

    @classmethod
    def from_problem(cls, problem: SlotProblem) -> ContinuousCosts:
        """Coefficients from the problem's derived per-user constants and the config.

        A user's energy price (``problem.energy_price_per_j``) adds to the energy weight
        ``w_E`` in both modes: the relaxation minimises the priced objective of :mod:`.options`.
        """
        c = problem.config
        energy_weight = c.weight_energy_per_j + problem.energy_price_per_j  # w_E exactly at zero prices
        return cls(
            device_rate=c.weight_time_per_s * problem.local_step_time_s
            + energy_weight * problem.local_step_energy_j,
            edge_fixed=c.weight_time_per_s * problem.edge_transfer_time_s
            + energy_weight * problem.edge_radio_energy_j,
            utility_weight=c.weight_utility * problem.utility_weight,
            weight_error=c.weight_error,
            device_curve=c.device_error_curve,
            edge_curve=c.edge_error_curve,
        )

    def take(self, index: np.ndarray) -> ContinuousCosts:
        """The costs of the users selected by ``index`` (a mask or index array)."""
        return ContinuousCosts(self.device_rate[index], self.edge_fixed[index], self.utility_weight[index],
                               self.weight_error, self.device_curve, self.edge_curve)

    def device(self, steps: np.ndarray) -> np.ndarray:
        """``L_n(s)``: cost of ``s`` steps on the device."""
        return (self.device_rate * steps + self.weight_error * self.device_curve.error(steps)
                - physics.step_utility(self.utility_weight, steps))

    def edge(self, steps: np.ndarray) -> np.ndarray:
        """``E_n(s)``: cost of ``s`` steps at the edge without the compute-time term."""
        return (self.edge_fixed + self.weight_error * self.edge_curve.error(steps)
                - physics.step_utility(self.utility_weight, steps))

    def device_slope(self, steps: np.ndarray) -> np.ndarray:
        """``dL_n/ds`` (cost per step)."""
        return (self.device_rate + self.weight_error * self.device_curve.slope(steps)
                - self.utility_weight / (1.0 + steps))

    def edge_slope(self, steps: np.ndarray) -> np.ndarray:
        """``dE_n/ds`` (cost per step)."""
        return self.weight_error * self.edge_curve.slope(steps) - self.utility_weight / (1.0 + steps)


def argmin_convex(
    slope: Callable[[np.ndarray], np.ndarray], low: np.ndarray, high: np.ndarray, rounds: int = STEP_ROUNDS
) -> np.ndarray:
    """Minimiser over ``[low, high]`` (arrays of one shape ``(M,)``) of convex functions given their
    non-decreasing slopes (``slope`` maps ``(P, M)`` steps to ``(P, M)`` slopes).

    Vectorised K-section on the sign of the slope (the KKT condition of a box-constrained
    1-D convex problem): each round evaluates the slope at ``STEP_SECTIONS`` evenly spaced
    interior points of every bracket at once and keeps the cell where it turns positive.
    Returns ``low`` where the slope is positive throughout, ``high`` where it is negative
    throughout, else the stationary point, to ``(high - low) (STEP_SECTIONS + 1)**-rounds``.
    """
    low, high = np.broadcast_arrays(np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64))
    columns = np.arange(low.size)
    for _ in range(rounds):
        points = low + (high - low) * _SECTION_FRACTIONS
        below = np.count_nonzero(slope(points) <= 0.0, axis=0)  # interior points left of the root
        bounds = np.vstack([low, points, high])
        low, high = bounds[below, columns], bounds[below + 1, columns]
    return 0.5 * (low + high)


# --------------------------------------------------------------------------------------
# Relaxation and its SCA / KKT solution
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _edge_grid(curve: ErrorCurve, min_steps: float, max_steps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid of :meth:`EdgeTable.build` (a config's, kept): its steps, where ``phi`` is evaluated on
    it, and each point's predecessor (the first point's is itself); read-only arrays."""
    kinks = np.asarray(getattr(curve, "steps", ()), dtype=np.float64)
    kinks = kinks[(kinks > min_steps) & (kinks < max_steps)]
    grid = np.geomspace(min_steps, max(max_steps, min_steps * 1.01), EDGE_GRID_POINTS)
    steps = np.sort(np.concatenate([grid, kinks, kinks]))
    left = np.zeros(steps.size)
    left[np.searchsorted(steps, kinks)] = 1e-9 * kinks  # evaluate the first copy just left of the kink
    left[-1] = 1e-9 * steps[-1]  # and the upper end: s never exceeds it
    arrays = steps, steps - left, np.concatenate([steps[:1], steps[:-1]])
    for array in arrays:
        array.flags.writeable = False
    return arrays


@dataclass(frozen=True)
class EdgeTable:
    """``E_n`` and ``phi_n = -dE_n/ds`` on a geometric grid of steps (rows: users).

    ``phi_n`` is non-increasing (``E_n`` is convex), so the stationary edge step count for a
    marginal price ``lambda`` solves ``phi_n(s) = lambda``.  Rows are stored flattened, with
    ``keys = row offset - phi`` non-decreasing, so one ``np.searchsorted`` brackets every user
    and every candidate price at once.
    """

    steps: np.ndarray  # (G,) grid, steps
    marginal: np.ndarray  # (M * G,) phi_n(steps), cost per step, row-major
    cost: np.ndarray  # (M * G,) E_n(steps), cost
    keys: np.ndarray  # (M * G,) non-decreasing
    offsets: np.ndarray  # (M,)
    row_starts: np.ndarray  # (M,) index of each row's first entry
    # per entry g of a row, the cell (s_(g-1), s_g] below it (its first entry's is never used):
    cell_start: np.ndarray  # (M * G,) s_(g-1), steps
    cell_width: np.ndarray  # (M * G,) s_g - s_(g-1), steps
    cell_drop: np.ndarray  # (M * G,) max(phi_n(s_(g-1)) - phi_n(s_g), 1e-300), cost per step

    @classmethod
    def build(cls, costs: ContinuousCosts, min_steps: float, max_steps: float) -> EdgeTable:
        """The table on a geometric grid plus, twice each, the kinks of a tabulated error curve.

        At a kink ``phi`` jumps; the first copy holds its left limit and the second its right
        limit, so marginal prices inside the jump map exactly to the kink.  (``slope`` is a
        right derivative; only the left one matters at the upper end.)
        """
        steps, slope_steps, previous = _edge_grid(costs.edge_curve, min_steps, max_steps)
        marginal = -costs.edge_slope(slope_steps[:, None]).T  # (M, G); the curves run on the grid only
        span = float(marginal.max() - marginal.min()) + 1.0
        rows = marginal.shape[0]
        offsets = span * np.arange(rows)
        flat = marginal.ravel()
        return cls(steps, flat, costs.edge(steps[:, None]).T.ravel(), (offsets[:, None] - marginal).ravel(), offsets,
                   steps.size * np.arange(rows), np.tile(previous, rows), np.tile(steps - previous, rows),
                   np.maximum(np.concatenate([flat[:1], flat[:-1]]) - flat, 1e-300))

    def marginal_at(self, steps: np.ndarray) -> np.ndarray:
        """``phi_n(steps_n)`` by linear interpolation in the table (cost per step), shape ``(M,)``."""
        cell = np.clip(np.searchsorted(self.steps, steps), 1, self.steps.size - 1)
        share = (steps - self.steps[cell - 1]) / (self.steps[cell] - self.steps[cell - 1])
        index = self.row_starts + cell
        return self.marginal[index - 1] + share * (self.marginal[index] - self.marginal[index - 1])

    def stationary(self, marginal: np.ndarray, offsets: np.ndarray, row_starts: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``s = argmin_s E_n(s) + marginal_n s`` over ``[S_min, S_max]`` and ``E_n(s)``, shape ``(..., users)``.

        ``offsets`` and ``row_starts`` select the users' rows (entries of :attr:`offsets` and
        :attr:`row_starts`).  Binary search for the grid cell with
        ``phi_n(s_(g-1)) > marginal_n >= phi_n(s_g)``, then linear interpolation of ``phi_n`` in
        the cell (one regula-falsi step) and the trapezoid rule for
        ``E_n(s) = E_n(s_(g-1)) - integral of phi_n``.  A marginal price above ``phi_n(S_min)``
        gives ``S_min``, below ``phi_n(S_max)`` gives ``S_max``.
        """
        return self.stationary_rows(marginal, self.rows(offsets, row_starts))

    def rows(self, offsets: np.ndarray, row_starts: np.ndarray) -> TableRows:
        """The rows with these :attr:`offsets` and :attr:`row_starts` entries, for :meth:`stationary_rows`."""
        last = row_starts + self.steps.size - 1
        return TableRows(offsets, row_starts, row_starts + 1, last, self.marginal[row_starts], self.marginal[last])

    def stationary_rows(self, marginal: np.ndarray, rows: TableRows) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`stationary` over the users of ``rows`` (:meth:`rows`, kept across calls)."""
        target = np.minimum(np.maximum(marginal, rows.last_marginal), rows.first_marginal)
        cell = np.searchsorted(self.keys, rows.offsets - target)
        cell = np.minimum(np.maximum(cell, rows.second), rows.last)
        before = cell - 1
        above = self.marginal[before]
        advance = (above - target) / self.cell_drop[cell] * self.cell_width[cell]
        return self.cell_start[cell] + advance, self.cost[before] - advance * 0.5 * (above + target)


@dataclass(frozen=True)
class TableRows:
    """Some rows of an :class:`EdgeTable` (one per user, arrays ``(M,)``): where each row lies in the
    flattened arrays, and its ``phi`` at ``S_min`` and ``S_max``."""

    offsets: np.ndarray  # entries of EdgeTable.offsets
    starts: np.ndarray  # index of the row's first entry
    second: np.ndarray  # starts + 1
    last: np.ndarray  # index of the row's last entry
    first_marginal: np.ndarray  # phi_n(S_min)
    last_marginal: np.ndarray  # phi_n(S_max)

    def take(self, keep: np.ndarray) -> TableRows:
        """The rows where ``keep`` (a mask or index array over these rows) holds."""
        return TableRows(self.offsets[keep], self.starts[keep], self.second[keep], self.last[keep],
                         self.first_marginal[keep], self.last_marginal[keep])


@dataclass(frozen=True)
class Relaxation:
    """Static data of the relaxed slot over the candidates it serves (arrays of length ``M``).

    ``users`` indexes the candidates of the :class:`~.options.SlotOptions` it was built from;
    ``device_value`` is ``min L_n`` over the feasible device box (``inf`` without one);
    ``edge_ok`` says whether the edge is usable at all; an edge user meets its deadline iff
    ``sqrt(s) Q <= edge_step_budget`` (``F_E (Tmax - transfer time)``, steps: what the edge
    GPU runs in the time the transfers leave).
    """

    users: np.ndarray
    costs: ContinuousCosts
    edge_table: EdgeTable
    table_rows: TableRows  # every row of edge_table
    min_steps: float
    max_steps: float
    device_steps: np.ndarray  # argmin of L_n over [S_min, largest feasible device level]
    device_value: np.ndarray
    edge_ok: np.ndarray
    edge_step_budget: np.ndarray
    congestion_weight: float  # w_T / F_E, cost per step
    edge_step_capacity: float  # S^E_max, steps


def relaxation_users(opts: SlotOptions) -> np.ndarray:
    """The candidates (indices into ``opts``) the relaxation serves: all but the edge-only ones no
    drop-free decision can fit.

    A candidate with a device option can always be served there.  An edge-only ("forced")
    candidate needs the edge; forced users at the smallest level use the least capacity and
    ``Q`` and have the loosest deadlines, so ``k`` of them fit together iff each has room for
    ``Q = k sqrt(S_min)`` and ``k S_min <= S^E_max``.  The most that fit, ``k*``, is found by
    admitting them in decreasing order of room; among those with room for ``k*``, the ``k*``
    cheapest at the smallest edge level are served (the local search's pair moves may still
    swap a served one for a dropped one).
    """
    smallest = opts.levels[0]
    forced = np.flatnonzero(~opts.has_local)
    room = opts.max_sqrt_steps_sum[forced, opts.n_levels]  # Q limit at the smallest level
    count = np.arange(1, forced.size + 1)
    fits = (count * np.sqrt(smallest) <= np.sort(room)[::-1]) & (count * smallest <= opts.edge_step_capacity)
    most = int(np.argmin(fits)) if not fits.all() else forced.size
    pool = forced[room >= most * np.sqrt(smallest)]
    served = pool[np.argsort(opts.penalised_edge_cost[pool, 0], kind="stable")[:most]]
    return np.flatnonzero(opts.has_local | np.isin(np.arange(opts.n_candidates), served))


def build_relaxation(opts: SlotOptions) -> Relaxation:
    """The relaxed problem over the candidates of :func:`relaxation_users`."""
    users = relaxation_users(opts)
    levels = opts.levels.astype(np.float64)
    costs = ContinuousCosts.from_problem(opts.table.problem).take(opts.users[users])
    feasible = opts.local_feasible[users]
    device_high = np.where(feasible.any(axis=1), levels[np.maximum(feasible.sum(axis=1) - 1, 0)], levels[0])
    device_steps = argmin_convex(costs.device_slope, levels[0], device_high)
    limit = opts.max_sqrt_steps_sum[users, opts.n_levels]  # Q limit at the smallest level
    table = EdgeTable.build(costs, levels[0], levels[-1])
    return Relaxation(
        users=users,
        costs=costs,
        edge_table=table,
        table_rows=table.rows(table.offsets, table.row_starts),
        min_steps=float(levels[0]),
        max_steps=float(levels[-1]),
        device_steps=device_steps,
        device_value=np.where(opts.has_local[users], costs.device(device_steps), np.inf),
        edge_ok=opts.edge_feasible_alone[users, 0],
        edge_step_budget=np.where(np.isfinite(limit), limit, 0.0) * np.sqrt(levels[0]),
        congestion_weight=opts.congestion_weight,
        edge_step_capacity=float(opts.edge_step_capacity),
    )


@dataclass(frozen=True)
class RelaxedPoint:
    """Relaxed offload shares ``x`` in ``[0, 1]`` and edge step counts ``s^E``, shape ``(..., M)``.

    Leading axes index candidate multipliers during the searches.
    """

    offload: np.ndarray
    edge_steps: np.ndarray

    def load(self) -> np.ndarray:
        """Edge load ``sum_n x_n s^E_n`` (steps), shape ``(...)``."""
        return np.sum(self.offload * self.edge_steps, axis=-1)

    def pick(self, index: Any) -> RelaxedPoint:
        """The candidates at ``index`` (a numpy index into the leading axes)."""
        return RelaxedPoint(self.offload[index], self.edge_steps[index])


def _blend(low: RelaxedPoint, high: RelaxedPoint, weight_low: np.ndarray | float) -> RelaxedPoint:
    """Convex combination in the perspective variables ``(x, z = x s)``, where load and ``Qbar`` are linear."""
    weight = np.asarray(weight_low)[..., None]
    offload = weight * low.offload + (1.0 - weight) * high.offload
    edge_work = weight * low.offload * low.edge_steps + (1.0 - weight) * high.offload * high.edge_steps
    steps = np.where(offload > 0.0, edge_work / np.maximum(offload, 1e-300), high.edge_steps)
    return RelaxedPoint(offload, steps)


def _weight_to_meet(low_value: np.ndarray, high_value: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    """The weight on ``low`` of a blend whose (linear) aggregate equals ``target``, in ``[0, 1]``."""
    gap = low_value - high_value
    weight = np.divide(target - high_value, gap, out=np.zeros(np.shape(gap)), where=gap != 0.0)
    return np.minimum(np.maximum(weight, 0.0), 1.0)


@dataclass(frozen=True)
class RelaxedSolution:
    """A KKT point of one convex surrogate (and, at convergence, of the relaxed problem).

    ``point.offload`` is in ``[0, 1]``; ``congestion_price`` is ``pi = 2 congestion_weight Qbar``
    (cost per unit of ``Q``); ``capacity_price`` is ``mu`` (cost per edge step); ``edge_high``
    is the step box used; ``objective`` is the relaxed (not the surrogate) objective;
    ``iterations`` counts SCA iterations.
    """

    point: RelaxedPoint
    device_steps: np.ndarray
    tangent: np.ndarray
    edge_high: np.ndarray
    congestion_price: float
    capacity_price: float
    objective: float = np.nan
    iterations: int = 0


@dataclass(frozen=True)
class Surrogate:
    """Per-user data of one SCA iteration's convex surrogate, for the users ``users`` (indices).

    ``sqrt(s)`` is replaced by its tangent at ``t``, ``sqrt(t)/2 + s/(2 sqrt(t))``, so a user's
    contribution to ``Qbar`` is ``x (root_half + slope_half s)``; ``max_sqrt_steps_sum`` bounds
    ``Qbar`` (the tightest deadline of the previous iterate's edge users).  The searches
    restrict it to the users that can still offload at the prices left to try.
    """

    max_sqrt_steps_sum: float  # steps^(1/2); inf when no deadline binds
    users: np.ndarray
    root_half: np.ndarray  # sqrt(t) / 2, steps^(1/2)
    slope_half: np.ndarray  # 1 / (2 sqrt(t)), steps^(-1/2)
    high_marginal: np.ndarray  # phi_n(edge_high_n): lower marginal prices leave s at edge_high
    offload_below: np.ndarray  # device_value where the edge is usable, else -inf: offload iff the edge value is below
    table_rows: TableRows

    @classmethod
    def at(cls, relax: Relaxation, tangent: np.ndarray, edge_high: np.ndarray,
           max_sqrt_steps_sum: float) -> Surrogate:
        root = np.sqrt(tangent)
        table = relax.edge_table
        return cls(max_sqrt_steps_sum, np.arange(tangent.size), 0.5 * root, 0.5 / root, table.marginal_at(edge_high),
                   np.where(relax.edge_ok, relax.device_value, -np.inf), relax.table_rows)

    def restrict(self, keep: np.ndarray) -> Surrogate:
        """The surrogate over the users where ``keep`` (a mask over this one's users) holds."""
        return Surrogate(self.max_sqrt_steps_sum, self.users[keep], self.root_half[keep], self.slope_half[keep],
                         self.high_marginal[keep], self.offload_below[keep], self.table_rows.take(keep))

    def sqrt_steps_sum(self, point: RelaxedPoint) -> np.ndarray:
        """``Qbar = sum_n x_n (sqrt(t_n)/2 + s^E_n / (2 sqrt(t_n)))`` (steps^(1/2)), shape ``(...)``."""
        return np.sum(point.offload * (self.root_half + self.slope_half * point.edge_steps), axis=-1)

    def expand(self, point: RelaxedPoint, n_users: int) -> RelaxedPoint:
        """``point`` (over this surrogate's users) as a point over all ``n_users`` (zeros elsewhere)."""
        shape = point.offload.shape[:-1] + (n_users,)
        offload, steps = np.zeros(shape), np.zeros(shape)
        offload[..., self.users], steps[..., self.users] = point.offload, point.edge_steps
        return RelaxedPoint(offload, steps)


def respond(relax: Relaxation, surrogate: Surrogate, congestion_price: np.ndarray | float,
            capacity_price: np.ndarray | float) -> RelaxedPoint:
    """Per-user minimiser of the surrogate's Lagrangian for prices ``(pi, mu)`` (arrays of one shape ``K``).

    Edge steps: the minimiser of ``E_n(s) + lambda_n s`` over ``[S_min, edge_high_n]``,
    ``lambda_n = pi / (2 sqrt(t_n)) + mu`` (convex, so the stationary point with the marginal
    price raised to ``phi_n(edge_high_n)``); offload iff the edge value
    ``E_n(s) + pi sqrt(t_n) / 2 + lambda_n s`` is below ``min L_n``.  Returns shape ``K + (users,)``.
    """
    congestion_price = np.asarray(congestion_price)[..., None]
    marginal = congestion_price * surrogate.slope_half + np.asarray(capacity_price)[..., None]
    steps, cost = relax.edge_table.stationary_rows(np.maximum(marginal, surrogate.high_marginal), surrogate.table_rows)
    value = cost + congestion_price * surrogate.root_half + marginal * steps
    return RelaxedPoint((value < surrogate.offload_below).astype(np.float64), steps)


@dataclass(frozen=True)
class _PriceCells:
    """Brackets ``[low, high]`` of ``pi(mu)`` for a batch of ``mu`` (B,), with the points at both ends."""

    low: np.ndarray
    high: np.ndarray
    low_point: RelaxedPoint  # (B, users): pi - 2 congestion_weight Qbar < 0 here
    high_point: RelaxedPoint  # (B, users): pi - 2 congestion_weight Qbar >= 0 here
    low_sqrt_steps_sum: np.ndarray  # (B,) Qbar at low_point
    high_sqrt_steps_sum: np.ndarray  # (B,) Qbar at high_point


def _price_cells(relax: Relaxation, surrogate: Surrogate, capacity_price: np.ndarray, low: np.ndarray,
                 high: np.ndarray, tolerance: float, settled: Callable[[_PriceCells], np.ndarray] | None = None
                 ) -> tuple[_PriceCells, Surrogate]:
    """K-section search for the congestion price ``pi(mu)``: the least ``pi`` with
    ``pi >= 2 congestion_weight Qbar(pi, mu)`` and ``Qbar(pi, mu) <= max_sqrt_steps_sum``.

    ``Qbar`` is non-increasing in ``pi``, so both tests switch from false to true once.  Each round
    evaluates ``PRICE_CANDIDATES + 2`` evenly spaced prices per row (ends included) in one batch
    and keeps the cell with the sign change; rounds stop when every row's cell is narrower than
    ``tolerance`` or ``settled`` (a per-row test on the cells) holds.  ``[low, high]`` must hold
    the roots.  Users off at every row's lowest price stay off, so later rounds drop them;
    returns the cells and the surrogate over the users kept.
    """
    rows = np.arange(capacity_price.size)
    while True:
        prices = low[:, None] + (high - low)[:, None] * _PRICE_FRACTIONS
        points = respond(relax, surrogate, prices, capacity_price[:, None])
        sqrt_steps_sum = surrogate.sqrt_steps_sum(points)
        short = ((prices < 2.0 * relax.congestion_weight * sqrt_steps_sum)
                 | (sqrt_steps_sum > surrogate.max_sqrt_steps_sum))
        cell = np.maximum(np.where(short.all(axis=1), PRICE_CANDIDATES + 1, np.argmin(short, axis=1)), 1)
        before = cell - 1
        cells = _PriceCells(prices[rows, before], prices[rows, cell], points.pick((rows, before)),
                            points.pick((rows, cell)), sqrt_steps_sum[rows, before], sqrt_steps_sum[rows, cell])
        low, high = cells.low, cells.high
        if np.all((high - low <= tolerance) | (settled(cells) if settled else False)):
            return cells, surrogate
        keep = np.asarray(cells.low_point.offload.any(axis=0))
        if not keep.all():
            surrogate = surrogate.restrict(keep)


def _kkt_points(relax: Relaxation, surrogate: Surrogate, cells: _PriceCells) -> tuple[RelaxedPoint, np.ndarray]:
    """Blend each row's cell ends so that ``Qbar = min(pi / (2 congestion_weight), max_sqrt_steps_sum)`` at
    ``pi`` = the cell's upper end.

    The blend (in the perspective variables) covers a jump of ``Qbar`` at the root, where the
    switching users are indifferent between the modes and take fractional ``x``.
    """
    congestion_weight = relax.congestion_weight
    target = np.minimum(cells.high / (2.0 * congestion_weight) if congestion_weight else np.inf,
                        surrogate.max_sqrt_steps_sum)
    weight = _weight_to_meet(cells.low_sqrt_steps_sum, cells.high_sqrt_steps_sum, target)
    return _blend(cells.low_point, cells.high_point, np.where(np.isfinite(target), weight, 0.0)), cells.high


def _capacity_search(relax: Relaxation, surrogate: Surrogate, free: RelaxedPoint, free_congestion_price: float,
                     congestion_price_bound: float, tolerance: float) -> tuple[RelaxedPoint, float, float]:
    """Find ``mu`` with ``G(mu) = S^E_max``, ``G(mu)`` the load at the KKT point of ``(pi(mu), mu)``.

    ``G`` is non-increasing (concavity of the dual function) and ``pi(mu)`` is non-increasing, so
    the ``pi`` searches of a bracket's ``mu`` candidates start from ``[pi(mu_hi), pi(mu_lo)]``.
    Each round tries ``CAPACITY_CANDIDATES`` geometrically spaced ``mu`` at once (at most
    ``CAPACITY_MAX_ROUNDS``: a root at ``mu = 0``, a jump of ``G`` there, is approached
    geometrically and never met), over the users
    that offload at the bracket's lowest prices; their ``pi`` searches stop as soon as the loads
    at the cell ends put ``G`` surely above or not above the capacity.  Returns the
    capacity-meeting blend of the final ends (over all users), its ``pi`` and ``mu``.
    ``pi`` is the congestion price and ``mu`` the capacity price.
    """
    capacity, n_users = relax.edge_step_capacity, surrogate.users.size
    capacity_price_low, capacity_price_high = 0.0, _capacity_price_bound(relax)
    congestion_price_low, congestion_price_high = 0.0, congestion_price_bound
    low_end: tuple[RelaxedPoint, float] = (free, free_congestion_price)
    high_end: tuple[RelaxedPoint, float] | None = None
    fractions = np.arange(1, CAPACITY_CANDIDATES + 1) / (CAPACITY_CANDIDATES + 1)

    def settled(cells: _PriceCells) -> np.ndarray:
        return (cells.high_point.load() > capacity) | (cells.low_point.load() <= capacity)

    for _ in range(CAPACITY_MAX_ROUNDS):
        if capacity_price_high - capacity_price_low <= CAPACITY_TOLERANCE * capacity_price_high:
            break
        floor = max(capacity_price_low, capacity_price_high * GEOMETRIC_FLOOR)
        capacity_prices = floor * (capacity_price_high / floor) ** fractions
        lowest = respond(relax, surrogate, congestion_price_low, capacity_price_low)
        candidates = surrogate.restrict(lowest.offload > 0.0)
        ends = np.full(capacity_prices.size, congestion_price_low), np.full(capacity_prices.size, congestion_price_high)
        cells, kept = _price_cells(relax, candidates, capacity_prices, *ends, tolerance, settled)
        points, prices = _kkt_points(relax, kept, cells)
        points = kept.expand(points, n_users)
        over = points.load() > capacity
        first_under = int(np.argmin(over)) if not over.all() else capacity_prices.size
        if first_under > 0:
            j = first_under - 1
            capacity_price_low, congestion_price_high = float(capacity_prices[j]), float(cells.high[j])
            low_end = (points.pick(j), float(prices[j]))
        if first_under < capacity_prices.size:
            j = first_under
            capacity_price_high, congestion_price_low = float(capacity_prices[j]), float(cells.low[j])
            high_end = (points.pick(j), float(prices[j]))
    if high_end is None:  # the bracket never left its upper bound: solve pi there
        cells, kept = _price_cells(relax, surrogate, np.array([capacity_price_high]), np.zeros(1),
                                   np.array([congestion_price_bound]), tolerance)
        point, price = _kkt_points(relax, kept, cells)
        high_end = (kept.expand(point, n_users).pick(0), float(price[0]))
    weight = float(_weight_to_meet(low_end[0].load(), high_end[0].load(), capacity))
    return (_blend(low_end[0], high_end[0], weight), weight * low_end[1] + (1.0 - weight) * high_end[1],
            weight * capacity_price_low + (1.0 - weight) * capacity_price_high)


def solve_surrogate(relax: Relaxation, tangent: np.ndarray, edge_high: np.ndarray,
                    max_sqrt_steps_sum: float = np.inf) -> RelaxedSolution:
    """KKT point of the convex surrogate with tangent points ``tangent`` and step caps ``edge_high`` (steps).

    First ``pi`` at ``mu = 0``: its root lies in ``[0, 2 congestion_weight Qbar(0, 0)]`` since
    ``Qbar`` is non-increasing, unless ``Qbar <= max_sqrt_steps_sum`` needs a higher price (then up
    to :func:`_congestion_price_bound`); if the edge load then exceeds ``S^E_max``, the capacity
    price is searched (:func:`_capacity_search`).  Users that do not offload keep the edge step
    count of their response at the final prices (the next tangent point).
    """
    surrogate = Surrogate.at(relax, tangent, edge_high, max_sqrt_steps_sum)
    free = respond(relax, surrogate, 0.0, 0.0)
    free_sqrt_steps_sum = float(surrogate.sqrt_steps_sum(free))
    price_bound = 2.0 * relax.congestion_weight * free_sqrt_steps_sum
    if free_sqrt_steps_sum > max_sqrt_steps_sum:
        price_bound = max(price_bound, _congestion_price_bound(relax, surrogate))
    tolerance = PRICE_TOLERANCE * price_bound
    cells, kept = _price_cells(relax, surrogate, np.zeros(1), np.zeros(1), np.array([price_bound]), tolerance)
    points, prices = _kkt_points(relax, kept, cells)
    point, congestion_price, capacity_price = kept.expand(points, tangent.size).pick(0), float(prices[0]), 0.0
    if point.load() > relax.edge_step_capacity:
        point, congestion_price, capacity_price = _capacity_search(relax, surrogate, point, congestion_price,
                                                                   price_bound, tolerance)
    response = respond(relax, surrogate, congestion_price, capacity_price)
    steps = np.where(point.offload > 0.0, point.edge_steps, response.edge_steps)
    return RelaxedSolution(RelaxedPoint(point.offload, steps), relax.device_steps, tangent, edge_high,
                           congestion_price, capacity_price)


def _edge_gain(relax: Relaxation) -> np.ndarray:
    """``min L_n - min E_n`` (cost): the most a user can save at the edge before congestion (0 if forced)."""
    edge_best = relax.edge_table.cost.reshape(relax.edge_ok.size, -1).min(axis=1)
    return np.where(np.isfinite(relax.device_value), relax.device_value - edge_best, 0.0)


def _congestion_price_bound(relax: Relaxation, surrogate: Surrogate) -> float:
    """A ``pi`` (cost per ``Q``) at which only forced users offload, at the smallest level.

    Above ``(min L_n - min E_n) / Qbar_n(S_min)`` the edge never beats the device; above
    ``2 sqrt(t_n) phi_n(S_min)`` the stationary edge step count is ``S_min``.
    """
    smallest_root = surrogate.root_half + surrogate.slope_half * relax.min_steps
    steepest = relax.edge_table.marginal[relax.edge_table.row_starts] / surrogate.slope_half
    return float(max((_edge_gain(relax) / smallest_root).max(), steepest.max(), 0.0)) + 1.0


def _capacity_price_bound(relax: Relaxation) -> float:
    """A ``mu`` (cost per step) at which only forced users offload, at the smallest level.

    Above ``(min L_n - min E_n) / S_min`` the edge never beats the device; above
    ``phi_n(S_min)`` the stationary edge step count is ``S_min``.
    """
    steepest = relax.edge_table.marginal[relax.edge_table.row_starts]
    return float(max(_edge_gain(relax).max() / relax.min_steps, steepest.max(), 0.0)) + 1.0


def _next_linearisation(relax: Relaxation, point: RelaxedPoint) -> tuple[np.ndarray, np.ndarray, float]:
    """Tangent points, edge step caps and ``Qbar`` cap for the next surrogate (steps, steps^(1/2)).

    The deadline ``sqrt(s_n) Q <= edge_step_budget_n`` of an edge user is approximated at the
    current point: ``s_n <= (edge_step_budget_n / Q)^2`` for every user (and
    ``s_n <= edge_step_budget_n``, as ``Q >= sqrt(s_n)``), ``s_n <= S^E_max``, and
    ``Qbar <= min edge_step_budget_n / sqrt(s_n)`` over the users that offload now.
    """
    budget = relax.edge_step_budget
    sqrt_steps_sum = float(point.offload @ np.sqrt(point.edge_steps))
    deadline_high = np.minimum((budget / max(sqrt_steps_sum, 1e-12)) ** 2, budget)
    edge_high = np.clip(np.minimum(deadline_high, relax.edge_step_capacity), relax.min_steps, relax.max_steps)
    on = point.offload > 0.0
    max_sqrt_steps_sum = float((budget[on] / np.sqrt(point.edge_steps[on])).min()) if on.any() else np.inf
    return point.edge_steps, edge_high, max_sqrt_steps_sum


def relaxed_objective(relax: Relaxation, point: RelaxedPoint) -> float:
    """``sum (1-x) L(s^L) + x E(s^E) + congestion_weight (sum x sqrt(s^E))^2`` (cost)."""
    x = point.offload
    costs = (1.0 - x) * relax.costs.device(relax.device_steps) + x * relax.costs.edge(point.edge_steps)
    return float(costs.sum()) + relax.congestion_weight * float(x @ np.sqrt(point.edge_steps)) ** 2


def solve_relaxation(relax: Relaxation) -> RelaxedSolution:
    """SCA on the relaxed slot: re-linearise ``sqrt(s^E)`` at the last solution until it settles.

    Starts from the congestion-free edge optimum without deadline caps.  Each iteration's
    surrogate takes its tangent points and deadline caps from the previous solution
    (:func:`_next_linearisation`); it stops when an iteration changes the relaxed objective by
    less than ``SCA_TOLERANCE`` (relative) and returns the last solution.  While the caps do
    not move (deadlines slack, as at the defaults) the objective decreases monotonically
    (majorisation-minimisation).
    """
    table = relax.edge_table
    tangent = table.stationary_rows(np.zeros(relax.edge_ok.shape), relax.table_rows)[0]
    edge_high, max_sqrt_steps_sum = np.full(tangent.shape, relax.max_steps), np.inf
    previous = np.nan
    for iteration in range(1, SCA_MAX_ITERATIONS + 1):
        candidate = solve_surrogate(relax, tangent, edge_high, max_sqrt_steps_sum)
        value = relaxed_objective(relax, candidate.point)
        solution = dataclasses.replace(candidate, objective=value, iterations=iteration)
        if abs(previous - value) <= SCA_TOLERANCE * (1.0 + abs(value)):
            break
        previous = value
        tangent, edge_high, max_sqrt_steps_sum = _next_linearisation(relax, candidate.point)
    return solution


# --------------------------------------------------------------------------------------
# Integer recovery: rounding, then the shared repair and local search
# --------------------------------------------------------------------------------------
def _round(relaxed: RelaxedSolution, opts: SlotOptions, relax: Relaxation) -> np.ndarray:
    """A choice over every candidate: the relaxation's users rounded, the others dropped.

    ``x`` is rounded at 1/2 and the steps of the chosen mode to the better neighbouring level.
    Neighbours are compared by the per-user surrogate: device cost, or edge cost plus the
    linearised congestion ``pi sqrt(s)`` and capacity price ``mu s``; an edge neighbour whose
    deadline fails at the relaxed ``Q`` is taken only if both do (then the lower one).
    """
    n_levels, users = opts.n_levels, relax.users
    levels = opts.levels.astype(np.float64)
    point = relaxed.point
    edge = point.offload >= 0.5
    target = np.where(edge, point.edge_steps, relaxed.device_steps)
    upper = np.clip(np.searchsorted(levels, target), 0, n_levels - 1)
    candidates = np.stack([np.maximum(upper - 1, 0), upper], axis=1) + np.where(edge, n_levels, 0)[:, None]
    rows = users[:, None]
    score = (opts.cost[rows, candidates] + relaxed.congestion_price * opts.sqrt_steps[candidates]
             + relaxed.capacity_price * opts.edge_steps[candidates])
    late = opts.max_sqrt_steps_sum[rows, candidates] < float(point.offload @ np.sqrt(point.edge_steps))
    score = np.where(late & ~late.all(axis=1, keepdims=True), np.inf, score)
    rounded = candidates[np.arange(users.size), np.argmin(score, axis=1)]
    infeasible = ~opts.feasible[users, rounded]  # edge levels its deadline alone rules out
    rounded[infeasible] = np.argmin(opts.cost[users[infeasible]], axis=1)
    choice = opts.fallback
    choice[users] = rounded
    return choice


def _baseline(opts: SlotOptions, relax: Relaxation) -> np.ndarray:
    """Every candidate at its best device option, the relaxation's edge-only users at the edge's
    smallest level (edge-feasible: the relaxation serves only forced users that fit together)."""
    choice = opts.fallback
    choice[relax.users[~opts.has_local[relax.users]]] = opts.n_levels
    return choice


def solve(problem: SlotProblem, rng: np.random.Generator | None = None, *, search: bool = True) -> Decision:
    """SCA-KKT decision of one slot (deterministic; ``rng`` is unused).

    Drop-free whenever a drop-free decision exists; users that no drop-free decision can
    serve get the device at the smallest level (the env drops them).  ``search=False``
    returns the repaired rounding without the final local search (to measure how well the
    relaxation alone guides the decision; ``benchmarks/sca_kkt_quality.py``).
    """
    del rng
    if problem.has_request.ndim != 1:
        raise ValueError(f"sca_kkt solves one slot at a time, got per-user arrays of shape {problem.has_request.shape}")
    opts = slot_options(problem)
    if opts.n_candidates == 0:
        return opts.decision(opts.fallback)
    relax = build_relaxation(opts)
    rounded = repair(opts, _round(solve_relaxation(relax), opts, relax), least_cost=True)
    if not search:
        return opts.decision(rounded)
    return opts.decision(local_search(opts, (rounded, _baseline(opts, relax)), pairs=True, kicks=True))
