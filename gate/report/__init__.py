"""Views over result.json: markdown, self-contained HTML, and the comparison of two results."""

from typing import Literal

from gate.report.html import render_html
from gate.report.markdown import render_markdown

ReportFormat = Literal["md", "html"]

__all__ = ["ReportFormat", "render_html", "render_markdown"]
