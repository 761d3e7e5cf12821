"""The sweep reports: a markdown table and a self-contained HTML page over sweep.json (nothing recomputed)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from gate.decision import COMPOSITE
from gate.report import html, markdown
from gate.report.chart import trajectory_chart


def _point(entry: dict[str, Any], key: str) -> dict[str, Any] | None:
    found = entry["composite"] if key == COMPOSITE else entry["tasks"].get(key)
    return found if isinstance(found, dict) else None


def _title(record: dict[str, Any], key: str) -> str:
    return "all tasks · composite" if key == COMPOSITE else f"{record['capabilities'][key]} · {key}"


def _grid(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the table: per series, its title, budget, first FAIL step and each checkpoint's record (or None)."""
    rows = []
    for key in record["series"]:
        cells = [_point(entry, key) for entry in record["checkpoints"]]
        budget = next(cell["budget"] for cell in cells if cell is not None)
        rows.append(
            {
                "key": key,
                "title": _title(record, key),
                "budget": budget,
                "cells": cells,
                "first_fail": record["first_fail"][key],
            }
        )
    return rows


def render_sweep_markdown(record: dict[str, Any]) -> str:
    """sweep.md: the CI outcome first, then deltas per task and checkpoint, first FAILs and the recommendation."""
    template = markdown.environment().get_template("sweep.md.j2")
    return template.render(s=record, rows=_grid(record))


def render_sweep_html(record: dict[str, Any]) -> str:
    """sweep.html: one self-contained page with a small-multiple chart of every delta against the step."""
    panels = []
    for row in _grid(record):
        points = [
            (entry["step"], cell)
            for entry, cell in zip(record["checkpoints"], row["cells"], strict=True)
            if cell is not None and cell.get("reached", True)
        ]
        if points:  # a task no checkpoint's gate reached has nothing to draw; its table row says "not reached"
            panels.append((row["title"], points, row["first_fail"]))
    # matplotlib's SVG escapes every label it writes; it is the only markup let through unescaped.
    chart = Markup(trajectory_chart(panels))  # noqa: S704
    return html.environment().get_template("sweep.html.j2").render(s=record, rows=_grid(record), chart=chart)
