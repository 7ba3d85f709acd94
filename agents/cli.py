"""Helpers shared by the command-line scripts (train.py, evaluate.py, benchmarks/agents.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["check_output_dir", "check_threads", "parse_mapping"]


def parse_mapping(text: str) -> dict[str, Any]:
    """A mapping from a JSON or YAML file path, or from inline JSON/YAML (``'{"horizon_slots": 20}'``).

    Raises ``ValueError`` naming the file or text when it is unreadable or not a mapping.
    """
    path = Path(text)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a JSON or YAML file")
    source = f"file {path}" if path.is_file() else f"inline text {text!r}"
    try:
        value = yaml.safe_load(path.read_text() if path.is_file() else text)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot parse {source} as JSON or YAML: {exc}") from None
    if value is None:
        return {}
    if not path.is_file() and not isinstance(value, (dict, list)):
        raise ValueError(f"no such file {text!r}, and it is not an inline mapping either")
    if not isinstance(value, dict):
        raise ValueError(f"{source} must hold a mapping of config fields, got {type(value).__name__}")
    return value


def check_output_dir(path: Path, option: str = "--out") -> None:
    """Raise ``ValueError`` unless ``path`` is, or can be made, a writable directory (nothing is created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} exists and is not a directory")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path} is not writable ({existing} does not allow it)")


def check_threads(threads: int) -> None:
    """Raise ``ValueError`` unless ``threads`` is a positive number of torch CPU threads."""
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
