"""train.py's interruption (SIGINT, SIGTERM, kill -9), exact resume, best-model tracking across resumes, the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aigc_edge_env.agents import training
from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.callbacks import CheckpointSaver, best_reward
from aigc_edge_env.agents.hyperparameters import parse_overrides
from aigc_edge_env.agents.runs import (
    RunError,
    checkpoint_steps,
    complete_snapshot,
    read_record,
    read_scalars,
    resume_point,
    run_lock,
    write_record,
)
from aigc_edge_env.agents.training import TrainingError, TrainingInterrupted, TrainRequest, train
from aigc_edge_env.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"horizon_slots": 6}
TINY = ["n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:{hidden_dim: 16, n_layers: 1}"]
TINY_ARGS = ["--algo", "ppo", "--n-envs", "2", "--config", "horizon_slots: 6", "--checkpoint-freq", "256",
             "--eval-freq", "0", "--no-progress", "--hyperparams", *TINY]


def _request(out: Path, timesteps: int | None, resume: bool = False, **kwargs) -> TrainRequest:
    if resume:
        return TrainRequest(out=out, timesteps=timesteps, resume=True, progress_bar=False, **kwargs)
    kwargs = {"eval_every": 0, "checkpoint_every": 0, "hyperparams": parse_overrides(TINY), **kwargs}
    return TrainRequest(out=out, algo="ppo", env_id="AIGCEdge-v0", timesteps=timesteps, n_envs=2, env_config=SMALL,
                        progress_bar=False, **kwargs)


def _parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    model = ALGORITHMS["ppo"].cls.load(run_dir / "model.zip", device="cpu")
    return {**model.policy.state_dict(), **{f"optimizer.{k}": v for k, v in _flat_optimizer(model).items()}}


def _flat_optimizer(model) -> dict[str, torch.Tensor]:
    state = model.policy.optimizer.state_dict()["state"]
    return {f"{i}.{name}": value for i, entry in state.items() for name, value in entry.items()}


def _assert_same_parameters(a: Path, b: Path) -> None:
    pa, pb = _parameters(a), _parameters(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name


@pytest.mark.slow
def test_resume_in_two_sessions_equals_one_straight_run(tmp_path) -> None:
    constant = {"hyperparams": parse_overrides([*TINY, "learning_rate:1e-3"])}  # lin_: each session anneals to 0
    train(_request(tmp_path / "straight", 1000, **constant))
    train(_request(tmp_path / "split", 500, **constant))
    train(_request(tmp_path / "split", 500, resume=True))
    _assert_same_parameters(tmp_path / "straight", tmp_path / "split")
    assert read_record(tmp_path / "split")["sessions"][1]["total_timesteps"] == 1024  # 8 rollouts of 2 x 64


@pytest.mark.slow
def test_interrupted_run_resumed_to_its_plan_equals_the_uninterrupted_run(tmp_path, monkeypatch) -> None:
    train(_request(tmp_path / "straight", 1000))

    def interrupt(self) -> None:  # the first checkpoint (step 320, mid-rollout) sends the process SIGINT
        os.kill(os.getpid(), signal.SIGINT)

    with monkeypatch.context() as patch:
        patch.setattr(CheckpointSaver, "_on_due", interrupt)
        with pytest.raises(TrainingInterrupted) as stopped:
            train(_request(tmp_path / "run", 1000, checkpoint_every=320))
    assert stopped.value.signal_name == "SIGINT" and stopped.value.timesteps == 256  # back to the rollout start
    session = read_record(tmp_path / "run")["sessions"][0]
    assert session["interrupted"] == "SIGINT" and session["total_timesteps"] == 256
    assert session["planned_total_timesteps"] == 1000
    train(_request(tmp_path / "run", None, resume=True))  # no --timesteps: what the session had left
    assert read_record(tmp_path / "run")["sessions"][1]["timesteps"] == 1000 - 256
    _assert_same_parameters(tmp_path / "straight", tmp_path / "run")


def _start_training(out: Path, timesteps: int = 1_000_000) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aigc_edge_env", "train", "--timesteps", str(timesteps), "--out",
                             str(out), *TINY_ARGS], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until ``path`` appears (a test that never sees it is stopped by pytest-timeout, pyproject.toml)."""
    while not path.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_train_py_saves_the_run_and_resume_continues(signum: int, tmp_path) -> None:
    out = tmp_path / "run"
    process = _start_training(out)
    _wait_for(out / "checkpoints" / "model_256_steps.zip", process)  # training is under way
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"aigc-edge train: interrupted by {name} at step ")
    assert f"--resume {out}" in lines[0]
    session = read_record(out)["sessions"][0]
    # back to the start of the rollout the signal fell in: the one ending at the checkpoint (128) or a later one
    assert session["interrupted"] == name and session["total_timesteps"] >= 128
    assert session["total_timesteps"] % 128 == 0
    assert f"at step {session['total_timesteps']};" in lines[0]
    for name in ("model.zip", "model.vecnormalize.pkl", "model.resume.pkl"):
        assert (out / name).exists(), name
    assert ALGORITHMS["ppo"].cls.load(out / "model.zip").num_timesteps == session["total_timesteps"]

    train(_request(out, 128, resume=True))
    sessions = read_record(out)["sessions"]
    assert len(sessions) == 2 and "interrupted" not in sessions[1]
    assert sessions[1]["total_timesteps"] >= session["total_timesteps"] + 128


