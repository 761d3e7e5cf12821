"""The built-in `core` suite: deterministic items, answers checked independently of the generators, and every task
run end to end through lm-eval on a tiny random model."""

from __future__ import annotations

import ast
import itertools
import json
import operator
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.core_items import DEFAULT_POOL_SIZES, GENERATORS, generate, write_items
from gate.core_items.arithmetic import last_number, score_math
from gate.core_items.facts import COUNTRIES, ELEMENTS, FACTS, score_facts_gen
from gate.core_items.formatting import score_format
from gate.core_items.instructions import CONSTRAINTS, follows
from gate.core_items.reading import QUESTIONS_PER_PASSAGE

SUITE_DIR = Path(__file__).resolve().parents[1] / "suites" / "core"
SEED = 20261125


def _docs(task_id: str) -> list[dict[str, Any]]:
    return generate(task_id, SEED, DEFAULT_POOL_SIZES[task_id])


def _prompt_key(doc: dict[str, Any]) -> str:
    """What a model sees of a doc, minus the choices: no two docs of a task may share it."""
    return "\n".join(str(doc[k]) for k in ("passage", "question", "context", "prompt") if k in doc)


# ---------------------------------------------------------------- determinism, ids, duplicates


def test_same_seed_same_bytes_other_seed_other_items(tmp_path: Path) -> None:
    first = write_items(tmp_path / "a", SEED)
    again = write_items(tmp_path / "b", SEED)
    other = write_items(tmp_path / "c", SEED + 1)
    assert set(first) == set(GENERATORS)
    for task_id, path in first.items():
        assert path == tmp_path / "a" / f"{task_id}.jsonl"
        assert path.read_bytes() == again[task_id].read_bytes(), task_id
        assert path.read_bytes() != other[task_id].read_bytes(), task_id
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(f"{t}.jsonl" for t in GENERATORS)


def test_pool_sizes_are_honoured_per_task(tmp_path: Path) -> None:
    paths = write_items(tmp_path, SEED, {"core_math_gen": 7})
    lines = paths["core_math_gen"].read_text().splitlines()
    assert len(lines) == 7
    assert len(paths["core_logic_mc"].read_text().splitlines()) == DEFAULT_POOL_SIZES["core_logic_mc"]
    # Each task has its own random stream: resizing one task leaves the others' bytes alone.
    assert paths["core_logic_mc"].read_bytes() == write_items(tmp_path / "x", SEED)["core_logic_mc"].read_bytes()


def test_unknown_task_and_oversized_pool_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown core task"):
        write_items(tmp_path, SEED, {"core_nope": 3})
    with pytest.raises(ValueError, match=r"core_facts_mc: only \d+ distinct"):
        write_items(tmp_path, SEED, {"core_facts_mc": len(FACTS) + 1})


@pytest.mark.parametrize("task_id", sorted(GENERATORS))
def test_ids_unique_and_no_duplicate_items(task_id: str) -> None:
    docs = _docs(task_id)
    assert len(docs) == DEFAULT_POOL_SIZES[task_id]
    assert len({d["id"] for d in docs}) == len(docs)
    assert all(d["id"].startswith(f"{task_id}-") for d in docs)
    keys = Counter(_prompt_key(d) for d in docs)
    assert keys.most_common(1)[0][1] == 1, keys.most_common(1)
    # One schema per task, so lm-eval's JSON loader sees the same columns on every row.
    assert len({tuple(sorted(d)) for d in docs}) == 1


@pytest.mark.parametrize("task_id", ["core_facts_mc", "core_logic_mc", "core_reading_mc"])
def test_multiple_choice_shape(task_id: str) -> None:
    for doc in _docs(task_id):
        choices = doc["choices"]
        assert len(choices) >= 2 and len(set(choices)) == len(choices), doc
        assert 0 <= doc["answer"] < len(choices)


# ---------------------------------------------------------------- facts, against a second table

