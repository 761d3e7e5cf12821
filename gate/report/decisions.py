"""Each task's decision (and the composite's) as one line of plain text: shared by annotations and JUnit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gate.decision import COMPOSITE, COMPOSITE_NOT_REACHED, NOT_REACHED, Outcome

_EXPLAINED = {
    Outcome.FAIL.value: "regression beyond budget",
    Outcome.WARN.value: "undecided (neither a regression beyond budget nor its absence is shown)",
    Outcome.PASS.value: "no regression beyond budget",
}


@dataclass(frozen=True)
class Decision:
    """One task's (or the composite's) outcome and its evidence in one line."""

    name: str
    outcome: str
    line: str


def _line(name: str, entry: Mapping[str, Any], waived: bool) -> str:
    if not entry.get("reached", True):
        return f"{name}: {COMPOSITE_NOT_REACHED if name == COMPOSITE else NOT_REACHED}"
    items = f", {entry['n']} items" if "n" in entry else ""
    return (
        f"{name}: {_EXPLAINED[entry['outcome']]}: Δ {entry['delta']:+.1f} pts, "
        f"CI [{entry['lower']:+.1f}, {entry['upper']:+.1f}], {'waived ' if waived else ''}budget "
        f"−{entry['budget']:.1f} pts{items}"
    )


def decisions(result: Mapping[str, Any]) -> list[Decision]:
    """The decisions in a result.json mapping: its tasks in order, then the composite if it has one."""
    entries = [(task["id"], task) for task in result["tasks"]]
    if result.get("composite"):
        entries.append((COMPOSITE, result["composite"]))
    waived = {waiver["task"] for waiver in result.get("waivers", [])}
    return [Decision(name, entry["outcome"], _line(name, entry, name in waived)) for name, entry in entries]


def regressed(result: Mapping[str, Any]) -> list[str]:
    """Names of the tasks (and `composite`) whose regression beyond budget is demonstrated."""
    return [d.name for d in decisions(result) if d.outcome == Outcome.FAIL.value]