@pytest.mark.slow
def test_two_train_py_on_one_out_one_is_refused(tmp_path) -> None:
    out = tmp_path / "run"
    first, second = _start_training(out, 2000), _start_training(out, 2000)
    results = sorted((p.wait(timeout=300), p.communicate()[1]) for p in (first, second))
    assert [code for code, _ in results] == [0, 2], results
    refusal = results[1][1].strip()
    assert refusal.count("\n") == 0 and refusal.startswith("aigc-edge train: error: ")
    assert "in use by another train.py" in refusal or "already holds a run" in refusal
    sessions = read_record(out)["sessions"]
    assert len(sessions) == 1 and sessions[0]["total_timesteps"] >= 2000


def test_a_locked_run_directory_is_refused_at_once(tmp_path) -> None:
    out = tmp_path / "run"
    with run_lock(out):
        with pytest.raises(TrainingError, match=f"in use by another train.py \\(pid {os.getpid()}\\)"):
            train(_request(out, 128))
    assert not (out / "run.yml").exists()
    train(_request(out, 128))  # the lock goes with its holder
    assert read_record(out)["sessions"][0]["total_timesteps"] >= 128


def test_resume_never_replaces_the_best_model_by_a_worse_one(tmp_path) -> None:
    out = tmp_path / "run"
    train(_request(out, 256, eval_every=128, eval_episodes=1))
    best = yaml.safe_load((out / "best_model.yml").read_text())
    assert np.isfinite(best["mean_reward"]) and best["timesteps"] in (128, 256)
    (out / "best_model.yml").write_text(yaml.safe_dump({"mean_reward": 1e9, "timesteps": best["timesteps"]}))
    saved = (out / "best_model.zip").read_bytes()
    train(_request(out, 256, resume=True, eval_every=128, eval_episodes=1))
    assert (out / "best_model.zip").read_bytes() == saved
    assert yaml.safe_load((out / "best_model.yml").read_text())["mean_reward"] == 1e9


