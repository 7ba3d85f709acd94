"""What every subcommand of ``aigc-edge`` shares: one parser class, one vocabulary, one validation layer.

**One vocabulary** (docs/cli.md): ``--env`` (a registered env id), ``--config`` (env config
overrides: a JSON/YAML file or an inline mapping, :func:`parse_mapping`), ``--seed`` (the first
seed) with ``--episodes`` (how many), ``--timesteps``, ``--n-envs``, ``--out`` (an output folder,
checked writable before any work), ``--workers`` and ``--address`` (Ray, :mod:`aigc_edge_env.distributed`),
``--no-progress``.

**Bad arguments** exit with status 2 and one line ``aigc-edge <subcommand>: error: <what>``
(:class:`ArgumentParser`), before any work: argparse's own errors (a type, a choice) and the
checks of the values (:class:`UsageError`, ``ValueError`` and :class:`~aigc_edge_env.config.ConfigError`
raised while a subcommand resolves its arguments).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from aigc_edge_env.config import SCENARIOS

__all__ = [
    "ArgumentParser", "UsageError", "add_env", "add_out", "add_seed_episodes", "add_workers", "check_device",
    "check_output_dir", "check_threads", "count", "env_id", "finite_float", "mapping", "non_negative_float",
    "parse_mapping", "positive_float", "probability", "seed",
]


class UsageError(ValueError):
    """A bad argument value, found after parsing (exits with status 2 and one line)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, its errors one line (``prog: error: message``) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_mapping(text: str) -> dict[str, Any]:
    """A mapping from a JSON or YAML file path, or from inline JSON/YAML (``'{"horizon_slots": 20}'``).

    JSON is read as JSON (``2e3`` is a number there; YAML 1.1 would read it as a string), anything else
    as YAML.  Raises :class:`UsageError` naming the file or text when it is unreadable or not a mapping.
    """
    import yaml

    path = Path(text)
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a JSON or YAML file")
    source = f"file {path}" if path.is_file() else f"inline text {text!r}"
    try:
        content = path.read_text() if path.is_file() else text
        try:
            value = json.loads(content)
        except json.JSONDecodeError:
            value = yaml.safe_load(content)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot parse {source} as JSON or YAML: {' '.join(str(exc).split())}") from None
    if value is None:
        return {}
    if not path.is_file() and not isinstance(value, (dict, list)):
        raise UsageError(f"no such file {text!r}, and it is not an inline mapping either")
    if not isinstance(value, dict):
        raise UsageError(f"{source} must hold a mapping of config fields, got {type(value).__name__}")
    return value


def check_output_dir(path: Path, option: str = "--out") -> None:
    """Raise :class:`UsageError` unless ``path`` is, or can be made, a writable directory (nothing is left
    behind: a temporary file in its nearest existing folder is created and removed, as permissions alone
    do not tell, e.g. for root or on a read-only file system)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} exists and is not a directory")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a directory")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path} is not writable ({existing} does not allow it: {exc})") from None


def check_threads(threads: int) -> None:
    """Raise :class:`UsageError` unless ``threads`` is a positive number of torch CPU threads."""
    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")


def check_device(device: str, option: str = "--device") -> None:
    """Raise :class:`UsageError` unless ``device`` is a torch device available here (imports torch)."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UsageError(f"{option} {device!r} is not a torch device: accepted cpu, cuda[:<index>], mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if kind not in available:
        raise UsageError(f"{option} {device!r}: accepted cpu, cuda[:<index>], mps")
    if not available[kind]:
        raise UsageError(f"{option} {device!r}: {kind} is not available in this torch {torch.__version__}")


