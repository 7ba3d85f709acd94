"""One network for every N: the mixture trainers (``train --algo ppo_mixture`` and ``imitation_mixture``) and the
scale study."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import pytest
import yaml

torch = pytest.importorskip("torch")

from aigc_edge_env.agents.hyperparameters import HyperparamError  # noqa: E402
from aigc_edge_env.agents.mixture import check_mixture_hyperparams  # noqa: E402
from aigc_edge_env.agents.per_user_net import PerUserActorCritic  # noqa: E402
from aigc_edge_env.cli import main  # noqa: E402
from aigc_edge_env.experiments.scale import parse_policies  # noqa: E402
from aigc_edge_env.policies.registry import make_policy  # noqa: E402

LARGE = "AIGCEdge-Large-v0"
SHORT = {"horizon_slots": 8}
TINY = ["n_users:[2,4]", "timesteps:1280", "n_envs:4", "n_steps:8", "hidden_dim:16", "n_layers:1"]
GOOD = {"n_users": [5, 10], "timesteps": 1000, "n_envs": 4, "n_steps": 4, "n_epochs": 2, "n_minibatches": 2,
        "hidden_dim": 8, "n_layers": 1, "learning_rate": 1e-3, "clip_range": 0.2, "vf_coef": 0.5,
        "max_grad_norm": 0.5}


def _train(tmp_path, name: str, seed: int = 0, extra: tuple[str, ...] = (), algo: str = "ppo_mixture") -> int:
    return main(["train", "--algo", algo, "--env", LARGE, "--config", json.dumps(SHORT), "--seed", str(seed),
                 "--hyperparams", *TINY, *extra, "--out", str(tmp_path / name), "--no-progress"])


def _interrupt_update(monkeypatch, call: int):
    """Ctrl-C at the ``call``-th network update of the mixture trainer; returns the real update."""
    from aigc_edge_env.agents import mixture

    update, calls = mixture._update, []

    def interrupted(*args, **kwargs) -> None:
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        update(*args, **kwargs)

    monkeypatch.setattr(mixture, "_update", interrupted)
    return update


def test_the_encoder_reads_the_number_of_users_from_the_observation() -> None:
    net = PerUserActorCritic(10, 8, hidden_dim=8, n_layers=2)
    for n in (1, 3, 50):
        obs = torch.rand(4, 9 * n + 3)
        logits, value = net(obs)
        assert logits.shape == (4, n, 16) and value.shape == (4,)


def test_bad_hyperparameters_are_named() -> None:
    assert check_mixture_hyperparams(GOOD)["n_users"] == [5, 10]
    for change, text in (({"n_users": []}, "must be a list of user counts"),
                         ({"n_users": [5, 5]}, "lists a count twice"),
                         ({"n_users": [0]}, "n_users"),
                         ({"learning_rate": 0}, "learning_rate"),
                         ({"n_envs": 1, "n_steps": 1}, "cannot make n_minibatches = 2")):
        with pytest.raises(HyperparamError, match=text):
            check_mixture_hyperparams({**GOOD, **change})
    with pytest.raises(HyperparamError, match=r"unknown \['gamma'\]"):
        check_mixture_hyperparams({**GOOD, "gamma": 0.9})


def test_a_run_is_recorded_reproducible_and_plays_any_number_of_users(tmp_path) -> None:
    assert _train(tmp_path, "a") == 0
    assert _train(tmp_path, "b") == 0
    record = yaml.safe_load((tmp_path / "a" / "run.yml").read_text())
    assert record["state"] == "finished" and record["training_slots"] == 1280
    assert [sorted(p["mean_slot_reward"]) for p in record["progress"]] == [[2, 4]] * len(record["progress"])
    saved = [torch.load(tmp_path / name / "policy.pt", weights_only=True) for name in ("a", "b")]
    assert saved[0]["trained_n_users"] == [2, 4]
    for key, weights in saved[0]["state_dict"].items():  # the same seed, the same network
        assert torch.equal(weights, saved[1]["state_dict"][key])
    policy = make_policy(f"torch:{tmp_path / 'a' / 'policy.pt'}")
    env = gym.make("AIGCEdge-v0", config={**SHORT, "n_users": 7})  # a count it never saw
    observation, _ = env.reset(seed=0)
    assert env.action_space.contains(policy.act(env, observation))
    assert main(["evaluate", "--env", LARGE, "--config", json.dumps(SHORT), "--episodes", "1", "--policies", "exact",
                 "--runs", str(tmp_path / "a"), "--out", str(tmp_path / "ev"), "--no-plots", "--no-progress"]) == 0
    assert "| a |" in (tmp_path / "ev" / "summary.md").read_text()
    from aigc_edge_env.agents.policies import load_model_policy

    assert load_model_policy(tmp_path / "a", LARGE).decode == "greedy"  # --runs plays a PPO run greedily


def test_training_raises_the_slot_reward(tmp_path) -> None:
    """From the first tenth of the run to the last, the mean slot reward rises at both counts (seeded)."""
    assert _train(tmp_path, "r", extra=("timesteps:10240",)) == 0
    progress = yaml.safe_load((tmp_path / "r" / "run.yml").read_text())["progress"]
    for n in (2, 4):
        assert progress[-1]["mean_slot_reward"][n] > progress[0]["mean_slot_reward"][n]


def test_an_interrupted_run_resumes_from_its_last_tenth(tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C in the 7th of 20 iterations (saves every 2nd): the run resumes from the state after the 6th and
    ends with the whole budget; its optimiser, sampling generator and reward scales carry on as in an
    uninterrupted run (the episodes are fresh, so the network is not that run's), and two resumptions of
    the same state train the same network."""
    import shutil

    from aigc_edge_env.agents import mixture

    update = _interrupt_update(monkeypatch, 7)
    assert _train(tmp_path, "run") == 130
    assert "continue with: aigc-edge train --resume" in capsys.readouterr().err
    monkeypatch.setattr(mixture, "_update", update)
    record = yaml.safe_load((tmp_path / "run" / "run.yml").read_text())
    assert record["state"] == "interrupted" and record["training_slots"] == 6 * 64
    assert torch.load(tmp_path / "run" / mixture.STATE_FILE, weights_only=True)["iteration"] == 6
    shutil.copytree(tmp_path / "run", tmp_path / "again")
    for name in ("run", "again"):
        assert main(["train", "--resume", str(tmp_path / name), "--no-progress"]) == 0
    assert _train(tmp_path, "full") == 0
    record = yaml.safe_load((tmp_path / "run" / "run.yml").read_text())
    assert record["state"] == "finished" and record["training_slots"] == 1280
    assert [r["from_slots"] for r in record["resumed"]] == [6 * 64]
    saved = [torch.load(tmp_path / name / "policy.pt", weights_only=True)["state_dict"] for name in ("run", "again")]
    assert all(torch.equal(weights, saved[1][key]) for key, weights in saved[0].items())
    resumed, full = (torch.load(tmp_path / name / mixture.STATE_FILE, weights_only=True) for name in ("run", "full"))
    assert torch.equal(resumed["generator"], full["generator"])
    assert resumed["optimizer"]["state"][0]["step"] == full["optimizer"]["state"][0]["step"]
    assert [n for *_, n in resumed["reward_scales"]] == [n for *_, n in full["reward_scales"]]
    assert not torch.equal(resumed["net"]["actor.linear.weight"], full["net"]["actor.linear.weight"])