def test_interrupted_dqn_keeps_its_replay_buffer_and_resumes(tmp_path, monkeypatch) -> None:
    def interrupt(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    hyperparams = parse_overrides(["learning_starts:64", "buffer_size:2000", "policy_kwargs:{net_arch: [32, 32]}"])
    with monkeypatch.context() as patch:
        patch.setattr(CheckpointSaver, "_on_due", interrupt)
        with pytest.raises(TrainingInterrupted) as stopped:
            train(TrainRequest(out=tmp_path / "run", algo="dqn", env_id="AIGCEdge-v0", timesteps=1000, n_envs=2,
                               env_config=SMALL, hyperparams=hyperparams, eval_every=0, checkpoint_every=200,
                               progress_bar=False))
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.timesteps == 200  # off-policy: where it was
    model = ALGORITHMS["dqn"].cls.load(tmp_path / "run" / "model.zip")
    model.load_replay_buffer(tmp_path / "run" / "model.replay_buffer.pkl")
    assert model.replay_buffer.size() == 198 // 2  # every step's transitions but the stopping one's
    train(_request(tmp_path / "run", None, resume=True))
    session = read_record(tmp_path / "run")["sessions"][1]
    assert session["timesteps"] == 800 and session["total_timesteps"] >= 1000


def _complete_checkpoints(out: Path) -> dict[int, Path]:
    complete = {}
    for path in (out / "checkpoints").glob("model_*_steps.zip"):
        try:
            complete_snapshot(path)
        except RunError:
            continue
        complete[checkpoint_steps(path)] = path
    return complete


def _forget_the_end(out: Path) -> None:
    """What a kill -9 before the end of training leaves: no final model, a session that never saved its end."""
    for name in ("model.zip", "model.vecnormalize.pkl", "model.resume.pkl"):
        (out / name).unlink()
    record = read_record(out)
    for key in ("total_timesteps", "wall_time_s", "steps_per_s", "cpu_time_s", "steps_per_cpu_s", "peak_rss_mib"):
        del record["sessions"][-1][key]
    write_record(out, record)


@pytest.mark.slow
def test_kill_9_after_a_checkpoint_resume_continues_from_the_newest_complete_one(tmp_path) -> None:
    out = tmp_path / "run"
    process = _start_training(out)
    _wait_for(out / "checkpoints" / "model_512_steps.resume.pkl", process)
    process.kill()  # SIGKILL: no handler runs, files may be cut anywhere
    process.wait(timeout=60)
    assert not (out / "model.zip").exists()
    newest = max(_complete_checkpoints(out))
    assert newest >= 512
    refused = subprocess.run([sys.executable, "-m", "aigc_edge_env", "train", "--out", str(out), *TINY_ARGS],
                             cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "pass --resume to continue it" in refused.stderr  # never overwritten
    done = subprocess.run([sys.executable, "-m", "aigc_edge_env", "train", "--resume", str(out), "--timesteps", "128",
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    state = complete_snapshot(out / "checkpoints" / f"model_{newest}_steps.zip")
    start = int(state["model"]["num_timesteps"])  # the rollout start before the checkpoint (on-policy)
    assert f"resuming {out} from checkpoints/model_{newest}_steps.zip at step {start}" in done.stderr
    sessions = read_record(out)["sessions"]
    assert sessions[0]["ended"] == "killed before saving its end"
    assert sessions[1]["resumed_from"] == {"file": f"checkpoints/model_{newest}_steps.zip", "timesteps": start}
    assert sessions[1]["total_timesteps"] == start + 128
    assert ALGORITHMS["ppo"].cls.load(out / "model.zip").num_timesteps == start + 128


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumed_to_its_plan_equals_the_uninterrupted_run(tmp_path) -> None:
    train(_request(tmp_path / "straight", 1000))
    train(_request(tmp_path / "run", 1000, checkpoint_every=320))
    _forget_the_end(tmp_path / "run")  # as if killed after the checkpoint of step 960
    train(_request(tmp_path / "run", None, resume=True))  # no --timesteps: what the killed session had left
    sessions = read_record(tmp_path / "run")["sessions"]
    assert sessions[1]["resumed_from"] == {"file": "checkpoints/model_960_steps.zip", "timesteps": 896}
    assert sessions[1]["timesteps"] == 1000 - 896
    _assert_same_parameters(tmp_path / "straight", tmp_path / "run")


def test_resume_skips_a_checkpoint_cut_short_and_names_it(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    train(_request(out, 512, checkpoint_every=128))
    _forget_the_end(out)
    checkpoints = out / "checkpoints"
    assert sorted(_complete_checkpoints(out)) == [128, 256, 384, 512]
    # killed between the model file and its training state (the commit): the state is the older one's
    (checkpoints / "model_512_steps.resume.pkl").write_bytes((checkpoints / "model_384_steps.resume.pkl").read_bytes())
    point = resume_point(out)  # on-policy: the start of the rollout the checkpoint fell in
    assert point.path == checkpoints / "model_384_steps.zip" and point.timesteps == 256
    assert len(point.skipped) == 1 and "model_512_steps.resume.pkl belongs to another model_512_steps.zip" in (
        point.skipped[0])
    train(_request(out, 128, resume=True))
    err = capsys.readouterr().err
    assert "skipped: " in err and f"resuming {out} from checkpoints/model_384_steps.zip at step 256" in err
    assert read_record(out)["sessions"][-1]["total_timesteps"] == 384


def test_nothing_complete_to_resume_is_refused_naming_the_files(tmp_path) -> None:
    out = tmp_path / "run"
    train(_request(out, 128))
    (out / "model.resume.pkl").write_bytes(b"\x80\x04 truncated")
    with pytest.raises(TrainingError, match=f"nothing complete to resume from in {out}: cannot load training state "
                                            f"{out / 'model.resume.pkl'}"):
        train(_request(out, 128, resume=True))


def test_a_second_signal_during_the_save_waits_for_it_and_the_exit_status_stays_130(tmp_path, monkeypatch,
                                                                                      capsys) -> None:
    out = tmp_path / "run"
    save = training.save_snapshot

    def first(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    def second_during_the_save(model, path, state=None) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # handled here, before the files are written
        os.kill(os.getpid(), signal.SIGTERM)
        save(model, path, state)

    monkeypatch.setattr(CheckpointSaver, "_on_due", first)
    monkeypatch.setattr(training, "save_snapshot", second_during_the_save)
    status = cli_main(["train", "--out", str(out), "--timesteps", "1000", *TINY_ARGS])
    assert status == 130
    err = capsys.readouterr().err
    assert "SIGINT again: the run is being saved after SIGINT" in err
    assert "SIGTERM again: the run is being saved after SIGINT" in err
    assert resume_point(out).path == out / "model.zip"
    assert read_record(out)["sessions"][0]["interrupted"] == "SIGINT"


def _run_with_a_best_model(out: Path) -> float:
    train(_request(out, 384, eval_every=128, eval_episodes=1))
    return yaml.safe_load((out / "best_model.yml").read_text())["mean_reward"]


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_lost_best_model_record_is_recovered_from_the_evaluation_log(damage: str, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    best = _run_with_a_best_model(out)
    steps, rewards = read_scalars(out / "tb", "eval/reward")
    assert len(rewards) == 3 and max(rewards) == pytest.approx(best, rel=1e-6)  # float32 in the log
    if damage == "delete":
        (out / "best_model.yml").unlink()
    else:
        (out / "best_model.yml").write_text("mean_reward: [unclosed")
    assert best_reward(out / "best_model.zip") == pytest.approx(best, rel=1e-6)
    assert "best mean reward" in capsys.readouterr().err
    recovered = yaml.safe_load((out / "best_model.yml").read_text())
    assert recovered["mean_reward"] == pytest.approx(best, rel=1e-6)
    assert recovered["timesteps"] == int(steps[int(np.argmax(rewards))])


def test_a_best_model_of_unknown_score_is_refused_not_replaced(tmp_path) -> None:
    out = tmp_path / "run"
    _run_with_a_best_model(out)
    (out / "best_model.yml").unlink()
    for events in (out / "tb").rglob("events.out.tfevents.*"):
        events.unlink()
    saved = (out / "best_model.zip").read_bytes()
    with pytest.raises(TrainingError, match=f"{out / 'best_model.yml'} is missing and the evaluation log .* holds "
                                            "no eval/reward"):
        train(_request(out, 256, resume=True, eval_every=128, eval_episodes=1))
    assert (out / "best_model.zip").read_bytes() == saved


def test_dqn_killed_after_a_checkpoint_resumes_with_its_replay_buffer(tmp_path) -> None:
    out = tmp_path / "run"
    hyperparams = parse_overrides(["learning_starts:64", "buffer_size:2000", "policy_kwargs:{net_arch: [32, 32]}"])
    train(TrainRequest(out=out, algo="dqn", env_id="AIGCEdge-v0", timesteps=600, n_envs=2, env_config=SMALL,
                       hyperparams=hyperparams, eval_every=0, checkpoint_every=200, progress_bar=False))
    _forget_the_end(out)
    (out / "model.replay_buffer.pkl").unlink()
    buffers = sorted(p.name for p in (out / "checkpoints").glob("*.replay_buffer.pkl"))
    assert buffers == ["model_600_steps.replay_buffer.pkl"]  # only the newest checkpoint keeps one
    point = resume_point(out)
    assert point.path.name == "model_600_steps.zip" and point.timesteps == 600  # off-policy: where it was
    model = ALGORITHMS["dqn"].cls.load(point.path)
    model.load_replay_buffer(out / "checkpoints" / buffers[0])
    assert model.replay_buffer.size() == 598 // 2  # every step's transitions but the checkpoint step's
    train(_request(out, None, resume=True))
    session = read_record(out)["sessions"][1]
    assert session["resumed_from"]["timesteps"] == 600 and session["total_timesteps"] >= 600


def test_a_run_saved_before_snapshots_held_a_hash_still_resumes(tmp_path) -> None:
    import pickle

    out = tmp_path / "run"
    train(_request(out, 128))
    state = pickle.loads((out / "model.resume.pkl").read_bytes())
    del state["model_sha256"]  # as 0.5.0 saved it
    (out / "model.resume.pkl").write_bytes(pickle.dumps(state))
    assert resume_point(out).path == out / "model.zip"
    train(_request(out, 128, resume=True))
    assert read_record(out)["sessions"][-1]["total_timesteps"] == 256
