"""Reasoning items: ordering, elimination and number-sequence puzzles, as multiple choice.

Each item is a context that the right choice completes ("... So the ball is in" -> "the red box"): a 135M model
scores at chance on the same puzzles asked as "Question: ... Answer:", but well above it in this form.
"""

from __future__ import annotations

import itertools
import random

from gate.core_items._docs import Doc, draw_unique, shuffled_choices

_PEOPLE = (
    "Alice",
    "Bob",
    "Chloe",
    "Daniel",
    "Ella",
    "Felix",
    "Gina",
    "Henry",
    "Ivy",
    "James",
    "Kate",
    "Leo",
    "Mia",
    "Noah",
)

# (more, less, most, least): "X is <more> than Y" ranks X above Y.
_SCALES: tuple[tuple[str, str, str, str], ...] = (
    ("taller", "shorter", "tallest", "shortest"),
    ("older", "younger", "oldest", "youngest"),
    ("faster", "slower", "fastest", "slowest"),
    ("heavier", "lighter", "heaviest", "lightest"),
)

_BOX_COLOURS = ("red", "blue", "green", "yellow", "white", "black")


def _premises(rng: random.Random, ranking: list[str], scale: tuple[str, str, str, str]) -> str:
    """Adjacent comparisons of a ranking (highest first), each stated either way round, in shuffled order."""
    more, less, _, _ = scale
    sentences = [
        f"{high} is {more} than {low}." if rng.random() < 0.5 else f"{low} is {less} than {high}."
        for high, low in itertools.pairwise(ranking)
    ]
    rng.shuffle(sentences)
    return " ".join(sentences)


def _ranking(rng: random.Random) -> Doc:
    ranking = rng.sample(_PEOPLE, 3)
    scale = rng.choice(_SCALES)
    ask_top = rng.random() < 0.5
    answer = ranking[0] if ask_top else ranking[-1]
    choices, index = shuffled_choices(rng, answer, ranking, 3)
    context = f"{_premises(rng, ranking, scale)} So the {scale[2 if ask_top else 3]} of the three is"
    return {"kind": "ranking", "context": context, "choices": choices, "answer": index}


def _elimination(rng: random.Random) -> Doc:
    colours = rng.sample(_BOX_COLOURS, 3)
    answer = rng.choice(colours)
    first, second = rng.sample([c for c in colours if c != answer], 2)
    context = (
        f"The ball is in the {colours[0]} box, the {colours[1]} box or the {colours[2]} box. "
        f"It is not in the {first} box, and it is not in the {second} box. So the ball is in"
    )
    choices, index = shuffled_choices(rng, f"the {answer} box", [f"the {c} box" for c in colours], 3)
    return {"kind": "elimination", "context": context, "choices": choices, "answer": index}


def _sequence(rng: random.Random) -> Doc:
    start, step = rng.randint(1, 20), rng.randint(2, 5)
    terms = [start + i * step for i in range(5)]
    answer = terms[-1]
    distractors = [str(answer + d) for d in (-step, 1, -1, step)]
    choices, index = shuffled_choices(rng, str(answer), distractors, 4)
    context = f"Continue the pattern: {', '.join(map(str, terms[:-1]))},"
    return {"kind": "sequence", "context": context, "choices": choices, "answer": index}


# Left out: two-person comparisons ("of A and B, the taller one is"), where the base model scores at chance, and
# day-of-week steps, which give too few distinct items.
_KINDS = (_ranking, _elimination, _sequence)


def logic_mc(rng: random.Random, n: int) -> list[Doc]:
    """Puzzles with exactly one right completion, deduplicated by context."""
    return draw_unique(rng, n, lambda r: r.choice(_KINDS)(r), lambda d: d["context"])