def test_what_cannot_resume_is_refused_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    from aigc_edge_env.agents import mixture
    from aigc_edge_env.agents.runs import run_lock

    _interrupt_update(monkeypatch, 1)  # before the first tenth: no state to resume from
    assert _train(tmp_path, "early") == 130
    assert "before the run saved what a resume needs" in capsys.readouterr().err
    monkeypatch.undo()
    assert _train(tmp_path, "done") == 0
    (tmp_path / "broken").mkdir()
    shutil_record = (tmp_path / "done" / "run.yml").read_text().replace("state: finished", "state: running")
    (tmp_path / "broken" / "run.yml").write_text(shutil_record)
    (tmp_path / "broken" / mixture.STATE_FILE).write_bytes(b"not a state")
    cases = [(["--resume", str(tmp_path / "early")], "stopped before its first tenth; train again into a new --out"),
             (["--resume", str(tmp_path / "done")], "a finished run: nothing to resume"),
             (["--resume", str(tmp_path / "broken")], "is not a complete training state of this run"),
             (["--resume", str(tmp_path / "done"), "--hyperparams", "n_epochs:1"], "takes no --hyperparams"),
             (["--resume", str(tmp_path / "done"), "--algo", "ppo"], "takes no --algo ppo")]
    capsys.readouterr()
    for argv, text in cases:
        with pytest.raises(SystemExit) as stop:
            main(["train", *argv])
        assert stop.value.code == 2 and text in capsys.readouterr().err
    # killed after the last tenth's state was written, before its record: the resume writes the end again
    record = yaml.safe_load((tmp_path / "done" / "run.yml").read_text())
    (tmp_path / "done" / "run.yml").write_text(yaml.safe_dump({**record, "state": "running"}, sort_keys=False))
    with run_lock(tmp_path / "done"), pytest.raises(SystemExit) as stop:  # another process holds the run
        main(["train", "--resume", str(tmp_path / "done")])
    assert stop.value.code == 2 and "in use by another" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "done"), "--no-progress"]) == 0
    assert yaml.safe_load((tmp_path / "done" / "run.yml").read_text())["state"] == "finished"


