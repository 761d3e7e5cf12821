"""The markdown report: a pull-request comment with the verdict on its first line."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from gate.decision import COMPOSITE_NOT_REACHED, NOT_REACHED
from gate.report.escape import markdown_inline, markdown_text

ICONS = {"PASS": "✅", "FAIL": "❌", "WARN": "⚠️"}
MAX_FLIPPED_PER_TASK = 5


def points(value: float, signed: bool = False) -> str:
    """A score, delta or budget in points with one decimal (the `pts` filter of every template)."""
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _md(text: Any, limit: int = 120) -> Markup:
    """The `md` filter: untrusted text cut to `limit` and escaped, marked as done for `_escaped`."""
    return Markup(markdown_inline(str(text), limit))  # noqa: S704 (escaped for markdown just now)


def _escaped(value: Any) -> Any:
    """Every printed value not already through `md` is escaped too: suite metadata or a name a template forgot."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return markdown_text(value)
    return value


def environment() -> Environment:
    """The jinja2 environment shared by the markdown templates: one escaping path for every value they print."""
    env = Environment(
        loader=PackageLoader("gate.report", "templates"),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 (markdown, not HTML: `finalize` escapes every printed string for markdown)
        finalize=_escaped,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = _md
    env.filters["pts"] = points
    env.globals["icons"] = ICONS
    env.globals["max_flipped"] = MAX_FLIPPED_PER_TASK
    env.globals.update(not_reached=NOT_REACHED, composite_not_reached=COMPOSITE_NOT_REACHED)
    return env


def render_markdown(result: dict[str, Any]) -> str:
    """Render result.json data (as a dict) to markdown."""
    return environment().get_template("report.md.j2").render(r=result)
