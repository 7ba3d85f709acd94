"""Packaging: a light core without the agents' stack, one version, one module object per file."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aigc_edge_env

ROOT = Path(__file__).resolve().parents[1]
#: Packages of the extras that the core (env, model, solvers, evaluation engine) must not import.
HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "tensorboard", "matplotlib", "yaml", "tqdm", "ray", "optuna",
         "pettingzoo", "diffusers", "sklearn", "safetensors")

CORE_SCRIPT = f"""
import sys
import gymnasium as gym
import numpy as np
import aigc_edge_env
from aigc_edge_env import evaluate_decision
from aigc_edge_env.baselines import SOLVERS, lower_bound, solve_exact

for env_id in aigc_edge_env.SCENARIOS:
    env = gym.make(env_id, config={{"n_users": 4, "horizon_slots": 3}})
    env.reset(seed=0)
    problem = env.unwrapped.current_problem()
    for name, solve in SOLVERS.items():
        decision = solve(problem, rng=np.random.default_rng(0))
        assert evaluate_decision(problem, decision).total_cost >= lower_bound(problem) - 1e-9, name
    assert solve_exact(problem).proven_optimal
    env.step(env.unwrapped.decision_to_action(SOLVERS["exact"](problem)))
from aigc_edge_env.policies.pretrained import load_pretrained  # the battery's: a price network, no torch
env = gym.make("AIGCEdge-Battery-v0")
observation, _ = env.reset(seed=0)
env.step(load_pretrained("AIGCEdge-Battery-v0").act(env, observation))
envs = gym.make_vec("AIGCEdge-v0", num_envs=3, vectorization_mode="vector_entry_point")
envs.reset(seed=0)
envs.step(envs.action_space.sample())
print(",".join(sorted(name for name in {HEAVY!r} if name in sys.modules)))
"""


def test_core_runs_without_importing_the_extras(tmp_path: Path) -> None:
    """The env ids, both envs, every solver and the battery's pretrained policy run, and none of the extras'
    packages is imported."""
    # run outside the checkout, so that the installed package is what gets imported
    done = subprocess.run([sys.executable, "-c", CORE_SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                          check=True)
    assert done.stdout.strip() == ""


@pytest.mark.skipif(os.environ.get("AIGC_CORE_ONLY") != "1", reason="only in the core-only environment of .ci/run")
def test_core_only_environment_has_no_torch() -> None:
    """In the core-only install (``pip install .[test]``) the agents' stack is absent, not just unused."""
    for name in ("torch", "stable_baselines3", "matplotlib"):
        with pytest.raises(ImportError):
            __import__(name)


def test_shipped_digits_model_is_package_data_under_2_mb() -> None:
    """The calibration's digits model travels with the installed package (a wheel in the core-only run of .ci/run)."""
    import importlib.resources

    folder = importlib.resources.files("aigc_edge_env.calibrate") / "digits_model"
    names = ["model_index.json", "classifier.safetensors", "unet/config.json",
             "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"]
    sizes = [len((folder / name).read_bytes()) for name in names]
    assert all(size > 0 for size in sizes)
    assert sum(sizes) < 2 * 1024 * 1024


def test_pep561_marker_is_installed() -> None:
    """``aigc_edge_env/py.typed`` (PEP 561, covering the sub-packages too) ships with the package, so type
    checkers read its annotations; installed from a wheel (the core-only run of .ci/run) its files list it."""
    import importlib.resources

    assert (importlib.resources.files("aigc_edge_env") / "py.typed").is_file()
    installed = {path.as_posix() for path in importlib.metadata.files("aigc-edge-env") or ()}
    if "aigc_edge_env/__init__.py" in installed:  # a wheel's files (an editable install maps the source folders)
        assert "aigc_edge_env/py.typed" in installed


def test_type_check_sees_every_installed_module_under_its_installed_name() -> None:
    """``make lint``'s mypy (tools/typecheck.py) checks every module under the folders of ``package-dir``, each
    under the name it installs as (``baselines/exact.py`` is ``aigc_edge_env.baselines.exact``); a module the
    install would miss (its package not in ``packages``) fails here too."""
    import importlib.util

    import tomllib

    pytest.importorskip("mypy")
    spec = importlib.util.spec_from_file_location("typecheck", ROOT / "tools" / "typecheck.py")
    assert spec is not None and spec.loader is not None
    typecheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(typecheck)
    modules = dict(typecheck.installed_modules())
    assert modules["baselines/exact.py"] == "aigc_edge_env.baselines.exact"
    assert modules["agents/__init__.py"] == "aigc_edge_env.agents"
    assert modules["aigc_edge_env/calibrate/fit.py"] == "aigc_edge_env.calibrate.fit"
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    assert set(modules) == {path.relative_to(ROOT).as_posix() for folder in folders
                            for path in (ROOT / folder).rglob("*.py")}
    assert len(set(modules.values())) == len(modules)


def test_version_is_stated_once() -> None:
    assert aigc_edge_env.__version__ == importlib.metadata.version("aigc-edge-env")


@pytest.mark.parametrize("name", ["baselines", "agents"])
def test_top_level_folders_cannot_be_imported_a_second_time(name: str) -> None:
    """From the repository root, ``import baselines`` fails and names the installed package to use."""
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert f"import aigc_edge_env.{name}" in done.stderr


def test_extras_named_in_the_readme_exist() -> None:
    import re

    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = re.findall(r"pip install '\.\[(\w+)\]'", (ROOT / "README.md").read_text())
    assert named and set(named) <= set(extras)
    # rllib pins gymnasium exactly (ray[rllib]): an environment of its own (.ci/run), not part of all
    assert set(extras["all"][0].split("[")[1].rstrip("]").split(",")) == set(extras) - {"all", "rllib"}
