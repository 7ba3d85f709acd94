"""Helpers shared by the command-line scripts (train.py, evaluate.py, benchmarks/agents.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["parse_mapping"]


def parse_mapping(text: str) -> dict[str, Any]:
    """A mapping from a JSON or YAML file path, or from inline JSON/YAML (``'{"horizon_slots": 20}'``).

    Raises ``ValueError`` naming the file or text when it is unreadable or not a mapping.
    """
    path = Path(text)
    source = f"file {path}" if path.is_file() else f"inline text {text!r}"
    try:
        value = yaml.safe_load(path.read_text() if path.is_file() else text)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot parse {source} as JSON or YAML: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{source} must hold a mapping of config fields, got {type(value).__name__}")
    return value
