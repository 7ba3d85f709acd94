"""Type-check the package as it installs: ``python tools/typecheck.py [mypy flags]`` (``make lint``).

setuptools installs top-level folders as sub-packages (``[tool.setuptools] package-dir`` in
pyproject.toml: ``baselines/`` is ``aigc_edge_env.baselines``, ``agents/`` is
``aigc_edge_env.agents``), but mypy names a file's module after its folders, so plain ``mypy``
would check ``baselines/exact.py`` as a module ``baselines.exact`` and could not resolve an
``import aigc_edge_env.baselines.exact``.  This script reads ``packages`` and ``package-dir`` of
``[tool.setuptools]`` (the one statement of the installed layout), hands mypy every module of
every installed package under its installed name with its real path (mypy's ``BuildSource``),
and runs mypy's build with the options of ``[tool.mypy]`` and any flags given, less the override
that lets plain ``mypy`` (which checks the core package only) ignore the remapped packages.  Imports
between the project's modules then resolve to the real files, and errors name those files.

Why not the alternatives: a non-editable install into a temporary folder, or setuptools' strict
editable mode (a link tree under ``build/``), or a hand-made symlink tree, all give mypy a copy
or a link tree of the sources, so its errors name paths that are not the files one edits, the
copy goes stale when files are added, and the editable mode would change how the development
environment is installed; a remapped folder added to ``package-dir`` (and its packages to
``packages``) is checked here with no other change.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.fscache import FileSystemCache
from mypy.main import process_options
from mypy.modulefinder import BuildSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """The folder setuptools installs ``package`` from: the longest ``package-dir`` prefix, as setuptools maps."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in package_dir:
            return Path(package_dir[prefix], *parts[n:])
    return Path(package_dir.get("", "."), *parts)


def remapped_patterns(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``<package>.*`` of every package ``package-dir`` installs from a folder of another name (``agents/`` as
    ``aigc_edge_env.agents``): plain ``mypy`` cannot find them, so ``[tool.mypy]`` ignores them there; here
    they are checked and the override is dropped, so a wrong import of one is an error."""
    package_dir = tomllib.loads(pyproject.read_text())["tool"]["setuptools"].get("package-dir", {})
    return [f"{package}.*" for package, folder in package_dir.items() if Path(folder) != Path(*package.split("."))]


def installed_modules(pyproject: Path = ROOT / "pyproject.toml") -> Iterator[tuple[str, str]]:
    """``(path relative to the project root, installed module name)`` of every module setuptools installs."""
    setuptools_config = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    packages, package_dir = setuptools_config["packages"], setuptools_config.get("package-dir", {})
    if not isinstance(packages, list):
        raise SystemExit("tools/typecheck.py reads an explicit [tool.setuptools] packages list, "
                         f"got {packages!r}")
    for package in packages:
        folder = package_folder(package, package_dir)
        for path in sorted(folder.glob("*.py")):
            yield path.as_posix(), package if path.stem == "__init__" else f"{package}.{path.stem}"


def main(flags: list[str]) -> int:
    os.chdir(ROOT)  # package-dir paths are relative to the project root, as are mypy's config and cache
    modules = list(installed_modules())
    fscache = FileSystemCache()
    # The options come from [tool.mypy] and the flags; mypy's own module names for the paths are replaced.
    _, options = process_options([*flags, *(path for path, _ in modules)], fscache=fscache)
    for pattern in remapped_patterns():
        options.per_module_options.pop(pattern, None)
    sources = [BuildSource(path, module) for path, module in modules]
    messages: list[str] = []

    def flush_errors(filename: str | None, new_messages: list[str], serious: bool) -> None:
        messages.extend(new_messages)
        for message in new_messages:
            print(message, file=sys.stderr if serious else sys.stdout)

    try:
        build.build(sources, options, flush_errors=flush_errors, fscache=fscache)
    except CompileError:  # a blocking error, already flushed
        return 2
    errors = [message for message in messages if ": error:" in message]
    if errors:
        n_files = len({message.split(":")[0] for message in errors})
        print(f"Found {len(errors)} error{'s' * (len(errors) != 1)} in {n_files} file{'s' * (n_files != 1)} "
              f"(checked {len(sources)} source files)")
        return 1
    print(f"Success: no issues found in {len(sources)} source files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
