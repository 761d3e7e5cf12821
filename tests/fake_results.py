"""result.json data for report tests: one real run on the tiny models, then variants with chosen outcomes.

Starting from a real run keeps the variants in step with the result schema and the report templates as they
grow; only the tasks, the composite and the verdict are rewritten.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gate.api import run

_REAL: list[dict[str, Any]] = []


def real_result(ckpt: Path, base: Path, suite: Path) -> dict[str, Any]:
    """The result of gating `ckpt` against `base` on the tiny suite: computed once per session, copied per call."""
    if not _REAL:
        _REAL.append(run(str(ckpt), base=str(base), suite=str(suite), out_dir=None,
                         data_dir=suite.parent / "mirror").to_dict())
    return copy.deepcopy(_REAL[0])


def with_outcomes(result: dict[str, Any], outcomes: Sequence[str], *, composite: str | None = None,
                  flipped: int = 0, text: str = "What colour is this object?") -> dict[str, Any]:
    """The result with one task per outcome (task_0, task_1, ...), each with `flipped` examples of `text`."""
    template = result["tasks"][0]
    example = template["flipped"][0] if template["flipped"] else {"doc_id": 0, "target": "red"}
    tasks = []
    for i, outcome in enumerate(outcomes):
        examples = [{**example, "doc_id": j, "prompt": f"{text} {j}", "base_answer": "red", "ckpt_answer": text}
                    for j in range(flipped)]
        tasks.append({**template, "id": f"task_{i}", "outcome": outcome, "delta": -4.0 - i, "lower": -7.5,
                      "upper": -1.0, "budget": 3.0, "flipped": examples, "right_to_wrong": flipped})
    every = [*outcomes, *([composite] if composite else [])]
    verdict = "FAIL" if "FAIL" in every else "WARN" if "WARN" in every else "PASS"
    changed = {**result, "tasks": tasks, "verdict": verdict, "blocking": verdict == "FAIL",
               "exit_code": int(verdict == "FAIL"), "summary": f"{verdict} on {len(tasks)} tasks"}
    changed["composite"] = {**result["composite"], "outcome": composite} if composite else None
    return changed
