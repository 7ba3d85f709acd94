"""``AIGCEdge-Measured-v0``, its sources and the trace-driven channel (docs/environments/measured.md)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.resources
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tomllib
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env

import aigc_edge_env
from aigc_edge_env import AIGCEdgeConfig, AIGCEdgeVectorEnv, ConfigError, make_config, sources
from aigc_edge_env.config import SCENARIOS
from aigc_edge_env.dynamics import TRACE_FLOOR_MBPS, reset_state
from aigc_edge_env.traces import TRACE_NAMES, load_trace_set

ROOT = Path(__file__).resolve().parents[1]
MEASURED = "AIGCEdge-Measured-v0"
FIELDS = [f.name for f in dataclasses.fields(AIGCEdgeConfig)]


def _downlink_slices(env: gym.Env, seed: int, slots: int) -> np.ndarray:
    """The downlink rates (slots, N) of ``slots`` slots of an episode seeded ``seed`` under always-local actions."""
    env.reset(seed=seed)
    base = env.unwrapped
    rates = [base.current_problem().downlink_rate_bps.copy()]
    for _ in range(slots - 1):
        env.step(np.zeros(env.action_space.shape, dtype=np.int64))
        rates.append(base.current_problem().downlink_rate_bps.copy())
    return np.array(rates)


def test_measured_passes_gymnasiums_checker() -> None:
    env = gym.make(MEASURED)
    check_env(env.unwrapped, skip_render_check=True)


def test_measured_passes_stable_baselines3s_checker() -> None:
    pytest.importorskip("torch")
    sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_env_checker.check_env(gym.make(MEASURED).unwrapped, warn=True)


def test_sources_name_a_source_or_a_reasoned_choice_for_every_field() -> None:
    for env_id in SCENARIOS:
        table = sources(env_id)
        assert list(table) == FIELDS or set(table) == set(FIELDS)
        assert all(isinstance(text, str) and len(text) > 20 for text in table.values()), env_id
    measured = sources(MEASURED)
    assert list(measured) == FIELDS  # the page's table follows the config's field order
    for name in SCENARIOS[MEASURED]:  # a changed value names its evidence, not "kept"
        assert "kept from AIGCEdge-v0" not in measured[name], name
    with pytest.raises(ValueError, match="env_id 'nope'"):
        sources("nope")


def test_docs_page_renders_the_source_table_of_every_field() -> None:
    spec = importlib.util.spec_from_file_location("measured_sources", ROOT / "docs" / "hooks" / "measured_sources.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    table = hook.sources_markdown()
    assert all(f"| `{name}` |" in table for name in FIELDS)
    page = (ROOT / "docs" / "environments" / "measured.md").read_text(encoding="utf-8")
    assert hook.PLACEHOLDER in page
    assert "docs/hooks/measured_sources.py" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def test_vendored_trace_carries_its_licence_and_is_package_data() -> None:
    folder = importlib.resources.files("aigc_edge_env.traces")
    assert "Creative Commons Attribution 4.0" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert "10.1145/3366423.3380169" in (folder / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert len((folder / "5gophers_throughput.csv").read_bytes()) < 1024 * 1024
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "aigc_edge_env.traces" in project["packages"]
    assert {"*.csv", "LICENSE", "ATTRIBUTION.md"} <= set(project["package-data"]["aigc_edge_env.traces"])
    installed = {path.as_posix() for path in importlib.metadata.files("aigc-edge-env") or ()}
    if "aigc_edge_env/traces/__init__.py" in installed:  # a wheel's files (an editable install maps the folders)
        assert {"aigc_edge_env/traces/LICENSE", "aigc_edge_env/traces/ATTRIBUTION.md"} <= installed


def test_trace_channel_reads_consecutive_samples_of_one_trace() -> None:
    """Each user's downlink is the floored trace sample, one sample per slot along its trace; uplink is the
    fraction of it."""
    env = gym.make("AIGCEdge-v0", config={"channel_model": "trace", "trace_name": "5gophers-verizon",
                                          "trace_uplink_fraction": 0.25})
    rates = _downlink_slices(env, seed=4, slots=30)
    traces = load_trace_set("5gophers-verizon")
    samples = np.maximum(traces.throughput_mbps, TRACE_FLOOR_MBPS)
    start = reset_state(env.unwrapped.config, seeding.np_random(4)[0], n_systems=None).trace_position
    assert start is not None
    positions = traces.advance(start, np.arange(30)[:, None])
    np.testing.assert_array_equal(rates, samples[positions] * 1e6)
    np.testing.assert_allclose(env.unwrapped.current_problem().uplink_rate_bps,
                               0.25 * env.unwrapped.current_problem().downlink_rate_bps)


def test_same_seed_same_trace_slices_in_the_single_env_and_different_seeds_differ() -> None:
    env = gym.make(MEASURED)
    first = _downlink_slices(env, seed=11, slots=5)
    np.testing.assert_array_equal(first, _downlink_slices(env, seed=11, slots=5))
    assert not np.array_equal(first, _downlink_slices(env, seed=12, slots=5))


def test_vector_env_sub_envs_replay_the_single_envs_trace_slices() -> None:
    vector = AIGCEdgeVectorEnv(num_envs=3, env_id=MEASURED)
    vector.reset(seed=20)
    rates = [vector.current_problem().downlink_rate_bps.copy()]
    for _ in range(4):
        vector.step(np.zeros(vector.action_space.shape, dtype=np.int64))
        rates.append(vector.current_problem().downlink_rate_bps.copy())
    stacked = np.array(rates)  # (slots, envs, N)
    single = gym.make(MEASURED)
    for i in range(3):
        np.testing.assert_array_equal(stacked[:, i], _downlink_slices(single, seed=20 + i, slots=5))
    assert not np.array_equal(stacked[:, 0], stacked[:, 1])


def test_multi_agent_view_sees_the_single_envs_trace_slices() -> None:
    pytest.importorskip("pettingzoo")  # the multiagent extra (absent from the core-only install)
    from aigc_edge_env.multi_agent import parallel_env

    view = parallel_env(MEASURED)
    single = gym.make(MEASURED)
    for seed in (5, 6):
        view.reset(seed=seed)
        rates = [view.env.current_problem().downlink_rate_bps.copy()]
        for _ in range(4):
            view.step({agent: np.zeros(2, dtype=np.int64) for agent in view.agents})
            rates.append(view.env.current_problem().downlink_rate_bps.copy())
        np.testing.assert_array_equal(np.array(rates), _downlink_slices(single, seed=seed, slots=5))


def test_rayleigh_stays_the_default_and_draws_no_trace() -> None:
    """AIGCEdge-v0 keeps the Rayleigh channel (its episodes are pinned by the other tests); the same seed
    with the trace option gives other rates."""
    rayleigh, trace = gym.make("AIGCEdge-v0"), gym.make("AIGCEdge-v0", config={"channel_model": "trace"})
    rayleigh.reset(seed=3)
    trace.reset(seed=3)
    assert make_config("AIGCEdge-v0").channel_model == "rayleigh"
    assert rayleigh.unwrapped._state.trace_position.tolist() == [-1] * 10  # noqa: SLF001
    assert not np.array_equal(rayleigh.unwrapped.current_problem().uplink_rate_bps,
                              trace.unwrapped.current_problem().uplink_rate_bps)


@pytest.mark.parametrize(("field", "value", "accepted"), [
    ("channel_model", "awgn", "one of"),
    ("trace_name", "lumos", "one of"),
    ("trace_name", ["5gophers"], "one of"),
    ("trace_uplink_fraction", 0.0, "a number in"),
])
def test_bad_trace_fields_fail_at_construction_naming_the_field(field: str, value: object, accepted: str) -> None:
    with pytest.raises(ConfigError, match=f"config field '{field}'.*accepted {accepted}"):
        make_config(MEASURED, {field: value})


def test_mpc_plans_under_the_trace_channel() -> None:
    """``mpc`` samples its futures through ``draw_slots``; a state without trace positions draws fresh ones."""
    from aigc_edge_env.policies.mpc import MPCPolicy

    env = gym.make("AIGCEdge-Battery-v0", config={"channel_model": "trace", "n_users": 3, "horizon_slots": 6})
    policy = MPCPolicy(every=2, slots=3)
    observation, _ = env.reset(seed=0)
    policy.reset(0)
    for _ in range(3):
        observation, _, _, _, info = env.step(policy.act(env, observation))
    assert policy.planned_price_per_j is not None and policy.planned_price_per_j.shape == (3,)


def test_package_exports_sources() -> None:
    assert aigc_edge_env.sources is sources
    assert set(TRACE_NAMES) >= {"5gophers"}
