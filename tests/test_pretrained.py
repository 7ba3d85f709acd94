"""The pretrained policies shipped with the package: each plays its card's episodes, and a policy is refused,
with one line naming why, under a config, a release or an env id it does not fit."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import aigc_edge_env
from aigc_edge_env.cli import main as cli_main
from aigc_edge_env.config import SCENARIOS
from aigc_edge_env.env import AIGCEdgeEnv
from aigc_edge_env.evaluation.runner import run_episode
from aigc_edge_env.policies import pretrained
from aigc_edge_env.policies.pretrained import (
    PretrainedError,
    PretrainedPolicy,
    available,
    check_pretrained,
    load_pretrained,
    release,
)
from aigc_edge_env.policies.registry import make_policy

CARDS = available()


def _playable(env_id: str) -> None:
    """Skip where the card's kind needs an extra that is not installed (the core-only run of .ci/run)."""
    requirement = pretrained.KINDS[CARDS[env_id]["kind"]]
    if requirement is not None:
        pytest.importorskip(requirement[0])


def _assert_fits(env_id: str, config: dict | None = None) -> None:
    """``check_pretrained`` passes, or (core only) fails at its last check only: the missing extra."""
    try:
        check_pretrained(env_id, config)
    except PretrainedError as exc:
        assert "which is not installed: pip install" in str(exc)


def test_every_registered_id_has_a_small_complete_card() -> None:
    assert set(CARDS) == set(SCENARIOS)
    for env_id, card in CARDS.items():
        assert release(card["package_version"]) == release(aigc_edge_env.__version__)
        assert card["config"] == aigc_edge_env.make_config(env_id).to_dict()  # the registered config, in full
        assert card["command"].startswith(f"aigc-edge train --algo {card['algo']} --env {env_id} ")
        assert card["seeds"]["evaluation"] == list(range(10_000, 10_000 + len(card["seeds"]["evaluation"])))
        assert f"--env {env_id} " in card["evaluation"]["command"]
        assert sum(entry["bytes"] for entry in card["files"].values()) < 1024 * 1024
        assert card["training_slots"] > 0 and card["training_cpu_s"] > 0


@pytest.mark.parametrize("env_id", sorted(CARDS))
def test_each_pretrained_policy_plays_the_first_episode_of_its_card(env_id: str) -> None:
    """``make_policy("pretrained")`` in ``gym.make(env_id)`` plays the policy of that id: the first held-out
    episode's reward is the card's (to 1e-3: another CPU may round a near tie the other way)."""
    _playable(env_id)
    card = CARDS[env_id]
    seed = card["seeds"]["evaluation"][0]
    env = gym.make(env_id)
    episode = run_episode(env, make_policy("pretrained"), seed)
    recorded = card["evaluation"]["episode_rewards"]
    assert episode.metrics["reward"] == pytest.approx(recorded["pretrained"][0], rel=1e-3)
    assert episode.metrics["reward"] > recorded["random"][0]


def test_a_changed_config_is_refused_naming_the_fields() -> None:
    with pytest.raises(PretrainedError, match=r"^the pretrained policy of AIGCEdge-v0 does not fit this config: "
                                              r"n_users=5 \(trained with 10\), horizon_slots=7 \(trained with 100\);"):
        check_pretrained("AIGCEdge-v0", {"n_users": 5, "horizon_slots": 7})
    _assert_fits("AIGCEdge-v0", {"n_users": 10})  # the registered value, written out, fits


def test_another_release_is_refused_naming_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    made_with = CARDS["AIGCEdge-v0"]["package_version"]
    major, minor = release(made_with)
    monkeypatch.setattr(aigc_edge_env, "__version__", f"{major}.{minor + 1}.0")
    with pytest.raises(PretrainedError, match=rf"made with aigc-edge-env {made_with} and fits its {major}\.{minor}\.x "
                                              rf"releases only, not the installed {major}\.{minor + 1}\.0"):
        check_pretrained("AIGCEdge-v0")
    monkeypatch.setattr(aigc_edge_env, "__version__", f"{major}.{minor}.99")  # a patch release fits
    _assert_fits("AIGCEdge-v0")