# Written from an atlas and a periodic table, not copied from gate/core_items/facts.py.
_CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Egypt": "Cairo",
    "Canada": "Ottawa",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Norway": "Oslo",
    "Australia": "Canberra",
    "the Netherlands": "Amsterdam",
    "New Zealand": "Wellington",
    "Turkey": "Ankara",
    "Brazil": "Brasilia",
    "Nigeria": "Abuja",
    "India": "New Delhi",
    "Morocco": "Rabat",
}
_CONTINENTS = {
    "Egypt": "Africa",
    "Japan": "Asia",
    "Brazil": "South America",
    "Canada": "North America",
    "France": "Europe",
    "New Zealand": "Oceania",
    "Peru": "South America",
    "Iran": "Asia",
}
_SYMBOLS = {
    "gold": "Au",
    "iron": "Fe",
    "sodium": "Na",
    "potassium": "K",
    "silver": "Ag",
    "lead": "Pb",
    "tin": "Sn",
    "mercury": "Hg",
    "helium": "He",
    "carbon": "C",
    "copper": "Cu",
    "oxygen": "O",
}
_PLANET_ORDER = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
_ORDINAL = {w: i for i, w in enumerate(["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"])}
_UNITS = {
    "hours are in a day": 24,
    "days are in a week": 7,
    "centimeters are in a meter": 100,
    "grams are in a kilogram": 1000,
    "minutes are in an hour": 60,
    "months are in a year": 12,
    "feet are in a yard": 3,
    "inches are in a foot": 12,
    "years are in a century": 100,
}


def _expected_fact(question: str) -> str | None:
    """The answer to a fact question from the tables above, or None if they do not cover it."""
    patterns: list[tuple[str, Any]] = [
        (r"What is the capital of (.+)\?", _CAPITALS.get),
        (r"(.+) is the capital of which country\?", {v: k.removeprefix("the ") for k, v in _CAPITALS.items()}.get),
        (r"On which continent is (.+)\?", _CONTINENTS.get),
        (r"What is the chemical symbol of (.+)\?", _SYMBOLS.get),
        (r"Which chemical element has the symbol (.+)\?", {v: k for k, v in _SYMBOLS.items()}.get),
        (r"Which planet is the (\w+) planet from the Sun\?", lambda w: _PLANET_ORDER[_ORDINAL[w]]),
        (r"How many (.+)\?", lambda q: str(_UNITS[q]) if q in _UNITS else None),
    ]
    for pattern, lookup in patterns:
        match = re.fullmatch(pattern, question)
        if match:
            return lookup(match.group(1))  # type: ignore[no-any-return]
    return None


def test_fact_bank_agrees_with_second_table() -> None:
    checked = 0
    for fact in FACTS:
        expected = _expected_fact(fact.question)
        if expected is not None:
            assert fact.answer == expected, fact
            checked += 1
    assert checked >= 60
    # Invariants of the tables themselves.
    assert len({c for _, c, _ in COUNTRIES}) == len(COUNTRIES)
    assert len({s for _, s in ELEMENTS}) == len(ELEMENTS)
    assert all(re.fullmatch(r"[A-Z][a-z]?", s) for _, s in ELEMENTS)
    assert len({f.question for f in FACTS}) == len(FACTS)


def test_fact_items_answer_correctly_with_same_kind_distractors() -> None:
    bank = {f.question: f for f in FACTS}
    for doc in _docs("core_facts_mc"):
        fact = bank[doc["question"]]
        assert doc["choices"][doc["answer"]] == fact.answer
        assert set(doc["choices"]) <= {fact.answer, *fact.distractors}
        expected = _expected_fact(doc["question"])
        assert expected is None or doc["choices"][doc["answer"]] == expected
    for doc in _docs("core_facts_gen"):
        expected = _expected_fact(doc["prompt"].split("?")[0] + "?")
        assert expected is None or doc["answer"] == expected
        assert doc["subject"] != "symbol"  # "He" and "I" are words: symbols are asked as multiple choice only


@pytest.mark.parametrize(
    ("answer", "response", "score"),
    [
        ("Paris", "The capital of France is Paris.", 1),
        ("Brasilia", "Brasília", 1),
        ("New Delhi", "new delhi", 1),
        ("1000", "There are 1,000 grams in a kilogram.", 1),
        ("Paris", "Parisian food is great.", 0),
        ("Oslo", "", 0),
        ("100", "1000", 0),
    ],
)
def test_facts_gen_scorer(answer: str, response: str, score: int) -> None:
    assert score_facts_gen({"answer": answer}, response) == score


# ---------------------------------------------------------------- math, recomputed by Python

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_WORD_OPS = {"plus": operator.add, "minus": operator.sub, "times": operator.mul}


def _evaluate(expression: str) -> int:
    node = ast.parse(expression, mode="eval").body
    assert isinstance(node, ast.BinOp) and isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)
    return int(_OPERATORS[type(node.op)](node.left.value, node.right.value))


