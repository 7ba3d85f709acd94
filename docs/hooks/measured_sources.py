"""MkDocs hook: the source table of ``AIGCEdge-Measured-v0``, generated from ``aigc_edge_env.sources``.

``docs/environments/measured.md`` holds the placeholder ``<!-- measured-sources -->``; this hook replaces it
with one row per config field: the field, its value in the scenario and where the value comes from, so the
page cannot drift from :func:`aigc_edge_env.sources`.  :func:`sources_markdown` is plain Python (the tests
call it directly).
"""

from __future__ import annotations

from typing import Any

PLACEHOLDER = "<!-- measured-sources -->"


def sources_markdown(env_id: str = "AIGCEdge-Measured-v0") -> str:
    """A Markdown table: field, value in ``env_id``, source (``aigc_edge_env.sources(env_id)``)."""
    from aigc_edge_env import make_config, sources

    config = make_config(env_id).to_dict()
    rows = ["| field | value | source |", "|---|---|---|"]
    for name, source in sources(env_id).items():
        value = config[name]
        shown = "curve" if isinstance(value, dict) else f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append(f"| `{name}` | {shown} | {source.replace('|', '/')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the placeholder of the scenario page."""
    if PLACEHOLDER not in markdown:
        return markdown
    return markdown.replace(PLACEHOLDER, sources_markdown())
