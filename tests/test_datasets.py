"""Minari datasets (the ``datasets`` extra): ``aigc-edge record`` writes a dataset that Minari loads, whose
env spec recreates the env, whose recorded actions replay to the recorded rewards, and whose infos carry
the cost components; bad input is refused before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")  # the datasets extra (absent from the core-only install)
pytest.importorskip("h5py")

from aigc_edge_env.cli import main  # noqa: E402
from aigc_edge_env.datasets import load_transitions, open_dataset, record_dataset, replay_max_difference  # noqa: E402
from aigc_edge_env.evaluation.runner import COMPONENTS, run_episode  # noqa: E402
from aigc_edge_env.policies.registry import make_policy  # noqa: E402

HORIZON = 6
DATASET_ID = "aigc-edge/aigcedge/exact-v0"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes of ``exact`` (seeds 3, 4) of a short AIGCEdge-v0, recorded by the command."""
    root = tmp_path_factory.mktemp("datasets")
    assert main(["record", "--policies", "exact", "--episodes", "2", "--seed", "3", "--horizon", str(HORIZON),
                 "--out", str(root), "--no-progress"]) == 0
    return root


def test_minari_loads_the_recorded_dataset(recorded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(recorded))
    dataset = minari.load_dataset(DATASET_ID)
    env = gym.make("AIGCEdge-v0")
    assert dataset.total_episodes == 2 and dataset.total_steps == 2 * HORIZON
    assert dataset.observation_space == env.observation_space and dataset.action_space == env.action_space
    assert dataset.spec.env_spec.id == "AIGCEdge-v0"
    assert dataset.spec.env_spec.kwargs["config"] == {"horizon_slots": HORIZON}
    assert dataset.storage.metadata["algorithm_name"] == "exact"
    assert [m["seed"] for m in dataset.storage.get_episode_metadata(dataset.episode_indices)] == [3, 4]
    for episode in dataset.iterate_episodes():
        assert episode.observations.shape == (HORIZON + 1, *env.observation_space.shape)
        assert episode.actions.shape == (HORIZON, *env.action_space.shape)
        assert episode.rewards.shape == episode.terminations.shape == episode.truncations.shape == (HORIZON,)
        assert episode.truncations[-1] and not episode.truncations[:-1].any() and not episode.terminations.any()


def test_the_recorded_episodes_are_exacts_with_their_cost_components(recorded: Path) -> None:
    """The same seeds played by ``exact`` in a fresh env give the recorded actions, rewards and components."""
    dataset = open_dataset(DATASET_ID, recorded)
    env = gym.make("AIGCEdge-v0", config={"horizon_slots": HORIZON})
    for seed, episode in zip((3, 4), dataset.iterate_episodes(), strict=True):
        played = run_episode(env, make_policy("exact"), seed)
        np.testing.assert_array_equal(episode.actions, np.stack(played.actions))
        assert episode.rewards.sum() == pytest.approx(played.metrics["reward"], abs=1e-9)
        assert set(COMPONENTS) - {"offload_share", "mean_error"} <= set(episode.infos)
        for name in ("cost", "time_s", "energy_j", "utility", "n_dropped"):  # the summed components
            assert episode.infos[name].shape == (HORIZON + 1,) and episode.infos[name][0] == 0.0
            assert episode.infos[name].sum() == pytest.approx(played.metrics[name], rel=1e-12)
        np.testing.assert_allclose(episode.infos["cost"][1:], np.array(played.per_slot["cost"]), rtol=1e-12)


def test_the_recovered_env_replays_the_recorded_rewards(recorded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(recorded))
    dataset = minari.load_dataset(DATASET_ID)
    env = dataset.recover_environment()
    for seed, episode in zip((3, 4), dataset.iterate_episodes(), strict=True):
        env.reset(seed=seed)
        rewards = [env.step(action)[1] for action in episode.actions]
        np.testing.assert_allclose(rewards, episode.rewards, rtol=0, atol=1e-12)
    assert replay_max_difference(dataset) <= 1e-12


