"""Format-following items: easy questions whose instruction fixes the exact shape of the reply."""

from __future__ import annotations

import random
import re

from gate.core_items._docs import Doc, draw_unique, normalise, shuffled_choices
from gate.core_items.facts import COUNTRIES, FACTS, in_sentence

_LETTERS = "ABCD"

# kind -> (instruction, pattern the whole stripped reply must match; group 1 is the answer).
FORMATS: dict[str, tuple[str, re.Pattern[str]]] = {
    "answer_is": ('Reply in the form "The answer is X." and nothing else.', re.compile(r"The answer is (\S.*)\.")),
    "yes_no": ("Answer with only yes or no.", re.compile(r"(?i:(yes|no))\.?")),
    "letter": ("Answer with only the letter.", re.compile(r"([A-D])\.?")),
    "single_word": ("Answer with a single word.", re.compile(r"([A-Za-z][A-Za-z'-]*)\.?")),
    "number": ("Answer with only the number, no words.", re.compile(r"(\d+)\.?")),
}
# Weights keep the suite's base model (SmolLM2-135M) off the floor: it follows "The answer is X." and yes/no
# often, and a bare letter, word or number almost never; a stronger base follows all five.
_WEIGHTS = {"answer_is": 4, "yes_no": 3, "letter": 1, "single_word": 1, "number": 1}
_ONE_WORD_SUBJECTS = frozenset({"capital", "country", "continent", "element", "planet", "si_unit"})


def _answer_is(rng: random.Random) -> tuple[str, str]:
    fact = rng.choice(FACTS)
    return fact.question, fact.answer


def _yes_no(rng: random.Random) -> tuple[str, str]:
    (country, capital, _), (_, other, _) = rng.sample(COUNTRIES, 2)
    truthful = rng.random() < 0.5
    return f"Is {capital if truthful else other} the capital of {in_sentence(country)}?", "yes" if truthful else "no"


def _letter(rng: random.Random) -> tuple[str, str]:
    fact = rng.choice(FACTS)
    choices, index = shuffled_choices(rng, fact.answer, fact.distractors, 4)
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(_LETTERS, choices, strict=True))
    return f"{fact.question}\n{options}", _LETTERS[index]


def _single_word(rng: random.Random) -> tuple[str, str]:
    fact = rng.choice([f for f in FACTS if f.subject in _ONE_WORD_SUBJECTS and " " not in f.answer])
    return fact.question, fact.answer


def _number(rng: random.Random) -> tuple[str, str]:
    fact = rng.choice([f for f in FACTS if f.subject == "unit"])
    return fact.question, fact.answer


_MAKERS = {
    "answer_is": _answer_is,
    "yes_no": _yes_no,
    "letter": _letter,
    "single_word": _single_word,
    "number": _number,
}


def _item(rng: random.Random) -> Doc:
    kind = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    question, answer = _MAKERS[kind](rng)
    return {"kind": kind, "prompt": f"{question}\n{FORMATS[kind][0]}", "answer": answer}


def format_gen(rng: random.Random, n: int) -> list[Doc]:
    """Questions with a strict answer format, deduplicated by prompt."""
    return draw_unique(rng, n, _item, lambda d: d["prompt"])


def score_format(doc: Doc, response: str) -> dict[str, int]:
    """`follows`: the whole reply has the required shape; `exact_match`: it also gives the right answer."""
    shaped = FORMATS[doc["kind"]][1].fullmatch(response.strip())
    correct = shaped is not None and normalise(shaped.group(1)) == normalise(doc["answer"])
    return {"follows": int(shaped is not None), "exact_match": int(correct)}
