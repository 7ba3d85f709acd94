# `make demo` and `make test` work on a fresh clone: the first call creates .venv and
# installs the package with the CPU build of torch (installed first, pinned, so pip
# never pulls a multi-GB CUDA build to satisfy stable-baselines3's torch requirement).
# On the project's machines and CI the CPU wheel of torch sits in pip's configured
# find-links; elsewhere point pip at PyTorch's CPU index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
VENV := .venv
PYTHON := $(VENV)/bin/python
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=
TORCH_SOURCE := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# The main job: a short PPO run, then every solver and the agent on the same seeds and slots.
DEMO_RUN := runs/demo_ppo
DEMO_OUT := results/demo

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet $(TORCH_SOURCE) torch==$(TORCH_VERSION)
	$(PYTHON) -m pip install --quiet -e '.[all]' torch==$(TORCH_VERSION)
	touch $@

demo: $(STAMP)
	rm -rf $(DEMO_RUN)
	$(PYTHON) train.py --algo ppo --env AIGCEdge-v0 --timesteps 60000 --seed 0 --out $(DEMO_RUN) --eval-freq 0
	$(PYTHON) evaluate.py --env AIGCEdge-v0 --episodes 5 --runs $(DEMO_RUN) --out $(DEMO_OUT)

test: $(STAMP)
	$(PYTHON) -m pytest

# mypy runs on the package as it installs (baselines/ as aigc_edge_env.baselines, ...):
# tools/typecheck.py names each file by its installed module, read from pyproject.toml's
# package-dir, so errors point at the real files (its docstring says why not a link tree).
lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) tools/typecheck.py

bench: $(STAMP)
	$(PYTHON) benchmarks/env_speed.py
	$(PYTHON) benchmarks/solvers.py

# Removes what the set-up and builds made; trained runs (runs/) and results (results/) stay.
clean:
	rm -rf $(VENV) .venv-core *.egg-info build dist .pytest_cache .mypy_cache .ruff_cache
