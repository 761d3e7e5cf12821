"""lm-eval hooks for the `code` suite: HumanEval's program (prompt + completion + tests) run by gate.sandbox."""

from __future__ import annotations

from typing import Any

from gate.sandbox import run_program


def build_predictions(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """lm-eval's humaneval filter: each completion appended to its prompt (tasks/humaneval/utils.py)."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def pass_at_1(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """1 when the greedy program passes the problem's tests in the sandbox (lm-eval's check: `check(entry_point)`)."""
    program = f"{results[0]}\n\n{doc['test']}\ncheck({doc['entry_point']})\n"
    return {"pass@1": int(run_program(program).passed)}
