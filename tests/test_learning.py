"""The learned policies of the battery scenario (the ``agents`` extra): the amortised planner
(``train --algo price_network``) and behaviour cloning (the ``behaviour_cloning`` hyperparameter)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")

from aigc_edge_env.agents.policies import load_model_policy  # noqa: E402
from aigc_edge_env.agents.price_imitation import (  # noqa: E402
    LabelledStates,
    check_price_network_hyperparams,
    collect_labels,
    episode_seeds,
    fit_price_network,
)
from aigc_edge_env.agents.runs import RunError  # noqa: E402
from aigc_edge_env.cli import main  # noqa: E402
from aigc_edge_env.policies.mpc import MPCPolicy  # noqa: E402
from aigc_edge_env.policies.price_network import N_PRICE_FEATURES  # noqa: E402

BATTERY = "AIGCEdge-Battery-v0"
SHORT = {"horizon_slots": 10}
TINY = ["episodes:1", "dagger_rounds:1", "dagger_episodes:1", "epochs:2", "hidden:[8]"]


def test_labels_are_the_prices_mpc_plays():
    """Imitation labels mpc's own episodes with the prices it plays at its planning slots."""
    data = LabelledStates()
    collect_labels(BATTERY, [7], None, data, label_every=5, config=SHORT)
    assert len(data.features) == 2 and data.features[0].shape == (10, N_PRICE_FEATURES)
    import gymnasium as gym

    env, mpc = gym.make(BATTERY, config=SHORT), MPCPolicy(every=5)
    mpc.reset(7)
    observation, _ = env.reset(seed=7)
    played = []
    for t in range(10):
        action = mpc.act(env, observation)
        if t % 5 == 0:
            played.append(mpc.planned_price_per_j.copy())
        observation, *_ = env.step(action)
    np.testing.assert_array_equal(np.stack(data.prices_per_j), np.stack(played))


def test_dagger_labels_are_mpc_plans_from_the_visited_states():
    """Labelling another policy's episode: at slot 0 the state is the episode's start, so the label is the
    plan ``mpc`` itself makes there; later labels differ from ``mpc``'s own (other batteries)."""
    from aigc_edge_env.baselines import SOLVERS
    from aigc_edge_env.policies.pricing import ShadowPricePolicy

    own, visited = LabelledStates(), LabelledStates()
    collect_labels(BATTERY, [7], None, own, label_every=5, config=SHORT)
    collect_labels(BATTERY, [7], ShadowPricePolicy(SOLVERS["exact"], 3.0), visited, label_every=5, config=SHORT)
    np.testing.assert_array_equal(visited.prices_per_j[0], own.prices_per_j[0])
    np.testing.assert_array_equal(visited.features[0], own.features[0])
    assert not np.array_equal(visited.features[1], own.features[1])  # the high price kept other batteries


def test_the_fit_learns_a_price_map():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2000, N_PRICE_FEATURES))
    y = 0.2 + 0.6 * x[:, 10]  # a price linear in the budget feature
    net = fit_price_network(x, y, hidden=(16,), epochs=40, batch_size=256, learning_rate=1e-2, seed=0)
    assert np.sqrt(np.mean((net.forward(x) - y) ** 2)) < 0.05 < y.std()


def test_training_seeds_avoid_the_held_out_and_tuning_seeds():
    seeds = episode_seeds(0, 0, 500) + episode_seeds(2, 0, 500)
    assert len(set(seeds)) == 1000 and not set(seeds) & (set(range(20)) | set(range(10000, 10010)))


def test_bad_hyperparameters_are_named():
    good = {"episodes": 2, "dagger_rounds": 0, "dagger_episodes": 1, "label_every": 5, "hidden": [8], "epochs": 1,
            "batch_size": 8, "learning_rate": 1e-3}
    assert check_price_network_hyperparams(good) == good
    for key, value, text in (("episodes", 0, "price_network.episodes must be an integer >= 1"),
                             ("hidden", [0], "price_network.hidden must be an integer >= 1"),
                             ("hidden", 8, "price_network.hidden must be a list"),
                             ("learning_rate", 2.0, "price_network.learning_rate must be a number > 0 and <= 1")):
        with pytest.raises(ValueError, match=text):
            check_price_network_hyperparams({**good, key: value})
    with pytest.raises(ValueError, match="unknown \\['gamma'\\]"):
        check_price_network_hyperparams({**good, "gamma": 0.9})


