"""Make untrusted text (model output, prompts, model and suite metadata) inert inside markdown and HTML.

The one escaping path of every report: HTML templates autoescape, and the markdown environment escapes every value
it prints through `markdown_text` unless a template already passed it through `markdown_inline` (the `md` filter).
"""

from __future__ import annotations

import re
import unicodedata

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~>])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
ZERO_WIDTH_SPACE = "\u200b"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clean_text(text: str, limit: int) -> str:
    """One line, printable characters only, at most `limit` characters (an ellipsis marks a cut)."""
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = "".join(" " if unicodedata.category(ch)[0] in {"C", "Z"} else ch for ch in text)
    return _cut(re.sub(r"\s+", " ", text).strip(), limit)


def clean_block(text: str, limit: int) -> str:
    """Like clean_text but keeps line breaks and tabs, for a block an HTML template escapes and wraps."""
    text = text.encode("utf-8", "replace").decode("utf-8", "replace").replace("\r\n", "\n")
    # Other control and format characters (bidi overrides, zero-width joiners) could disguise the text.
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _cut(text.strip("\n"), limit)


def markdown_text(text: str) -> str:
    """Text as literal markdown on one line (no cut, no trim): no HTML, formatting, links, @mentions or table breaks."""
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = "".join(" " if unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029" else ch for ch in text)
    text = "".join(_HTML.get(ch, ch) for ch in text)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    # A zero-width space after @ and # stops GitHub from turning output into mentions or issue links.
    return text.replace("@", "@" + ZERO_WIDTH_SPACE).replace("\\#", "#" + ZERO_WIDTH_SPACE)


def markdown_inline(text: str, limit: int = 120) -> str:
    """Untrusted text as literal markdown: no HTML, no formatting, no links, no @mentions, safe in a table cell."""
    return markdown_text(clean_text(text, limit)) or "(empty)"
