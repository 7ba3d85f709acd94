"""Every subcommand's options swept with bad values: each exits with status 2 and one line naming the
argument (or the input at fault), before any work (nothing written to ``--out``), never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aigc_edge_env.cli import main

#: (argv, what the one line must name); FILE is an existing file, NOWHERE a missing path, PORT a closed port.
CASES: list[tuple[list[str], str]] = [
    (["train", "--algo", "ppo", "--timesteps", "0"], "--timesteps"),
    (["train", "--algo", "ppo", "--seed", "-1"], "--seed"),
    (["train", "--algo", "ppo", "--n-envs", "0"], "--n-envs"),
    (["train", "--algo", "ppo", "--eval-freq", "-5"], "--eval-freq"),
    (["train", "--algo", "ppo", "--eval-freq", "nan"], "--eval-freq"),
    (["train", "--algo", "ppo", "--eval-episodes", "0"], "--eval-episodes"),
    (["train", "--algo", "ppo", "--eval-freq", "0", "--eval-episodes", "-3"], "--eval-episodes"),
    (["evaluate", "--policies", "exact+price1e999"], "finite number >= 0"),
    (["train", "--algo", "ppo", "--checkpoint-freq", "-1"], "--checkpoint-freq"),
    (["train", "--algo", "ppo", "--device", "bogus"], "--device"),
    (["train", "--algo", "ppo", "--threads", "0"], "--threads"),
    (["train", "--algo", "ppo", "--config", "{bad"], "--config"),
    (["train", "--algo", "ppo", "--config", '{"bogus_key": 1}'], "bogus_key"),
    (["train", "--algo", "ppo", "--config", '{"n_users": 0}'], "n_users"),
    (["train", "--algo", "ppo", "--hyperparams", "n_steps:0"], "n_steps"),
    (["train", "--algo", "ppo", "--hyperparams", "bogus:1"], "bogus"),
    (["train", "--algo", "bogus"], "--algo"),
    (["train", "--resume", "NOWHERE"], "NOWHERE"),
    (["train", "--resume", "NOWHERE", "--seed", "5", "--n-envs", "2"], "--seed, --n-envs"),
    (["train", "--resume", "NOWHERE", "--out", "FILE"], "takes no --out"),
    (["train", "--algo", "ppo", "--out", "FILE"], "--out"),
    (["train", "--algo", "ppo", "--out", "FILE/run"], "--out"),
    (["evaluate", "--episodes", "0"], "--episodes"),
    (["evaluate", "--seed", "nan"], "--seed"),
    (["evaluate", "--horizon", "0"], "--horizon"),
    (["evaluate", "--policies", "bogus"], "--policies"),
    (["evaluate", "--runs", "NOWHERE"], "NOWHERE"),
    (["evaluate", "--confidence", "1.5"], "--confidence"),
    (["evaluate", "--threads", "0"], "--threads"),
    (["evaluate", "--workers", "0"], "--workers"),
    (["evaluate", "--env", "bogus"], "--env"),
    (["evaluate", "--address", "127.0.0.1:PORT"], "127.0.0.1:PORT (--address)"),
    (["evaluate", "--out", "FILE"], "--out"),
    (["evaluate", "--env", "AIGCEdge-Battery-v0", "--hindsight-cache", "FILE"], "--hindsight-cache"),
    (["evaluate", "--config", '{"bogus": 1}'], "bogus"),
    (["experiments", "sweep", "--param", "n_users", "--episodes", "0"], "--episodes"),
    (["experiments", "sweep", "--param", "n_users", "--seed", "-3"], "--seed"),
    (["experiments", "sweep", "--param", "n_users", "--slots", "0"], "--slots"),
    (["experiments", "sweep", "--param", "n_users", "--values", "nan"], "--values"),
    (["experiments", "sweep", "--param", "n_users", "--values", "-5"], "--values -5"),
    (["experiments", "sweep", "--param", "bogus"], "--param"),
    (["experiments", "sweep", "--param", "n_users", "--solvers", "bogus"], "--solvers"),
    (["experiments", "sweep", "--param", "n_users", "--workers", "0"], "--workers"),
    (["experiments", "sweep", "--param", "n_users", "--address", "127.0.0.1:PORT"], "127.0.0.1:PORT (--address)"),
    (["experiments", "sweep", "--param", "n_users", "--config", '{"bogus": 1}'], "--config"),
    (["experiments", "sweep", "--param", "n_users", "--figures", "FILE"], "--figures"),
    (["experiments", "sweep", "--param", "n_users", "--out", "FILE"], "--out"),
    (["experiments", "curves", "--curves", "bogus"], "--curves"),
    (["experiments", "curves", "--config", '{"bogus": 1}'], "--config"),
    (["experiments", "tradeoff", "--config", '{"bogus": 1}'], "--config"),
    (["experiments", "tradeoff", "--episodes", "0"], "--episodes"),
    (["experiments", "battery", "--prices", "-1"], "--prices"),
    (["experiments", "battery", "--decaying-prices", "nan"], "--decaying-prices"),
    (["experiments", "battery", "--lyapunov", "a,b"], "--lyapunov"),
    (["experiments", "battery", "--policies", "bogus"], "--policies"),
    (["experiments", "battery", "--compare-to", "bogus"], "--compare-to"),
    (["experiments", "battery", "--tuned", "FILE"], "--tuned"),
    (["experiments", "battery", "--runs", "NOWHERE"], "--runs"),
    (["experiments", "battery", "--hindsight-cache", "FILE"], "--hindsight-cache"),
    (["experiments", "rules", "--episodes", "0"], "--episodes"),
    (["experiments", "rules", "--families", "bogus"], "--families"),
    (["experiments", "rules", "--config", '{"bogus": 1}'], "--config"),
    (["experiments", "replot", "NOWHERE.csv"], "NOWHERE.csv"),
    (["experiments", "all", "--runs", "NOWHERE"], "--runs"),
    (["experiments", "all", "--solvers", "bogus"], "--solvers"),
    (["tune", "--algo", "ppo", "--trials", "0"], "--trials"),
    (["tune", "--algo", "ppo", "--timesteps", "0"], "--timesteps"),
    (["tune", "--algo", "ppo", "--eval-episodes", "0"], "--eval-episodes"),
    (["tune", "--algo", "ppo", "--seed", "-1"], "--seed"),
    (["tune", "--algo", "ppo", "--workers", "0"], "--workers"),
    (["tune", "--algo", "ppo", "--out", "FILE"], "--out"),
    (["tune", "--algo", "ppo", "--config", '{"n_users": 0}'], "n_users"),
    (["calibrate", "--features", "bogus"], "features = 'bogus'"),
    (["calibrate", "--device", "bogus"], "--device"),
    (["calibrate", "--threads", "0"], "--threads"),
    (["calibrate", "--eta", "nan"], "--eta"),
    (["calibrate", "--n-samples", "0"], "--n-samples"),
    (["calibrate", "--batch-size", "0"], "--batch-size"),
    (["calibrate", "--steps", "x"], "--steps"),
    (["calibrate", "--bootstrap", "0"], "--bootstrap"),
    (["calibrate", "--refit", "NOWHERE"], "--refit"),
    (["calibrate", "--train", "NOWHERE", "--refit", "NOWHERE"], "--train and --refit are two modes"),
    (["calibrate", "--refit", "NOWHERE", "--quick", "--steps", "5"], "--quick, --steps"),
    (["calibrate", "--train", "NOWHERE", "--scheduler", "ddpm", "--device", "cpu"],
     "--train takes none of --device, --out, --scheduler: accepted --train-iterations, --seed, --threads"),
    (["calibrate", "--refit", "NOWHERE", "--seed", "3"], "--refit takes none of --out, --seed: accepted --form, "
                                                         "--fit-min-steps"),
    (["calibrate", "--refit", "NOWHERE", "--seed", "0", "--eta", "0"], "--refit takes none of --eta, --out, --seed"),
    (["calibrate", "--train-iterations", "5"], "a measurement (without --train or --refit) takes none of "
                                               "--train-iterations"),
    (["calibrate", "--train", "FILE"], "--train"),
    (["calibrate", "--seed", "-1"], "--seed"),
    (["calibrate", "--train-iterations", "0"], "--train-iterations"),
    (["bench", "bogus"], "NAME"),
    (["bench", "env", "--seconds", "0"], "--seconds"),
    (["bench", "env", "--seconds", "nan"], "--seconds"),
    (["bench", "env", "--rounds", "0"], "--rounds"),
    (["bench", "env", "--n-envs", "0"], "--n-envs"),
    (["bench", "env", "--cpu", "99999"], "--cpu"),
    (["bench", "sca-kkt", "--n-users", "0"], "--n-users"),
    (["bench", "sca-kkt", "--deadline-s-range", "bogus", "1"], "--deadline-s-range"),
    (["bench", "agents", "--timesteps", "0"], "--timesteps"),
    (["bench", "agents", "--train-seeds", "-1"], "--train-seeds"),
    (["bench", "agents", "--train-seeds", "0", "0"], "--train-seeds names a value twice"),
    (["bench", "agents", "--algos", "ppo", "ppo"], "--algos names a value twice"),
    (["evaluate", "--out", "/proc/aigc_edge_out"], "--out"),  # not writable even for root
    (["bench", "agents", "--target", "nan"], "--target"),
    (["bench", "agents", "--out", "FILE"], "--out"),
    (["bench", "ceiling", "--episodes", "0"], "--episodes"),
    (["bench", "ceiling", "--orders", "bogus"], "--orders"),
    (["bench", "solvers", "--time-budget", "-1"], "--time-budget"),
    (["bench", "solvers", "--slots", "0"], "--slots"),
]
#: Subcommands whose output folder the test names (so that it can check nothing was written there).
WRITES_OUT = ("train", "evaluate", "experiments", "tune", "calibrate")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(argv) for argv, _ in CASES])
def test_a_bad_argument_exits_2_with_one_line_naming_it_before_any_work(argv: list[str], named: str, tmp_path: Path,
                                                                        capsys) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    port = str(_closed_port())

    def fill(text: str) -> str:
        return text.replace("FILE", str(a_file)).replace("NOWHERE", str(tmp_path / "nowhere")).replace("PORT", port)

    argv = [fill(arg) for arg in argv]
    out = tmp_path / "out"
    if argv[0] in WRITES_OUT and "--out" not in argv and argv[1] != "replot":
        argv += ["--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("aigc-edge") and ": error: " in err and fill(named) in err, err
    assert not out.exists()


@pytest.mark.parametrize(("signal_name", "status"), [("Ctrl-C", 130), ("SIGTERM", 143)])
def test_an_interrupted_command_exits_with_the_signals_status_and_one_line(signal_name: str, status: int,
                                                                           monkeypatch, capsys) -> None:
    import aigc_edge_env.cli.evaluate as evaluate_cli
    from aigc_edge_env.cli.common import Terminated

    def interrupted(args):
        raise Terminated if signal_name == "SIGTERM" else KeyboardInterrupt

    monkeypatch.setattr(evaluate_cli, "run", interrupted)
    assert main(["evaluate", "--episodes", "1"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"aigc-edge evaluate: interrupted by {signal_name}")