def test_train_price_network_then_evaluate_the_run(tmp_path, capsys):
    out = tmp_path / "pn"
    assert main(["train", "--algo", "price_network", "--env", BATTERY, "--config", json.dumps(SHORT), "--seed", "1",
                 "--hyperparams", *TINY, "--out", str(out), "--no-progress"]) == 0
    record = yaml.safe_load((out / "run.yml").read_text())
    assert [s["step"] for s in record["steps"]] == ["imitation", "dagger_round_1"]
    assert [s["labelled_rows"] for s in record["steps"]] == [20, 40]  # 2 labelled slots x 10 users per episode
    assert (out / "price_network.npz").exists() and (out / "labels.npz").exists()
    policy = load_model_policy(out, BATTERY, SHORT)
    assert policy.name == "pn"
    assert main(["evaluate", "--env", BATTERY, "--config", json.dumps(SHORT), "--episodes", "1", "--policies",
                 "exact", "--runs", str(out), "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    assert "| pn |" in (tmp_path / "ev" / "summary.md").read_text()
    with pytest.raises(RunError, match="no batteries"):
        load_model_policy(out, "AIGCEdge-v0")


def test_price_network_refuses_sb3_options_and_envs_without_batteries(tmp_path, capsys):
    for argv, text in ((["--timesteps", "10"], "takes no --timesteps"),
                       (["--env", "AIGCEdge-v0"], "needs an env with batteries")):
        with pytest.raises(SystemExit) as stop:
            main(["train", "--algo", "price_network", "--env", BATTERY, *argv, "--out", str(tmp_path / "x")])
        assert stop.value.code == 2 and text in capsys.readouterr().err


def test_a_failure_while_training_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """A ValueError raised during the work (a diverged network, a bug) is not a bad request: it propagates
    with its traceback instead of one usage line with status 2; the requests above still exit 2."""
    from aigc_edge_env.agents import mixture, price_imitation, training

    def fail(*args, **kwargs):
        raise ValueError("diverged")

    monkeypatch.setattr(price_imitation, "collect_labels", fail)
    with pytest.raises(ValueError, match="diverged"):
        main(["train", "--algo", "price_network", "--env", BATTERY, "--config", json.dumps(SHORT),
              "--hyperparams", *TINY, "--out", str(tmp_path / "pn"), "--no-progress"])
    monkeypatch.setattr(mixture, "_network", fail)
    with pytest.raises(ValueError, match="diverged"):
        main(["train", "--algo", "ppo_mixture", "--hyperparams", "n_users:[3]", "timesteps:64",
              "--out", str(tmp_path / "mix"), "--no-progress"])
    monkeypatch.setattr(training, "_train_locked", fail)
    with pytest.raises(ValueError, match="diverged"):
        main(["train", "--algo", "ppo", "--timesteps", "64", "--out", str(tmp_path / "ppo"), "--no-progress"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # a bad request is still refused in one line
        main(["train", "--algo", "ppo_mixture", "--env", BATTERY, "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and "trains myopic policies" in capsys.readouterr().err


def test_an_interrupted_price_network_run_resumes_to_the_uninterrupted_network(tmp_path, monkeypatch, capsys):
    """Ctrl-C while labelling the DAgger round: the resumed run refits from the imitation step's labels and
    network and ends with the network of an uninterrupted run, bit for bit."""
    import shutil

    from aigc_edge_env.agents import price_imitation

    collect, calls = price_imitation.collect_labels, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) in (1, 3):  # the first run's imitation; the second run's DAgger round
            raise KeyboardInterrupt
        collect(*args, **kwargs)

    def train(name: str) -> int:
        return main(["train", "--algo", "price_network", "--env", BATTERY, "--config", json.dumps(SHORT),
                     "--hyperparams", *TINY, "--out", str(tmp_path / name), "--no-progress"])

    monkeypatch.setattr(price_imitation, "collect_labels", interrupted)
    assert train("early") == 130
    assert "before the run saved what a resume needs" in capsys.readouterr().err
    assert train("run") == 130
    assert "continue with: aigc-edge train --resume" in capsys.readouterr().err
    monkeypatch.setattr(price_imitation, "collect_labels", collect)
    assert [s["step"] for s in yaml.safe_load((tmp_path / "run" / "run.yml").read_text())["steps"]] == ["imitation"]
    shutil.copytree(tmp_path / "run", tmp_path / "damaged")
    labels = tmp_path / "damaged" / "labels.npz"
    labels.write_bytes(labels.read_bytes()[:100])  # cut short
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    assert train("full") == 0
    record = yaml.safe_load((tmp_path / "run" / "run.yml").read_text())
    assert [s["step"] for s in record["steps"]] == ["imitation", "dagger_round_1"] and len(record["resumed"]) == 1
    with np.load(tmp_path / "run" / "price_network.npz") as resumed, \
            np.load(tmp_path / "full" / "price_network.npz") as full:
        assert all(np.array_equal(resumed[key], full[key]) for key in full.files)
    capsys.readouterr()
    for run, text in (("early", "finished no step"), ("full", "a finished run: nothing to resume"),
                      ("damaged", "the labels or the network of step 0 cannot be read (BadZipFile)"),
                      ("missing", "is not a run directory")):
        with pytest.raises(SystemExit) as stop:
            main(["train", "--resume", str(tmp_path / run)])
        assert stop.value.code == 2 and text in capsys.readouterr().err


@pytest.fixture(scope="module")
def exact_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("minari")
    root = tmp_path_factory.mktemp("bc")
    assert main(["record", "--env", BATTERY, "--config", json.dumps(SHORT), "--policies", "exact", "--episodes", "8",
                 "--seed", "0", "--out", str(root), "--no-progress"]) == 0
    return root / "aigc-edge" / "aigcedge-battery" / "exact-v0"


def test_behaviour_cloning_fits_the_teacher(tmp_path, exact_dataset):
    """With --timesteps 0 the run is the cloned policy: its likelihood of the teacher's actions rose, and
    its deterministic actions agree with the teacher's on most of the teacher's slots."""
    from aigc_edge_env.datasets import load_transitions

    out = tmp_path / "bc"
    bc = f"behaviour_cloning:{{dataset: {exact_dataset}, epochs: 80, batch_size: 16, learning_rate: 0.003}}"
    assert main(["train", "--algo", "ppo", "--env", BATTERY, "--config", json.dumps(SHORT), "--timesteps", "0",
                 "--eval-freq", "0", "--checkpoint-freq", "0", "--hyperparams", bc, "--out", str(out),
                 "--no-progress"]) == 0
    losses = np.loadtxt(out / "bc_losses.csv", delimiter=",", skiprows=1)[:, 2]
    assert losses[-1] < 0.5 * losses[0]
    data = load_transitions(exact_dataset)
    policy = load_model_policy(out, BATTERY, SHORT)
    predicted = np.stack([policy._predict(o) for o in data.observations])
    assert np.mean(predicted == data.actions) > 0.8


def test_dagger_labels_the_clones_own_states_with_the_teacher(tmp_path, exact_dataset, capsys):
    """One DAgger round of 2 episodes: the clone (capacity-aware policy) plays, ``exact`` labels each of its
    ``2 H`` states with the action ``exact`` takes there, and the clone is refitted on all the pairs."""
    from aigc_edge_env.agents.behaviour_cloning import dagger_labels
    from aigc_edge_env.agents.environments import make_env
    from aigc_edge_env.policies.registry import make_policy

    out = tmp_path / "dagger"
    bc = (f"behaviour_cloning:{{dataset: {exact_dataset}, epochs: 5, dagger_rounds: 1, dagger_episodes: 2, "
          f"dagger_epochs: 3, teacher: exact}}")
    assert main(["train", "--algo", "ppo", "--env", BATTERY, "--config", json.dumps(SHORT), "--timesteps", "0",
                 "--eval-freq", "0", "--checkpoint-freq", "0", "--hyperparams", bc, "policy:CapacityPerUserPolicy",
                 "normalize:{norm_obs: false, norm_reward: true}", "--out", str(out), "--no-progress"]) == 0
    rounds = np.loadtxt(out / "bc_losses.csv", delimiter=",", skiprows=1)[:, 0]
    assert list(rounds) == [0] * 5 + [1] * 3
    assert f"{2 * SHORT['horizon_slots']} states labelled by exact" in capsys.readouterr().out
    policy = load_model_policy(out, BATTERY, SHORT)
    env = make_env(BATTERY, SHORT)
    observations, labels = dagger_labels(policy.model, policy.normalizer, False, env, make_policy("exact"), [7])
    exact = make_policy("exact")
    observation, _ = env.reset(seed=7)
    for visited, label in zip(observations, labels, strict=True):  # the same states, exact's own actions
        np.testing.assert_array_equal(visited, observation)
        np.testing.assert_array_equal(label, exact.act(env, observation))
        observation, *_ = env.step(policy._predict(observation))


def test_dagger_needs_a_teacher(tmp_path, exact_dataset, capsys):
    bc = f"behaviour_cloning:{{dataset: {exact_dataset}, dagger_rounds: 1}}"
    with pytest.raises(SystemExit):
        main(["train", "--algo", "ppo", "--env", BATTERY, "--config", json.dumps(SHORT), "--timesteps", "0",
              "--hyperparams", bc, "--out", str(tmp_path / "bc")])
    assert "behaviour_cloning.teacher must name a policy" in capsys.readouterr().err


def test_behaviour_cloning_refuses_a_dataset_of_another_env(tmp_path, exact_dataset, capsys):
    bc = f"behaviour_cloning:{{dataset: {exact_dataset}}}"
    with pytest.raises(SystemExit) as stop:
        main(["train", "--algo", "ppo", "--env", BATTERY, "--timesteps", "0", "--hyperparams", bc,
              "--out", str(tmp_path / "bc")])
    assert stop.value.code == 2 and "another config" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["train", "--algo", "ppo", "--env", BATTERY, "--timesteps", "0", "--out", str(tmp_path / "bc2")])
    assert stop.value.code == 2 and "--timesteps must be a positive integer" in capsys.readouterr().err
