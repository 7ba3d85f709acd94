"""``sca_kkt``: the paper's slot solver (arXiv 2312.06203): relaxation, SCA, KKT, rounding, repair.

The derivation is written out in ``docs/solver.md``; this module follows its sections.

1. **Relaxation.**  Offload bits ``x_n`` become continuous in ``[0, 1]`` and each user gets a
   continuous step count per mode (``s^L_n`` on the device, ``s^E_n`` at the edge) within
   its feasible box.  Per-user costs as functions of continuous steps are
   :class:`ContinuousCosts` (checked against :func:`~aigc_edge_env.model.option_table` at
   the integer levels by the tests).
2. **SCA.**  The only non-convex term is the congestion cost ``c Q^2`` with the concave
   ``Q = sum_n x_n sqrt(s^E_n)``.  Each iteration replaces ``sqrt(s)`` by its tangent at
   ``t_n`` (AM-GM: ``x sqrt(s) <= x (sqrt(t)/2 + s/(2 sqrt(t)))``), an upper surrogate that
   is tight at the current point, so the iterations decrease the relaxed objective
   (majorisation-minimisation) while the deadline caps (taken from the previous iterate) stay
   fixed.
3. **KKT.**  Each convex surrogate is solved through its KKT conditions: for a congestion
   price ``pi`` and an edge-capacity price ``mu`` the problem separates per user (a monotone
   1-D search for the stationary step count in a tabulated marginal cost, a sign test for
   ``x_n``); ``pi = 2 c Qbar`` and, when the capacity binds, ``mu`` are found by nested
   monotone searches (batched K-section: many candidate prices per numpy call).
4. **Rounding and repair.**  ``x`` is rounded at 1/2 and the steps to the better
   neighbouring level; a repair restores capacity and deadlines; a best-improvement local
   search (single-user and pair moves, then kicks), evaluated with the exact slot cost, runs
   from the repaired point and from an all-device baseline, and the better result is kept.

Only the config's step levels are decided; users without a request get ``offload=False``
and the smallest level; users that cannot be served at all (no feasible option, or an
edge-only user that no drop-free decision can fit) get the device at the smallest level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from aigc_edge_env import physics
from aigc_edge_env.error_curves import ErrorCurve
from aigc_edge_env.model import Decision, OptionTable, SlotProblem, option_table

__all__ = [
    "ContinuousCosts",
    "EdgeTable",
    "Relaxation",
    "RelaxedPoint",
    "RelaxedSolution",
    "Surrogate",
    "argmin_convex",
    "build_relaxation",
    "relaxed_objective",
    "respond",
    "solve",
    "solve_relaxation",
    "solve_surrogate",
]

STEP_BISECTIONS = 32  # device step search: bracket width shrinks by 2**-32
EDGE_GRID_POINTS = 256  # grid of the edge cost table (geometric in steps)
PRICE_CANDIDATES = 14  # interior congestion prices tried at once per row and round (a round shrinks 15x)
PRICE_TOLERANCE = 1e-3  # final width of a pi cell relative to 2 c Qbar(0, 0)
CAPACITY_CANDIDATES = 7  # capacity prices tried at once per round (geometric; a round shrinks 8x in log)
CAPACITY_TOLERANCE = 1e-2  # final width of the mu bracket relative to mu
GEOMETRIC_FLOOR = 1e-6  # lowest positive mu tried, relative to the bracket's upper end
CAPACITY_MAX_ROUNDS = 12  # ~4 rounds reach the tolerance; more only when the root sits at mu = 0
SCA_MAX_ITERATIONS = 12
SCA_TOLERANCE = 1e-3  # stop once an iteration changes the relaxed objective by less than this (relative)
PAIR_LEVELS_DOWN = 2  # lower edge levels a user may step down to in a pair move
FEASIBILITY_MARGIN = 1e-9  # relative margin on deadline checks, against round-off at equality


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

    device_rate: np.ndarray  # a_n = w_T c_L/f_n + w_E kappa f_n^2 c_L, cost per device step
    edge_fixed: np.ndarray  # b_n = w_T (D/r + O/r_dl) + w_E (p D/r + p_rx O/r_dl), cost
    utility_weight: np.ndarray  # w_U u_n, cost per unit of ln(1 + s)
    weight_error: float  # w_Q, cost per unit of error
    device_curve: ErrorCurve
    edge_curve: ErrorCurve

    @classmethod
    def from_problem(cls, problem: SlotProblem) -> "ContinuousCosts":
        """Coefficients from the problem's derived per-user constants and the config."""
        c = problem.config
        return cls(
            device_rate=c.weight_time_per_s * problem.local_step_time_s
            + c.weight_energy_per_j * problem.local_step_energy_j,
            edge_fixed=c.weight_time_per_s * problem.edge_transfer_time_s
            + c.weight_energy_per_j * problem.edge_radio_energy_j,
            utility_weight=c.weight_utility * problem.utility_weight,
            weight_error=c.weight_error,
            device_curve=c.device_error_curve,
            edge_curve=c.edge_error_curve,
        )

    def take(self, index: np.ndarray) -> "ContinuousCosts":
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
    slope: Callable[[np.ndarray], np.ndarray], low: np.ndarray, high: np.ndarray, iterations: int = STEP_BISECTIONS
) -> np.ndarray:
    """Minimiser over ``[low, high]`` of convex functions given their non-decreasing slopes.

    Vectorised bisection on the sign of the slope (the KKT condition of a box-constrained
    1-D convex problem): returns ``low`` where the slope is positive throughout, ``high``
    where it is negative throughout, else the stationary point, to ``(high - low) 2**-iterations``.
    """
    low, high = np.broadcast_arrays(np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64))
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        rising = slope(middle) > 0.0
        high = np.where(rising, middle, high)
        low = np.where(rising, low, middle)
    return 0.5 * (low + high)


