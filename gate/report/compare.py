"""Two checkpoints' results side by side, and which one to ship: a view over two result.json files.

Both must come from the same suite (same fingerprint: same tasks, configs and sampled items), or the deltas
would measure different things. The choice: never a checkpoint with a FAIL; a PASS (non-inferiority shown on
every task) over a WARN (not shown somewhere); then the better composite delta.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import Markup

from gate.errors import BadInputError
from gate.report import html, markdown
from gate.report.chart import Series, compare_chart, shared_rows
from gate.report.escape import clean_text

Choice = Literal["A", "B", "either", "neither"]
# A PASS beats a WARN, which beats a FAIL; only then does the composite delta count.
_RANK = {"PASS": 2, "WARN": 1, "FAIL": 0}
# Composite deltas within this many points print the same (one decimal): no basis to prefer either.
TIE_POINTS = 0.05


@dataclass(frozen=True)
class Side:
    """One of the two results, with the name it goes by in the comparison."""

    name: Literal["A", "B"]
    source: str
    result: dict[str, Any]

    def failed(self) -> list[str]:
        """What failed: task ids, and 'composite' when the composite did."""
        failed = [f"{t['id']} ({t['delta']:+.1f} pts, budget {t['budget']:g})"
                  for t in self.result["tasks"] if t["outcome"] == "FAIL"]
        composite = self.result["composite"]
        if composite is not None and composite["outcome"] == "FAIL":
            failed.append(f"the composite ({composite['delta']:+.1f} pts, budget {composite['budget']:g})")
        return failed

    def composite_delta(self) -> float | None:
        """The composite delta in points, None when the composite was disabled or not reached."""
        composite = self.result["composite"]
        return None if composite is None or composite.get("delta") is None else float(composite["delta"])


@dataclass(frozen=True)
class Comparison:
    """Both results, their rows matched by task id, the choice with its reason, and warnings on comparability."""

    a: Side
    b: Side
    rows: list[tuple[dict[str, Any], dict[str, Any]]]
    choice: Choice
    reason: str
    warnings: list[str]


def _suite_difference(a: Side, b: Side) -> str:
    sa, sb = a.result["suite"], b.result["suite"]
    tasks_a = {t["id"]: t["fingerprint"] for t in a.result["tasks"]}
    tasks_b = {t["id"]: t["fingerprint"] for t in b.result["tasks"]}
    differ = [f"{task} (only in {'A' if task in tasks_a else 'B'})" for task in sorted(tasks_a.keys() ^ tasks_b.keys())]
    differ += [f"{task} (other items or config)" for task in sorted(tasks_a.keys() & tasks_b.keys())
               if tasks_a[task] != tasks_b[task]]
    return (
        f"A ({a.source}) was scored on suite {sa['name']} v{sa['version']} ({sa['fingerprint']}), "
        f"B ({b.source}) on {sb['name']} v{sb['version']} ({sb['fingerprint']}); "
        f"tasks that differ: {', '.join(differ) or 'none (the suite spec or composite budget differs)'}. "
        "Rerun both with the same suite, seed and item caps"
    )


def _warnings(a: Side, b: Side) -> list[str]:
    warnings = []
    if a.result["base"]["fingerprint"] != b.result["base"]["fingerprint"]:
        warnings.append(
            f"different bases: A against {a.result['base']['description']} ({a.result['base']['fingerprint']}), "
            f"B against {b.result['base']['description']} ({b.result['base']['fingerprint']}); "
            "each delta is against its own base"
        )
    for key in ("policy", "settings"):
        if a.result[key] != b.result[key]:
            keys = sorted(k for k in a.result[key].keys() | b.result[key].keys()
                          if a.result[key].get(k) != b.result[key].get(k))
            warnings.append(f"different {key}: {', '.join(keys)}")
    return warnings


def _choose(a: Side, b: Side) -> tuple[Choice, str]:
    failed = {side.name: side.failed() for side in (a, b)}
    if failed["A"] and failed["B"]:
        return "neither", f"both fail: A on {', '.join(failed['A'])}; B on {', '.join(failed['B'])}"
    rank_a, rank_b = _RANK[a.result["verdict"]], _RANK[b.result["verdict"]]
    if rank_a != rank_b:
        best, other = (a, b) if rank_a > rank_b else (b, a)
        best_did = {
            "PASS": "passes (no regression beyond any budget, demonstrated)",
            "WARN": "has no FAIL (WARN: undecided on some task)",
        }[best.result["verdict"]]
        other_did = {
            "FAIL": f"fails on {', '.join(failed[other.name])}",
            "WARN": "is undecided (WARN): staying within budget could not be shown on every task",
        }[other.result["verdict"]]
        return best.name, f"{best.name} {best_did}; {other.name} {other_did}"
    delta_a, delta_b = a.composite_delta(), b.composite_delta()
    both = f"both {a.result['verdict']}"
    if delta_a is None or delta_b is None:
        return "either", f"{both} and the composite is disabled, so no single number ranks them"
    if abs(delta_a - delta_b) < TIE_POINTS:
        return "either", f"{both} with the same composite delta ({delta_a:+.1f} pts)"
    best = a if delta_a > delta_b else b
    return best.name, (
        f"{both}; {best.name} has the better composite delta ({max(delta_a, delta_b):+.1f} pts "
        f"vs {min(delta_a, delta_b):+.1f} pts; point estimates, each with its interval in the table)"
    )


def compare_results(a: dict[str, Any], b: dict[str, Any], sources: tuple[str, str] = ("A", "B")) -> Comparison:
    """Match two results task by task and choose one; BadInputError if they come from different suites."""
    side_a, side_b = Side("A", sources[0], a), Side("B", sources[1], b)
    if a["suite"]["fingerprint"] != b["suite"]["fingerprint"]:
        raise BadInputError(f"cannot compare: {_suite_difference(side_a, side_b)}")
    by_id = {t["id"]: t for t in b["tasks"]}
    rows = [(t, by_id[t["id"]]) for t in a["tasks"]]
    choice, reason = _choose(side_a, side_b)
    return Comparison(side_a, side_b, rows, choice, reason, _warnings(side_a, side_b))


def _side(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("outcome", "delta", "lower", "upper", "budget", "n_items")
    return {key: task.get(key) for key in keys} | {"reached": task.get("reached", True)}


def comparison_data(comparison: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON-ready data: the choice, why, warnings, and each task on both sides."""
    sides: dict[str, Any] = {side.name: {"source": side.source, "verdict": side.result["verdict"],
                         "checkpoint": side.result["checkpoint"]["reference"],
                         "composite_delta": side.composite_delta()} for side in (comparison.a, comparison.b)}
    return {
        "choice": comparison.choice, "reason": comparison.reason, "warnings": comparison.warnings, **sides,
        "tasks": [{"id": a["id"], "A": _side(a), "B": _side(b)} for a, b in comparison.rows],
    }


def render_comparison(comparison: Comparison, fmt: Literal["md", "html", "json"]) -> str:
    """The comparison as a markdown comment, a self-contained HTML page, or JSON."""
    if fmt == "json":
        return json.dumps(comparison_data(comparison), indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        return markdown.environment().get_template("compare.md.j2").render(c=comparison)
    sides = (comparison.a, comparison.b)
    rows, entries = shared_rows([side.result for side in sides])
    series = [
        Series(f"{side.name}: {clean_text(side.result['checkpoint']['description'], 60)}", side_entries)
        for side, side_entries in zip(sides, entries, strict=True)
    ]
    # matplotlib's SVG escapes every label it writes; it is the only markup let through unescaped.
    chart = Markup(compare_chart(rows, series))  # noqa: S704
    return html.environment().get_template("compare.html.j2").render(c=comparison, chart=chart)
