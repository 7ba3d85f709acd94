"""Where every config value of a registered scenario comes from: :func:`sources`.

For each field of :class:`~aigc_edge_env.config.AIGCEdgeConfig`, either a published source (citation
with table or figure and the value read there) or ``"modelling choice: <reason>"``.  A figure taken from a
secondary report that could not be checked against its original says so.  ``AIGCEdge-Measured-v0`` is the
scenario built from measurements; the other scenarios keep the paper's specification
(``docs/model.md``), so their entries point there.  The docs page ``docs/environments/measured.md``
renders the table, and a test keeps the two the same.
"""

from __future__ import annotations

import dataclasses

from aigc_edge_env.config import SCENARIOS, AIGCEdgeConfig

__all__ = ["MEASURED_ID", "sources"]

MEASURED_ID = "AIGCEdge-Measured-v0"

_KEPT = "modelling choice: kept from AIGCEdge-v0 ({})"
_UNUSED_BY_TRACE = "not used by the trace channel (the Rayleigh channel's field, kept from AIGCEdge-v0)"
_GOPHERS = ("5Gophers 1.0 (Narayanan et al., 'A First Look at Commercial 5G Performance on Smartphones', "
            "WWW 2020), All-Carriers/01-Throughput, CC BY 4.0, vendored in aigc_edge_env/traces")
_DIFFUSIONDB = ("DiffusionDB (Wang et al., arXiv 2210.14896, CC0 metadata), README's subset table: "
                "DiffusionDB 2M = 2M images in 1.6 TB (PNG), DiffusionDB Large = 14M images in 6.5 TB "
                "(lossless WebP)")
_PHONES = ("Chen et al., 'Speed Is All You Need', arXiv 2304.11267, abstract: SD 1.4 fp16, 512x512, 20 iterations "
           "in under 12 s on a Samsung S23 Ultra (<= 0.60 s/step); Qualcomm OnQ blog 2023-02-23 'World's first "
           "on-device demonstration of Stable Diffusion on an Android phone': SD 1.5 INT8, 512x512, 20 inference "
           "steps in under 15 s on Snapdragon 8 Gen 2 (<= 0.75 s/step)")
_FAL = ("fal-ai/stable-diffusion-benchmarks README: SD 1.5, diffusers fp16 SDPA, 50 steps, batch 1, A100 80G SXM: "
        "31.44 it/s (mean 1.591 s per image)")

