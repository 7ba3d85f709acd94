"""The README is a short entry point; its Python examples run as written, its commands name real files and targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


#: The README is the entry point; everything longer belongs on a page of docs/.
MAX_README_LINES = 150


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_is_short() -> None:
    assert len(README.splitlines()) <= MAX_README_LINES


def test_first_block_is_the_two_make_commands() -> None:
    first = re.search(r"```\w*\n(.*?)```", README, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (example,) = [block for block in _code_blocks("python") if "gym.make" in block]
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    cost_line = printed[-1].split(">=")
    assert float(cost_line[0]) >= float(cost_line[1]) - 1e-9


def test_scripts_named_in_bash_blocks_exist() -> None:
    for block in _code_blocks("bash"):
        for script in re.findall(r"python (\S+\.py)", block):
            assert (ROOT / script).is_file(), script


@pytest.mark.parametrize(("module", "needs"), [("per_user_net", "torch"), ("multi_agent", "pettingzoo")])
def test_rl_code_examples_run(module: str, needs: str) -> None:
    """The per-user network's and the multi-agent view's examples run as written."""
    pytest.importorskip(needs)
    (example,) = [block for block in _code_blocks("python") if f"aigc_edge_env.{module} import" in block
                  or f"agents.{module} import" in block]
    exec(compile(example, "README.md", "exec"), {})