def test_transitions_flatten_the_episodes(recorded: Path) -> None:
    data = load_transitions(DATASET_ID, recorded)
    episodes = list(open_dataset(recorded / DATASET_ID).iterate_episodes())
    assert data.observations.shape == data.next_observations.shape == (2 * HORIZON, 93)
    assert data.actions.shape == (2 * HORIZON, 20) and data.rewards.shape == (2 * HORIZON,)
    np.testing.assert_array_equal(np.flatnonzero(data.episode_starts), [0, HORIZON])
    np.testing.assert_array_equal(data.observations[HORIZON:], episodes[1].observations[:-1])
    np.testing.assert_array_equal(data.next_observations[:HORIZON], episodes[0].observations[1:])
    scale = gym.make("AIGCEdge-v0").unwrapped.config.reward_scale
    np.testing.assert_allclose(data.infos["cost"], -data.rewards / scale, rtol=1e-12)
    np.testing.assert_array_equal(data.seeds, [3, 4])


@pytest.mark.parametrize(("argv", "named"), [
    (["--policies", "bogus"], "--policies"),
    (["--policies", "exact", "--dataset-id", "no version"], "--dataset-id"),
    (["--policies", "exact", "greedy", "--dataset-id", "aigc-edge/x-v0"], "--dataset-id"),
    (["--episodes", "0", "--policies", "exact"], "--episodes"),
    ([], "--policies"),
])
def test_bad_input_exits_2_with_one_line_before_any_work(argv: list[str], named: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["record", *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and named in err, err
    assert err.startswith("aigc-edge record: error: ") and not out.exists()


def test_an_existing_dataset_is_refused_not_overwritten(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.stat().st_mtime_ns for p in (recorded / DATASET_ID / "data").iterdir())
    with pytest.raises(SystemExit) as exit_info:
        main(["record", "--policies", "exact", "--horizon", "2", "--out", str(recorded)])
    assert exit_info.value.code == 2 and f"dataset {DATASET_ID} exists" in capsys.readouterr().err
    assert sorted(p.stat().st_mtime_ns for p in (recorded / DATASET_ID / "data").iterdir()) == before


def test_a_rerun_keeps_the_datasets_recorded_as_asked_and_records_the_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After an interruption between two policies, the same command records only the missing one."""
    argv = ["record", "--episodes", "2", "--seed", "3", "--horizon", "3", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--policies", "all_local"]) == 0
    first = tmp_path / "aigc-edge/aigcedge/all_local-v0/data"
    before = sorted(p.stat().st_mtime_ns for p in first.iterdir())
    capsys.readouterr()
    assert main([*argv, "--policies", "all_local", "greedy"]) == 0
    assert "all_local-v0: recorded as asked by an earlier run, kept" in capsys.readouterr().out
    assert sorted(p.stat().st_mtime_ns for p in first.iterdir()) == before
    assert open_dataset("aigc-edge/aigcedge/greedy-v0", tmp_path).total_episodes == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_an_interrupted_write_leaves_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    def killed(src, dst):  # the signal lands after Minari wrote its files, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        record_dataset("AIGCEdge-v0", make_policy("greedy"), [1], "aigc-edge/test/greedy-v0", tmp_path,
                       config={"horizon_slots": 2}, algorithm_name="greedy")
    assert not (tmp_path / "aigc-edge/test/greedy-v0").exists()  # no half-written dataset where one would be
    assert list(tmp_path.glob(".*")) == []  # nor its staging folder


def test_clairvoyant_records_the_hindsight_plan(tmp_path: Path) -> None:
    """``clairvoyant`` replays the plan of :func:`hindsight_bound`: its actions, its cost."""
    from aigc_edge_env.baselines import hindsight_bound

    config = {"horizon_slots": 8}
    assert main(["record", "--env", "AIGCEdge-Battery-v0", "--config", '{"horizon_slots": 8}', "--episodes", "1",
                 "--seed", "5", "--policies", "clairvoyant", "--out", str(tmp_path / "data"), "--hindsight-cache",
                 str(tmp_path / "hindsight"), "--no-progress"]) == 0
    episode = next(open_dataset("aigc-edge/aigcedge-battery/clairvoyant-v0", tmp_path / "data").iterate_episodes())
    bound = hindsight_bound("AIGCEdge-Battery-v0", 5, config)
    np.testing.assert_array_equal(episode.actions, bound.plan_actions)
    assert episode.infos["cost"].sum() == pytest.approx(bound.plan_cost, rel=1e-9)


def test_without_minari_the_command_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "minari", None)  # as in an install without the extra
    with pytest.raises(SystemExit) as exit_info:
        main(["record", "--policies", "exact", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "pip install 'aigc-edge-env[datasets]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
