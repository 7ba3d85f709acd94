"""The versions every run and result records (Python, this package, its dependencies)."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["PACKAGES", "package_versions"]

#: Distributions whose versions a run or an evaluation records.
PACKAGES = ("aigc-edge-env", "numpy", "scipy", "torch", "gymnasium", "stable_baselines3", "sb3_contrib")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on ("not installed" where absent).  This package's
    is the code's own ``aigc_edge_env.__version__``: an editable install's metadata keeps the version it
    was installed at."""
    from aigc_edge_env import __version__

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = __version__ if name == "aigc-edge-env" else importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
