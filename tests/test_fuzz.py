"""Fuzzing the two readers of user files: gate.yaml and offline-mirror JSONL files.

The only allowed outcomes are a valid result or the project's own error with a one-line message; never another
exception, never a message that spans lines. Deterministic (derandomize) and small, so it runs with the fast tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gate.config import GateConfig, load_config, parse_config
from gate.errors import ConfigError, SuiteError
from gate.mirror import read_records

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _one_line(message: str) -> bool:
    return bool(message) and message.splitlines() == [message]


def _property_names(schema: Any) -> Iterator[str]:
    """Every key the config schema knows, at any depth (top-level fields, alpha's, a waiver's)."""
    if isinstance(schema, dict):
        yield from schema.get("properties", {})
        for value in schema.values():
            yield from _property_names(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _property_names(value)


KNOWN_KEYS = sorted(set(_property_names(GateConfig.model_json_schema(by_alias=True))))
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
KEYS = st.sampled_from(KNOWN_KEYS) | TEXT | st.integers(-3, 3)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["core", "general", "tango", "fixed", "cpu", "float16", "tokenizer", "2027-03-01"])
    | st.dates()
    | st.binary(max_size=4)
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=10
)
MAPPINGS = st.dictionaries(KEYS, VALUES, max_size=5)
# Mostly mappings of real keys, so most examples get past the unknown-key check to the values.
CONFIGS = st.one_of(st.dictionaries(st.sampled_from(KNOWN_KEYS), VALUES, max_size=4), MAPPINGS, VALUES)


def _parse_or_config_error(data: Any) -> GateConfig | None:
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert _one_line(str(exc)), repr(str(exc))
        return None
    assert isinstance(config, GateConfig)
    return config


@FUZZ
@given(CONFIGS)
def test_parse_config_gives_a_config_or_a_one_line_config_error(data: Any) -> None:
    config = _parse_or_config_error(data)
    if config is not None:
        assert parse_config(config.model_dump(by_alias=True)) == config


@FUZZ
@given(st.one_of(MAPPINGS.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=80)))
@example("seed: 2001-02-30\n")
@example("\ufeffbase: x\n")
@example("budgets: !!set {a}\n")
@example("base: !!python/object/apply:os.system [true]\n")
def test_load_config_gives_a_config_or_a_one_line_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-gate.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert _one_line(str(exc)), repr(str(exc))
    else:
        assert isinstance(config, GateConfig)


@pytest.mark.parametrize("data", [{"a\nb": 1}, {"alpha": {"x\ny": 1}}])
def test_unknown_key_with_a_line_break_gives_a_one_line_message(data: dict[str, Any]) -> None:
    assert _parse_or_config_error(data) is None


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("[" * 5000)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert _one_line(str(caught.value))


# ---- the offline mirror -----------------------------------------------------------------------------------------

FIX = "gate mirror export"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
RECORDS = st.fixed_dictionaries({"question": st.text(max_size=10), "answer": st.integers(0, 3)})
LINES = st.one_of(
    RECORDS.map(lambda r: json.dumps(r, ensure_ascii=False)),
    RECORDS.map(lambda r: json.dumps(r)),
    st.dictionaries(st.sampled_from(["question", "answer", "choices"]), JSON_VALUES, max_size=3).map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.text(max_size=20).map(lambda t: t.replace("\n", " ")),
    st.sampled_from(["", " ", "\r", "{", "[" * 3000 + "]" * 3000, '{"answer": ' + "9" * 5000 + "}", "NaN"]),
)


def _good(line: str, first: Any) -> bool:
    """The spec of a mirror line, independent of how read_records words its errors."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and (first is None or record.keys() == first.keys())


def _read(path: Path, data: bytes) -> list[dict[str, Any]] | str:
    path.write_bytes(data)
    try:
        return read_records(path)
    except SuiteError as exc:
        message = str(exc)
        assert _one_line(message) and message.startswith(f"{path}:") and FIX in message, repr(message)
        return message


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b'{"a": 1}\n{"a": \xff}\n')
@example(b'{"a": 1}\r\n{"a": 2}\r\n')
@example(b'{"a": 1}\r{"a": 2}\n')
@example(("[" * 100_000).encode())
def test_any_bytes_give_records_or_a_one_line_suite_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz_bytes.jsonl"
    outcome = _read(path, data)
    if isinstance(outcome, list):
        assert outcome and all(isinstance(r, dict) and r.keys() == outcome[0].keys() for r in outcome)
    elif "has no records" not in outcome:
        where = re.match(re.escape(str(path)) + r":(\d+): ", outcome)
        assert where and 1 <= int(where[1]) <= data.count(b"\n") + 1, outcome


@FUZZ
@given(st.lists(LINES, min_size=1, max_size=6), st.booleans())
def test_a_bad_line_is_named_by_path_and_number(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], trailing_newline: bool
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz_lines.jsonl"
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    outcome = _read(path, text.encode("utf-8", "surrogatepass"))
    if not text.strip():
        assert isinstance(outcome, str) and "has no records" in outcome
        return
    first: Any = None
    for number, line in enumerate(text.removesuffix("\n").split("\n"), start=1):
        if not _good(line, first):
            assert isinstance(outcome, str) and outcome.startswith(f"{path}:{number}: "), (number, outcome)
            return
        first = first if first is not None else json.loads(line)
    assert outcome == [json.loads(line) for line in text.removesuffix("\n").split("\n")]
