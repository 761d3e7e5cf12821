"""The HTML sign-off report: one self-contained page (inline CSS, inline SVG chart), a view over result.json."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from gate.decision import COMPOSITE_NOT_REACHED, NOT_REACHED
from gate.report.chart import report_chart
from gate.report.escape import clean_block, clean_text
from gate.report.markdown import points


def environment() -> Environment:
    """The jinja2 environment of the HTML templates: autoescape on, so no untrusted string reaches the page raw."""
    env = Environment(
        loader=PackageLoader("gate.report", "templates"),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pts"] = points
    env.filters["line"] = clean_text
    env.filters["block"] = clean_block
    env.globals.update(not_reached=NOT_REACHED, composite_not_reached=COMPOSITE_NOT_REACHED)
    return env


def render_html(result: dict[str, Any]) -> str:
    """Render result.json data (as a dict) to a self-contained HTML page."""
    # The SVG comes from matplotlib, which escapes every label it writes; it is the only markup let through.
    chart = Markup(report_chart(result))  # noqa: S704
    return environment().get_template("report.html.j2").render(r=result, chart=chart)
