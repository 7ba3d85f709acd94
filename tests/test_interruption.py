"""train.py's interruption (SIGINT, SIGTERM), exact resume, best-model tracking across resumes, the lock."""

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

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.callbacks import CheckpointSaver
from aigc_edge_env.agents.hyperparameters import parse_overrides
from aigc_edge_env.agents.runs import read_record, run_lock
from aigc_edge_env.agents.training import TrainingError, TrainingInterrupted, TrainRequest, train

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
