"""MkDocs hook: the configuration reference, generated from ``AIGCEdgeConfig`` at build time.

``docs/reference/config.md`` holds the placeholder ``<!-- config-reference -->``; this hook replaces
it with one table per section of :class:`aigc_edge_env.config.AIGCEdgeConfig` (the ``# --- ... ---``
comments of its source): for every field its unit, its default in every registered scenario
(:data:`~aigc_edge_env.config.SCENARIOS`), the accepted values (:data:`~aigc_edge_env.config.FIELD_RANGES`,
:data:`~aigc_edge_env.config.INTEGER_FIELDS` and the few rules written out below) and its meaning.

The defaults, ranges and units come from the code, so the page cannot drift from it. The meanings
are written here, one per field: a field without one (a new field, a renamed one) fails the build,
and so does a meaning for a field that no longer exists.

:func:`config_reference_markdown` is plain Python (no MkDocs import), so the tests call it directly.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

PLACEHOLDER = "<!-- config-reference -->"

#: Units read from a field's name (after dropping ``_range``): suffix -> unit.  Longest suffix first.
SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_dbm_per_hz", "dBm/Hz"),
    ("_per_step", "cycles/step"),
    ("_steps_per_s", "steps/s"),
    ("_time_per_s", "cost per s"),
    ("_energy_per_j", "cost per J"),
    ("_slots", "slots"),
    ("_mbit", "Mbit"),
    ("_ghz", "GHz"),
    ("_hz", "Hz"),
    ("_s", "s"),
    ("_m", "m"),
    ("_w", "W"),
    ("_j", "J"),
)

#: Units of the fields whose name carries none (from the field's comment in ``config.py`` and
#: the glossary of ``docs/model.md``).
UNITS: dict[str, str] = {
    "n_users": "users",
    "task_probability": "probability per user and slot",
    "utility_weight_range": "dimensionless",
    "fading_correlation": "dimensionless (Gauss-Markov rho)",
    "step_levels": "steps",
    "device_energy_coefficient": "J / (cycle Hz^2)",
    "device_step_capacity": "steps per request",
    "edge_step_capacity": "steps per slot",
    "edge_error_curve": "error (FID-like) as a function of steps",
    "device_error_curve": "error (FID-like) as a function of steps",
    "weight_error": "cost per error unit",
    "weight_utility": "cost per utility unit",
    "drop_cost": "cost",
    "reward_scale": "reward per cost unit",
    "battery_enabled": "bool",
    "channel_model": "name",
    "trace_name": "name",
    "trace_uplink_fraction": "dimensionless (uplink rate / trace throughput)",
    "harvest_j_range": "J per slot",
}

#: What each field means (symbols as in ``docs/model.md``).  Every dataclass field needs an entry.
MEANINGS: dict[str, str] = {
    "n_users": "`N`: phones served by the base station; the action and observation sizes grow with it.",
    "horizon_slots": "`H`: slots per episode; the env truncates after the last one (it never terminates).",
    "task_probability": "`p_task`: chance that a phone has a new request in a slot (Bernoulli, independent "
                        "per phone and slot). The specification leaves it open; 0.8 keeps most phones busy.",
    "upload_mbit_range": "`D_n`: upload size of a request (prompt, conditioning image), drawn uniformly per "
                         "request.",
    "download_mbit_range": "`O_n`: download size of the generated image, drawn uniformly per request.",
    "utility_weight_range": "`u_n`: how much the request's user values quality, drawn uniformly per request; "
                            "scales the utility `u_n ln(1 + s_n)`.",
    "deadline_s_range": "`Tmax_n`: deadline of a request, drawn uniformly per request (a constant 30 s by "
                        "default). A request whose time equals its deadline is served.",
    "distance_m_range": "`d_n`: phone-to-base-station distance, drawn uniformly per phone at reset; enters "
                        "the 3GPP path loss `128.1 + 37.6 log10(d / 1 km)` dB.",
    "fading_correlation": "`rho` of the Gauss-Markov Rayleigh fading, `g' = rho g + sqrt(1 - rho^2) w`: "
                          "how much of a slot's fading carries into the next.",
    "total_bandwidth_hz": "`B`: system bandwidth, split equally among the phones (FDMA, `b = B / N`).",
    "noise_psd_dbm_per_hz": "`N0`: noise power spectral density.",
    "user_tx_power_w": "`p`: phone transmit power (uplink rate and radio energy of an upload).",
    "bs_tx_power_w": "`P_bs`: base-station transmit power (downlink rate).",
    "user_rx_power_w": "`p_rx`: phone receive power (radio energy of a download).",
    "channel_model": "`\"rayleigh\"`: rates from path loss, Gauss-Markov fading and Shannon's formula (the fields "
                     "above); `\"trace\"`: rates from a measured throughput trace (`docs/model.md`, trace channel).",
    "trace_name": "Trace set of the trace channel (`aigc_edge_env.traces`): each phone follows one of its traces "
                  "from a seeded offset, one sample per slot.",
    "trace_uplink_fraction": "Uplink rate as a share of the trace's throughput (the trace's downlink) under the "
                             "trace channel.",
    "step_levels": "The step counts an action or a solver chooses from (`L` levels, `S_min` to `S_max`).",
    "device_clock_ghz_range": "`f_n`: phone clock, drawn uniformly per phone at reset.",
    "device_cycles_per_step": "`c_L`: CPU cycles one reverse-diffusion step takes on a phone; local time "
                              "`s c_L / f`.",
    "device_energy_coefficient": "`kappa`: effective switched capacitance; local energy `kappa f^2 c_L s`.",
    "device_step_capacity": "`S^L_max`: most steps a phone runs for one request; a local request above it "
                            "is dropped.",
    "edge_steps_per_s": "`F_E`: edge GPU speed, shared by the slot's offloaded requests (KKT split "
                        "`f_n = F_E sqrt(s_n) / Q`). Tuned from the specification's 10 (`docs/model.md`).",
    "edge_step_capacity": "`S^E_max`: most steps the edge serves in one slot, summed over offloaded "
                          "requests. Tuned from the specification's 200 (`docs/model.md`).",
    "edge_error_curve": "`eps(s)` of the edge model: average error of content made with `s` reverse "
                        "steps, decreasing and convex (`eps_inf + a s^-b`, or a measured table).",
    "device_error_curve": "`eps(s)` of the (compressed) phone model; same form as `edge_error_curve`.",
    "weight_time_per_s": "`w_T`: weight of a request's total time in its cost.",
    "weight_energy_per_j": "`w_E`: weight of the phone's energy in the cost.",
    "weight_error": "`w_Q`: weight of the average error `eps(s)` in the cost.",
    "weight_utility": "`w_U`: weight of the step utility `u_n ln(1 + s_n)`, subtracted from the cost.",
    "drop_cost": "`C_drop`: cost of a dropped request. `None` derives the bound `min_drop_cost()` "
                 "(above every served request's cost), kept in step when other fields change.",
    "reward_scale": "`reward = -reward_scale * slot cost`; `info` keeps costs unscaled. "
                    "`0.1 / n_users` brings rewards near -0.2 to -1.8 in every scenario.",
    "battery_enabled": "Batteries on: a request is served only if its phone energy fits in the battery; "
                       "`battery' = min(capacity, battery - energy + harvest)`.",
    "battery_capacity_j": "Battery capacity of every phone.",
    "battery_initial_j_range": "Battery charge at reset, drawn uniformly per phone.",
    "harvest_j_range": "Energy each phone harvests per slot, drawn uniformly.",
}

#: Accepted values of the fields that :data:`FIELD_RANGES` does not cover, and rules beyond the range.
EXTRA_RULES: dict[str, str] = {
    "edge_error_curve": "a curve object, a dict `{eps_inf, a, b}` (`eps_inf` in [0, 1e6], `a` in [0, 1e12], "
                        "`b` in (0, 100]) or `{steps, errors}` (>= 2 points, steps increasing from at or below "
                        "the smallest step level, errors non-increasing and convex), or a name in {curves}",
    "device_error_curve": "as `edge_error_curve`",
    "drop_cost": "`None`, or a number in [`min_drop_cost()`, 1e200]",
    "battery_enabled": "`True` or `False`",
    "channel_model": "`\"rayleigh\"` or `\"trace\"`",
    "trace_name": "a name in `aigc_edge_env.traces.TRACE_NAMES`: `5gophers`, `5gophers-sprint`, "
                  "`5gophers-tmobile`, `5gophers-verizon`",
    "step_levels": "a non-empty, strictly increasing sequence of integers in [{low}, {high}]",
    "device_step_capacity": "and at least the smallest step level",
    "battery_initial_j_range": "and its upper end at most `battery_capacity_j`",
}


def _g(number: float) -> str:
    """A number as ``:g`` prints it, exponents without ``+`` and leading zeros (``1e9``, ``1e-6``)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2), f"{number:g}")


