"""The built-in offline suite `core`: items generated from a seed, so they are fresh and never downloaded."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path

from gate.core_items._docs import Doc
from gate.core_items.arithmetic import math_gen
from gate.core_items.facts import facts_gen, facts_mc
from gate.core_items.formatting import format_gen
from gate.core_items.instructions import instructions_gen
from gate.core_items.logic import logic_mc
from gate.core_items.reading import reading_mc
from gate.files import atomic_write_bytes

Generator = Callable[[random.Random, int], list[Doc]]


def _with_ids(task_id: str, make: Generator) -> Generator:
    """Wrap a generator so every doc gets a unique, stable `id` ("<task_id>-0000", ...)."""

    def identified(rng: random.Random, n: int) -> list[Doc]:
        return [{"id": f"{task_id}-{i:04d}", **doc} for i, doc in enumerate(make(rng, n))]

    identified.__doc__ = make.__doc__
    return identified


GENERATORS: dict[str, Generator] = {
    task_id: _with_ids(task_id, make)
    for task_id, make in (
        ("core_facts_mc", facts_mc),
        ("core_facts_gen", facts_gen),
        ("core_math_gen", math_gen),
        ("core_logic_mc", logic_mc),
        ("core_reading_mc", reading_mc),
        ("core_instructions_gen", instructions_gen),
        ("core_format_gen", format_gen),
    )
}

# Pool sizes written when the caller gives none; suites/core/suite.yaml states the same numbers.
DEFAULT_POOL_SIZES: dict[str, int] = {
    "core_facts_mc": 786,
    "core_facts_gen": 668,
    "core_math_gen": 800,
    "core_logic_mc": 1500,
    "core_reading_mc": 1500,
    "core_instructions_gen": 1000,
    "core_format_gen": 1000,
}


def generate(task_id: str, seed: int, n: int) -> list[Doc]:
    """`n` docs of a task for a seed; each task draws from its own stream, independent of the others.

    Raises ValueError naming the task if it cannot produce `n` distinct items.
    """
    rng = random.Random(f"gate-core:{seed}:{task_id}")  # noqa: S311 (test items, not secrets)
    try:
        return GENERATORS[task_id](rng, n)
    except ValueError as exc:
        raise ValueError(f"{task_id}: {exc}") from None


def write_items(directory: Path, seed: int, pool_sizes: Mapping[str, int] | None = None) -> dict[str, Path]:
    """Write `<task_id>.jsonl` for every task into `directory` (atomically) and return the paths by task id.

    The bytes depend only on the seed and the pool sizes (defaults: DEFAULT_POOL_SIZES).
    """
    sizes = {**DEFAULT_POOL_SIZES, **(pool_sizes or {})}
    unknown = sorted(set(sizes) - set(GENERATORS))
    if unknown:
        raise ValueError(f"unknown core task ids {unknown}; known: {sorted(GENERATORS)}")
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for task_id in GENERATORS:
        lines = (
            json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n"
            for doc in generate(task_id, seed, sizes[task_id])
        )
        paths[task_id] = atomic_write_bytes(directory / f"{task_id}.jsonl", "".join(lines).encode())
    return paths


__all__ = ["DEFAULT_POOL_SIZES", "GENERATORS", "generate", "write_items"]