def test_bad_requests_are_refused_before_any_work(tmp_path, capsys) -> None:
    for argv, text in ((["--env", "AIGCEdge-Battery-v0"], "has batteries"),
                       (["--timesteps", "10"], "takes no --timesteps"),
                       (["--hyperparams", "n_users:[3,3]"], "lists a count twice")):
        with pytest.raises(SystemExit) as stop:
            main(["train", "--algo", "ppo_mixture", *argv, "--out", str(tmp_path / "x")])
        assert stop.value.code == 2 and text in capsys.readouterr().err
        assert not (tmp_path / "x").exists()


def _agreement_with_exact(net: PerUserActorCritic, n_users: int) -> float:
    """The share of requesting users whose greedy (offload bit, level) pair is ``exact``'s, over 40 slots."""
    from aigc_edge_env.agents.per_user_net import action_pairs
    from aigc_edge_env.baselines import solve_exact

    env = gym.make("AIGCEdge-v0", config={"n_users": n_users}).unwrapped
    observation, _ = env.reset(seed=10_000)
    agree = requests = 0
    for _ in range(40):
        problem = env.current_problem()
        optimum = torch.as_tensor(env.decision_to_action(solve_exact(problem).decision))
        with torch.no_grad():
            greedy = net(torch.as_tensor(observation))[0].argmax(-1)
        agree += int(((greedy == action_pairs(optimum, 8)) & torch.tensor(problem.has_request)).sum())
        requests += int(problem.has_request.sum())
        observation, *_ = env.step(env.action_space.sample())
    return agree / requests


def test_imitation_learns_exacts_decisions_reproducibly(tmp_path) -> None:
    """``imitation_mixture``: a seeded run is reproducible, its record says its kind, and its network agrees with
    ``exact`` on held-out slots far more often than its initial weights do, at a count it trained on and at
    one it never saw."""
    from aigc_edge_env.agents.mixture import _network
    from aigc_edge_env.policies.torch_module import load_torch_policy

    extra = ("timesteps:2560", "n_epochs:4")
    for name in ("a", "b"):
        assert _train(tmp_path, name, extra=extra, algo="imitation_mixture") == 0
    record = yaml.safe_load((tmp_path / "a" / "run.yml").read_text())
    assert record["algo"] == "imitation_mixture" and record["state"] == "finished"
    assert "clip_range" not in record["hyperparams"]
    saved = [torch.load(tmp_path / name / "policy.pt", weights_only=True)["state_dict"] for name in ("a", "b")]
    assert all(torch.equal(weights, saved[1][key]) for key, weights in saved[0].items())
    from aigc_edge_env.agents.policies import load_model_policy

    played = load_model_policy(tmp_path / "a", LARGE)
    assert (played.name, played.decode) == ("a", "packed")  # --runs plays an imitation run by filling the edge
    trained = load_torch_policy(tmp_path / "a" / "policy.pt").net
    initial = _network(2, 8, record["hyperparams"], 0)
    for n_users in (4, 6):
        assert _agreement_with_exact(trained, n_users) > _agreement_with_exact(initial, n_users) + 0.2


