"""Views over result.json: markdown now, more formats in their own modules."""

from gate.report.markdown import render_markdown

__all__ = ["render_markdown"]
