"""The model card (registrar.domain.model_card's document) as Markdown and as a standalone HTML
page: one Jinja2 template per format under templates/, each walking the same sections and blocks,
so what a section holds is decided once, by the document.

HTML is autoescaped: every value is text, a `<script>` written into a card field included. In
Markdown, free text keeps its own Markdown (a list stays a list), but anything that could open raw
HTML is escaped, and a value in a list or a table is kept on its line and out of the table's
syntax."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

CardFormat = Literal["json", "markdown", "html"]
MEDIA_TYPES: dict[str, str] = {
    "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
"""The media type of each text rendering (JSON is the API's own)."""
_TEMPLATES = {"markdown": "model_card.md", "html": "model_card.html"}
_MISSING_CELL = "—"

_HTML_OPENING = re.compile(r"<(?=[A-Za-z/!?])")
"""A `<` that could start a tag, a comment or a declaration: escaped, so no raw HTML passes."""
_INLINE_SPECIAL = re.compile(r"([\\`*\[\]|])")
"""Markdown that would change a value in a list item or a table cell: code, emphasis, links,
and the cell separator."""
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def shown(value: Any, missing: str = _MISSING_CELL) -> str:
    """A fact's or a cell's value as text: numbers short but exact enough to read (4 decimals),
    yes/no, times in RFC 3339 UTC, `missing` for a value not recorded."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}" if abs(value) < 1e-3 else str(round(value, 4))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def markdown_inline(text: str) -> str:
    """`text` for one line of Markdown (a list item, a table cell, a heading): its line breaks
    become spaces, and Markdown and HTML in it are escaped."""
    one_line = _LINE_BREAKS.sub(" ", text).strip()
    return _HTML_OPENING.sub(r"\\<", _INLINE_SPECIAL.sub(r"\\\1", one_line))


def markdown_text(text: str) -> str:
    """Free text as a Markdown block: its own Markdown kept, raw HTML escaped."""
    return _HTML_OPENING.sub(r"\\<", text.strip())


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        shown=shown, markdown_inline=markdown_inline, markdown_text=markdown_text
    )
    return environment


def rendered_card(document: dict[str, Any], card_format: Literal["markdown", "html"]) -> str:
    """`document` (registrar.domain.model_card.card_document) as Markdown or as an HTML page."""
    template = _environment().get_template(_TEMPLATES[card_format])
    return template.render(card=document)
