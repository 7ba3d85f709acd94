"""A bound on the best non-anticipative policy: information relaxation with a price penalty.

:func:`~.hindsight.hindsight_bound` bounds every policy, clairvoyant ones included.  An online
policy does not see the future, so the best one may stay short of that bound; how far is what
:func:`online_bound` estimates, from below, by information relaxation (Brown, Smith and Sun,
Oper. Res. 58(4), 2010; BSS below).

What is bounded
---------------
``reset(seed)`` draws the state ``x_0``: distances, clocks, fading ``g_0``, batteries and slot
0's requests and rates.  The rest of the episode, ``xi_1 .. xi_{H-1}`` (per slot: the fading
step, the harvest, the requests, ``dynamics.draw_slots``), is random.  A policy is
*non-anticipative* if its action in slot ``t`` is a function of ``x_0``, ``xi_1 .. xi_t`` and
its own independent randomness (every policy that steps the env is, short of replaying the
env's generator: it sees less than that).
``J*(x_0)`` is the least expected episode cost over such policies, the expectation over the
rest of the episode given ``x_0``, under the real dynamics (batteries capped, the repair rule).
:func:`online_bound` estimates a lower bound on ``J*(x_0)``; the clairvoyant bound it tightens
is the mean of the hindsight bounds of the same sampled futures (an estimate of the expected
hindsight bound given ``x_0``, which bounds every policy, clairvoyant or not).

The penalty
-----------
Write ``E_{n,t}`` for user ``n``'s device energy in slot ``t`` (what the env spends: 0 for a
drop) and ``S_{n,t} = sum_{tau<=t} E_{n,tau}``.  Take any numbers ``lambda_{n,t+1}`` that are
functions of ``x_0, xi_1 .. xi_{t+1}`` (a value of energy that depends on the exogenous state)
and ``delta_{n,t} = lambda_{n,t+1} - E[lambda_{n,t+1} | x_0, xi_1 .. xi_t]``.  The penalty::

    z = - sum_{t < H-1} sum_n delta_{n,t} S_{n,t} = sum_tau sum_n p_{n,tau} E_{n,tau},
    p_{n,tau} = - sum_{tau <= t < H-1} delta_{n,t}

has zero mean under *every* non-anticipative policy, exactly, under the real dynamics:
``S_{n,t}`` is a function of the history up to slot ``t`` (whatever the cap and the repair rule
did), so ``E[delta_{n,t} S_{n,t}] = E[S_{n,t} E[delta_{n,t} | history]] = 0``.  (It is the
suggested ``V_{t+1}(b_{t+1}, xi_{t+1}) - E[V_{t+1} | F_t, a_t]`` with ``V = -sum_n lambda_n b_n``
once ``b_{t+1}`` is replaced by the uncapped ``b_0 + harvests - S_t``: the terms without ``S`` do
not depend on the actions and have zero mean, so they are left out; with ``S`` the cap never
enters and no error term is left.)  Hence, BSS's weak duality: for every non-anticipative policy
``E[cost] = E[cost + z] >= E[min over all action sequences of (cost + z)]``, the inner minimum
taken with the future known.  The inner problem is the hindsight problem with fixed extra
energy prices ``p_{n,t}`` of any sign, so the hindsight Lagrangian bounds it: for every ``pi``
(``>= 0``, non-increasing) ``L_p(pi) = sum_t LB_t(pi_t + p_t) - sum pi (B_t - B_{t-1})`` is below
``cost + z`` of every trajectory (:func:`~.hindsight.maximise_dual` with
``energy_offset_per_j=p``; the relaxation argument of :mod:`.hindsight` holds with the
prices shifted: every real trajectory is a relaxed one with the same cost and the same
energies).  So ``J*(x_0) >= E[max_pi L_p(pi)]``, estimated by the mean over independently
sampled futures with a t-interval.  With ``p = 0`` it is the hindsight bound.

The value of energy (the choice of ``lambda``)
-----------------------------------------------
Any choice is valid; a good one charges the clairvoyant for what it learns from the future.
The clairvoyant's price ``pi_n`` of a joule is high when the future needs user ``n``'s energy.
Model it as ``pi_n ~ s_n (1 + sum_k gamma_k F_{n,k})`` with four episode totals ``F``
(:data:`FEATURES`): the fading power ``sum_t |g_{n,t}|^2``, the harvest ``sum_t h_{n,t}``, the
request count ``sum_t r_{n,t}`` and the energy ``sum_t e_{n,t}`` that ``exact`` would spend at
the prices ``s`` (the demand at that price; ``e_{n,t}`` a function of slot ``t`` alone), and take
``lambda_{n,t} = E[pi_n | x_0, xi_1 .. xi_t]`` under this model.  Then ``delta_{n,t} = s_n sum_k
gamma_k phi_{k,t,n}`` with the innovations ``phi`` (:func:`innovations`), the change of each
total's conditional expectation on learning slot ``t + 1``::

    fading:   W_{t+1} (|g_{n,t+1}|^2 - rho^2 |g_{n,t}|^2 - 1 + rho^2),  W_{t+1} = sum_{0<=j<=H-t-2} rho^{2j}
    harvest:  h_{n,t+1} - mean h;     requests: r_{n,t+1} - p_task
    demand:   e_{n,t+1} - (mean of e_n over inner draws of slot t + 1 given slot t)

The first three are exact (Gauss-Markov: ``E[|g_{t+k}|^2 | g_{t+1}] - 1 = rho^{2(k-1)}
(|g_{t+1}|^2 - 1)``; harvests and requests are independent across slots; ``|g_t|^2`` is read from
the uplink rate and the path gain, to about ``1e-15`` relative rounding).  The demand's
conditional expectation has no closed form: ``inner`` draws of slot ``t + 1`` from slot ``t``'s
fading (the phase does not matter: the innovations are circular), with generators apart from the
future's, give an unbiased estimate of it, independent of the future and of the policy given the
history, so ``E[delta_{n,t} S_{n,t}] = 0`` still holds exactly (``S`` never sees the inner draws).
The scale ``s_n`` is the mean first-slot hindsight price of ``pilots`` futures sampled from
``x_0`` apart from the estimate's (so ``lambda`` is a function of the exogenous path alone);
``gamma`` (:data:`DEFAULT_ELASTICITY`) comes from :func:`tune_elasticity` on training seeds.
Then ``p_{n,tau} = -(lambda_{n,H-1} - lambda_{n,tau})``: the clairvoyant pays, for a joule spent
at ``tau``, the difference between the price it will know and the price an online policy can know.

Measured (docs/online_bound.md): on the held-out battery episodes the tuned penalty does not
tighten the bound measurably (-0.07 per episode [-0.56, +0.41] against a 200.7 gap): the
clairvoyant's advantage is not in the exogenous slopes this family of penalties can price.

Futures are drawn from the model with generators ``default_rng([seed, stream, i])``, apart
from the env's; ``dual_rounds`` and ``tolerance`` stop each column generation (any stop gives
a valid bound; the penalised dual starts from the penalty-free prices of the same future).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from scipy import stats

from aigc_edge_env import dynamics, physics
from aigc_edge_env.baselines.exact import solve_many
from aigc_edge_env.baselines.hindsight import DualResult, EpisodeSlots, maximise_dual, relaxed_episode
from aigc_edge_env.checks import count_option, positive_option
from aigc_edge_env.config import AIGCEdgeConfig, make_config
from aigc_edge_env.model import SlotProblem

__all__ = ["DEFAULT_ELASTICITY", "FEATURES", "Future", "OnlineBound", "innovations",
           "Tuning", "model_increments", "online_bound", "penalty_prices", "sample_futures",
           "tune_elasticity"]

#: The episode totals of the price model (module docstring), in this order.
FEATURES = ("fading power", "harvest (J)", "requests", "energy at the price (J)")
#: Relative change of a user's price per unit of each total of :data:`FEATURES`, tuned by
#: :func:`tune_elasticity` on training seeds 0-5, 2 futures each, multiplier 0.001 (docs/online_bound.md).
DEFAULT_ELASTICITY = (-6.270130984996315e-4, 7.785064220051172e-5, 2.749012535431256e-5, 7.7462129123002e-4)
#: Tags of the random streams of the estimate's futures, the pilots, the tuning futures and the
#: inner samples of the last feature (apart from the env's seed).
FUTURE_STREAM = 0x6F62
PILOT_STREAM = 0x706C
TUNING_STREAM = 0x7475
INNER_STREAM = 0x696E
#: Inner samples per slot of the conditional expectation of the last feature.
INNER_SAMPLES = 4
#: Column-generation stops of each dual (as :func:`~.hindsight.hindsight_bound`'s defaults).
DUAL_ROUNDS = 60
TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class Future:
    """One sampled episode from ``x_0``: its relaxed slots and the exogenous totals' ingredients.

    ``fading_power[t, n] = |g_{n,t}|^2`` (T, N); ``harvest_j[k - 1]`` the harvest on entering slot
    ``k`` (T - 1, N); ``has_request`` (T, N); ``start`` the state of ``x_0``; ``key`` the seed
    sequence ``(seed, stream, index)`` it was drawn with.
    """

    episode: EpisodeSlots
    fading_power: np.ndarray
    harvest_j: np.ndarray
    has_request: np.ndarray
    start: dynamics.SystemState
    key: tuple[int, int, int]


def _start(config: AIGCEdgeConfig, seed: int) -> tuple[dynamics.SystemState, SlotProblem]:
    """The state and slot 0 that ``reset(seed)`` draws (the env's generator)."""
    rng, _ = seeding.np_random(int(seed))
    state = dynamics.reset_state(config, rng, n_systems=None)
    first, _ = dynamics.draw_slots(config, state, rng, 1, first_is_current=True)
    return state, first.select(0)


def _fading_power(config: AIGCEdgeConfig, problems: Sequence[SlotProblem], path_gain: np.ndarray) -> np.ndarray:
    """``|g_{n,t}|^2`` (T, N) read back from the slots' uplink rates and the path gain."""
    uplink = np.array([problem.uplink_rate_bps for problem in problems])
    return physics.gain_from_rate_bps(config.bandwidth_per_user_hz, config.user_tx_power_w, uplink,
                                      config.noise_psd_w_per_hz) / path_gain


def sample_futures(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None, count: int,
                   stream: int = FUTURE_STREAM) -> list[Future]:
    """``count`` episodes that share ``x_0`` of ``reset(seed)`` and draw the rest from the model,
    future ``i`` with ``default_rng([seed, stream, i])`` (never the env's generator)."""
    c = make_config(env_id, config)
    state, first = _start(c, seed)
    futures = []
    for i in range(count):
        own = dataclasses.replace(state, fading=state.fading.copy())
        problems, harvest = [first], np.zeros((0, c.n_users))
        if c.horizon_slots > 1:
            rest, drawn = dynamics.draw_slots(c, own, np.random.default_rng([int(seed), stream, i]),
                                              c.horizon_slots - 1, first_is_current=False)
            problems += [rest.select(k) for k in range(c.horizon_slots - 1)]
            harvest = np.asarray(drawn)
        futures.append(Future(relaxed_episode(problems, harvest, state.battery_j),
                              _fading_power(c, problems, state.path_gain), harvest,
                              np.array([problem.has_request for problem in problems], dtype=np.float64), state,
                              (int(seed), stream, i)))
    return futures


def _energy_at(problems: Sequence[SlotProblem], price_per_j: np.ndarray) -> np.ndarray:
    """Each slot's device energy per user ``(len, N)`` under ``exact`` at prices ``price_per_j`` (N,)."""
    prices = np.broadcast_to(price_per_j, (len(problems), len(price_per_j)))
    return np.array([result.energy_j for result in solve_many(list(problems), prices, drops_as_options=True)])


def _expected_next_energy(future: Future, price_per_j: np.ndarray, inner: int) -> np.ndarray:
    """``(T - 1, N)``: for each slot ``t``, the mean energy at ``price_per_j`` of ``inner`` draws of slot
    ``t + 1`` given slot ``t``'s fading (its phase does not matter: the innovations are circular),
    drawn with ``default_rng([*key, INNER_STREAM, t])`` apart from the future itself."""
    c, start = future.episode.config, future.start
    draws = []
    for t, power in enumerate(future.fading_power[:-1]):
        state = dynamics.SystemState(
            distance_m=np.tile(start.distance_m, (inner, 1)), path_gain=np.tile(start.path_gain, (inner, 1)),
            device_clock_hz=np.tile(start.device_clock_hz, (inner, 1)),
            fading=np.tile(np.sqrt(power), (inner, 1)).astype(np.complex128),
            battery_j=np.tile(start.battery_j, (inner, 1)), trace_position=np.full((inner, c.n_users), -1))
        generators = [np.random.default_rng(s) for s in np.random.SeedSequence(
            [*future.key, INNER_STREAM, t]).spawn(inner)]
        slots, _ = dynamics.draw_slots(c, state, generators, 1, first_is_current=False)
        draws += [slots.select((0, k)) for k in range(inner)]
    energy = _energy_at(draws, price_per_j)
    return energy.reshape(len(future.fading_power) - 1, inner, c.n_users).mean(1)


def innovations(future: Future, price_per_j: np.ndarray | None = None, inner: int = 0) -> np.ndarray:
    """``phi[k, t, n]`` (4, T - 1, N): the change, on learning slot ``t + 1``, of the conditional
    expectation of user ``n``'s total ``k`` of :data:`FEATURES` (module docstring), zero-mean given
    the history up to slot ``t``.  The last one needs ``price_per_j`` (N,) and ``inner`` >= 1 samples
    per slot (an unbiased estimate of its conditional expectation); it is 0 with ``inner = 0``."""
    c = future.episode.config
    rho2 = c.fading_correlation ** 2
    power = future.fading_power
    weight = np.cumsum(rho2 ** np.arange(power.shape[0] - 1))[::-1]  # W_{t+1}, t = 0 .. T-2
    demand = np.zeros_like(future.harvest_j)
    if inner and price_per_j is not None and power.shape[0] > 1:
        demand = (_energy_at(future.episode.problems[1:], price_per_j)
                  - _expected_next_energy(future, price_per_j, inner))
    return np.stack([weight[:, None] * (power[1:] - rho2 * power[:-1] - (1.0 - rho2)),
                     future.harvest_j - 0.5 * (c.harvest_j_range[0] + c.harvest_j_range[1]),
                     future.has_request[1:] - c.task_probability, demand])


def model_increments(phi: np.ndarray, elasticity: np.ndarray, price_scale_per_j: np.ndarray) -> np.ndarray:
    """``delta[t, n] = s_n sum_k gamma_k phi[k, t, n]`` (T - 1, N) of the module docstring."""
    return price_scale_per_j * np.einsum("k,ktn->tn", elasticity, phi)


def penalty_prices(increments: np.ndarray) -> np.ndarray:
    """``p[tau, n] = -sum_{tau <= t < T-1} delta[t, n]`` (T, N) from ``delta`` (T - 1, N): the
    penalty ``sum p E`` has zero mean under every non-anticipative policy when each ``delta[t]`` has
    zero mean given the history up to slot ``t`` (module docstring)."""
    delta = np.asarray(increments, dtype=np.float64)
    tail = np.cumsum(delta[::-1], axis=0)[::-1]
    return -np.concatenate([tail, np.zeros((1, delta.shape[1]))])


@dataclass(frozen=True, eq=False)
class OnlineBound:
    """Result of :func:`online_bound` (costs per episode, in the env's cost units).

    ``lower_bound`` estimates a lower bound on ``J*(x_0)``, the least expected cost of a
    non-anticipative policy from the state ``reset(seed)`` draws (module docstring), as the mean
    over ``futures`` sampled futures, ``interval`` its 95% t-interval; ``clairvoyant_bound`` the
    mean hindsight bound of the same futures (the same dual without penalty), ``tightening`` the
    paired difference ``lower_bound - clairvoyant_bound`` (each with a 95% interval);
    ``future_bounds``, ``future_clairvoyant_bounds`` per future; ``price_scale_per_j`` the
    pilots' ``s_n``; ``cpu_s`` the process CPU time of the call.
    """

    env_id: str
    seed: int
    futures: int
    lower_bound: float
    interval: tuple[float, float]
    clairvoyant_bound: float
    clairvoyant_interval: tuple[float, float]
    tightening: float
    tightening_interval: tuple[float, float]
    future_bounds: np.ndarray
    future_clairvoyant_bounds: np.ndarray
    elasticity: tuple[float, ...]
    price_scale_per_j: np.ndarray
    cpu_s: float


def _mean_interval(values: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The mean and its 95% t-interval."""
    mean = float(np.mean(values))
    half = float(stats.t.ppf(0.975, values.size - 1) * np.std(values, ddof=1) / np.sqrt(values.size))
    return mean, (mean - half, mean + half)


def _checked_config(env_id: str, config: Mapping[str, Any] | AIGCEdgeConfig | None) -> AIGCEdgeConfig:
    c = make_config(env_id, config)
    if not c.battery_enabled:
        raise ValueError(f"online_bound needs batteries (battery_enabled=True, e.g. AIGCEdge-Battery-v0): "
                         f"without them the slots do not couple and the hindsight bound is already exact; "
                         f"got {env_id}")
    if c.channel_model != "rayleigh":
        raise ValueError(f"online_bound's penalty models the Gauss-Markov fading: channel_model must be "
                         f"'rayleigh', got {c.channel_model!r}")
    return c


def _first_prices(futures: Sequence[Future], dual_rounds: int, tolerance: float) -> np.ndarray:
    """The hindsight dual's first-slot prices ``(len(futures), N)`` of each future."""
    return np.array([maximise_dual(f.episode, max_rounds=dual_rounds, tolerance=tolerance).prices_per_j[0]
                     for f in futures])


def _penalised(future: Future, free: DualResult, prices_per_j: np.ndarray, dual_rounds: int,
               tolerance: float) -> DualResult:
    """The dual of ``future`` with penalty prices ``prices_per_j`` (T, N), from the prices of ``free``."""
    return maximise_dual(future.episode, max_rounds=dual_rounds, tolerance=tolerance,
                         initial_prices_per_j=(free.prices_per_j, 0.0), energy_offset_per_j=prices_per_j)


def _elasticity(elasticity: Sequence[float], inner: int) -> np.ndarray:
    gamma = np.asarray(elasticity, dtype=np.float64)
    if gamma.shape != (len(FEATURES),) or not np.all(np.isfinite(gamma)):
        raise ValueError(f"elasticity must be {len(FEATURES)} finite numbers ({', '.join(FEATURES)}), "
                         f"got {elasticity!r}")
    if gamma[-1] and not inner:
        raise ValueError(f"the last elasticity ({FEATURES[-1]}) needs inner >= 1 samples, got inner={inner}")
    return gamma


def _options(seed: int, futures: int, pilots: int, inner: int, dual_rounds: int, tolerance: float) -> None:
    count_option("seed", seed, 0)
    count_option("futures", futures, 2)
    count_option("pilots", pilots, 1)
    count_option("inner", inner, 0)
    count_option("dual_rounds", dual_rounds, 0)
    positive_option("tolerance", tolerance, "relative")


def _price_scale(env_id: str, seed: int, config: Mapping[str, Any] | AIGCEdgeConfig | None, pilots: int,
                 dual_rounds: int, tolerance: float) -> np.ndarray:
    """``s_n``: the mean first-slot hindsight price of ``pilots`` pilot futures (N,)."""
    return _first_prices(sample_futures(env_id, seed, config, pilots, PILOT_STREAM), dual_rounds, tolerance).mean(0)


def online_bound(
    env_id: str,
    seed: int,
    config: Mapping[str, Any] | AIGCEdgeConfig | None = None,
    *,
    futures: int = 8,
    pilots: int = 1,
    elasticity: Sequence[float] = DEFAULT_ELASTICITY,
    inner: int = INNER_SAMPLES,
    dual_rounds: int = DUAL_ROUNDS,
    tolerance: float = TOLERANCE,
) -> OnlineBound:
    """The information-relaxation bound on the best non-anticipative policy from ``reset(seed)``
    of ``env_id`` (a battery scenario, Rayleigh channel), over ``futures`` (>= 2) sampled futures,
    the price scale from ``pilots`` (>= 1) other futures, ``elasticity`` the ``gamma`` of
    :data:`FEATURES`, ``inner`` the inner samples per slot of the last one (module docstring)."""
    start = time.process_time()
    _checked_config(env_id, config)
    _options(seed, futures, pilots, inner, dual_rounds, tolerance)
    gamma = _elasticity(elasticity, inner)
    scale = _price_scale(env_id, seed, config, pilots, dual_rounds, tolerance)
    bounds, clairvoyant = np.empty(futures), np.empty(futures)
    for i, future in enumerate(sample_futures(env_id, seed, config, futures)):
        free = maximise_dual(future.episode, max_rounds=dual_rounds, tolerance=tolerance)
        phi = innovations(future, scale, inner if gamma[-1] else 0)
        prices = penalty_prices(model_increments(phi, gamma, scale))
        bounds[i] = _penalised(future, free, prices, dual_rounds, tolerance).lower_bound if np.any(prices) \
            else free.lower_bound
        clairvoyant[i] = free.lower_bound
    (mean, interval), (free_mean, free_interval) = _mean_interval(bounds), _mean_interval(clairvoyant)
    tightening, tightening_interval = _mean_interval(bounds - clairvoyant)
    return OnlineBound(env_id=env_id, seed=int(seed), futures=futures, lower_bound=mean, interval=interval,
                       clairvoyant_bound=free_mean, clairvoyant_interval=free_interval, tightening=tightening,
                       tightening_interval=tightening_interval, future_bounds=bounds,
                       future_clairvoyant_bounds=clairvoyant, elasticity=tuple(float(g) for g in gamma),
                       price_scale_per_j=scale, cpu_s=time.process_time() - start)


def _lp_energy(dual: DualResult) -> np.ndarray:
    """The energy per slot and user ``(T, N)`` of the final master LP's solution (its columns' mix)."""
    if dual.master is None:
        raise ValueError("the dual has no master LP (an episode without batteries)")
    columns = dual.columns
    energy = np.zeros_like(dual.prices_per_j)
    np.add.at(energy, np.asarray(columns.slot), dual.master.weights[:, None] * np.asarray(columns.energy_j))
    return energy


@dataclass(frozen=True, eq=False)
class Tuning:
    """What :func:`tune_elasticity` measured: per feature the derivative of the bound at ``gamma = 0``
    (mean and standard error over the futures), the direction kept, and the mean tightening (and its
    standard error) at each multiplier of it; ``elasticity`` the chosen ``gamma`` (zero if none tightens)."""

    derivative: np.ndarray
    derivative_se: np.ndarray
    direction: np.ndarray
    steps: list[tuple[float, float, float]]
    elasticity: np.ndarray
    cpu_s: float


def tune_elasticity(env_id: str, seeds: Sequence[int], futures: int, multipliers: Sequence[float],
                    config: Mapping[str, Any] | AIGCEdgeConfig | None = None, *, pilots: int = 1,
                    inner: int = INNER_SAMPLES, dual_rounds: int = DUAL_ROUNDS, tolerance: float = TOLERANCE,
                    progress: bool = False) -> Tuning:
    """Elasticities ``gamma`` for :func:`online_bound`, tuned on training ``seeds`` (module docstring).

    On ``futures`` futures per seed (stream :data:`TUNING_STREAM`) with the seed's pilot price scale:
    the derivative of the penalised dual at ``gamma = 0`` along each feature (Danskin: the penalty
    ``sum_{n,t} p^k_{n,t} E_{n,t}`` of feature ``k`` alone at the master LP's solution), the direction
    that gradient, then the multiplier of its unit vector with the largest mean tightening (none that
    tightens: ``gamma = 0``).  Any ``gamma`` gives a valid bound: this only chooses one.
    """
    start = time.process_time()
    _checked_config(env_id, config)
    _options(0, 2, pilots, inner, dual_rounds, tolerance)
    count_option("futures", futures, 1)
    samples = []  # (future, price scale, free dual, phi)
    for seed in seeds:
        scale = _price_scale(env_id, seed, config, pilots, dual_rounds, tolerance)
        for future in sample_futures(env_id, seed, config, futures, TUNING_STREAM):
            samples.append((future, scale, maximise_dual(future.episode, max_rounds=dual_rounds, tolerance=tolerance),
                            innovations(future, scale, inner)))
        if progress:
            print(f"tune_elasticity: seed {seed} sampled", flush=True)
    derivatives = np.array([[np.sum(penalty_prices(scale * phi_k) * _lp_energy(free)) for phi_k in phi]
                            for _, scale, free, phi in samples])
    mean, se = derivatives.mean(0), derivatives.std(0, ddof=1) / np.sqrt(len(samples))
    direction = mean.copy()
    steps: list[tuple[float, float, float]] = []
    if np.any(direction):
        direction = direction / np.linalg.norm(direction)
        for multiplier in multipliers:
            gains = np.array([_penalised(future, free, penalty_prices(model_increments(phi, multiplier * direction,
                                                                                      scale)),
                                         dual_rounds, tolerance).lower_bound - free.lower_bound
                              for future, scale, free, phi in samples])
            steps.append((float(multiplier), float(gains.mean()), float(gains.std(ddof=1) / np.sqrt(gains.size))))
            if progress:
                print(f"tune_elasticity: multiplier {multiplier:g}: mean tightening {steps[-1][1]:.2f}", flush=True)
    best = max(steps, key=lambda row: row[1], default=(0.0, 0.0, 0.0))
    gamma = best[0] * direction if best[1] > 0 else np.zeros(len(FEATURES))
    return Tuning(mean, se, direction, steps, gamma, time.process_time() - start)
