"""The package's structure: no import cycle among its modules, one command with every subcommand, and each
option of the shared vocabulary reaching the function it names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_edge_env.cli import SUBCOMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
#: Installed package name -> folder of the repository (pyproject.toml's package-dir).
FOLDERS = {"aigc_edge_env": ROOT / "aigc_edge_env", "aigc_edge_env.baselines": ROOT / "baselines",
           "aigc_edge_env.agents": ROOT / "agents", "aigc_edge_env.experiments": ROOT / "experiments",
           "aigc_edge_env.benchmarks": ROOT / "benchmarks"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if any(p in ("digits_model",) for p in parts):
                continue
            name = ".".join((package, *parts))
            modules[name.removesuffix(".__init__")] = path
    # a sub-package remapped from another folder wins over a folder of the same name
    return modules


def _runtime_imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    """Every import statement except those under ``if TYPE_CHECKING:`` (they never run)."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (function-level imports included): ``from a.b import c``
    names ``a.b.c`` when that is a module, else ``a.b``."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".rstrip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph()
    assert len(graph) > 60 and "aigc_edge_env.baselines.hindsight" in graph
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_graph_sees_a_cycle_when_there_is_one(tmp_path, monkeypatch) -> None:
    """The cycle test can fail: two modules importing each other are found."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "a.py").write_text("from pkg.b import x\n")
    (folder / "b.py").write_text("def f():\n    from pkg.a import y\n")
    monkeypatch.setitem(FOLDERS, "pkg", folder)
    graph = import_graph()
    assert "pkg.b" in graph["pkg.a"] and "pkg.a" in graph["pkg.b"]


@pytest.mark.parametrize("command", [["aigc-edge"], [sys.executable, "-m", "aigc_edge_env"]])
def test_help_lists_every_subcommand(command: list[str]) -> None:
    exe = Path(sys.executable).with_name("aigc-edge")
    argv = [str(exe)] if command == ["aigc-edge"] else command
    if command == ["aigc-edge"] and not exe.exists():
        pytest.skip("the console script is not installed beside this Python")
    done = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120, cwd=Path.home())
    assert done.returncode == 0, done.stderr
    for name in SUBCOMMANDS:
        assert f"    {name}" in done.stdout


def test_root_scripts_forward_to_the_command() -> None:
    import aigc_edge_env

    if Path(aigc_edge_env.__file__).resolve().parent != ROOT / "aigc_edge_env":
        pytest.skip("the root scripts run the checkout's code: an editable install (make), not this wheel")
    for script in ("train.py", "evaluate.py"):
        done = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and f"usage: aigc-edge {script[:-3]}" in done.stdout


#: (subcommand argv, an option value) -> where it must arrive: (Namespace attribute, expected value).
VOCABULARY = [
    (["evaluate", "--env", "AIGCEdge-Large-v0"], "env", "AIGCEdge-Large-v0"),
    (["evaluate", "--config", '{"n_users": 4}'], "config", {"n_users": 4}),
    (["evaluate", "--seed", "7", "--episodes", "3"], ("seed", "episodes"), (7, 3)),
    (["train", "--algo", "ppo", "--timesteps", "64", "--n-envs", "2"], ("timesteps", "n_envs"), (64, 2)),
    (["experiments", "battery", "--seed", "2000", "--episodes", "3"], ("seed", "episodes"), (2000, 3)),
    (["experiments", "sweep", "--param", "n_users", "--workers", "2", "--address", "auto"],
     ("workers", "address"), (2, "auto")),
    (["tune", "--algo", "ppo", "--env", "AIGCEdge-Battery-v0", "--out", "x"], ("env", "out"),
     ("AIGCEdge-Battery-v0", Path("x"))),
    (["bench", "solvers", "--slots", "3"], ("name", "options"), ("solvers", ["--slots", "3"])),
]


@pytest.mark.parametrize(("argv", "attributes", "expected"), VOCABULARY)
def test_the_shared_options_parse_the_same_everywhere(argv, attributes, expected) -> None:
    args = build_parser().parse_args(argv)
    if isinstance(attributes, str):
        attributes, expected = (attributes,), (expected,)
    assert tuple(getattr(args, a) for a in attributes) == tuple(expected)


def test_battery_seed_and_episodes_reach_the_study(monkeypatch, tmp_path) -> None:
    """``experiments battery --seed S --episodes K`` plays seeds S ... S + K - 1 (once ignored)."""
    import aigc_edge_env.experiments.battery as battery

    seen = {}

    def fake(solvers, runs, episodes, out, **kwargs):
        seen.update(episodes=episodes, seed=kwargs["seed"], decaying=kwargs["decaying_prices"])
        return {}

    monkeypatch.setattr(battery, "run_battery", fake)
    assert main(["experiments", "battery", "--seed", "2000", "--episodes", "3", "--out", str(tmp_path),
                 "--no-hindsight"]) == 0
    assert seen == {"episodes": 3, "seed": 2000, "decaying": []}


def test_experiments_all_runs_each_study_with_its_own_defaults(monkeypatch, tmp_path) -> None:
    """``all`` plays the battery study with the battery's defaults (no decaying price from a fallback)."""
    from aigc_edge_env.cli import experiments

    studies = experiments._all_studies(build_parser().parse_args(["experiments", "all", "--out", str(tmp_path)]))
    battery = [s for s in studies if s.study == "battery"][0]
    alone = build_parser().parse_args(["experiments", "battery", "--out", str(tmp_path)])
    assert vars(battery) == {key: value for key, value in vars(alone).items() if key != "command"}
    assert {s.study for s in studies} == {"sweep", "tradeoff", "battery"}


@pytest.mark.parametrize("argv", [
    ["experiments", "sweep", "--param", "n_users", "--solvers", "exact", "nope"],
    ["experiments", "battery", "--policies", "nope"],
    ["evaluate", "--policies", "nope"],
    ["evaluate", "--episodes", "0"],
    ["evaluate", "--env", "CartPole-v1"],
    ["evaluate", "--config", "{not: [valid"],
    ["experiments", "rules", "--episodes", "-1"],
    ["bench", "nope"],
    ["bench", "solvers", "--episodes", "-1"],
    ["tune", "--algo", "ppo", "--timesteps", "0"],
])
def test_bad_arguments_exit_2_with_one_line(argv, capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] in ("evaluate",) else [])])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aigc-edge") and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("name", "argv"), [
    ("solvers", ["--slots", "1", "--n-users", "3", "--no-progress"]),
    ("solvers", ["--slots", "1", "--n-users", "3", "--episodes", "1"]),  # + the bound and mpc per episode
    ("sca-kkt", ["--n-users", "3", "--episodes", "1", "--slots", "1"]),
    ("env", ["--seconds", "0.05", "--rounds", "1", "--n-envs", "2"]),
    ("ceiling", ["--episodes", "1", "--passes", "1", "--orders", "index"]),
])
def test_every_benchmark_runs(name: str, argv: list[str], capsys) -> None:
    """A smoke run of each benchmark through ``aigc-edge bench`` (bench agents: tests/test_evaluate.py)."""
    assert main(["bench", name, *argv]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip()
    if "--no-progress" in argv:
        assert printed.err == ""