def _config_module() -> Any:
    from aigc_edge_env import config

    return config


def unit(name: str) -> str:
    """The unit of a field: :data:`UNITS`, else read from its name's suffix (``ValueError`` if neither)."""
    if name in UNITS:
        return UNITS[name]
    stem = name.removesuffix("_range")
    for suffix, found in SUFFIX_UNITS:
        if stem.endswith(suffix):
            return found
    raise ValueError(f"config field {name!r}: no unit in its name; add it to UNITS in {__file__}")


def accepted(name: str) -> str:
    """The values a field accepts, from ``FIELD_RANGES``/``INTEGER_FIELDS`` plus :data:`EXTRA_RULES`."""
    config = _config_module()
    from aigc_edge_env.error_curves import NAMED_ERROR_CURVES

    ranges = config.FIELD_RANGES
    if name == "step_levels":
        low, high = ranges[name]
        return EXTRA_RULES[name].replace("{low}", _g(low)).replace("{high}", _g(high))
    if name in ranges:
        low, high = ranges[name]
        kind = "integer" if name in config.INTEGER_FIELDS else "number"
        text = f"{kind} in [{_g(low)}, {_g(high)}]"
        if name.endswith("_range"):
            text = f"pair `(low, high)`, `low <= high`, each a {text}"
        else:
            text = f"an {text}" if kind == "integer" else f"a {text}"
        if name in EXTRA_RULES:
            text = f"{text}, {EXTRA_RULES[name]}"
        return text
    if name in EXTRA_RULES:
        return EXTRA_RULES[name].replace("{curves}", ", ".join(f"`{c}`" for c in sorted(NAMED_ERROR_CURVES)))
    raise ValueError(f"config field {name!r}: not in FIELD_RANGES and no rule in EXTRA_RULES of {__file__}")


