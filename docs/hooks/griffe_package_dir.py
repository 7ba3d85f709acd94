"""Griffe extension: the sub-packages that ``pyproject.toml``'s ``package-dir`` maps from other folders.

``baselines/`` (and the other top-level folders that ``[tool.setuptools] package-dir`` installs as
``aigc_edge_env.<name>``) do not sit inside ``aigc_edge_env/``, so griffe, reading the source tree,
would not find ``aigc_edge_env.baselines``. After it loads ``aigc_edge_env`` this extension loads each
mapped folder and attaches it under its installed name, so ``::: aigc_edge_env.baselines`` works on
the API pages. A folder added to ``package-dir`` needs nothing here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import griffe

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport that pip and build tools install
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def mapped_packages() -> dict[str, Path]:
    """``package-dir`` entries other than the top package itself: installed name -> folder."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir = pyproject.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return {name: ROOT / folder for name, folder in package_dir.items() if "." in name and (ROOT / folder).is_dir()}


class PackageDir(griffe.Extension):
    """Attach each folder of ``package-dir`` to its parent package once that package is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for name, folder in sorted(mapped_packages().items()):
            parent_path, _, child = name.rpartition(".")
            if parent_path != pkg.path or child in pkg.members:
                continue
            module = loader.load(folder, submodules=True, try_relative_path=False)
            pkg.set_member(child, module)
