"""Typed, validated configuration of the AIGC edge system (the parameters of ``docs/model.md``).

One frozen dataclass, :class:`AIGCEdgeConfig`, holds every parameter with its unit in
its name.  It is validated at construction: a bad value raises :class:`ConfigError`
naming the field, the value and the accepted range, so nothing fails deep inside a
``step()``.  Scenarios (the registered env ids) are configs too, see :data:`SCENARIOS`.

Build one with :func:`make_config` (a scenario name plus a dict of overrides; unknown
keys are rejected) or :meth:`AIGCEdgeConfig.replace`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aigc_edge_env.error_curves import NAMED_ERROR_CURVES, ErrorCurve, PowerLawErrorCurve, TabulatedErrorCurve
from aigc_edge_env.traces import TRACE_NAMES

__all__ = ["AIGCEdgeConfig", "CHANNEL_MODELS", "ConfigError", "SCENARIOS", "default_config", "make_config"]

#: Accepted values of ``channel_model``: the Gauss-Markov Rayleigh model, or a measured throughput trace.
CHANNEL_MODELS = ("rayleigh", "trace")


class ConfigError(ValueError):
    """A configuration value outside its accepted range (names the field)."""


def config_error(field: str, value: Any, accepted: str) -> ConfigError:
    return ConfigError(f"config field '{field}' = {value!r} is invalid: accepted {accepted}")


def error_curve_from_spec(field: str, spec: ErrorCurve | Mapping[str, Any] | str) -> ErrorCurve:
    """Build a curve from a curve object, a dict (``{eps_inf, a, b}`` or ``{steps, errors}``) or the name of
    one of :data:`~aigc_edge_env.error_curves.NAMED_ERROR_CURVES`."""
    if isinstance(spec, str):
        if spec not in NAMED_ERROR_CURVES:
            raise config_error(field, spec, f"a curve name in {sorted(NAMED_ERROR_CURVES)}, or a curve or dict")
        curve = NAMED_ERROR_CURVES[spec]
    elif isinstance(spec, PowerLawErrorCurve):  # its fields checked as a dict's are (it may hold strings)
        curve = PowerLawErrorCurve(*(_number(f"{field}.{key}", getattr(spec, key)) for key in ("eps_inf", "a", "b")))
    elif isinstance(spec, TabulatedErrorCurve):
        curve = TabulatedErrorCurve(_number_tuple(f"{field}.steps", spec.steps),
                                    _number_tuple(f"{field}.errors", spec.errors))
    elif isinstance(spec, Mapping) and set(spec) == {"eps_inf", "a", "b"}:
        curve = PowerLawErrorCurve(*(_number(f"{field}.{key}", spec[key]) for key in ("eps_inf", "a", "b")))
    elif isinstance(spec, Mapping) and set(spec) == {"steps", "errors"}:
        curve = TabulatedErrorCurve(
            _number_tuple(f"{field}.steps", spec["steps"]), _number_tuple(f"{field}.errors", spec["errors"])
        )
    else:
        raise config_error(
            field, spec, "a PowerLawErrorCurve, a TabulatedErrorCurve, a dict with keys "
            f"{{'eps_inf', 'a', 'b'}} or {{'steps', 'errors'}}, or a name in {sorted(NAMED_ERROR_CURVES)}"
        )
    if isinstance(curve, PowerLawErrorCurve):
        _check_power_law(field, curve)
    else:
        _check_tabulated(field, curve)
    return curve


def _number(field: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise config_error(field, value, "a real number")
    return float(value)


def _number_tuple(field: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not _one_dimensional(values):
        raise config_error(field, values, "a sequence of real numbers")
    return tuple(_number(field, value) for value in values)


def _one_dimensional(values: Any) -> bool:
    """A flat sequence (list, tuple, 1-d array); not a scalar, a 0-d array or a ragged or nested sequence."""
    try:
        return bool(np.iterable(values)) and np.ndim(values) == 1
    except ValueError:  # ragged
        return False


def _check_power_law(field: str, curve: PowerLawErrorCurve) -> None:
    if not 0 <= curve.eps_inf <= 1e6:
        raise config_error(f"{field}.eps_inf", curve.eps_inf, "a number in [0, 1e6]")
    if not 0 <= curve.a <= 1e12:
        raise config_error(f"{field}.a", curve.a, "a number in [0, 1e12]")
    if not 0 < curve.b <= 100:
        raise config_error(f"{field}.b", curve.b, "a number in (0, 100]")


def _check_tabulated(field: str, curve: TabulatedErrorCurve) -> None:
    steps = np.asarray(curve.steps, dtype=np.float64)
    errors = np.asarray(curve.errors, dtype=np.float64)
    if steps.ndim != 1 or steps.size < 2 or steps.shape != errors.shape:
        raise config_error(field, curve.__dict__, "'steps' and 'errors' of equal length >= 2")
    if not (np.all(np.isfinite(steps)) and np.all((errors >= 0) & (errors <= 1e12))):
        raise config_error(field, curve.__dict__, "finite steps and errors in [0, 1e12]")
    if steps[0] <= 0 or np.any(np.diff(steps) <= 0):
        raise config_error(f"{field}.steps", curve.steps, "positive and strictly increasing")
    slopes = np.diff(errors) / np.diff(steps)
    if np.any(slopes > 0) or np.any(np.diff(slopes) < -1e-12):
        raise config_error(f"{field}.errors", curve.errors, "non-increasing and convex in steps")


@dataclass(frozen=True)
class AIGCEdgeConfig:
    """Every parameter of the model (``docs/model.md``), with units.  Defaults are ``AIGCEdge-v0``.

    Where this project chose a value the specification leaves open, the comment says so.
    """

    # --- entities and time -------------------------------------------------------
    n_users: int = 10
    horizon_slots: int = 100
    task_probability: float = 0.8  # the specification leaves p_task open; chosen: most users busy.

    # --- per-request attributes (drawn uniformly per slot) -------------------------
    upload_mbit_range: tuple[float, float] = (0.05, 4.0)
    download_mbit_range: tuple[float, float] = (1.6, 3.2)
    utility_weight_range: tuple[float, float] = (0.5, 1.5)
    deadline_s_range: tuple[float, float] = (30.0, 30.0)

    # --- channel -----------------------------------------------------------------
    distance_m_range: tuple[float, float] = (20.0, 300.0)  # drawn at reset
    fading_correlation: float = 0.9  # Gauss-Markov rho
    total_bandwidth_hz: float = 20e6  # split equally (FDMA): b = B / N
    noise_psd_dbm_per_hz: float = -174.0
    user_tx_power_w: float = 0.2
    bs_tx_power_w: float = 1.0
    user_rx_power_w: float = 0.1
    channel_model: str = "rayleigh"  # "rayleigh" (the fields above) or "trace" (the fields below), CHANNEL_MODELS
    trace_name: str = "5gophers"  # a trace set of aigc_edge_env.traces.TRACE_NAMES (channel_model="trace")
    trace_uplink_fraction: float = 0.2  # uplink rate / the trace's (downlink) throughput (channel_model="trace")

    # --- steps --------------------------------------------------------------------
    step_levels: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 40, 50)

    # --- local execution ------------------------------------------------------------
    device_clock_ghz_range: tuple[float, float] = (0.5, 3.0)  # drawn at reset
    device_cycles_per_step: float = 0.3e9
    device_energy_coefficient: float = 5e-28  # kappa, J / (cycle * Hz^2)
    device_step_capacity: int = 50  # S^L_max: most steps a device runs for one request

    # --- edge execution -------------------------------------------------------------
    edge_steps_per_s: float = 25.0  # F_E, shared by the offloaded tasks; tuned from 10, see docs/model.md
    edge_step_capacity: int = 60  # S^E_max: total offloaded steps per slot; tuned from 200, see docs/model.md

    # --- quality --------------------------------------------------------------------
    # a curve, a {eps_inf, a, b} or {steps, errors} dict, or a name of error_curves.NAMED_ERROR_CURVES
    edge_error_curve: ErrorCurve = NAMED_ERROR_CURVES["ddim-cifar10"]
    device_error_curve: ErrorCurve = NAMED_ERROR_CURVES["ddim-cifar10-device"]

    # --- objective -----------------------------------------------------------------
    weight_time_per_s: float = 1.0  # w_T
    weight_energy_per_j: float = 0.1  # w_E
    weight_error: float = 0.2  # w_Q
    weight_utility: float = 1.0  # w_U
    drop_cost: float | None = None  # C_drop; None = the bound of :meth:`min_drop_cost`
    reward_scale: float = 1.0  # reward = -reward_scale * slot cost

    # --- battery scenario ---------------------------------------------------------------
    battery_enabled: bool = False
    battery_capacity_j: float = 100.0
    battery_initial_j_range: tuple[float, float] = (50.0, 100.0)
    harvest_j_range: tuple[float, float] = (0.0, 10.0)  # harvested per slot, uniform

    def __post_init__(self) -> None:
        for name in ("edge_error_curve", "device_error_curve"):
            object.__setattr__(self, name, error_curve_from_spec(name, getattr(self, name)))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range") or f.name == "step_levels":
                if not isinstance(value, (list, tuple, np.ndarray)) or not _one_dimensional(value):
                    raise config_error(f.name, value, "an ordered sequence of numbers (list, tuple or 1-d array)")
                object.__setattr__(self, f.name, tuple(_plain(v) for v in value))
            else:
                object.__setattr__(self, f.name, _plain(value))
        _validate(self)
        if self.drop_cost is None:
            object.__setattr__(self, "drop_cost", self.min_drop_cost())
        elif self.drop_cost < self.min_drop_cost():  # the bound itself is allowed: it is the default
            raise config_error(
                "drop_cost", self.drop_cost, f"a number >= {self.min_drop_cost():.6g} (a bound above every "
                "feasible request cost), or None for that bound"
            )

    # --- derived quantities -----------------------------------------------------------
    @property
    def n_levels(self) -> int:
        return len(self.step_levels)

    @property
    def min_steps(self) -> int:
        return int(self.step_levels[0])

    @property
    def max_steps(self) -> int:
        return int(self.step_levels[-1])

    @property
    def bandwidth_per_user_hz(self) -> float:
        return self.total_bandwidth_hz / self.n_users

    @property
    def noise_psd_w_per_hz(self) -> float:
        return 10.0 ** ((self.noise_psd_dbm_per_hz - 30.0) / 10.0)

    def min_drop_cost(self) -> float:
        """Upper bound on any feasible request's cost; ``C_drop`` must be at least this.

        A served request has ``T <= Tmax``; its energy is at most the local maximum
        ``kappa f_max^2 c_L S_max`` or the radio bound ``max(p, p_rx) * Tmax`` (radio
        time is part of ``T``); its error at most the worse curve at ``S_min``;
        utility only lowers the cost.  So this bound is strictly above every feasible cost.
        """
        deadline_max = self.deadline_s_range[1]
        clock_max_hz = self.device_clock_ghz_range[1] * 1e9
        local_energy_max = (
            self.device_energy_coefficient * clock_max_hz**2 * self.device_cycles_per_step * self.max_steps
        )
        radio_energy_max = max(self.user_tx_power_w, self.user_rx_power_w) * deadline_max
        error_max = max(
            float(self.edge_error_curve.error(self.min_steps)),
            float(self.device_error_curve.error(self.min_steps)),
        )
        return (
            self.weight_time_per_s * deadline_max
            + self.weight_energy_per_j * max(local_energy_max, radio_energy_max)
            + self.weight_error * error_max
        )

    def replace(self, **overrides: Any) -> AIGCEdgeConfig:
        """A copy with some fields changed (validated; unknown names rejected)."""
        return make_config(self, overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly dict (error curves as dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (PowerLawErrorCurve, TabulatedErrorCurve)):
                value = dataclasses.asdict(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


#: Accepted values of each numeric field: ``(low, high)``, both included.  The ranges cover
#: every physically meaningful setting with wide margins and keep every quantity the model
#: computes finite for every accepted config and every action (times up to ~1e45 s, costs
#: up to ~1e60; a property test walks the extremes, ``tests/test_config.py``).
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "n_users": (1, 10_000),
    "horizon_slots": (1, 10**9),
    "task_probability": (0.0, 1.0),
    "upload_mbit_range": (1e-6, 1e6),
    "download_mbit_range": (1e-6, 1e6),
    "utility_weight_range": (0.0, 1e6),
    "deadline_s_range": (1e-6, 1e6),
    "distance_m_range": (1.0, 1e6),
    "fading_correlation": (0.0, 1.0),
    "total_bandwidth_hz": (1.0, 1e12),
    "noise_psd_dbm_per_hz": (-250.0, -100.0),
    "user_tx_power_w": (1e-9, 1e6),
    "bs_tx_power_w": (1e-9, 1e6),
    "user_rx_power_w": (0.0, 1e6),
    "trace_uplink_fraction": (1e-6, 1e3),
    "step_levels": (1, 10**6),
    "device_clock_ghz_range": (1e-6, 1e6),
    "device_cycles_per_step": (1.0, 1e18),
    "device_energy_coefficient": (1e-40, 1e-20),
    "device_step_capacity": (1, 10**6),
    "edge_steps_per_s": (1e-6, 1e9),
    "edge_step_capacity": (0, 10**12),
    "weight_time_per_s": (0.0, 1e6),
    "weight_energy_per_j": (0.0, 1e6),
    "weight_error": (0.0, 1e6),
    "weight_utility": (0.0, 1e6),
    "reward_scale": (1e-12, 1e6),
    "battery_capacity_j": (0.0, 1e12),
    "battery_initial_j_range": (0.0, 1e12),
    "harvest_j_range": (0.0, 1e12),
}
#: Fields that take integers.
INTEGER_FIELDS = ("n_users", "horizon_slots", "step_levels", "device_step_capacity", "edge_step_capacity")


def _plain(value: Any) -> Any:
    """A numpy scalar or 0-d array as the Python scalar it holds (``np.uint8(200)`` is 200, never a uint8 that
    overflows in the env's arithmetic); any other value as it is."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def _check(field_name: str, value: Any, ok: bool, accepted: str) -> None:
    if not ok:
        raise config_error(field_name, value, accepted)


def _is_number(value: Any) -> bool:
    """A finite real number (huge Python ints included: they are compared, not converted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return isinstance(value, (int, np.integer)) or math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _accepted(name: str) -> str:
    low, high = FIELD_RANGES[name]
    kind = "an integer" if name in INTEGER_FIELDS else "a number"
    return f"{kind} in [{low:g}, {high:g}]"


def _in_range(name: str, value: Any) -> bool:
    low, high = FIELD_RANGES[name]
    return (_is_int(value) if name in INTEGER_FIELDS else _is_number(value)) and low <= value <= high


def _check_pair(name: str, value: tuple) -> None:
    accepted = f"a pair (low, high) with low <= high, each {_accepted(name)}"
    _check(name, value, len(value) == 2 and all(_in_range(name, v) for v in value) and value[0] <= value[1],
           accepted)


def _validate(c: AIGCEdgeConfig) -> None:
    for name in FIELD_RANGES:
        value = getattr(c, name)
        if name.endswith("_range"):
            _check_pair(name, value)
        elif name != "step_levels":
            _check(name, value, _in_range(name, value), _accepted(name))
    levels = c.step_levels
    _check("step_levels", levels,
           len(levels) >= 1 and all(_in_range("step_levels", v) for v in levels)
           and all(a < b for a, b in zip(levels[:-1], levels[1:], strict=True)),
           f"a non-empty strictly increasing sequence of integers in [1, {FIELD_RANGES['step_levels'][1]:g}]")
    _check("device_step_capacity", c.device_step_capacity, c.device_step_capacity >= levels[0],
           f"an integer >= the smallest step level ({levels[0]})")
    for name in ("edge_error_curve", "device_error_curve"):  # tabulated: convex over every level
        curve = getattr(c, name)
        if isinstance(curve, TabulatedErrorCurve):
            _check(f"{name}.steps", curve.steps, curve.steps[0] <= levels[0],
                   f"a table starting at or below the smallest step level ({levels[0]}), so that the curve is "
                   "convex over the levels (it is flat below its first point)")
    _check("channel_model", c.channel_model, c.channel_model in CHANNEL_MODELS, f"one of {list(CHANNEL_MODELS)}")
    _check("trace_name", c.trace_name, isinstance(c.trace_name, str) and c.trace_name in TRACE_NAMES,
           f"one of {sorted(TRACE_NAMES)}")
    _check("battery_enabled", c.battery_enabled, isinstance(c.battery_enabled, bool), "True or False")
    _check("battery_initial_j_range", c.battery_initial_j_range,
           c.battery_initial_j_range[1] <= c.battery_capacity_j,
           f"a range within [0, battery_capacity_j = {c.battery_capacity_j}]")
    if c.drop_cost is not None:
        _check("drop_cost", c.drop_cost, _is_number(c.drop_cost) and c.drop_cost <= 1e200,
               "a number <= 1e200, or None")


def default_config() -> AIGCEdgeConfig:
    """The paper's setting, ``AIGCEdge-v0``."""
    return AIGCEdgeConfig()


#: Registered scenarios: env id -> overrides of :func:`default_config`.
SCENARIOS: dict[str, dict[str, Any]] = {
    "AIGCEdge-v0": {},
    "AIGCEdge-Battery-v0": {"battery_enabled": True, "harvest_j_range": (0.0, 1.0)},  # scarce: docs/results.md
    "AIGCEdge-Large-v0": {"n_users": 50},
    # every value sourced or a stated choice: aigc_edge_env.sources(...), docs/environments/measured.md
    "AIGCEdge-Measured-v0": {
        "upload_mbit_range": (0.0008, 0.0024),
        "download_mbit_range": (3.71, 6.4),
        "total_bandwidth_hz": 100e6,
        "channel_model": "trace",
        "trace_name": "5gophers",
        "trace_uplink_fraction": 0.2,
        "device_clock_ghz_range": (2.56, 3.2),
        "device_cycles_per_step": 1.92e9,
        "device_energy_coefficient": 5.0 / 3.2e9**3,
        "edge_steps_per_s": 31.44,
        "edge_step_capacity": 943,
    },
}


def make_config(
    base: AIGCEdgeConfig | str | None = None, overrides: Mapping[str, Any] | AIGCEdgeConfig | None = None
) -> AIGCEdgeConfig:
    """Config from a base (a config, a scenario id, or None for the default) plus overrides.

    ``overrides`` may be a full :class:`AIGCEdgeConfig` (then it is returned as is) or a
    dict of field names; an unknown name raises :class:`ConfigError` listing the valid ones.
    """
    if base is not None and not isinstance(base, str | AIGCEdgeConfig):
        raise ConfigError(f"base (the env id) must be a scenario id of {sorted(SCENARIOS)}, an AIGCEdgeConfig or "
                          f"None, got {type(base).__name__} {base!r} (overrides go in the second argument)")
    if isinstance(base, str) and base not in SCENARIOS:
        raise ConfigError(f"unknown scenario {base!r}: accepted {sorted(SCENARIOS)}")
    if isinstance(overrides, AIGCEdgeConfig):
        return overrides
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"config must be a mapping of field names to values, an AIGCEdgeConfig or None, "
                          f"got {type(overrides).__name__} {overrides!r}")
    if base is None:
        base = default_config()
    elif isinstance(base, str):
        base = AIGCEdgeConfig(**SCENARIOS[base])
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(AIGCEdgeConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}: accepted {sorted(names)}")
    if not overrides:
        return base
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(AIGCEdgeConfig)}
    if "drop_cost" not in overrides and base.drop_cost == base.min_drop_cost():
        values["drop_cost"] = None  # keep the derived bound in step with the new values
    values.update(overrides)
    config = AIGCEdgeConfig(**values)
    for name in overrides:  # an override that changes a field where it has no effect (a full dict may restate it)
        if (name in _ACTIVE_ONLY_WITH and not _ACTIVE_ONLY_WITH[name][1](config)
                and getattr(config, name) != getattr(base, name)):
            raise ConfigError(f"config field '{name}' = {overrides[name]!r} has no effect unless "
                              f"{_ACTIVE_ONLY_WITH[name][0]}: set that too, or leave {name} out")
    return config


#: Fields that act only in part of the model: field -> (what they need, whether a config has it).  An override
#: of one where it would have no effect is refused.  The Rayleigh channel's fields are not listed: under the trace
#: channel the env ignores them, but ``mpc``'s sampled futures still read them.
_ACTIVE_ONLY_WITH: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("battery_capacity_j", "battery_initial_j_range", "harvest_j_range"),
                    ("battery_enabled=True", lambda c: c.battery_enabled)),
    **dict.fromkeys(("trace_name", "trace_uplink_fraction"),
                    ("channel_model='trace'", lambda c: c.channel_model == "trace")),
}
