"""Ray as the engine (aigc_edge_env.distributed): same results whatever the workers, retries, a
real local cluster joined by address, and the hyperparameter search (agents/tune.py).

One local Ray instance (2 CPUs) is shared by the tests of this module: Ray takes seconds to start.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from aigc_edge_env.distributed import (  # noqa: E402
    ClusterUnreachable,
    TaskFailed,
    as_completed,
    check_address,
    parallel_map,
)

ROOT = Path(__file__).resolve().parents[1]
#: Columns that are wall-clock timings, different in every run.
TIMED = ("solve_ms",)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of 2 CPUs for the module's tests, stopped after them."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # never a cluster `ray start` left running
    yield
    ray.shutdown()


def _csv_without_timings(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith(TIMED)} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_sweep_through_ray_writes_the_csv_of_the_serial_sweep(local_ray, tmp_path: Path) -> None:
    from aigc_edge_env.experiments.sweep import run_sweep

    arguments = ("n_users", [4, 6], ["exact", "greedy"], [1, 2], 2)
    serial = run_sweep(*arguments, tmp_path / "serial", workers=1, progress=False)  # in this process
    parallel = run_sweep(*arguments, tmp_path / "ray", workers=2, progress=False)
    for key in ("csv", "slots_csv"):
        rows = _csv_without_timings(parallel[key])
        assert len(rows) > 0 and rows == _csv_without_timings(serial[key])


def test_a_task_whose_worker_dies_is_run_again(local_ray, tmp_path: Path) -> None:
    def _crash_once(marker: str) -> int:  # (local: pickled by value, as the workers cannot import tests/)
        """Kills its worker process the first time (no marker yet), then returns the worker's pid."""
        if not os.path.exists(marker):
            Path(marker).write_text("crashed once")
            os._exit(1)
        return os.getpid()

    markers = [str(tmp_path / "a"), str(tmp_path / "b")]
    results = dict(as_completed(_crash_once, markers, workers=2, progress=False))
    assert sorted(results) == [0, 1] and all(isinstance(pid, int) for pid in results.values())
    assert all(Path(m).exists() for m in markers)
    with pytest.raises(ray.exceptions.WorkerCrashedError):  # without retries the crash is the task's error
        list(as_completed(_crash_once, [str(tmp_path / "c")], workers=2, progress=False, max_retries=0))


