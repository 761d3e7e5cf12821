"""Any number of candidates against one base: a capabilities x candidates table, and which candidate to ship.

A view over result.json files of the same suite (same fingerprint). The choice, as for two: never a candidate with a
FAIL; a PASS over a WARN; then the best composite delta (a point estimate; its interval is in the table).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import Markup

from gate.errors import BadInputError
from gate.report import html, markdown
from gate.report.chart import Series, compare_chart, shared_rows
from gate.report.compare import _RANK, TIE_POINTS, Side
from gate.report.escape import clean_text


@dataclass(frozen=True)
class Candidate:
    """One result in the comparison, by the letter it goes by (A, B, C, ...)."""

    name: str
    source: str
    result: dict[str, Any]

    def failed(self) -> list[str]:
        """The tasks (and the composite) it FAILs on, with delta and budget."""
        return Side("A", self.source, self.result).failed()

    def composite_delta(self) -> float | None:
        """The composite delta in points, None when the composite was disabled or not reached."""
        return Side("A", self.source, self.result).composite_delta()


@dataclass(frozen=True)
class Candidates:
    """The results, their task rows matched by id, the recommended candidate(s) with the reason, and warnings."""

    sides: list[Candidate]
    rows: list[list[dict[str, Any]]]  # per task: one task record per candidate, in the order given
    choice: list[str]  # the names of the recommended candidates (several when tied), empty when every one FAILs
    reason: str
    warnings: list[str]


def _choose(sides: list[Candidate]) -> tuple[list[str], str]:
    unfailed = [side for side in sides if side.result["verdict"] != "FAIL"]
    failed = "; ".join(f"{side.name} fails on {', '.join(side.failed())}" for side in sides if side not in unfailed)
    if not unfailed:
        return [], f"every candidate fails: {failed}"
    best_rank = max(_RANK[side.result["verdict"]] for side in unfailed)
    top = [side for side in unfailed if _RANK[side.result["verdict"]] == best_rank]
    verdict = top[0].result["verdict"]
    said = "passes every budget" if verdict == "PASS" else "has no FAIL but is undecided (WARN) somewhere"
    others = f" ({failed})" if failed else ""
    deltas = {side.name: side.composite_delta() for side in top}
    if len(top) == 1 or any(delta is None for delta in deltas.values()):
        names = [side.name for side in top]
        return names, f"{', '.join(names)} {said}{others}"
    best = max(delta for delta in deltas.values() if delta is not None)
    chosen = [name for name, delta in deltas.items() if delta is not None and best - delta < TIE_POINTS]
    rest = ", ".join(f"{name} {delta:+.1f}" for name, delta in deltas.items() if name not in chosen)
    return chosen, (
        f"{', '.join(chosen)} {said} with the best composite delta ({best:+.1f} pts, a point estimate; "
        f"{rest or 'no other'} among the same verdict){others}"
    )


def compare_candidates(results: list[dict[str, Any]], sources: list[str]) -> Candidates:
    """Match the results task by task and choose; BadInputError unless they share one suite fingerprint."""
    names = [string.ascii_uppercase[i] if len(results) <= 26 else str(i + 1) for i in range(len(results))]
    sides = [Candidate(name, source, result) for name, source, result in zip(names, sources, results, strict=True)]
    fingerprints = {side.result["suite"]["fingerprint"] for side in sides}
    if len(fingerprints) > 1:
        listed = ", ".join(f"{side.name} ({side.source}): {side.result['suite']['fingerprint']}" for side in sides)
        raise BadInputError(
            f"cannot compare: the results come from different suites or item samples ({listed}); "
            "rerun them with the same suite, seed and item caps"
        )
    by_id = [{task["id"]: task for task in side.result["tasks"]} for side in sides]
    rows = [[tasks[task["id"]] for tasks in by_id] for task in sides[0].result["tasks"]]
    bases = {side.result["base"]["fingerprint"] for side in sides}
    warnings = ["different bases: each delta is against its own base"] if len(bases) > 1 else []
    choice, reason = _choose(sides)
    return Candidates(sides, rows, choice, reason, warnings)


def render_candidates(candidates: Candidates, fmt: Literal["md", "html", "json"]) -> str:
    """The comparison as a markdown comment, a self-contained HTML page or JSON for scripts."""
    if fmt == "json":
        sides = [{"name": side.name, "source": side.source, "verdict": side.result["verdict"]}
                 for side in candidates.sides]
        return json.dumps({"candidates": sides, "choice": candidates.choice, "reason": candidates.reason,
                           "warnings": candidates.warnings, "rows": candidates.rows}, indent=2, ensure_ascii=False)
    if fmt == "md":
        return markdown.environment().get_template("candidates.md.j2").render(c=candidates)
    rows, entries = shared_rows([side.result for side in candidates.sides])
    series = [
        Series(f"{side.name}: {clean_text(side.result['checkpoint']['description'], 60)}", side_entries)
        for side, side_entries in zip(candidates.sides, entries, strict=True)
    ]
    # matplotlib's SVG escapes every label it writes; it is the only markup let through unescaped.
    chart = Markup(compare_chart(rows, series))  # noqa: S704
    return html.environment().get_template("candidates.html.j2").render(c=candidates, chart=chart)