# --- argparse types: each names what it accepts ------------------------------------------------
def _typed(text: str, convert: Callable[[str], Any], accepted: str, ok: Callable[[Any], bool]) -> Any:
    """``convert(text)`` when it is what ``ok`` accepts, else argparse's error naming ``accepted``."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {accepted}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {accepted}, got {value}")
    return value


def count(text: str) -> int:
    """An integer >= 1 (episodes, timesteps, slots, trials, workers...)."""
    return int(_typed(text, int, "an integer >= 1", lambda v: v >= 1))


def non_negative_int(text: str) -> int:
    """An integer >= 0 (e.g. training timesteps, where 0 means behaviour cloning only)."""
    return int(_typed(text, int, "an integer >= 0", lambda v: v >= 0))


def seed(text: str) -> int:
    """A seed: an integer in [0, 2**63) (numpy seeds are non-negative)."""
    return int(_typed(text, int, "an integer seed in [0, 2**63)", lambda v: 0 <= v < 2**63))


def finite_float(text: str) -> float:
    """A finite real number."""
    return float(_typed(text, float, "a finite number", math.isfinite))


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, budgets)."""
    return float(_typed(text, float, "a finite number > 0", lambda v: math.isfinite(v) and v > 0))


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (prices)."""
    return float(_typed(text, float, "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0))


def probability(text: str) -> float:
    """A number in (0, 1) (a confidence level)."""
    return float(_typed(text, float, "a number in (0, 1)", lambda v: 0 < v < 1))


def env_id(text: str) -> str:
    """A registered env id."""
    if text not in SCENARIOS:
        raise argparse.ArgumentTypeError(f"unknown env id {text!r}: accepted {sorted(SCENARIOS)}")
    return text


# --- the shared options -------------------------------------------------------------------------
def add_env(parser: argparse.ArgumentParser, default: str | None = "AIGCEdge-v0", config: bool = True,
            default_help: str | None = None) -> None:
    """``--env`` and (with ``config``) ``--config``; ``default_help``: the default as the help states it, where the
    command fills in ``default`` itself (default: ``default``)."""
    parser.add_argument("--env", type=env_id, default=default,
                        help=f"env id, one of {sorted(SCENARIOS)} (default {default_help or default})")
    if config:
        parser.add_argument("--config", type=mapping, default={},
                            help="env config overrides: a JSON/YAML file or an inline mapping, e.g. "
                                 "'{\"n_users\": 20}' (fields: docs/reference/config.md)")


def mapping(text: str) -> dict[str, Any]:
    try:
        return parse_mapping(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_seed_episodes(parser: argparse.ArgumentParser, seed_default: int, episodes_default: int,
                      what: str = "episode") -> None:
    """``--seed`` (the first seed) and ``--episodes`` (how many: seeds ``seed ... seed + episodes - 1``)."""
    parser.add_argument("--seed", type=seed, default=seed_default,
                        help=f"first {what} seed (default {seed_default})")
    parser.add_argument("--episodes", type=count, default=episodes_default,
                        help=f"number of {what}s, seeds --seed, --seed + 1, ... (default {episodes_default})")


def add_out(parser: argparse.ArgumentParser, default: Path | None, default_help: str | None = None) -> None:
    """``--out``: the output folder (checked writable before any work by :func:`check_output_dir`);
    ``default_help`` as in :func:`add_env`."""
    parser.add_argument("--out", type=Path, default=default, help=f"output folder (default {default_help or default})")


def add_workers(parser: argparse.ArgumentParser, default: int | None = None, *, always_ray: bool = False) -> None:
    """``--workers`` and ``--address`` of every command that runs tasks (:mod:`aigc_edge_env.distributed`);
    ``always_ray``: the command runs every task through Ray, in a worker process of its own, even with one worker."""
    serial = ("every task runs through Ray in a worker process of its own, even with 1" if always_ray else
              "1 without --address runs them in this process, one after another, without Ray")
    parser.add_argument("--workers", type=count, default=default,
                        help="tasks at once (default: every CPU of the local Ray instance or of the cluster); "
                             + serial + (f" (default here {default})" if default is not None else ""))
    parser.add_argument("--address", default=None,
                        help="Ray cluster to run on: auto (the one started on this machine by `ray start`), "
                             "HOST:PORT of its head, or ray://HOST:PORT (Ray Client); default $RAY_ADDRESS, "
                             "else a local Ray instance")


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (:func:`raise_terminated`), as Ctrl-C raises
    :class:`KeyboardInterrupt`, so that the same clean-up runs (temporary files removed)."""


#: Set by :func:`raise_terminated`: Ray's waits turn the exception of a signal handler into a plain
#: ``KeyboardInterrupt``, so the exception's type alone does not say which signal it was.
_TERMINATED = {"received": False}


def raise_terminated(signum: int, frame: Any) -> None:
    """A SIGTERM handler: raise :class:`Terminated`."""
    _TERMINATED["received"] = True
    raise Terminated


def interruption(exc: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped the program and the shell's status for it: ``("SIGTERM", 143)`` or ``("Ctrl-C", 130)``."""
    if isinstance(exc, Terminated) or _TERMINATED["received"]:
        return "SIGTERM", 128 + signal.SIGTERM.value
    return "Ctrl-C", 128 + signal.SIGINT.value


def fail(prog: str, message: str, status: int = 2) -> NoReturn:
    """Exit with ``status`` (2: a bad argument) and one line naming the subcommand."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)