def test_an_interrupted_imitation_run_resumes_and_runs_are_not_mixed_up(tmp_path, monkeypatch, capsys) -> None:
    from aigc_edge_env.agents import mixture

    fit, calls = mixture._fit, []

    def interrupted(*args, **kwargs) -> None:
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        fit(*args, **kwargs)

    monkeypatch.setattr(mixture, "_fit", interrupted)
    assert _train(tmp_path, "run", algo="imitation_mixture") == 130
    assert "continue with: aigc-edge train --resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    assert _train(tmp_path, "full", algo="imitation_mixture") == 0
    record = yaml.safe_load((tmp_path / "run" / "run.yml").read_text())
    assert record["state"] == "finished" and [r["from_slots"] for r in record["resumed"]] == [6 * 64]
    resumed, full = (torch.load(tmp_path / name / mixture.STATE_FILE, weights_only=True) for name in ("run", "full"))
    assert torch.equal(resumed["generator"], full["generator"])
    assert resumed["optimizer"]["state"][0]["step"] == full["optimizer"]["state"][0]["step"]
    with pytest.raises(SystemExit) as stop:
        main(["train", "--resume", str(tmp_path / "run"), "--algo", "ppo_mixture"])
    assert stop.value.code == 2 and "takes no --algo ppo_mixture" in capsys.readouterr().err
    with pytest.raises(HyperparamError, match=r"unknown \['clip_range', 'vf_coef'\]"):
        check_mixture_hyperparams(GOOD, "imitation_mixture")
    with pytest.raises(ValueError, match=r"algo must be one of \['ppo_mixture', 'imitation_mixture'\], got 'ppo'"):
        check_mixture_hyperparams(GOOD, "ppo")


def test_labels_are_words_before_an_equals_sign() -> None:
    assert parse_policies(["a=greedy", "mpc(every=5)", "torch:x{n}.pt"]) == {
        "random": "random", "exact": "exact", "a": "greedy", "mpc(every=5)": "mpc(every=5)",
        "torch:x{n}.pt": "torch:x{n}.pt"}
    with pytest.raises(ValueError, match="label 'a' given twice"):
        parse_policies(["a=greedy", "a=exact"])


def test_the_scale_study_writes_both_tables_and_the_plot(tmp_path) -> None:
    for n in (2, 3):
        assert _train(tmp_path, f"n{n}", extra=(f"n_users:[{n}]", "timesteps:256")) == 0
    out = tmp_path / "scale"
    argv = ["experiments", "scale", "--n-users", "2", "3", "--episodes", "2", "--config", json.dumps(SHORT),
            "--policies", "greedy", f"per_n=torch:{tmp_path}/n{{n}}/policy.pt", f"n2=torch:{tmp_path}/n2/policy.pt",
            "--workers", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    with (out / "scale.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(int(r["n_users"]), r["policy"]) for r in rows} == {
        (n, p) for n in (2, 3) for p in ("random", "exact", "greedy", "per_n", "n2")}
    exact = [r for r in rows if r["policy"] == "exact"]
    assert all(float(r["score"]) == 1.0 and float(r["decision_env_steps"]) > 0 for r in exact)
    per_n = {int(r["n_users"]): float(r["score"]) for r in rows if r["policy"] == "per_n"}
    n2 = {int(r["n_users"]): float(r["score"]) for r in rows if r["policy"] == "n2"}
    assert per_n[2] == n2[2]  # at N = 2 both are the network trained at 2
    text = (out / "scale.md").read_text()
    assert "| policy | N = 2 | N = 3 |" in text and f"| n2 | {n2[2]:.3f} | {n2[3]:.3f} |" in text
    assert (out / "scale.png").stat().st_size > 0
    with pytest.raises(SystemExit) as stop:  # a count without its network is refused before any work
        main([*argv[:3], "2", "5", *argv[5:]])
    assert stop.value.code == 2


def test_ctrl_c_saves_the_network_reached(tmp_path, monkeypatch, capsys) -> None:
    _interrupt_update(monkeypatch, 2)
    assert _train(tmp_path, "i") == 130
    record = yaml.safe_load((tmp_path / "i" / "run.yml").read_text())
    # one iteration done: 4 envs x 8 steps x 2 counts
    assert record["state"] == "interrupted" and record["training_slots"] == 64
    assert make_policy(f"torch:{tmp_path / 'i' / 'policy.pt'}") is not None
    assert "interrupted" in capsys.readouterr().err
