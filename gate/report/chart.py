"""The reports' chart, drawn with matplotlib as inline SVG: scores, and each delta's interval against its budget.

A view over result.json: every number plotted is read from it, none is recomputed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from gate.report.escape import clean_text

OUTCOME_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "WARN": "#9a6700"}
BASE_COLOUR, CKPT_COLOUR, BUDGET_COLOUR = "#8c959f", "#0969da", "#cf222e"
SERIES_STYLES = (
    ("#0969da", "o"), ("#8250df", "s"), ("#bf8700", "D"), ("#1b7c83", "^"), ("#cf222e", "v"), ("#57606a", "P"),
)
BAND_COLOUR = "#f6f8fa"
# The trajectory's budget and first-FAIL lines: a lighter red than a FAIL point, so the two never read as one.
TRAJECTORY_LINE_COLOUR = "#ff8182"
ROW_INCHES, WIDTH_INCHES = 0.42, 11.0
_SVG_METADATA = {"Title": "gate: scores and deltas against budgets", "Date": None, "Creator": None,
                 "Format": None, "Type": None}


@dataclass(frozen=True)
class Series:
    """One checkpoint's deltas on the chart's rows (None where it has no such task)."""

    name: str
    rows: Sequence[dict[str, Any] | None]


def chart_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Tasks grouped by capability (not those the gate never reached), then the composite (a delta, no scores)."""
    reached = [task for task in result["tasks"] if task.get("reached", True)]
    rows = sorted(reached, key=lambda task: (task["capability"], task["id"]))
    if result["composite"] is not None and result["composite"].get("reached", True):
        rows.append({**result["composite"], "id": "composite", "capability": "all tasks"})
    return rows


def shared_rows(results: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any] | None]]]:
    """The rows of one chart over several results (every task, and the composite, that any of them reached: a
    gate that FAILed early leaves out tasks another reached), and each result's entry per row (None: not reached)."""
    by_result = [{row["id"]: row for row in chart_rows(result)} for result in results]
    first: dict[str, dict[str, Any]] = {}
    for entries in by_result:
        for task_id, row in entries.items():
            first.setdefault(task_id, row)
    composite = first.pop("composite", None)
    rows = sorted(first.values(), key=lambda row: (row["capability"], row["id"])) + ([composite] if composite else [])
    return rows, [[entries.get(row["id"]) for row in rows] for entries in by_result]


def _label(row: dict[str, Any]) -> str:
    return f"{clean_text(str(row['capability']), 24)} · {clean_text(str(row['id']), 32)}"


