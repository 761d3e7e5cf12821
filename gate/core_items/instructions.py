"""Instruction-following items in the spirit of IFEval: a writing request plus one verifiable constraint."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from gate.core_items._docs import Doc, draw_unique

# (topic as written in a request, a word one would naturally use when writing about it)
TOPICS: tuple[tuple[str, str], ...] = (
    ("the ocean", "water"),
    ("cats", "cat"),
    ("autumn", "leaves"),
    ("coffee", "coffee"),
    ("the moon", "moon"),
    ("rain", "rain"),
    ("books", "book"),
    ("the sun", "sun"),
    ("winter", "snow"),
    ("music", "music"),
    ("dogs", "dog"),
    ("bread", "bread"),
    ("the forest", "trees"),
    ("bicycles", "bike"),
    ("mountains", "mountain"),
    ("gardening", "plants"),
    ("trains", "train"),
    ("chocolate", "chocolate"),
    ("friendship", "friend"),
    ("the beach", "sand"),
)
_KEYWORDS = ("banana", "purple", "Tuesday", "bridge", "guitar", "candle", "window", "river", "clock", "lemon")
_JSON_KEYS = ("name", "summary", "color", "size", "mood", "fact", "rating", "place")
_END_PHRASES = ("That is all.", "Thank you for reading.", "The end.", "Have a nice day!", "Any other questions?")

Params = dict[str, Any]


def _make_max_words(rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    n = rng.choice((10, 12, 15, 20))
    return f"Write a sentence about {topic}. Use at most {n} words.", {"n": n}


def _make_lowercase(_rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    return f"Write two sentences about {topic}. Use only lowercase letters: no capital letters at all.", {}


def _make_uppercase(_rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    return f"Write two sentences about {topic}. Write your whole answer in capital letters.", {}


def _make_json(rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    keys = rng.sample(_JSON_KEYS, 2)
    prompt = (
        f'Describe {topic} as a JSON object with exactly two keys, "{keys[0]}" and "{keys[1]}". '
        "Reply with the JSON object only."
    )
    return prompt, {"keys": keys}


def _make_bullets(rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    n = rng.choice((2, 3, 4))
    prompt = f'Give {n} short facts about {topic} as a list of exactly {n} bullet points, each line starting with "- ".'
    return prompt, {"n": n}


def _make_forbidden(_rng: random.Random, topic: str, word: str) -> tuple[str, Params]:
    return f'Write two sentences about {topic} without using the word "{word}".', {"word": word}


def _make_keyword(rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    keyword = rng.choice(_KEYWORDS)
    return f'Write two sentences about {topic}. Include the word "{keyword}".', {"word": keyword}


def _make_end_phrase(rng: random.Random, topic: str, _word: str) -> tuple[str, Params]:
    phrase = rng.choice(_END_PHRASES)
    return f'Write two sentences about {topic}. End your answer with the exact phrase "{phrase}"', {"phrase": phrase}


def _has_word(text: str, word: str) -> bool:
    """Whole-word, case-insensitive match that also catches the plural."""
    return re.search(rf"\b{re.escape(word)}(?:s|es)?\b", text, re.IGNORECASE) is not None


def _json_object(response: str) -> object:
    """Parse the response as JSON, tolerating one surrounding Markdown code fence (as IFEval does)."""
    text = response.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL | re.IGNORECASE)
    try:
        return json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError:
        return None


def _check_json(response: str, params: Mapping[str, Any]) -> bool:
    obj = _json_object(response)
    return isinstance(obj, dict) and set(obj) == set(params["keys"])


def _bullet_count(response: str) -> int:
    return sum(1 for line in response.splitlines() if re.match(r"\s*[-*]\s+\S", line))


_Maker = Callable[[random.Random, str, str], tuple[str, Params]]
_Checker = Callable[[str, Mapping[str, Any]], bool]

CONSTRAINTS: dict[str, tuple[_Maker, _Checker]] = {
    "max_words": (_make_max_words, lambda r, p: 0 < len(r.split()) <= p["n"]),
    "lowercase": (_make_lowercase, lambda r, p: any(c.isalpha() for c in r) and r == r.lower()),
    "uppercase": (_make_uppercase, lambda r, p: any(c.isalpha() for c in r) and r == r.upper()),
    "json_keys": (_make_json, _check_json),
    "bullets": (_make_bullets, lambda r, p: _bullet_count(r) == p["n"]),
    "forbidden_word": (_make_forbidden, lambda r, p: bool(r.strip()) and not _has_word(r, p["word"])),
    "include_word": (_make_keyword, lambda r, p: _has_word(r, p["word"])),
    "end_phrase": (_make_end_phrase, lambda r, p: r.strip().endswith(p["phrase"])),
}


def follows(kind: str, params: Mapping[str, Any], response: str) -> bool:
    """Whether `response` satisfies the constraint `kind` with `params`."""
    return CONSTRAINTS[kind][1](response, params)


def _item(rng: random.Random) -> Doc:
    kind = rng.choice(sorted(CONSTRAINTS))
    topic, word = rng.choice(TOPICS)
    prompt, params = CONSTRAINTS[kind][0](rng, topic, word)
    # params is stored as a JSON string so every row has the same columns when lm-eval loads the file.
    return {"kind": kind, "prompt": prompt, "params": json.dumps(params, sort_keys=True)}


def instructions_gen(rng: random.Random, n: int) -> list[Doc]:
    """Requests with one verifiable constraint each, spread evenly over the constraint kinds at random."""
    return draw_unique(rng, n, _item, lambda d: d["prompt"])


def score_instructions(doc: Doc, response: str) -> int:
    """1 if the response satisfies the doc's constraint, else 0."""
    return int(follows(doc["kind"], json.loads(doc["params"]), response))
