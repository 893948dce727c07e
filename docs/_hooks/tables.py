"""MkDocs hook: generate tables from the code, so that the docs cannot drift from it.

A page containing the marker `<!-- asdex:intentionally-conservative -->` gets it
replaced by the table of `asdex.detection.INTENTIONALLY_CONSERVATIVE`.
"""

from __future__ import annotations

CONSERVATIVE_MARKER = "<!-- asdex:intentionally-conservative -->"


def conservative_table() -> str:
    from asdex.detection import INTENTIONALLY_CONSERVATIVE

    lines = ["| primitive | why every output depends on every input |", "|---|---|"]
    for name, why in sorted(INTENTIONALLY_CONSERVATIVE.items()):
        lines.append(f"| `{name}` | {why} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CONSERVATIVE_MARKER in markdown:
        markdown = markdown.replace(CONSERVATIVE_MARKER, conservative_table())
    return markdown
