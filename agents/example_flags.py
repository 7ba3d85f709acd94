"""The command-line flags of the training examples (``examples/*.py``): one name and default per setting.

:func:`example_parser` holds the flags every example takes (CleanRL's names); :func:`ppo_parser` adds the
PPO settings of the two examples that run their own PPO loop (``cleanrl_ppo.py``, ``torchrl_ppo.py``),
whose defaults are the settings measured in docs/stacks.md.  No torch here: the examples import it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["example_parser", "ppo_parser"]


def example_parser(doc: str) -> argparse.ArgumentParser:
    """``--env``, ``--seed``, ``--timesteps``, ``--eval-episodes``; the description is ``doc``'s first line."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--env", default="AIGCEdge-v0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timesteps", type=int, default=100_000, help="slots of training (env steps, over all envs)")
    p.add_argument("--eval-episodes", type=int, default=10, help="held-out episodes (0: no evaluation)")
    return p


def ppo_parser(doc: str) -> argparse.ArgumentParser:
    """:func:`example_parser` plus the rollout, PPO and network settings, ``--threads`` and ``--save``."""
    p = example_parser(doc)
    p.add_argument("--n-envs", type=int, default=8, help="sub-envs of the numpy-batched vector env")
    p.add_argument("--num-steps", type=int, default=64, help="steps per env per rollout")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--gamma", type=float, default=0.0)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--update-epochs", type=int, default=10)
    p.add_argument("--clip-coef", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.0)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="1 is fastest for this small network on CPU")
    p.add_argument("--save", type=Path, default=None, help="write the trained network here (torch:PATH format)")
    return p
