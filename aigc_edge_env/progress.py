"""Progress bars of every long job: tqdm when it is installed, a silent stand-in otherwise."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def set_description(self, desc: str) -> None:
        return None


def progress_bar(total: int, desc: str = "", unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar (context manager with ``update`` and ``set_description``); a silent one when
    ``enabled`` is false or tqdm is not installed."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit)
    return _NoProgress()
