"""The documentation: the generated configuration reference covers every config field, and the site's pages exist.

The reference is generated at build time by an MkDocs hook (``docs/hooks/config_reference.py``); its
generator is plain Python, so these tests call it without MkDocs.  ``make docs`` runs the strict build.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_edge_env.config import SCENARIOS, AIGCEdgeConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIELDS = [f.name for f in dataclasses.fields(AIGCEdgeConfig)]


@pytest.fixture(scope="module")
def hook():
    """The hook module, loaded from its file (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("config_reference", DOCS / "hooks" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(markdown: str) -> dict[str, str]:
    """Field name -> its table row in the generated reference."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", markdown, flags=re.M)}


def test_config_reference_has_a_row_per_field(hook) -> None:
    rows = _rows(hook.config_reference_markdown())
    assert sorted(rows) == sorted(FIELDS)
    for name, row in rows.items():
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == 4 + len(SCENARIOS), name  # field, unit, one default per scenario, accepted, meaning
        assert all(cells), (name, cells)


def test_config_reference_shows_each_scenarios_defaults(hook) -> None:
    rows = _rows(hook.config_reference_markdown())
    assert "**50**" in rows["n_users"]  # AIGCEdge-Large-v0
    assert "**True**" in rows["battery_enabled"] and "**(0, 1)**" in rows["harvest_j_range"]  # AIGCEdge-Battery-v0
    assert "[1, 10000]" in rows["n_users"] and "integer" in rows["n_users"]


def test_a_field_without_a_meaning_fails_the_build(hook, monkeypatch: pytest.MonkeyPatch) -> None:
    meanings = dict(hook.MEANINGS)
    del meanings["n_users"]
    monkeypatch.setattr(hook, "MEANINGS", meanings)
    with pytest.raises(ValueError, match="n_users"):
        hook.config_reference_markdown()


def test_the_hook_fills_the_placeholder(hook) -> None:
    page = (DOCS / "reference" / "config.md").read_text()
    assert hook.PLACEHOLDER in page
    filled = hook.on_page_markdown(page, page=None, config=None, files=None)
    assert hook.PLACEHOLDER not in filled and "`harvest_j_range`" in filled


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return [page for item in node for page in _nav_pages(item)]


def test_every_page_in_the_nav_exists() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert on_disk == set(pages)  # no page left out of the nav


def test_docs_quickstart_is_the_readme_quickstart() -> None:
    def quickstart(text: str) -> str:
        (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "SOLVERS" in b]
        return block

    assert quickstart((DOCS / "getting-started.md").read_text()) == quickstart((ROOT / "README.md").read_text())


def test_no_document_points_outside_the_repository_for_the_model() -> None:
    """The model's reference is docs/model.md; the starting specification (MODEL.md) is not in the repository."""
    documents = [ROOT / "README.md", *DOCS.rglob("*.md")]
    offenders = [str(p.relative_to(ROOT)) for p in documents if "MODEL.md" in p.read_text()]
    assert not offenders


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
