"""Reading items: short generated biographies with several multiple-choice questions each (shared passage_id)."""

from __future__ import annotations

import random

from gate.core_items._docs import Doc, shuffled_choices

QUESTIONS_PER_PASSAGE = 1

_PEOPLE = (
    ("Maria", "she"),
    ("Tom", "he"),
    ("Sofia", "she"),
    ("Peter", "he"),
    ("Laura", "she"),
    ("Oliver", "he"),
    ("Nina", "she"),
    ("Lucas", "he"),
    ("Clara", "she"),
    ("Martin", "he"),
    ("Julia", "she"),
    ("Adam", "he"),
)
_SIBLING_NAMES = ("Paul", "Rita", "Simon", "Helen", "Victor", "Alice", "George", "Emily")
_JOBS = ("baker", "teacher", "nurse", "farmer", "pilot", "doctor", "painter", "chef", "driver", "librarian")
# Invented towns, so the answer can only come from the passage.
_TOWNS = ("Millbrook", "Stonebridge", "Ashford", "Riverton", "Oakdale", "Pinehill", "Westport", "Greenfield")
_PETS = ("dog", "cat", "rabbit", "parrot", "horse", "goat", "turtle", "hamster")
_PET_NAMES = ("Rex", "Luna", "Max", "Bella", "Coco", "Milo", "Daisy", "Oscar")
_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PLACES = ("the market", "the library", "the park", "the beach", "the museum", "the lake")
_FOODS = ("soup", "pizza", "rice", "apples", "cheese", "bread", "pasta", "salad")


def _passage(rng: random.Random) -> tuple[str, list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]]:
    """A passage and its candidate questions as (question, answer, distractor pool, distractors that must appear)."""
    name, pron = rng.choice(_PEOPLE)
    poss = "her" if pron == "she" else "his"
    job, job2 = rng.sample(_JOBS, 2)
    sib_name = rng.choice(_SIBLING_NAMES)
    sib = rng.choice(("brother", "sister"))
    town, pet, pet_name = rng.choice(_TOWNS), rng.choice(_PETS), rng.choice(_PET_NAMES)
    colour, day, place, food = rng.choice(_COLOURS), rng.choice(_DAYS), rng.choice(_PLACES), rng.choice(_FOODS)
    middle = [
        f"{pron.capitalize()} has a {pet} named {pet_name}.",
        f"Every {day}, {name} goes to {place}.",
        f"{name}'s favourite colour is {colour}.",
        f"{poss.capitalize()} {sib}, {sib_name}, works as a {job2}.",
        f"For lunch, {name} usually eats {food}.",
    ]
    rng.shuffle(middle)
    passage = " ".join([f"{name} is a {job} who lives in {town}.", *middle])
    questions = [
        (f"What is {name}'s job?", job, _JOBS, (job2,)),
        (f"In which town does {name} live?", town, _TOWNS, ()),
        (f"What kind of animal is {pet_name}?", pet, _PETS, ()),
        (f"What is the name of {name}'s {pet}?", pet_name, _PET_NAMES, ()),
        (f"On which day does {name} go to {place}?", day, _DAYS, ()),
        (f"What is {name}'s favourite colour?", colour, _COLOURS, ()),
        (f"What is the name of {name}'s {sib}?", sib_name, (*_SIBLING_NAMES, name), (name,)),
        (f"What does {sib_name} work as?", job2, _JOBS, (job,)),
        (f"What does {name} usually eat for lunch?", food, _FOODS, ()),
    ]
    return passage, questions


def reading_mc(rng: random.Random, n: int) -> list[Doc]:
    """Multiple-choice comprehension questions; each passage carries QUESTIONS_PER_PASSAGE of them."""
    docs: list[Doc] = []
    seen: set[str] = set()
    while len(docs) < n:
        passage, questions = _passage(rng)
        if passage in seen:
            continue
        seen.add(passage)
        passage_id = f"p{len(seen) - 1:04d}"
        for question, answer, pool, include in rng.sample(questions, min(QUESTIONS_PER_PASSAGE, n - len(docs))):
            choices, index = shuffled_choices(rng, answer, pool, 4, include)
            docs.append(
                {
                    "passage_id": passage_id,
                    "passage": passage,
                    "question": question,
                    "choices": choices,
                    "answer": index,
                }
            )
    return docs
