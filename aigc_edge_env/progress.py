"""Progress bars of every long job: tqdm when it is installed (the extras), else one line on stderr (the core)."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["progress_bar"]

#: Least time between two redraws of the line without tqdm (s).
REDRAW_S = 0.5


class _LineProgress:
    """``desc: n/total unit`` on stderr, redrawn in place at most every :data:`REDRAW_S` and at the end (the core
    install has no tqdm); silent when ``enabled`` is false."""

    def __init__(self, total: int, desc: str, unit: str, enabled: bool) -> None:
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.n, self.drawn_at = 0, -REDRAW_S

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled and self.drawn_at >= 0:
            self._draw()
            print(file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled and time.monotonic() - self.drawn_at >= REDRAW_S:
            self._draw()

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def _draw(self) -> None:
        self.drawn_at = time.monotonic()
        print(f"\r{self.desc}: {self.n}/{self.total} {self.unit}", end="", file=sys.stderr, flush=True)


def progress_bar(total: int, desc: str = "", unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar (context manager with ``update`` and ``set_description``), or one line on stderr without tqdm;
    silent when ``enabled`` is false."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit)
    return _LineProgress(total, desc, unit, enabled)