def _shade_capabilities(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Alternate a light band behind each run of rows that share a capability."""
    start, shaded = 0, False
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["capability"] != rows[start]["capability"]:
            if shaded:
                ax.axhspan(start - 0.5, i - 0.5, color=BAND_COLOUR, zorder=0)
            start, shaded = i, not shaded


def _delta_panel(ax: Any, rows: Sequence[dict[str, Any]], series: Sequence[Series], by_outcome: bool) -> None:
    """Each delta as a point with its interval as a whisker, the budget as a red tick at -B, zero dashed."""
    _shade_capabilities(ax, rows)
    ax.axvline(0, color="#57606a", linestyle="--", linewidth=0.8, zorder=1)
    spread = 0.17 if len(series) == 2 else 0.3
    offsets = [0.0] if len(series) == 1 else [-spread + 2 * spread * i / (len(series) - 1) for i in range(len(series))]
    limits = [0.0]
    for i, row in enumerate(rows):
        ax.vlines(-row["budget"], i - 0.42, i + 0.42, color=BUDGET_COLOUR, linewidth=2.2, zorder=2)
        limits.append(-row["budget"])
    for (colour, marker), offset, one in zip(SERIES_STYLES, offsets, series, strict=False):
        for i, entry in enumerate(one.rows):
            if entry is None:
                continue
            shade = OUTCOME_COLOURS.get(entry["outcome"], "#24292f") if by_outcome else colour
            ax.hlines(i + offset, entry["lower"], entry["upper"], color=shade, linewidth=2.0, zorder=3)
            ax.plot(entry["delta"], i + offset, marker=marker, color=shade, markersize=6, zorder=4)
            limits += [entry["lower"], entry["upper"]]
    span = max(limits) - min(limits) or 1.0
    ax.set_xlim(max(min(limits) - 0.06 * span, -100.0), min(max(limits) + 0.06 * span, 100.0))
    ax.set_xlabel("Δ checkpoint − base (points), interval as whisker; red tick: −budget")
    ax.set_yticks(range(len(rows)), [_label(row) for row in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(axis="x", color="#d0d7de", linewidth=0.5)


def _scores_panel(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Base and checkpoint score per task as paired horizontal bars."""
    _shade_capabilities(ax, rows)
    for i, row in enumerate(rows):
        if "base_score" not in row:
            ax.text(2, i, "weighted mean of the task deltas", va="center", color="#57606a", style="italic")
            continue
        ax.barh(i - 0.19, row["base_score"], height=0.36, color=BASE_COLOUR, zorder=2)
        ax.barh(i + 0.19, row["ckpt_score"], height=0.36, color=CKPT_COLOUR, zorder=2)
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (%)")
    ax.set_yticks(range(len(rows)), [_label(row) for row in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(axis="x", color="#d0d7de", linewidth=0.5)


def _legend_handles(series: Sequence[Series] | None) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    budget = Line2D([], [], color=BUDGET_COLOUR, linewidth=2.2, label="−budget")
    if series is None:
        return [
            Patch(color=BASE_COLOUR, label="base"), Patch(color=CKPT_COLOUR, label="checkpoint"), budget,
            *(Line2D([], [], color=c, marker="o", label=f"Δ {name}") for name, c in OUTCOME_COLOURS.items()),
        ]
    styles = zip(SERIES_STYLES, series, strict=False)
    return [budget, *(Line2D([], [], color=c, marker=m, label=one.name) for (c, m), one in styles)]


def _style() -> AbstractContextManager[None]:
    import matplotlib

    # Text as glyph paths (no font needed to view it), no mathtext from `$` in task names, and a fixed salt
    # for the SVG ids: the same result.json always gives the same bytes.
    return matplotlib.rc_context(
        {"svg.fonttype": "path", "svg.hashsalt": "gate", "text.parse_math": False, "font.size": 9}
    )


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def report_chart(result: dict[str, Any]) -> str:
    """The sign-off chart of one result: scores on the left, deltas against budgets on the right."""
    from matplotlib.figure import Figure

    rows = chart_rows(result)
    with _style():
        figure = Figure(figsize=(WIDTH_INCHES, ROW_INCHES * len(rows) + 1.6), layout="constrained")
        scores, deltas = figure.subplots(1, 2, sharey=True, width_ratios=(2, 3))
        _scores_panel(scores, rows)
        _delta_panel(deltas, rows, [Series("checkpoint", rows)], by_outcome=True)
        figure.legend(handles=_legend_handles(None), loc="outside lower center", ncol=6, frameon=False)
        return _svg(figure)


def compare_chart(rows: Sequence[dict[str, Any]], series: Sequence[Series]) -> str:
    """Several checkpoints' deltas on shared rows (tasks and composite), each row with its budget."""
    from matplotlib.figure import Figure

    with _style():
        figure = Figure(figsize=(WIDTH_INCHES, ROW_INCHES * 1.4 * len(rows) + 1.6), layout="constrained")
        _delta_panel(figure.subplots(), rows, series, by_outcome=False)
        figure.legend(handles=_legend_handles(series), loc="outside lower center", ncol=3, frameon=False)
        return _svg(figure)


def _trajectory_panel(
    ax: Any, title: str, points: Sequence[tuple[int, dict[str, Any]]], first_fail: int | None
) -> None:
    """One series' delta against the step: interval as a whisker, the budget as a red line at -B, zero dashed."""
    ax.axhline(0, color="#57606a", linestyle="--", linewidth=0.8, zorder=1)
    budget = points[0][1]["budget"]
    ax.axhline(-budget, color=TRAJECTORY_LINE_COLOUR, linewidth=1.8, zorder=2)
    steps = [step for step, _ in points]
    ax.plot(steps, [entry["delta"] for _, entry in points], color="#57606a", linewidth=0.8, zorder=2)
    for step, entry in points:
        colour = OUTCOME_COLOURS.get(entry["outcome"], "#24292f")
        ax.vlines(step, entry["lower"], entry["upper"], color=colour, linewidth=2.0, zorder=3)
        ax.plot(step, entry["delta"], marker="o", color=colour, markersize=5, zorder=4)
    if first_fail is not None:
        ax.axvline(first_fail, color=TRAJECTORY_LINE_COLOUR, linestyle=":", linewidth=1.0, zorder=1)
    lows = [max(entry["lower"], -100.0) for _, entry in points] + [-budget, 0.0]
    highs = [min(entry["upper"], 100.0) for _, entry in points] + [0.0]
    span = max(highs) - min(lows) or 1.0
    ax.set_ylim(min(lows) - 0.08 * span, max(highs) + 0.08 * span)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel("step")
    ax.set_ylabel("Δ (points)")
    ax.grid(color="#d0d7de", linewidth=0.5)


def trajectory_chart(
    panels: Sequence[tuple[str, Sequence[tuple[int, dict[str, Any]]], int | None]], columns: int = 3
) -> str:
    """Small multiples, one per task and the composite: (title, [(step, delta record)], first FAIL step)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows = -(-len(panels) // columns)
    with _style():
        figure = Figure(figsize=(WIDTH_INCHES, 2.6 * rows + 0.8), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, (title, points, first_fail) in zip(axes, panels, strict=False):
            _trajectory_panel(ax, clean_text(title, 60), points, first_fail)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        handles = [
            Line2D([], [], color=TRAJECTORY_LINE_COLOUR, linewidth=1.8, label="−budget"),
            Line2D([], [], color=TRAJECTORY_LINE_COLOUR, linestyle=":", label="first FAIL"),
            *(Line2D([], [], color=c, marker="o", label=f"Δ {name}") for name, c in OUTCOME_COLOURS.items()),
        ]
        figure.legend(handles=handles, loc="outside lower center", ncol=5, frameon=False)
        return _svg(figure)
