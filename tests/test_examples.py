"""The examples/ scripts run from outside the package (a subprocess each, a few hundred steps)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_edge_env.policies.torch_module import load_torch_policy

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("script", "module", "extra"), [("cleanrl_ppo.py", "torch", "agents"),
                                                         ("torchrl_ppo.py", "torchrl", "torchrl")])
def test_ppo_example_trains_saves_and_scores(script: str, module: str, extra: str, tmp_path) -> None:
    """Two iterations of 256 slots, the network saved in the torch:PATH format, a finite score printed last."""
    pytest.importorskip(module, reason=f"{script} needs {module}: pip install 'aigc-edge-env[{extra}]'")
    saved = tmp_path / "net.pt"
    out = _run(script, "--timesteps", "256", "--n-envs", "2", "--num-steps", "64", "--update-epochs", "2",
               "--eval-episodes", "2", "--seed", "3", "--save", str(saved))
    assert "iteration 2/2  step 256" in out
    assert f"saved {saved}" in out and load_torch_policy(saved).net.n_users == 10
    score_line = out.strip().splitlines()[-1]
    assert score_line.startswith("score ") and "held-out episodes" in score_line
    assert math.isfinite(float(score_line.split()[1]))


@pytest.mark.parametrize("args", [("--reward", "own"), ("--policy", "local", "--env", "AIGCEdge-Battery-v0")])
def test_pettingzoo_example_plays_episodes(args: tuple[str, ...]) -> None:
    pytest.importorskip("pettingzoo")
    out = _run("pettingzoo_random.py", "--episodes", "2", "--max-slots", "150", *args)
    assert out.count("100 slots, slot cost") == 2 and "slot 100/100" in out
