"""lm-eval hooks for the `core` suite: thin adapters over the scorers in gate.core_items."""

from __future__ import annotations

from typing import Any

from gate.core_items.arithmetic import score_math
from gate.core_items.facts import score_facts_gen
from gate.core_items.formatting import score_format
from gate.core_items.instructions import score_instructions


def process_facts_gen(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """Per-item `correct` for core_facts_gen."""
    return {"correct": score_facts_gen(doc, results[0])}


def process_math(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """Per-item `exact_match` for core_math_gen (the reply's last number)."""
    return {"exact_match": score_math(doc, results[0])}


def process_instructions(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """Per-item `follows` for core_instructions_gen."""
    return {"follows": score_instructions(doc, results[0])}


def process_format(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """Per-item `follows` (shape) and `exact_match` (shape and answer) for core_format_gen."""
    return score_format(doc, results[0])