def test_an_id_without_a_policy_is_refused_listing_those_with_one() -> None:
    with pytest.raises(PretrainedError, match=r"no pretrained policy for 'AIGCEdge-Nowhere-v0': shipped for \["):
        check_pretrained("AIGCEdge-Nowhere-v0")


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {card["kind"] for card in CARDS.values()}
    assert "sb3" in kinds
    env_id = next(env_id for env_id, card in CARDS.items() if card["kind"] == "sb3")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "stable_baselines3" else find_spec(name, *args))
    with pytest.raises(PretrainedError, match=r"needs stable_baselines3, which is not installed: "
                                              r"pip install 'aigc-edge-env\[agents\]'"):
        load_pretrained(env_id)


def _copy_of_the_shipped_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained._folder(), folder)
    monkeypatch.setattr(pretrained, "_folder", lambda: folder)
    return folder


@pytest.fixture
def fresh_cards():
    """The cards read afresh in the test (from its copy of the folder), and again after it."""
    available.cache_clear()
    yield
    available.cache_clear()


def test_an_altered_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cards) -> None:
    folder = _copy_of_the_shipped_folder(tmp_path, monkeypatch)
    model = folder / "AIGCEdge-v0" / "model.zip"
    model.write_bytes(model.read_bytes()[:100])  # e.g. a Git LFS pointer, or a download cut short
    with pytest.raises(PretrainedError, match=r"model.zip is 100 bytes, another SHA-256: expected \d+ bytes"):
        check_pretrained("AIGCEdge-v0")
    model.unlink()
    with pytest.raises(PretrainedError, match=r"model.zip is missing: expected \d+ bytes"):
        check_pretrained("AIGCEdge-v0")


def test_the_battery_card_is_a_price_network_played_without_torch() -> None:
    """The ``price_network`` kind (core only) loads its one ``.npz`` with ``PriceNetworkPolicy.load``."""
    from aigc_edge_env.policies.price_network import PriceNetworkPolicy

    card = pretrained.available()["AIGCEdge-Battery-v0"]
    assert card["kind"] == "price_network"
    policy = load_pretrained("AIGCEdge-Battery-v0")
    (name,) = card["files"]
    reference = PriceNetworkPolicy.load(pretrained._folder() / "AIGCEdge-Battery-v0" / name)
    assert isinstance(policy, PriceNetworkPolicy)
    for mine, theirs in zip(policy.weights + policy.biases, reference.weights + reference.biases, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_policy_follows_the_env_it_acts_in() -> None:
    """The name resolves per env: refused in an env whose config is not the card's, or one made without an id."""
    policy = make_policy("pretrained")
    assert isinstance(policy, PretrainedPolicy)
    env = gym.make("AIGCEdge-v0", config={"n_users": 4})
    observation, _ = env.reset(seed=0)
    with pytest.raises(PretrainedError, match=r"does not fit this config: n_users=4 \(trained with 10\)"):
        policy.act(env, observation)
    bare = AIGCEdgeEnv()
    observation, _ = bare.reset(seed=0)
    with pytest.raises(PretrainedError, match=r"needs the env's registered id: make the env with gym.make\(id\)"):
        policy.act(bare, observation)


def test_unknown_policy_names_list_pretrained() -> None:
    with pytest.raises(ValueError, match=r"or 'pretrained'$"):
        make_policy("pretrained2")


def test_evaluate_plays_pretrained_and_scores_it(tmp_path: Path) -> None:
    _playable("AIGCEdge-v0")
    out = tmp_path / "out"
    assert cli_main(["evaluate", "--env", "AIGCEdge-v0", "--episodes", "1", "--policies", "exact", "random",
                     "pretrained", "--no-plots", "--no-progress", "--out", str(out)]) == 0
    rows = {row["policy"]: row for row in json.loads((out / "results.json").read_text())["summary"]}
    assert rows["pretrained"]["score"] > 0.95


def test_evaluate_refuses_a_config_the_policy_does_not_fit_before_any_work(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["evaluate", "--env", "AIGCEdge-v0", "--horizon", "10", "--episodes", "1", "--policies",
                  "pretrained", "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("aigc-edge evaluate: error: --policies: the pretrained policy "
                                                   "of AIGCEdge-v0 does not fit this config: horizon_slots=10 "
                                                   "(trained with 100)"), err
    assert not out.exists()
