"""Shared helpers for the item generators: unique drawing, choice building, answer normalisation."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from typing import Any

Doc = dict[str, Any]

# Enough retries that a generator only gives up when its space of distinct items is nearly exhausted.
_ATTEMPTS_PER_ITEM = 50


def draw_unique(
    rng: random.Random, n: int, make: Callable[[random.Random], Doc], key: Callable[[Doc], Hashable]
) -> list[Doc]:
    """Call `make` until `n` docs with distinct keys are drawn; raise ValueError if the space runs out."""
    seen: set[Hashable] = set()
    docs: list[Doc] = []
    for _ in range(_ATTEMPTS_PER_ITEM * n + 1000):
        if len(docs) == n:
            break
        doc = make(rng)
        k = key(doc)
        if k not in seen:
            seen.add(k)
            docs.append(doc)
    if len(docs) < n:
        raise ValueError(f"only {len(docs)} distinct items could be generated, {n} were requested")
    return docs


def shuffled_choices(
    rng: random.Random, answer: str, distractors: Sequence[str], k: int, include: Sequence[str] = ()
) -> tuple[list[str], int]:
    """Return `k` shuffled choices (the answer, `include`, then random distractors) and the answer's index."""
    pool = sorted({d for d in distractors if d != answer and d not in include})
    choices = [answer, *include, *rng.sample(pool, k - 1 - len(include))]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def normalise(text: str) -> str:
    """Lowercase, drop accents, thousands separators and punctuation, collapse whitespace (for comparing answers)."""
    decomposed = unicodedata.normalize("NFKD", re.sub(r"(?<=\d),(?=\d{3})", "", text))
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_text.lower()).split())


def contains_phrase(response: str, phrase: str) -> bool:
    """Whether `phrase` occurs in `response` as whole words, after normalisation."""
    return f" {normalise(phrase)} " in f" {normalise(response)} "
