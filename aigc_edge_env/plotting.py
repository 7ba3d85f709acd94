"""The one plotting set-up of the package: matplotlib's file backend, a style per policy, saving.

Figures are written to files (PNG) by commands that may run without a display, so every
plot takes pyplot from :func:`pyplot`, which selects the non-interactive ``Agg`` backend once.
matplotlib is imported only when a figure is drawn (the ``experiments`` or ``agents`` extra).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from aigc_edge_env.files import write_atomic

__all__ = ["STYLE", "pyplot", "save_figure", "style"]

#: A fixed colour and marker per solver, so every figure reads the same.
STYLE = {
    "exact": ("black", "o"), "sca_kkt": ("tab:red", "x"), "local_search": ("tab:purple", "s"),
    "greedy": ("tab:blue", "^"), "all_local": ("tab:green", "v"), "all_edge": ("tab:orange", "<"),
    "random": ("tab:gray", ">"), "fixed_steps_10": ("tab:brown", "d"), "fixed_steps_20": ("tab:pink", "P"),
}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the ``Agg`` backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def style(name: str) -> tuple[str, str]:
    """The (colour, marker) of a solver or policy name."""
    return STYLE.get(name, ("tab:olive", "*"))


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 90, bbox_inches: str | None = "tight") -> None:
    """Write ``fig`` to ``path`` as given, atomically (:func:`~aigc_edge_env.files.write_atomic`; the format
    of its suffix, PNG without one; its folder made as needed) and close it."""
    buffer = io.BytesIO()
    path = Path(path)
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches=bbox_inches)
    pyplot().close(fig)
    write_atomic(path, buffer.getvalue())
