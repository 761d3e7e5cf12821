"""Math items: small-number arithmetic and one-step word problems with exact integer answers."""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable

from gate.core_items._docs import Doc, draw_unique

_SUFFIX = "Answer with just the number."
_OPS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_OP_WORDS = {"+": "plus", "-": "minus", "*": "times"}

_NAMES = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Emma",
    "Frank",
    "Grace",
    "Hugo",
    "Iris",
    "Jack",
    "Lena",
    "Omar",
    "Rosa",
    "Sam",
)
_ITEMS = ("apples", "pencils", "marbles", "stickers", "books", "cookies", "coins", "stamps", "shells", "cards")

# (template, operator): {a} and {b} are the operands, in this order. No question ends on a number: answers are read
# as the reply's last number, and a reply that restates the question ("... 42 pages in 7 days") would lose.
_WORD_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("{name} has {a} {items}. {name} buys {b} more {items}. How many {items} does {name} have now?", "+"),
    ("{name} has {a} {items} and {friend} has {b} {items}. How many {items} do they have together?", "+"),
    ("{name} had {a} {items} and gave {b} of them to {friend}. How many {items} does {name} have left?", "-"),
    ("A box holds {a} {items}. {name} takes {b} of them out. How many {items} are still in the box?", "-"),
    ("There are {a} bags with {b} {items} in each bag. How many {items} are there in total?", "*"),
    ("{name} buys {a} packs of {items}. Each pack has {b} {items}. How many {items} does {name} buy?", "*"),
)


# Small numbers: the 135M base model gets about half of single-digit sums right and few two-digit ones.
_RANGES: dict[str, tuple[range, Callable[[int], range]]] = {
    "+": (range(1, 13), lambda a: range(1, 13)),
    "-": (range(3, 13), lambda a: range(1, a)),
    "*": (range(2, 6), lambda a: range(2, 7)),
}
_PAIRS = {op: tuple((a, b) for a in firsts for b in seconds(a)) for op, (firsts, seconds) in _RANGES.items()}
_SUMS = tuple((a, op, b) for op, pairs in _PAIRS.items() for a, b in pairs)


def _doc(kind: str, question: str, a: int, op: str, b: int) -> Doc:
    return {"kind": kind, "prompt": f"{question} {_SUFFIX}", "expression": f"{a} {op} {b}", "answer": _OPS[op](a, b)}


def _word_problem(rng: random.Random) -> Doc:
    template, op = rng.choice(_WORD_PROBLEMS)
    a, b = rng.choice(_PAIRS[op])
    name, friend = rng.sample(_NAMES, 2)
    question = template.format(name=name, friend=friend, items=rng.choice(_ITEMS), a=a, b=b)
    return _doc("word_problem", question, a, op, b)


def math_gen(rng: random.Random, n: int) -> list[Doc]:
    """Two bare sums to one word problem (while distinct sums last), shuffled; no duplicates.

    The base model solves about a fifth of the word problems: more of them would push the task to its floor.
    """
    sums = rng.sample(_SUMS, min(len(_SUMS), round(n * 2 / 3)))
    docs = [_doc("arithmetic", f"What is {a} {_OP_WORDS[op]} {b}?", a, op, b) for a, op, b in sums]
    docs += draw_unique(rng, n - len(docs), _word_problem, lambda d: d["prompt"])
    rng.shuffle(docs)
    return docs


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def last_number(response: str) -> float | None:
    """The last number written in the response (thousands separators allowed), or None."""
    found = _NUMBER.findall(response)
    return float(found[-1].replace(",", "")) if found else None


def score_math(doc: Doc, response: str) -> int:
    """1 if the last number in the response equals the answer, else 0."""
    return int(last_number(response) == doc["answer"])