def _word_problem_op(prompt: str) -> Any:
    if re.search(r"buys \d+ more|together", prompt):
        return operator.add
    if re.search(r"have left|still in the box", prompt):
        return operator.sub
    assert re.search(r"in each bag|Each pack has", prompt), prompt
    return operator.mul


def test_math_answers_recomputed() -> None:
    for doc in _docs("core_math_gen"):
        numbers = [int(x) for x in re.findall(r"\d+", doc["prompt"])]
        assert _evaluate(doc["expression"]) == doc["answer"]
        assert doc["answer"] >= 0 and doc["prompt"].endswith("Answer with just the number.")
        if doc["kind"] == "arithmetic":
            a, word, b = re.fullmatch(r"What is (\d+) (\w+) (\d+)\? .*", doc["prompt"]).groups()  # type: ignore[union-attr]
            assert _WORD_OPS[word](int(a), int(b)) == doc["answer"]
        else:
            assert len(numbers) == 2
            assert _word_problem_op(doc["prompt"])(*numbers) == doc["answer"], doc


@pytest.mark.parametrize(
    ("response", "number"),
    [("8", 8.0), ("5 + 3 = 8 apples.", 8.0), ("It is 1,200.", 1200.0), ("-4", -4.0), ("2.5 kg", 2.5), ("none", None)],
)
def test_last_number(response: str, number: float | None) -> None:
    assert last_number(response) == number


def test_math_scorer() -> None:
    assert score_math({"answer": 8}, "5 + 3 = 8") == 1
    assert score_math({"answer": 8}, "The answer is 8.") == 1
    assert score_math({"answer": 8}, "8 apples, then 5 more gives 13") == 0
    assert score_math({"answer": 8}, "eight") == 0


# ---------------------------------------------------------------- logic, solved independently

_COMPARATIVES = {
    "taller": ("height", 1),
    "shorter": ("height", -1),
    "older": ("age", 1),
    "younger": ("age", -1),
    "faster": ("speed", 1),
    "slower": ("speed", -1),
    "heavier": ("weight", 1),
    "lighter": ("weight", -1),
}
_SUPERLATIVES = {
    "tallest": ("height", 1),
    "shortest": ("height", -1),
    "oldest": ("age", 1),
    "youngest": ("age", -1),
    "fastest": ("speed", 1),
    "slowest": ("speed", -1),
    "heaviest": ("weight", 1),
    "lightest": ("weight", -1),
}


def _solve_ranking(context: str) -> str:
    asked = re.search(r"the (\w+) of the three is$", context)
    assert asked is not None
    scale, want = _SUPERLATIVES[asked.group(1)]
    above: dict[str, set[str]] = defaultdict(set)
    below: dict[str, set[str]] = defaultdict(set)
    people: set[str] = set()
    for x, word, y in re.findall(r"(\w+) is (\w+) than (\w+)\.", context):
        premise_scale, sign = _COMPARATIVES[word]
        assert premise_scale == scale, context
        high, low = (x, y) if sign > 0 else (y, x)
        above[low].add(high)
        below[high].add(low)
        people |= {x, y}
    # The top has nobody above; the bottom has nobody below (the premises form a chain).
    candidates = [p for p in people if not (above[p] if want > 0 else below[p])]
    assert len(people) == 3 and len(candidates) == 1, context
    return candidates[0]


def _solve(doc: dict[str, Any]) -> str:
    context = doc["context"]
    if doc["kind"] == "ranking":
        return _solve_ranking(context)
    if doc["kind"] == "elimination":
        boxes = re.findall(r"the (\w+) box", context.split(".")[0])
        excluded = re.findall(r"not in the (\w+) box", context)
        (left,) = set(boxes) - set(excluded)
        return f"the {left} box"
    assert doc["kind"] == "sequence"
    terms = [int(x) for x in re.findall(r"\d+", context)]
    steps = {b - a for a, b in itertools.pairwise(terms)}
    assert len(steps) == 1
    return str(terms[-1] + steps.pop())


def test_logic_answers_solved_independently() -> None:
    docs = _docs("core_logic_mc")
    assert {d["kind"] for d in docs} == {"ranking", "elimination", "sequence"}
    for doc in docs:
        assert doc["choices"][doc["answer"]] == _solve(doc), doc


# ---------------------------------------------------------------- reading