_MEASURED: dict[str, str] = {
    "n_users": _KEPT.format("a cell's ten phones; no published count of concurrent text-to-image users per cell "
                            "was found"),
    "horizon_slots": _KEPT.format("100 one-second slots, inside one 600-s trace"),
    "task_probability": _KEPT.format("DiffusionDB's metadata has per-user timestamps that would give arrival "
                                     "rates, but its 2M-row table is not in any stored copy reachable here; "
                                     "no other public per-user request-rate figure was found"),
    "upload_mbit_range": ("modelling choice: a text-to-image request uploads its prompt, at most 77 CLIP tokens, "
                          "about 100 to 300 bytes of UTF-8 = 0.0008 to 0.0024 Mbit"),
    "download_mbit_range": (f"{_DIFFUSIONDB}: mean image size 6.5e12 B / 14e6 = 0.464 MB = 3.71 Mbit (WebP) to "
                            "1.6e12 B / 2e6 = 0.8 MB = 6.4 Mbit (PNG), derived from the README's table"),
    "utility_weight_range": _KEPT.format("no published valuation of image quality per user was found"),
    "deadline_s_range": _KEPT.format("the paper's 30 s; no published user-tolerance figure for image "
                                     "generation was found"),
    "distance_m_range": _UNUSED_BY_TRACE,
    "fading_correlation": _UNUSED_BY_TRACE,
    "total_bandwidth_hz": ("modelling choice: 100 MHz, the largest NR carrier of the FR1 bands; under the trace "
                           "channel it only normalises the observation's spectral-efficiency feature "
                           "(uplink rate / (B / N) / 30), which stays below 1 at the trace's rates"),
    "noise_psd_dbm_per_hz": _UNUSED_BY_TRACE,
    "user_tx_power_w": ("3GPP power class 3 UE, 23 dBm = 0.2 W (3GPP TS 38.101-1, UE maximum output power; "
                        "standard value, not checked against the stored text); the radio energy is this power "
                        "times the transfer time"),
    "bs_tx_power_w": _UNUSED_BY_TRACE,
    "user_rx_power_w": _KEPT.format("no published receive power of a phone during a one-second 5G download was "
                                    "verified; 0.1 W keeps receiving cheaper than sending"),
    "channel_model": f"the measured trace: {_GOPHERS}",
    "trace_name": (f"{_GOPHERS}; all three carriers (two mmWave, one mid-band, per the paper's abstract), the "
                   "single-TCP-connection runs"),
    "trace_uplink_fraction": ("modelling choice: 5Gophers measured downlink throughput only; a 5G NR TDD frame "
                              "with the common DDDSU pattern gives the uplink about 1 slot in 5, so at equal "
                              "spectral efficiency the uplink carries about 0.2 of the downlink"),
    "step_levels": _KEPT.format("the paper's levels 5 ... 50; DiffusionDB's step column would give the users' "
                                "chosen counts, but its metadata table is not reachable here"),
    "device_clock_ghz_range": (f"calibrated to two measurements: {_PHONES}. The clock range 2.56 to 3.2 GHz "
                               "with c_L below gives c_L / f = 0.75 to 0.60 s per step (3.2 GHz: Snapdragon 8 "
                               "Gen 2's prime-core clock as a stand-in for the whole SoC)"),
    "device_cycles_per_step": f"calibrated: 0.60 s/step x 3.2 GHz = 1.92e9 cycles per step ({_PHONES})",
    "device_energy_coefficient": ("derived from power x time, as no per-step energy is published: kappa = P / "
                                  "f_max^3 with P = 5 W at 3.2 GHz (modelling choice: half the 'less than ten "
                                  "watts' HotHardware reported for the Snapdragon 8 Gen 2 demo, 2023-02-24, a "
                                  "journalist's bound, not a measurement), so 3.0 J per step at 0.60 s/step and "
                                  "1.9 J per step at 0.75 s/step"),
    "device_step_capacity": _KEPT.format("50 steps, the largest level; the phones above run any step count"),
    "edge_steps_per_s": f"{_FAL}; shared between the offloaded requests by the model's sqrt split",
    "edge_step_capacity": ("modelling choice: floor(F_E x Tmax) = floor(31.44 x 30) = 943 steps, the most the "
                           "GPU can finish within one deadline, so the capacity never binds before the deadlines"),
    "edge_error_curve": _KEPT.format("DDIM's CIFAR-10 FID table, Song et al. 2021 Table 1; no FID-versus-steps "
                                     "table of a Stable-Diffusion sampler on MS-COCO was verified against a "
                                     "stored source, and w_Q was tuned in this curve's unit"),
    "device_error_curve": _KEPT.format("the edge curve with eps_inf = 6.0 for a weaker device model; INT8 "
                                       "quantisation's quality loss is reported as small by Qualcomm, not as FID"),
    "weight_time_per_s": _KEPT.format("the paper's objective weights"),
    "weight_energy_per_j": _KEPT.format("the paper's objective weights"),
    "weight_error": _KEPT.format("the paper's objective weights"),
    "weight_utility": _KEPT.format("the paper's objective weights"),
    "drop_cost": "derived: AIGCEdgeConfig.min_drop_cost(), the bound above every feasible request's cost",
    "reward_scale": _KEPT.format("reward = -cost"),
    "battery_enabled": _KEPT.format("no battery dynamics; the energy term prices the phones' energy"),
    "battery_capacity_j": "not used (battery_enabled is False)",
    "battery_initial_j_range": "not used (battery_enabled is False)",
    "harvest_j_range": "not used (battery_enabled is False)",
}

_SPECIFICATION = "the paper's specification (Wang, Liu, Zhao, arXiv 2312.06203) as docs/model.md records it"
_TUNED = "tuned in docs/model.md, 'Defaults tuned'"
_PAPER: dict[str, str] = {
    **{f.name: _SPECIFICATION for f in dataclasses.fields(AIGCEdgeConfig)},
    "task_probability": "modelling choice: docs/model.md, 'Request probability'",
    "deadline_s_range": "the specification's 30 s, docs/model.md 'Deadlines'",
    "edge_steps_per_s": _TUNED,
    "edge_step_capacity": _TUNED,
    "edge_error_curve": "fit of DDIM's CIFAR-10 FID table (Song, Meng, Ermon 2021, Table 1), docs/model.md",
    "device_error_curve": "the edge fit with eps_inf = 6.0, docs/model.md 'Measured error curves'",
    "drop_cost": "derived: AIGCEdgeConfig.min_drop_cost(), docs/model.md 'Drop cost'",
    "channel_model": "the specification's Rayleigh / Gauss-Markov channel",
    "trace_name": "not used (channel_model is 'rayleigh')",
    "trace_uplink_fraction": "not used (channel_model is 'rayleigh')",
    "battery_enabled": "not used in AIGCEdge-v0 (AIGCEdge-Battery-v0 enables it)",
}
_OVERRIDES: dict[str, dict[str, str]] = {
    "AIGCEdge-Battery-v0": {"battery_enabled": "the battery scenario, docs/model.md 'Batteries'",
                            "harvest_j_range": "modelling choice: scarce harvest, docs/results.md section 3"},
    "AIGCEdge-Large-v0": {"n_users": "modelling choice: five times AIGCEdge-v0's phones on the same edge server"},
    MEASURED_ID: _MEASURED,
}


def sources(env_id: str) -> dict[str, str]:
    """Field name -> where the value of registered scenario ``env_id`` comes from (every config field).

    ``AIGCEdge-Measured-v0``: a citation with table or figure and the value, or ``"modelling choice: <reason>"``.
    """
    if env_id not in SCENARIOS:
        raise ValueError(f"env_id {env_id!r} is not a registered scenario: accepted {sorted(SCENARIOS)}")
    if env_id == MEASURED_ID:
        return dict(_MEASURED)
    return {**_PAPER, **_OVERRIDES.get(env_id, {})}