# --------------------------------------------------------------------------------------
# Relaxation and its SCA / KKT solution
# --------------------------------------------------------------------------------------
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

    @classmethod
    def build(cls, costs: ContinuousCosts, min_steps: float, max_steps: float) -> "EdgeTable":
        """The table on a geometric grid plus, twice each, the kinks of a tabulated error curve.

        At a kink ``phi`` jumps; the first copy holds its left limit and the second its right
        limit, so marginal prices inside the jump map exactly to the kink.  (``slope`` is a
        right derivative; only the left one matters at the upper end.)
        """
        kinks = np.asarray(getattr(costs.edge_curve, "steps", ()), dtype=np.float64)
        kinks = kinks[(kinks > min_steps) & (kinks < max_steps)]
        grid = np.geomspace(min_steps, max(max_steps, min_steps * 1.01), EDGE_GRID_POINTS)
        steps = np.sort(np.concatenate([grid, kinks, kinks]))
        left = np.zeros(steps.size)
        left[np.searchsorted(steps, kinks)] = 1e-9 * kinks  # evaluate the first copy just left of the kink
        left[-1] = 1e-9 * steps[-1]  # and the upper end: s never exceeds it
        marginal = -costs.edge_slope((steps - left)[:, None]).T  # (M, G); the curves run on the grid only
        span = float(marginal.max() - marginal.min()) + 1.0
        offsets = span * np.arange(marginal.shape[0])
        return cls(steps, marginal.ravel(), costs.edge(steps[:, None]).T.ravel(),
                   (offsets[:, None] - marginal).ravel(), offsets, steps.size * np.arange(marginal.shape[0]))

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
        last = row_starts + self.steps.size - 1
        target = np.minimum(np.maximum(marginal, self.marginal[last]), self.marginal[row_starts])
        cell = np.searchsorted(self.keys, offsets - target)
        cell = np.minimum(np.maximum(cell, row_starts + 1), last)
        above, below = self.marginal[cell - 1], self.marginal[cell]
        share = (above - target) / np.maximum(above - below, 1e-300)
        start = self.steps[cell - row_starts - 1]
        advance = share * (self.steps[cell - row_starts] - start)
        return start + advance, self.cost[cell - 1] - advance * 0.5 * (above + target)


@dataclass(frozen=True)
class Relaxation:
    """Static data of the relaxed slot over the users it serves (arrays of length ``M``).

    ``device_value`` is ``min L_n`` over the feasible device box (``inf`` without one);
    ``edge_ok`` says whether the edge is usable at all; an edge user meets its deadline iff
    ``sqrt(s) Q <= deadline_root`` (steps^(1/2)).
    """

    costs: ContinuousCosts
    edge_table: EdgeTable
    min_steps: float
    max_steps: float
    device_steps: np.ndarray  # argmin of L_n over [S_min, largest feasible device level]
    device_value: np.ndarray
    edge_ok: np.ndarray
    deadline_root: np.ndarray
    congestion_weight: float  # c = w_T / F_E, cost per step
    edge_capacity: float  # S^E_max, steps


