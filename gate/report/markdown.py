"""The markdown report: a pull-request comment with the verdict on its first line."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from gate.report.escape import markdown_inline

ICONS = {"PASS": "✅", "FAIL": "❌", "WARN": "⚠️"}
MAX_FLIPPED_PER_TASK = 5


def points(value: float, signed: bool = False) -> str:
    """A score, delta or budget in points with one decimal (the `pts` filter of every template)."""
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def environment() -> Environment:
    """The jinja2 environment shared by the report templates."""
    env = Environment(
        loader=PackageLoader("gate.report", "templates"),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 (markdown, not HTML: every untrusted string goes through the `md` filter)
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_inline
    env.filters["pts"] = points
    env.globals["icons"] = ICONS
    env.globals["max_flipped"] = MAX_FLIPPED_PER_TASK
    return env


def render_markdown(result: dict[str, Any]) -> str:
    """Render result.json data (as a dict) to markdown."""
    return environment().get_template("report.md.j2").render(r=result)
