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

.PHONY: demo test test-fast lint docs bench clean

# The main job: a short PPO run, then every solver and the agent on the same seeds and slots.
DEMO_RUN := runs/demo_ppo
DEMO_OUT := results/demo

$(STAMP): pyproject.toml
	@echo "set-up (once, 1-3.5 minutes): .venv with torch's CPU build and the package with every extra but rllib"
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	@echo "set-up 1/2: torch $(TORCH_VERSION) (CPU build)"
	$(PYTHON) -m pip install --progress-bar on $(TORCH_SOURCE) torch==$(TORCH_VERSION) | grep -v "already satisfied"
	@echo "set-up 2/2: aigc-edge-env[all] (stable-baselines3, Ray, diffusers, MkDocs, ...)"
	$(PYTHON) -m pip install --quiet -e '.[all]' torch==$(TORCH_VERSION)
	touch $@
	@echo "set-up done: $(VENV)"

demo: $(STAMP)
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/aigc-edge train --algo ppo --env AIGCEdge-v0 --timesteps 60000 --seed 0 --out $(DEMO_RUN) --eval-freq 0
	$(VENV)/bin/aigc-edge evaluate --env AIGCEdge-v0 --episodes 5 --runs $(DEMO_RUN) --out $(DEMO_OUT)

# The whole suite (what CI runs); test-fast leaves out the end-to-end tests marked slow, for development.
test: $(STAMP)
	$(PYTHON) -m pytest

test-fast: $(STAMP)
	$(PYTHON) -m pytest -m "not slow"

# mypy runs on the package as it installs (baselines/ as aigc_edge_env.baselines, ...):
# tools/typecheck.py names each file by its installed module, read from pyproject.toml's
# package-dir, so errors point at the real files (its docstring says why not a link tree).
# Plain `mypy` checks the core package alone ([tool.mypy] files); run here so that it stays clean.
lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) tools/typecheck.py
	$(PYTHON) -m mypy

# The documentation site, into site/; --strict fails on any warning (a broken link, an undocumented config field).
docs: $(STAMP)
	$(PYTHON) -m mkdocs build --strict

bench: $(STAMP)
	$(VENV)/bin/aigc-edge bench env
	$(VENV)/bin/aigc-edge bench solvers

# Removes what the set-up and builds made; trained runs (runs/) and results (results/) stay.
clean:
	rm -rf $(VENV) .venv-core *.egg-info build dist .pytest_cache .mypy_cache .ruff_cache