def test_results_come_back_in_task_order(local_ray) -> None:
    tasks = list(range(-5, 5))
    assert parallel_map(lambda x: x * abs(x), tasks, workers=2, progress=False) == [x * abs(x) for x in tasks]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_local_cluster_started_with_ray_start_is_joined_by_address(tmp_path: Path) -> None:
    """``ray start --head`` in a subprocess (blocking, so that stopping it stops what it started),
    ``aigc-edge experiments sweep --address HOST:PORT`` on it, then the head is stopped."""
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command, wherever its script lies
    port, client_port = _free_port(), _free_port()
    # no token authentication (Ray >= 2.59 turns it on for `ray start`): the test is about the address
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    # its own temp folder (short: Ray's socket paths must fit), so that its cluster file never stays behind in
    # Ray's default one, where a user's next plain ray.init() would keep retrying the head stopped here
    temp_dir = Path(tempfile.mkdtemp(prefix="ray"))
    default_cluster_file = Path(ray._common.utils.get_ray_address_file(None))
    head = subprocess.Popen(
        [*ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--ray-client-server-port={client_port}", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in head.stdout:  # wait until the head is up
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail(f"ray start --head exited with {head.wait()}")
        out = tmp_path / "cluster"
        done = subprocess.run(
            [sys.executable, "-m", "aigc_edge_env", "experiments", "sweep", "--param", "n_users", "--values", "4",
             "--episodes", "2", "--slots", "2", "--solvers", "exact", "greedy", "--no-progress", "--out", str(out),
             "--address", f"127.0.0.1:{port}"],  # (ray://127.0.0.1:<client_port> works too: 40 s more)
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        joined = [line for line in done.stderr.splitlines() if "Connecting to existing Ray cluster" in line]
        assert len(joined) == 1 and joined[0].endswith(f":{port}...")  # not a local instance of its own
        rows = _csv_without_timings(out / "sweep_n_users.csv")
        assert [(r["value"], r["solver"], r["n_seeds"]) for r in rows] == [("4", "exact", "2"), ("4", "greedy", "2")]
        assert (temp_dir / "ray_current_cluster").read_text().endswith(f":{port}")
    finally:
        head.send_signal(signal.SIGTERM)  # the blocking `ray start` stops the processes it started
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not default_cluster_file.exists() or not default_cluster_file.read_text().endswith(f":{port}")


def test_a_cluster_address_that_answers_nothing_is_refused_naming_it(tmp_path: Path, monkeypatch) -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(ClusterUnreachable, match=f"no Ray cluster at 127.0.0.1:{port} \\(--address\\): .* "
                                                 "start one with `ray start --head"):
        check_address(f"127.0.0.1:{port}", timeout_s=5)
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{port}")  # a dead RAY_ADDRESS
    with pytest.raises(ClusterUnreachable, match=f"no Ray cluster at ray://127.0.0.1:{port} \\(RAY_ADDRESS\\)"):
        check_address(None, timeout_s=5)
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # --address auto reads <temp>/ray/ray_current_cluster
    with pytest.raises(ClusterUnreachable, match="--address auto: no Ray cluster was started on this machine"):
        check_address("auto", timeout_s=5)
    cluster_file = tmp_path / "ray" / "ray_current_cluster"
    cluster_file.parent.mkdir()
    cluster_file.write_text(f"127.0.0.1:{port}")  # stale: its head stopped
    with pytest.raises(ClusterUnreachable, match=f"no Ray cluster at 127.0.0.1:{port} \\(--address auto, from "
                                                 f"{cluster_file}\\)"):
        check_address("auto", timeout_s=5)
    assert check_address(None) is None and check_address("local") is None


def test_the_cli_refuses_an_unreachable_address_before_any_work(tmp_path: Path, capsys) -> None:
    from aigc_edge_env.cli import main

    port = _free_port()
    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:
        main(["experiments", "sweep", "--param", "n_users", "--values", "4", "--episodes", "1", "--slots", "1",
              "--no-progress", "--out", str(out), "--address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"aigc-edge experiments sweep: error: no Ray cluster at 127.0.0.1:{port} (--address)")
    assert not out.exists()


def test_a_task_failing_on_a_worker_is_reported_in_one_line(local_ray) -> None:
    def _fail(x: int) -> int:
        raise ValueError(f"bad value\n{x}")

    with pytest.raises(TaskFailed) as failed:
        list(as_completed(_fail, [7], workers=2, progress=False, desc="points"))
    assert str(failed.value) == "points 1 of 1 failed on a Ray worker: ValueError: bad value 7"


def test_a_search_saved_before_tune_config_resumes_without_overrides(tmp_path: Path) -> None:
    from aigc_edge_env.agents.tune import check_resumed_settings
    from aigc_edge_env.cli.common import UsageError

    settings = {"algo": "ppo", "env": "AIGCEdge-v0", "config": {}, "trials": 2}
    path = tmp_path / "search_settings.json"
    check_resumed_settings(path, settings)  # a new search
    path.write_text(json.dumps({key: value for key, value in settings.items() if key != "config"}))
    check_resumed_settings(path, settings)  # saved without the key: it ran without overrides
    with pytest.raises(UsageError, match="holds a search with other settings"):
        check_resumed_settings(path, {**settings, "config": {"horizon_slots": 20}})


@pytest.mark.slow
def test_two_trial_search_writes_an_entry_train_py_loads(local_ray, tmp_path: Path, capsys) -> None:
    from aigc_edge_env.agents.hyperparameters import check_values, load_hyperparams
    from aigc_edge_env.agents.tune import load_search_space
    from aigc_edge_env.cli import main

    argv = ["tune", "--algo", "ppo", "--config", '{"horizon_slots": 20}', "--trials", "2", "--timesteps", "256",
            "--eval-freq", "128", "--eval-episodes", "1", "--out", str(tmp_path), "--workers", "2"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "search_settings.json").read_text())["config"] == {"horizon_slots": 20}
    entry = check_values(load_hyperparams("ppo", "AIGCEdge-v0", directory=tmp_path))
    default = load_hyperparams("ppo", "AIGCEdge-v0")
    space = load_search_space("ppo")
    assert set(entry) == set(default) and entry["learning_rate"].startswith("lin_")
    assert all(entry[key] == default[key] for key in set(default) - set(space))
    with open(tmp_path / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 2 and {t["status"] for t in trials} <= {"completed", "stopped by ASHA"}
    assert (tmp_path / "trials.md").read_text().count("\n") == 4
    first = (tmp_path / "ppo.yml").read_text()
    assert """--config '{"horizon_slots": 20}'""" in first.splitlines()[0]
    assert main(argv) == 0  # resumed: the finished search, no trial run again
    assert (tmp_path / "ppo.yml").read_text() == first
    with pytest.raises(SystemExit) as exit_info:  # another config is another search
        main([*argv[:3], "--config", '{"horizon_slots": 30}', *argv[5:]])
    assert exit_info.value.code == 2 and "other settings" in capsys.readouterr().err


def test_search_refuses_timesteps_that_are_not_a_multiple_of_the_evaluation_period(tmp_path: Path, capsys) -> None:
    from aigc_edge_env.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--algo", "ppo", "--timesteps", "25000", "--eval-freq", "10000", "--out", str(tmp_path / "s")])
    assert exit_info.value.code == 2
    assert "--timesteps (25000) must be a multiple of --eval-freq (10000)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before any work