_READING_EVIDENCE = [
    (r"What is (\w+)'s job\?", "{0} is a {a} who"),
    (r"In which town does (\w+) live\?", "lives in {a}."),
    (r"What kind of animal is (\w+)\?", "a {a} named {0}."),
    (r"What is the name of (\w+)'s (?:brother|sister)\?", ", {a}, works"),
    (r"What is the name of (\w+)'s (\w+)\?", "a {1} named {a}."),
    (r"On which day does (\w+) go to (.+)\?", "Every {a}, {0} goes to {1}."),
    (r"What is (\w+)'s favourite colour\?", "{0}'s favourite colour is {a}."),
    (r"What does (\w+) work as\?", "{0}, works as a {a}."),
    (r"What does (\w+) usually eat for lunch\?", "{0} usually eats {a}."),
]


def test_reading_answers_are_stated_in_the_passage() -> None:
    docs = _docs("core_reading_mc")
    per_passage: dict[str, set[str]] = defaultdict(set)
    for doc in docs:
        per_passage[doc["passage_id"]].add(doc["passage"])
        answer = doc["choices"][doc["answer"]]
        for pattern, evidence in _READING_EVIDENCE:
            match = re.fullmatch(pattern, doc["question"])
            if match:
                assert evidence.format(*match.groups(), a=answer) in doc["passage"], doc
                break
        else:
            pytest.fail(f"no evidence rule for {doc['question']!r}")
    assert all(len(texts) == 1 for texts in per_passage.values())  # one passage per passage_id
    counts = Counter(d["passage_id"] for d in docs)
    assert max(counts.values()) == QUESTIONS_PER_PASSAGE
    assert len({text for texts in per_passage.values() for text in texts}) == len(counts)  # and vice versa


# ---------------------------------------------------------------- instruction-following verifiers

_GOOD_AND_BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "max_words",
        {"n": 10},
        "Cats sleep a lot and purr when happy.",
        "Cats are small furry animals that many people keep as pets in their homes.",
    ),
    ("lowercase", {}, "the ocean is deep. it covers most of the earth.", "The ocean is deep."),
    ("uppercase", {}, "THE OCEAN IS DEEP. IT IS BLUE.", "THE OCEAN is deep."),
    (
        "json_keys",
        {"keys": ["name", "color"]},
        '```json\n{"name": "apple", "color": "red"}\n```',
        '{"name": "apple", "colour": "red"}',
    ),
    (
        "json_keys",
        {"keys": ["name", "color"]},
        '{"color": "red", "name": "apple"}',
        'Here it is: {"name": "a", "color": "b"}',
    ),
    ("bullets", {"n": 3}, "- one\n- two\n- three", "1. one\n2. two\n3. three"),
    ("bullets", {"n": 2}, "Facts:\n* one\n* two", "- one\n- two\n- three"),
    ("forbidden_word", {"word": "cat"}, "Felines nap in the sun.", "My cats nap in the sun."),
    ("include_word", {"word": "banana"}, "A Banana is yellow.", "Bananarama was a band."),
    ("end_phrase", {"phrase": "That is all."}, "Trains are fast. That is all.\n", "That is all. Trains are fast."),
]


@pytest.mark.parametrize(("kind", "params", "good", "bad"), _GOOD_AND_BAD)
def test_verifiers_accept_compliant_and_reject_other_replies(
    kind: str, params: dict[str, Any], good: str, bad: str
) -> None:
    assert follows(kind, params, good)
    assert not follows(kind, params, bad)
    assert not follows(kind, params, "")  # an empty reply satisfies no constraint


def test_every_constraint_kind_is_generated_and_verified() -> None:
    docs = _docs("core_instructions_gen")
    assert {d["kind"] for d in docs} == set(CONSTRAINTS) == {k for k, *_ in _GOOD_AND_BAD}
    for doc in docs:
        params = json.loads(doc["params"])
        assert isinstance(params, dict)
        for value in params.values():  # every parameter is spelled out in the request
            for part in value if isinstance(value, list) else [value]:
                assert str(part) in doc["prompt"], doc


# ---------------------------------------------------------------- format following