def format_value(value: Any, name: str = "") -> str:
    """A default as the page shows it (curves by their registered name and formula)."""
    from aigc_edge_env.error_curves import NAMED_ERROR_CURVES, PowerLawErrorCurve

    if isinstance(value, PowerLawErrorCurve):
        names = [key for key, curve in NAMED_ERROR_CURVES.items() if curve == value]
        formula = f"{_g(value.eps_inf)} + {_g(value.a)} s^-{_g(value.b)}"
        return f"`{names[0]}` ({formula})" if names else formula
    if dataclasses.is_dataclass(value):
        return f"`{dataclasses.asdict(value)}`"
    if name == "drop_cost":
        return f"{value:.2f} (derived)"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, float):
        return _g(value)
    return str(value)


def sections() -> list[tuple[str, list[str]]]:
    """The dataclass fields grouped by the ``# --- title ---`` comments of its source, in order."""
    config = _config_module()
    names = [f.name for f in dataclasses.fields(config.AIGCEdgeConfig)]
    groups: list[tuple[str, list[str]]] = [("Other", [])]
    for line in inspect.getsource(config.AIGCEdgeConfig).splitlines():
        header = re.match(r"\s*# --- (.+?) -+\s*$", line)
        field = re.match(r"\s*(\w+)\s*:", line)
        if header:
            groups.append((header.group(1).strip().capitalize(), []))
        elif field and field.group(1) in names and field.group(1) not in sum((g[1] for g in groups), []):
            groups[-1][1].append(field.group(1))
    listed = sum((g[1] for g in groups), [])
    groups[0][1].extend(n for n in names if n not in listed)
    return [g for g in groups if g[1]]


def check_meanings() -> None:
    """Every dataclass field has a meaning and a unit, and no meaning names a field that is gone."""
    config = _config_module()
    names = {f.name for f in dataclasses.fields(config.AIGCEdgeConfig)}
    missing = sorted(names - set(MEANINGS))
    stale = sorted(set(MEANINGS) - names)
    if missing or stale:
        raise ValueError(
            f"config reference ({__file__}): fields without a meaning {missing}, meanings of no field {stale}"
        )
    for name in names:
        unit(name)
        accepted(name)


def config_reference_markdown() -> str:
    """The generated reference: one table per section, one row per field of ``AIGCEdgeConfig``."""
    check_meanings()
    config = _config_module()
    scenario_configs = {sid: config.make_config(sid) for sid in config.SCENARIOS}
    header = "| field | unit | " + " | ".join(f"`{sid}`" for sid in scenario_configs) + " | accepted | meaning |"
    rule = "|" + "---|" * (len(scenario_configs) + 4)
    out = [
        f"{len(MEANINGS)} fields, in the order of `AIGCEdgeConfig`. A default shown in **bold** differs from "
        "`AIGCEdge-v0`'s.",
        "",
    ]
    for title, names in sections():
        out += [f"### {title}", "", header, rule]
        for name in names:
            base = format_value(getattr(scenario_configs["AIGCEdge-v0"], name), name)
            defaults = []
            for scenario in scenario_configs.values():
                shown = format_value(getattr(scenario, name), name)
                defaults.append(shown if shown == base else f"**{shown}**")
            cells = [f"`{name}`", unit(name), *defaults, accepted(name), MEANINGS[name]]
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the placeholder of the configuration page."""
    if PLACEHOLDER not in markdown:
        return markdown
    return markdown.replace(PLACEHOLDER, config_reference_markdown())