def build_relaxation(problem: SlotProblem, table: OptionTable, users: np.ndarray, forced: np.ndarray) -> Relaxation:
    """The relaxed problem over ``users`` (indices); ``forced`` marks those without a device option."""
    levels = table.steps.astype(np.float64)
    costs = ContinuousCosts.from_problem(problem).take(users)
    feasible = table.local_feasible[users]
    device_high = np.where(feasible.any(axis=1), levels[np.maximum(feasible.sum(axis=1) - 1, 0)], levels[0])
    device_steps = argmin_convex(costs.device_slope, levels[0], device_high)
    edge_cap = table.max_sqrt_steps_sum[users, 0]
    return Relaxation(
        costs=costs,
        edge_table=EdgeTable.build(costs, levels[0], levels[-1]),
        min_steps=float(levels[0]),
        max_steps=float(levels[-1]),
        device_steps=device_steps,
        device_value=np.where(forced[users], np.inf, costs.device(device_steps)),
        edge_ok=table.edge_feasible_alone[users, 0],
        deadline_root=np.where(np.isfinite(edge_cap), edge_cap, 0.0) * np.sqrt(levels[0]),
        congestion_weight=table.congestion_weight,
        edge_capacity=float(problem.config.edge_step_capacity),
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

    def pick(self, index: Any) -> "RelaxedPoint":
        """The candidates at ``index`` (a numpy index into the leading axes)."""
        return RelaxedPoint(self.offload[index], self.edge_steps[index])


def _blend(low: RelaxedPoint, high: RelaxedPoint, weight_low: np.ndarray) -> RelaxedPoint:
    """Convex combination in the perspective variables ``(x, z = x s)``, where load and ``Qbar`` are linear."""
    weight = np.asarray(weight_low)[..., None]
    offload = weight * low.offload + (1.0 - weight) * high.offload
    edge_work = weight * low.offload * low.edge_steps + (1.0 - weight) * high.offload * high.edge_steps
    steps = np.where(offload > 0.0, edge_work / np.maximum(offload, 1e-300), high.edge_steps)
    return RelaxedPoint(offload, steps)


def _weight_to_meet(low_value: np.ndarray, high_value: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The weight on ``low`` of a blend whose (linear) aggregate equals ``target``, in ``[0, 1]``."""
    gap = low_value - high_value
    return np.clip(np.divide(target - high_value, gap, out=np.zeros(np.shape(gap)), where=gap != 0.0), 0.0, 1.0)


@dataclass(frozen=True)
class RelaxedSolution:
    """A KKT point of one convex surrogate (and, at convergence, of the relaxed problem).

    ``point.offload`` is in ``[0, 1]``; ``price`` is ``pi = 2 c Qbar`` (cost per unit of ``Q``);
    ``capacity_price`` is ``mu`` (cost per edge step); ``edge_high`` is the step box used;
    ``objective`` is the relaxed (not the surrogate) objective; ``iterations`` counts SCA iterations.
    """

    point: RelaxedPoint
    device_steps: np.ndarray
    tangent: np.ndarray
    edge_high: np.ndarray
    price: float
    capacity_price: float
    objective: float = np.nan
    iterations: int = 0


@dataclass(frozen=True)
class Surrogate:
    """Per-user data of one SCA iteration's convex surrogate, for the users ``users`` (indices).

    ``sqrt(s)`` is replaced by its tangent at ``t``, ``sqrt(t)/2 + s/(2 sqrt(t))``, so a user's
    contribution to ``Qbar`` is ``x (root_half + slope_half s)``; ``root_sum_cap`` bounds
    ``Qbar`` (the tightest deadline of the previous iterate's edge users).  The searches
    restrict it to the users that can still offload at the prices left to try.
    """

    root_sum_cap: float  # steps^(1/2); inf when no deadline binds
    users: np.ndarray
    root_half: np.ndarray  # sqrt(t) / 2, steps^(1/2)
    slope_half: np.ndarray  # 1 / (2 sqrt(t)), steps^(-1/2)
    high_marginal: np.ndarray  # phi_n(edge_high_n): lower marginal prices leave s at edge_high
    device_value: np.ndarray
    edge_ok: np.ndarray
    table_offsets: np.ndarray
    table_row_starts: np.ndarray

    @classmethod
    def at(cls, relax: Relaxation, tangent: np.ndarray, edge_high: np.ndarray, root_sum_cap: float) -> "Surrogate":
        root = np.sqrt(tangent)
        table = relax.edge_table
        return cls(root_sum_cap, np.arange(tangent.size), 0.5 * root, 0.5 / root, table.marginal_at(edge_high),
                   relax.device_value, relax.edge_ok, table.offsets, table.row_starts)

    def restrict(self, keep: np.ndarray) -> "Surrogate":
        """The surrogate over the users where ``keep`` (a mask over this one's users) holds."""
        return Surrogate(self.root_sum_cap, *(getattr(self, f.name)[keep] for f in dataclasses.fields(self)[1:]))

    def root_sum(self, point: RelaxedPoint) -> np.ndarray:
        """``Qbar = sum_n x_n (sqrt(t_n)/2 + s^E_n / (2 sqrt(t_n)))`` (steps^(1/2)), shape ``(...)``."""
        return np.sum(point.offload * (self.root_half + self.slope_half * point.edge_steps), axis=-1)

    def expand(self, point: RelaxedPoint, n_users: int) -> RelaxedPoint:
        """``point`` (over this surrogate's users) as a point over all ``n_users`` (zeros elsewhere)."""
        shape = point.offload.shape[:-1] + (n_users,)
        offload, steps = np.zeros(shape), np.zeros(shape)
        offload[..., self.users], steps[..., self.users] = point.offload, point.edge_steps
        return RelaxedPoint(offload, steps)


def respond(relax: Relaxation, surrogate: Surrogate, price: np.ndarray, capacity_price: np.ndarray) -> RelaxedPoint:
    """Per-user minimiser of the surrogate's Lagrangian for prices ``(pi, mu)`` (arrays of one shape ``K``).

    Edge steps: the minimiser of ``E_n(s) + lambda_n s`` over ``[S_min, edge_high_n]``,
    ``lambda_n = pi / (2 sqrt(t_n)) + mu`` (convex, so the stationary point with the marginal
    price raised to ``phi_n(edge_high_n)``); offload iff the edge value
    ``E_n(s) + pi sqrt(t_n) / 2 + lambda_n s`` is below ``min L_n``.  Returns shape ``K + (users,)``.
    """
    price, capacity_price = np.asarray(price)[..., None], np.asarray(capacity_price)[..., None]
    marginal = price * surrogate.slope_half + capacity_price
    steps, cost = relax.edge_table.stationary(np.maximum(marginal, surrogate.high_marginal),
                                              surrogate.table_offsets, surrogate.table_row_starts)
    value = cost + price * surrogate.root_half + marginal * steps
    return RelaxedPoint((surrogate.edge_ok & (value < surrogate.device_value)).astype(np.float64), steps)


@dataclass(frozen=True)
class _PriceCells:
    """Brackets ``[low, high]`` of ``pi(mu)`` for a batch of ``mu`` (B,), with the points at both ends."""

    low: np.ndarray
    high: np.ndarray
    low_point: RelaxedPoint  # (B, users): pi - 2 c Qbar < 0 here
    high_point: RelaxedPoint  # (B, users): pi - 2 c Qbar >= 0 here


def _price_cells(relax: Relaxation, surrogate: Surrogate, capacity_price: np.ndarray, low: np.ndarray,
                 high: np.ndarray, tolerance: float, settled: Callable[[_PriceCells], np.ndarray] | None = None
                 ) -> tuple[_PriceCells, Surrogate]:
    """K-section search for the congestion price ``pi(mu)``: the least ``pi`` with ``pi >= 2 c Qbar(pi, mu)``
    and ``Qbar(pi, mu) <= root_sum_cap``.

    ``Qbar`` is non-increasing in ``pi``, so both tests switch from false to true once.  Each round
    evaluates ``PRICE_CANDIDATES + 2`` evenly spaced prices per row (ends included) in one batch
    and keeps the cell with the sign change; rounds stop when every row's cell is narrower than
    ``tolerance`` or ``settled`` (a per-row test on the cells) holds.  ``[low, high]`` must hold
    the roots.  Users off at every row's lowest price stay off, so later rounds drop them;
    returns the cells and the surrogate over the users kept.
    """
    c = relax.congestion_weight
    fractions = np.arange(PRICE_CANDIDATES + 2) / (PRICE_CANDIDATES + 1)
    rows = np.arange(capacity_price.size)
    while True:
        prices = low[:, None] + (high - low)[:, None] * fractions
        points = respond(relax, surrogate, prices, np.broadcast_to(capacity_price[:, None], prices.shape))
        root_sum = surrogate.root_sum(points)
        short = (prices < 2.0 * c * root_sum) | (root_sum > surrogate.root_sum_cap)
        cell = np.clip(np.where(short.all(axis=1), PRICE_CANDIDATES + 1, np.argmin(short, axis=1)),
                       1, PRICE_CANDIDATES + 1)
        cells = _PriceCells(prices[rows, cell - 1], prices[rows, cell], points.pick((rows, cell - 1)),
                            points.pick((rows, cell)))
        low, high = cells.low, cells.high
        if np.all((high - low <= tolerance) | (settled(cells) if settled else False)):
            return cells, surrogate
        surrogate = surrogate.restrict(cells.low_point.offload.any(axis=0))


def _kkt_points(relax: Relaxation, surrogate: Surrogate, cells: _PriceCells) -> tuple[RelaxedPoint, np.ndarray]:
    """Blend each row's cell ends so that ``Qbar = min(pi / (2 c), root_sum_cap)`` at ``pi`` = the cell's upper end.

    The blend (in the perspective variables) covers a jump of ``Qbar`` at the root, where the
    switching users are indifferent between the modes and take fractional ``x``.
    """
    c = relax.congestion_weight
    target = np.minimum(cells.high / (2.0 * c) if c else np.inf, surrogate.root_sum_cap)
    weight = _weight_to_meet(surrogate.root_sum(cells.low_point), surrogate.root_sum(cells.high_point), target)
    return _blend(cells.low_point, cells.high_point, np.where(np.isfinite(target), weight, 0.0)), cells.high


def _capacity_search(relax: Relaxation, surrogate: Surrogate, free: RelaxedPoint, free_price: float,
                     price_high: float, tolerance: float) -> tuple[RelaxedPoint, float, float]:
    """Find ``mu`` with ``G(mu) = S^E_max``, ``G(mu)`` the load at the KKT point of ``(pi(mu), mu)``.

    ``G`` is non-increasing (concavity of the dual function) and ``pi(mu)`` is non-increasing, so
    the ``pi`` searches of a bracket's ``mu`` candidates start from ``[pi(mu_hi), pi(mu_lo)]``.
    Each round tries ``CAPACITY_CANDIDATES`` geometrically spaced ``mu`` at once (at most
    ``CAPACITY_MAX_ROUNDS``: a root at ``mu = 0``, a jump of ``G`` there, is approached
    geometrically and never met), over the users
    that offload at the bracket's lowest prices; their ``pi`` searches stop as soon as the loads
    at the cell ends put ``G`` surely above or not above the capacity.  Returns the
    capacity-meeting blend of the final ends (over all users), its ``pi`` and ``mu``.
    """
    capacity, n_users = relax.edge_capacity, surrogate.users.size
    mu_low, mu_high = 0.0, _capacity_price_bound(relax)
    pi_low, pi_high = 0.0, price_high
    low_end, high_end = (free, free_price), None
    fractions = np.arange(1, CAPACITY_CANDIDATES + 1) / (CAPACITY_CANDIDATES + 1)

    def settled(cells: _PriceCells) -> np.ndarray:
        return (cells.high_point.load() > capacity) | (cells.low_point.load() <= capacity)

    for _ in range(CAPACITY_MAX_ROUNDS):
        if mu_high - mu_low <= CAPACITY_TOLERANCE * mu_high:
            break
        floor = max(mu_low, mu_high * GEOMETRIC_FLOOR)
        mus = floor * (mu_high / floor) ** fractions
        candidates = surrogate.restrict(respond(relax, surrogate, pi_low, mu_low).offload > 0.0)
        cells, kept = _price_cells(relax, candidates, mus, np.full(mus.size, pi_low), np.full(mus.size, pi_high),
                                   tolerance, settled)
        points, prices = _kkt_points(relax, kept, cells)
        points = kept.expand(points, n_users)
        over = points.load() > capacity
        first_under = int(np.argmin(over)) if not over.all() else mus.size
        if first_under > 0:
            j = first_under - 1
            mu_low, pi_high, low_end = float(mus[j]), float(cells.high[j]), (points.pick(j), float(prices[j]))
        if first_under < mus.size:
            j = first_under
            mu_high, pi_low, high_end = float(mus[j]), float(cells.low[j]), (points.pick(j), float(prices[j]))
    if high_end is None:  # the bracket never left its upper bound: solve pi there
        cells, kept = _price_cells(relax, surrogate, np.array([mu_high]), np.zeros(1), np.array([price_high]),
                                   tolerance)
        point, price = _kkt_points(relax, kept, cells)
        high_end = (kept.expand(point, n_users).pick(0), float(price[0]))
    weight = float(_weight_to_meet(low_end[0].load(), high_end[0].load(), capacity))
    return (_blend(low_end[0], high_end[0], weight), weight * low_end[1] + (1.0 - weight) * high_end[1],
            weight * mu_low + (1.0 - weight) * mu_high)


def solve_surrogate(relax: Relaxation, tangent: np.ndarray, edge_high: np.ndarray,
                    root_sum_cap: float = np.inf) -> RelaxedSolution:
    """KKT point of the convex surrogate with tangent points ``tangent`` and step caps ``edge_high`` (steps).

    First ``pi`` at ``mu = 0``: its root lies in ``[0, 2 c Qbar(0, 0)]`` since ``Qbar`` is
    non-increasing, unless ``Qbar <= root_sum_cap`` needs a higher price (then up to
    :func:`_congestion_price_bound`); if the edge load then exceeds ``S^E_max``, the capacity
    price is searched (:func:`_capacity_search`).  Users that do not offload keep the edge step
    count of their response at the final prices (the next tangent point).
    """
    surrogate = Surrogate.at(relax, tangent, edge_high, root_sum_cap)
    free = respond(relax, surrogate, 0.0, 0.0)
    free_root_sum = float(surrogate.root_sum(free))
    price_high = 2.0 * relax.congestion_weight * free_root_sum
    if free_root_sum > root_sum_cap:
        price_high = max(price_high, _congestion_price_bound(relax, surrogate))
    tolerance = PRICE_TOLERANCE * price_high
    cells, kept = _price_cells(relax, surrogate, np.zeros(1), np.zeros(1), np.array([price_high]), tolerance)
    point, price = _kkt_points(relax, kept, cells)
    point, price, capacity_price = kept.expand(point, tangent.size).pick(0), float(price[0]), 0.0
    if point.load() > relax.edge_capacity:
        point, price, capacity_price = _capacity_search(relax, surrogate, point, price, price_high, tolerance)
    response = respond(relax, surrogate, price, capacity_price)
    steps = np.where(point.offload > 0.0, point.edge_steps, response.edge_steps)
    return RelaxedSolution(RelaxedPoint(point.offload, steps), relax.device_steps, tangent, edge_high, price,
                           capacity_price)


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

    The deadline ``sqrt(s_n) Q <= deadline_root_n`` of an edge user is approximated at the
    current point: ``s_n <= (deadline_root_n / Q)^2`` for every user (and ``s_n <= deadline_root_n``,
    as ``Q >= sqrt(s_n)``), ``s_n <= S^E_max``, and ``Qbar <= min deadline_root_n / sqrt(s_n)``
    over the users that offload now.
    """
    root_sum = float(point.offload @ np.sqrt(point.edge_steps))
    deadline_high = np.minimum((relax.deadline_root / max(root_sum, 1e-12)) ** 2, relax.deadline_root)
    edge_high = np.clip(np.minimum(deadline_high, relax.edge_capacity), relax.min_steps, relax.max_steps)
    on = point.offload > 0.0
    root_sum_cap = float((relax.deadline_root[on] / np.sqrt(point.edge_steps[on])).min()) if on.any() else np.inf
    return point.edge_steps, edge_high, root_sum_cap


def relaxed_objective(relax: Relaxation, point: RelaxedPoint) -> float:
    """``sum (1-x) L(s^L) + x E(s^E) + c (sum x sqrt(s^E))^2`` (cost)."""
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
    tangent = table.stationary(np.zeros(relax.edge_ok.shape), table.offsets, table.row_starts)[0]
    edge_high, root_sum_cap = np.full(tangent.shape, relax.max_steps), np.inf
    solution: RelaxedSolution | None = None
    for iteration in range(1, SCA_MAX_ITERATIONS + 1):
        candidate = solve_surrogate(relax, tangent, edge_high, root_sum_cap)
        value = relaxed_objective(relax, candidate.point)
        settled = solution is not None and abs(solution.objective - value) <= SCA_TOLERANCE * (1.0 + abs(value))
        solution = dataclasses.replace(candidate, objective=value, iterations=iteration)
        if settled:
            break
        tangent, edge_high, root_sum_cap = _next_linearisation(relax, candidate.point)
    return solution


# --------------------------------------------------------------------------------------
# Integer recovery: rounding, repair, local search
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Options:
    """The discrete options of the served users: ``2L`` columns, device levels then edge levels.

    ``cost`` is ``inf`` for a statically infeasible option; ``root`` and ``load`` are the
    option's ``sqrt(s)`` and steps at the edge (0 on the device); ``root_cap`` is the largest
    ``Q`` its deadline allows (``inf`` on the device).
    """

    cost: np.ndarray  # (M, 2L)
    root: np.ndarray  # (2L,)
    load: np.ndarray  # (2L,)
    root_cap: np.ndarray  # (M, 2L)
    congestion_weight: float
    edge_capacity: float

    @classmethod
    def from_table(cls, table: OptionTable, users: np.ndarray) -> "_Options":
        levels = table.steps.astype(np.float64)
        edge_cap = table.max_sqrt_steps_sum[users]
        edge_ok = table.edge_feasible_alone[users]
        zeros = np.zeros_like(levels)
        return cls(
            cost=np.hstack([np.where(table.local_feasible[users], table.local_cost[users], np.inf),
                            np.where(edge_ok, table.edge_base_cost[users], np.inf)]),
            root=np.concatenate([zeros, np.sqrt(levels)]),
            load=np.concatenate([zeros, levels]),
            root_cap=np.hstack([np.full(edge_cap.shape, np.inf), edge_cap * (1.0 - FEASIBILITY_MARGIN)]),
            congestion_weight=table.congestion_weight,
            edge_capacity=float(table.problem.config.edge_step_capacity),
        )

    def slot_cost(self, choice: np.ndarray) -> float:
        """Exact slot cost of a drop-free choice (one option index per user)."""
        rows = np.arange(choice.size)
        return float(self.cost[rows, choice].sum()) + self.congestion_weight * float(self.root[choice].sum()) ** 2

    def violation(self, choice: np.ndarray) -> float:
        """Capacity excess (steps) plus the largest deadline excess in ``Q`` (0 iff feasible)."""
        rows = np.arange(choice.size)
        root_sum = self.root[choice].sum()
        deadline = max(float(root_sum - self.root_cap[rows, choice].min()), 0.0) if choice.size else 0.0
        return max(float(self.load[choice].sum()) - self.edge_capacity, 0.0) + deadline


def _round(relaxed: RelaxedSolution, options: _Options, levels: np.ndarray) -> np.ndarray:
    """Round ``x`` at 1/2 and the steps of the chosen mode to the better neighbouring level.

    Neighbours are compared by the per-user surrogate: device cost, or edge cost plus the
    linearised congestion ``pi sqrt(s)`` and capacity price ``mu s``; an edge neighbour whose
    deadline fails at the relaxed ``Q`` is taken only if both do (then the lower one).
    """
    n_levels = levels.size
    point = relaxed.point
    edge = point.offload >= 0.5
    target = np.where(edge, point.edge_steps, relaxed.device_steps)
    upper = np.clip(np.searchsorted(levels, target), 0, n_levels - 1)
    candidates = np.stack([np.maximum(upper - 1, 0), upper], axis=1) + np.where(edge, n_levels, 0)[:, None]
    rows = np.arange(edge.size)[:, None]
    score = (options.cost[rows, candidates] + relaxed.price * options.root[candidates]
             + relaxed.capacity_price * options.load[candidates])
    late = options.root_cap[rows, candidates] < float(point.offload @ np.sqrt(point.edge_steps))
    score = np.where(late & ~late.all(axis=1, keepdims=True), np.inf, score)
    choice = candidates[rows[:, 0], np.argmin(score, axis=1)]
    infeasible = ~np.isfinite(options.cost[rows[:, 0], choice])  # edge levels its deadline alone rules out
    choice[infeasible] = np.argmin(options.cost[infeasible], axis=1)
    return choice


def _repair(choice: np.ndarray, options: _Options) -> np.ndarray:
    """Restore capacity and deadlines by moves that lower one edge user's ``sqrt(s)``.

    The cheapest move (by option cost) that removes the whole violation is taken if one
    exists, else the move with the least cost per unit of violation removed.  Each move
    strictly lowers ``Q`` and the load, so the loop ends; it ends feasible because the device
    options and the forced users' smallest levels are feasible together.
    """
    choice = choice.copy()
    rows = np.arange(choice.size)
    while (violation := options.violation(choice)) > 0.0:
        root, load = options.root[choice], options.load[choice]
        new_sum = root.sum() - root[:, None] + options.root[None, :]
        new_load = load.sum() - load[:, None] + options.load[None, :]
        caps = np.minimum(_min_excluding_self(options.root_cap[rows, choice])[:, None], options.root_cap)
        remaining = np.maximum(new_load - options.edge_capacity, 0.0) + np.maximum(new_sum - caps, 0.0)
        delta = np.where(options.root[None, :] < root[:, None], options.cost - options.cost[rows, choice][:, None],
                         np.inf)
        if np.isfinite(np.where(remaining == 0.0, delta, np.inf)).any():
            score = np.where(remaining == 0.0, delta, np.inf)
        else:
            reduction = violation - remaining
            score = np.where(reduction > 0.0, delta / np.maximum(reduction, 1e-300), np.inf)
        user, option = np.unravel_index(np.argmin(score), score.shape)
        if not np.isfinite(score[user, option]):
            raise RuntimeError("repair found no feasible move (the served users cannot be served together)")
        choice[user] = option
    return choice


def _single_moves(choice: np.ndarray, options: _Options) -> tuple[float, int, int]:
    """Best feasible change of one user's option: ``(cost change, user, option)``."""
    rows = np.arange(choice.size)
    root, load = options.root[choice], options.load[choice]
    root_sum, load_sum = root.sum(), load.sum()
    caps = options.root_cap[rows, choice]
    others_cap = _min_excluding_self(caps)
    new_sum = root_sum - root[:, None] + options.root[None, :]
    feasible = ((new_sum <= options.root_cap) & (new_sum <= others_cap[:, None])
                & (load_sum - load[:, None] + options.load[None, :] <= options.edge_capacity))
    delta = np.where(feasible, options.cost - options.cost[rows, choice][:, None]
                     + options.congestion_weight * (new_sum**2 - root_sum**2), np.inf)
    user, option = np.unravel_index(np.argmin(delta), delta.shape)
    return float(delta[user, option]), int(user), int(option)


def _pair_moves(choice: np.ndarray, options: _Options, device_best: np.ndarray) -> tuple[float, int, int, int, int]:
    """Best feasible pair move: an edge user lowers its ``sqrt(s)`` (to one of the next
    ``PAIR_LEVELS_DOWN`` lower edge levels or its best device option) while another user takes
    an edge level.

    Returns ``(cost change, lowering user, its option, other user, its edge option)``.
    """
    rows = np.arange(choice.size)
    n_levels = options.root.size // 2
    lowering = np.flatnonzero(options.load[choice] > 0)
    if lowering.size == 0:
        return np.inf, 0, 0, 0, 0
    current = options.cost[rows, choice]
    root, load = options.root[choice], options.load[choice]
    others_cap = _min_excluding_pairs(options.root_cap[rows, choice], lowering)  # (a, b): all caps but a's, b's
    # the lowering user's new options (a, o): its best device option, then up to PAIR_LEVELS_DOWN lower levels
    below = choice[lowering][:, None] - np.arange(1, PAIR_LEVELS_DOWN + 1)
    valid = np.hstack([np.ones((lowering.size, 1), dtype=bool), below >= n_levels])
    targets = np.hstack([device_best[lowering][:, None], np.maximum(below, n_levels)])
    lower = valid & (options.root[targets] < root[lowering][:, None])
    # axes: (lowering user a, its new option o, other user b, b's edge level l)
    new_sum = (root.sum() - root[lowering][:, None, None, None] + options.root[targets][:, :, None, None]
               - root[None, None, :, None] + options.root[None, None, None, n_levels:])
    new_load = (load.sum() - load[lowering][:, None, None, None] + options.load[targets][:, :, None, None]
                - load[None, None, :, None] + options.load[None, None, None, n_levels:])
    feasible = (lower[:, :, None, None] & (lowering[:, None, None, None] != rows[None, None, :, None])
                & (new_sum <= options.root_cap[lowering[:, None], targets][:, :, None, None])
                & (new_sum <= options.root_cap[None, None, :, n_levels:])
                & (new_sum <= others_cap[:, None, :, None]) & (new_load <= options.edge_capacity))
    delta = ((options.cost[lowering[:, None], targets] - current[lowering][:, None])[:, :, None, None]
             + (options.cost[:, n_levels:] - current[:, None])[None, None, :, :]
             + options.congestion_weight * (new_sum**2 - root.sum() ** 2))
    delta = np.where(feasible, delta, np.inf)
    a, option, b, level = np.unravel_index(np.argmin(delta), delta.shape)
    return (float(delta[a, option, b, level]), int(lowering[a]), int(targets[a, option]), int(b),
            int(level + n_levels))


def _min_excluding_self(values: np.ndarray) -> np.ndarray:
    """For each entry, the minimum of the others (``inf`` when there are none)."""
    if values.size < 2:
        return np.full(values.shape, np.inf)
    order = np.argsort(values)
    out = np.full(values.shape, values[order[0]])
    out[order[0]] = values[order[1]]
    return out


def _min_excluding_pairs(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``out[a, b]``: the minimum of ``values`` without entries ``first[a]`` and ``b`` (``inf`` if none)."""
    order = np.argsort(values)[:3]
    smallest = np.concatenate([values[order], np.full(3 - order.size, np.inf)])
    order = np.concatenate([order, np.full(3 - order.size, -1)])
    users = np.arange(values.size)
    taken = (order[None, None, :] == first[:, None, None]) | (order[None, None, :] == users[None, :, None])
    return np.where(taken, np.inf, smallest).min(axis=2)


def _descend(choice: np.ndarray, options: _Options, device_best: np.ndarray, tolerance: float,
             pairs: bool = True) -> np.ndarray:
    """Best-improvement descent over single moves (and pair moves) with the exact slot cost."""
    choice = choice.copy()
    while True:
        gain, user, option = _single_moves(choice, options)
        if gain < -tolerance:
            choice[user] = option
            continue
        if not pairs:
            return choice
        gain, lowering, lower_option, other, other_option = _pair_moves(choice, options, device_best)
        if gain >= -tolerance:
            return choice
        choice[lowering], choice[other] = lower_option, other_option


def _local_search(starts: tuple[np.ndarray, ...], options: _Options) -> np.ndarray:
    """Descent from each start, then kicks from the best local optimum.

    A kick sends one edge user to its best device option and bars it from the edge while
    the descent settles; then the descent runs once more unrestricted.  A kick is kept when
    it ends cheaper: it reaches moves of three or more users (e.g. one user leaving the edge
    while two others raise their levels).  The search stops when no kick pays.
    """
    n_levels = options.root.size // 2
    device_best = np.argmin(options.cost[:, :n_levels], axis=1)
    tolerance = 1e-12 * (1.0 + min(abs(options.slot_cost(start)) for start in starts))
    choice = min((_descend(start, options, device_best, tolerance) for start in starts), key=options.slot_cost)
    cost = options.slot_cost(choice)
    kicked = True
    while kicked:
        kicked = False
        movable = (options.load[choice] > 0) & np.isfinite(options.cost[np.arange(choice.size), device_best])
        for user in np.flatnonzero(movable):
            start = choice.copy()
            start[user] = device_best[user]
            barred = options.cost.copy()
            barred[user, n_levels:] = np.inf  # the kicked user stays on the device ...
            candidate = _descend(start, dataclasses.replace(options, cost=barred), device_best, tolerance, pairs=False)
            candidate = _descend(candidate, options, device_best, tolerance)  # ... until the others settle
            candidate_cost = options.slot_cost(candidate)
            if candidate_cost < cost - tolerance:
                choice, cost, kicked = candidate, candidate_cost, True
                break
    return choice


def _baseline(options: _Options) -> np.ndarray:
    """Every user at its best device option, users without one at the edge's smallest level (feasible)."""
    n_levels = options.root.size // 2
    device = options.cost[:, :n_levels]
    return np.where(np.isfinite(device).any(axis=1), np.argmin(device, axis=1), n_levels)


def _served_users(table: OptionTable) -> tuple[np.ndarray, np.ndarray]:
    """Users to serve and those among them with no device option (forced to the edge).

    A forced user is served only if a drop-free decision can include it: forced users at
    the smallest level, admitted in decreasing order of deadline room while everyone
    admitted meets capacity and deadline (this admits the largest feasible set).
    """
    problem = table.problem
    smallest = float(table.steps[0])
    device_ok = table.local_feasible.any(axis=1)
    edge_room = table.max_sqrt_steps_sum[:, 0] * (1.0 - FEASIBILITY_MARGIN)
    candidates = problem.has_request & ~device_ok & (edge_room >= np.sqrt(smallest))
    order = np.flatnonzero(candidates)[np.argsort(-edge_room[candidates], kind="stable")]
    count = np.arange(1, order.size + 1)
    fits = (count * np.sqrt(smallest) <= edge_room[order]) & (count * smallest <= problem.config.edge_step_capacity)
    forced = np.zeros(problem.n_users, dtype=bool)
    forced[order[: int(np.argmin(fits)) if not fits.all() else order.size]] = True
    return np.flatnonzero(problem.has_request & (device_ok | forced)), forced


def solve(problem: SlotProblem, rng: np.random.Generator | None = None) -> Decision:
    """SCA-KKT decision of one slot (deterministic; ``rng`` is unused).

    Drop-free whenever a drop-free decision exists; users that no drop-free decision can
    serve get the device at the smallest level (the env drops them).
    """
    del rng
    if problem.has_request.ndim != 1:
        raise ValueError(f"sca_kkt solves one slot at a time, got per-user arrays of shape {problem.has_request.shape}")
    table = option_table(problem)
    levels = table.steps
    offload = np.zeros(problem.n_users, dtype=bool)
    steps = np.full(problem.n_users, levels[0], dtype=np.int64)
    users, forced = _served_users(table)
    if users.size == 0:
        return Decision(offload, steps)
    options = _Options.from_table(table, users)
    relaxed = solve_relaxation(build_relaxation(problem, table, users, forced))
    rounded = _repair(_round(relaxed, options, levels.astype(np.float64)), options)
    choice = _local_search((rounded, _baseline(options)), options)
    n_levels = levels.size
    offload[users] = choice >= n_levels
    steps[users] = levels[choice % n_levels]
    return Decision(offload, steps)