@pytest.mark.parametrize(
    ("kind", "answer", "response", "expected"),
    [
        ("letter", "B", " B\n", {"follows": 1, "exact_match": 1}),
        ("letter", "B", "C.", {"follows": 1, "exact_match": 0}),
        ("letter", "B", "B. Mercury", {"follows": 0, "exact_match": 0}),
        ("single_word", "Oslo", "Oslo.", {"follows": 1, "exact_match": 1}),
        ("single_word", "Oslo", "The capital is Oslo.", {"follows": 0, "exact_match": 0}),
        ("number", "7", "7", {"follows": 1, "exact_match": 1}),
        ("number", "7", "7 days", {"follows": 0, "exact_match": 0}),
        ("yes_no", "no", "No.", {"follows": 1, "exact_match": 1}),
        ("yes_no", "no", "No, it is not.", {"follows": 0, "exact_match": 0}),
        ("answer_is", "Africa", "The answer is Africa.", {"follows": 1, "exact_match": 1}),
        ("answer_is", "Africa", "The answer is X.", {"follows": 1, "exact_match": 0}),
        ("answer_is", "Africa", "I think the answer is Africa.", {"follows": 0, "exact_match": 0}),
    ],
)
def test_format_scorer_is_strict(kind: str, answer: str, response: str, expected: dict[str, int]) -> None:
    assert score_format({"kind": kind, "answer": answer}, response) == expected


def test_format_items_answer_correctly() -> None:
    for doc in _docs("core_format_gen"):
        if doc["kind"] == "letter":
            options = dict(re.findall(r"^([A-D])\. (.+)$", doc["prompt"], re.MULTILINE))
            expected = _expected_fact(doc["prompt"].splitlines()[0])
            assert expected is None or options[doc["answer"]] == expected
        elif doc["kind"] == "yes_no":
            capital, country = re.match(r"Is (.+) the capital of (.+)\?", doc["prompt"]).groups()  # type: ignore[union-attr]
            truth = {c: k for k, c, _ in COUNTRIES}[capital] == country.removeprefix("the ")
            assert doc["answer"] == ("yes" if truth else "no")


# ---------------------------------------------------------------- the suite spec and lm-eval


def _suite() -> dict[str, Any]:
    return yaml.safe_load((SUITE_DIR / "suite.yaml").read_text())  # type: ignore[no-any-return]


def test_suite_spec_matches_generators_and_task_yamls() -> None:
    from lm_eval.tasks._yaml_loader import load_yaml

    suite = _suite()
    assert suite["generator"] == "core"
    assert [t["id"] for t in suite["tasks"]] == list(GENERATORS)
    for task in suite["tasks"]:
        config = load_yaml(SUITE_DIR / task["config"], resolve_func=True)
        assert config["task"] == task["id"]
        assert task["pool"] == DEFAULT_POOL_SIZES[task["id"]] and task["items"] <= task["pool"]
        assert task["data"] == {"file": f"{task['id']}.jsonl", "split": "test"}
        assert config["dataset_kwargs"] == {"data_files": {"test": task["data"]["file"]}}
        assert task["chat_template"] == (config["output_type"] == "generate_until")
        assert task["metric"] in [m["metric"] for m in config["metric_list"]]


def test_suite_spec_loads_with_the_gate() -> None:
    from gate.suites import load_suite

    suite = load_suite(str(SUITE_DIR))
    assert suite.name == "core" and len(suite.tasks) == len(GENERATORS)


def test_every_task_runs_end_to_end_on_a_tiny_model(tiny_model: Path, tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    paths = write_items(tmp_path, SEED, dict.fromkeys(GENERATORS, 6))
    lm = HFLM(pretrained=str(tiny_model), device="cpu", batch_size=4, dtype="float32")
    manager = TaskManager(include_defaults=False)
    specs = {t["id"]: t for t in _suite()["tasks"]}
    for chat in (False, True):
        group = [tid for tid, spec in specs.items() if spec["chat_template"] == chat]
        configs = []
        for task_id in group:
            config = load_yaml(SUITE_DIR / specs[task_id]["config"], resolve_func=True)
            config["dataset_kwargs"] = {"data_files": {"test": str(paths[task_id])}}
            if chat:  # a random model never stops by itself: keep the test quick
                config["generation_kwargs"] = {**config["generation_kwargs"], "max_gen_toks": 8}
            configs.append(config)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=configs,
            samples={task_id: [0, 2, 5] for task_id in group},
            log_samples=True,
            apply_chat_template=chat,
            bootstrap_iters=0,
            task_manager=manager,
        )
        assert results is not None
        for task_id in group:
            samples = results["samples"][task_id]
            assert sorted(s["doc_id"] for s in samples) == [0, 2, 5]
            metric = specs[task_id]["metric"]
            assert all(s[metric] in (0, 1) for s in samples), task_id
