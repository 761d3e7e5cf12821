"""The offline mirror: reading and validating its files, `gate mirror export`, and the export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import TEST_DATA

from gate.cli import main
from gate.errors import ExitCode, SuiteError
from gate.mirror import export_mirror, read_records
from gate.suites import Suite, load_suite, prepare_tasks, suite_fingerprint

GENERAL = load_suite("general")
FIX = "gate mirror export"


def _subset(*task_ids: str) -> Suite:
    return GENERAL.model_copy(update={"tasks": [GENERAL.task(t) for t in task_ids]})


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"question": "Q3", "answer": ', "not valid JSON"),
        ('["Q3", 3]', "a JSON list, not an object"),
        ("", "blank line"),
        ('{"question": "Q3"}', "fields differ from line 1 (missing ['answer']"),
    ],
)
def test_a_bad_line_is_reported_with_path_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "qa_test.jsonl"
    good = [json.dumps({"question": f"Q{i}", "answer": i}) for i in (1, 2)]
    path.write_text("\n".join([*good, line, good[0]]) + "\n")
    with pytest.raises(SuiteError) as caught:
        read_records(path)
    assert str(caught.value).startswith(f"{path}:3: {problem}") and FIX in str(caught.value)


def test_records_end_at_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "qa_test.jsonl"
    records = [{"question": "one\u2028two\x85three", "answer": 0}, {"question": "four", "answer": 1}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert read_records(path) == records


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qa_test.jsonl"
    path.write_text("\n")
    with pytest.raises(SuiteError, match="no records"):
        read_records(path)


def test_a_bad_mirror_line_stops_the_run_naming_path_and_line(tmp_path: Path, tiny_model: Path,
                                                              tiny_suite: Path) -> None:
    mirror = tiny_suite.parent / "mirror" / "tiny_mc.jsonl"
    lines = mirror.read_text().split("\n")
    lines[4] = lines[4][:-1]
    mirror.write_text("\n".join(lines))
    result = CliRunner().invoke(main, ["run", "--ckpt", str(tiny_model), "--base", str(tiny_model), "--suite",
                                       str(tiny_suite), "--data-dir", str(mirror.parent), "--out", str(tmp_path / "o")])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"{mirror}:5: not valid JSON" in result.stderr and FIX in result.stderr


def test_export_round_trip(tmp_path: Path) -> None:
    """Exported from the mirror itself: the same records, byte for byte, and the same fingerprints."""
    suite = _subset("arc_easy", "boolq", "truthfulqa_mc1", "truthfulqa_mc2", "ifeval", "mmlu")
    written = export_mirror(suite, tmp_path, source=TEST_DATA)
    assert [(f.path.name, f.tasks) for f in written] == [
        ("arc_easy_test.jsonl", ("arc_easy",)),
        ("boolq_validation.jsonl", ("boolq",)),
        ("truthfulqa_mc_validation.jsonl", ("truthfulqa_mc1", "truthfulqa_mc2")),
        ("ifeval_train.jsonl", ("ifeval",)),
        ("mmlu_test.jsonl", ("mmlu",)),
    ]
    assert written[0].dataset == "allenai/ai2_arc (ARC-Easy)" and written[0].split == "test"
    for file in written:
        source = TEST_DATA / file.path.name
        assert read_records(file.path) == read_records(source) and file.rows == len(read_records(source))
        assert file.path.read_bytes() == source.read_bytes()
    fingerprints = []
    for mirror in (TEST_DATA, tmp_path):
        tasks = prepare_tasks(suite, seed=3, data_dir=mirror, max_items=20)
        fingerprints.append((suite_fingerprint(suite, tasks), [t.fingerprint for t in tasks]))
    assert fingerprints[0] == fingerprints[1]


def test_export_command(tmp_path: Path) -> None:
    data = yaml.safe_load((GENERAL.directory / "suite.yaml").read_text())
    data["tasks"] = [task for task in data["tasks"] if task["id"] in ("arc_challenge", "piqa")]
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "suite.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "mirror"
    result = CliRunner().invoke(main, ["mirror", "export", "--suite", str(tmp_path / "suite"), "--out", str(out),
                                       "--source", str(TEST_DATA)])
    assert result.exit_code == ExitCode.OK, result.output
    assert sorted(p.name for p in out.iterdir()) == ["arc_challenge_test.jsonl", "piqa_validation.jsonl"]
    assert f"wrote 2 mirror files to {out}" in result.stdout and "--data-dir" in result.stdout
    records = len(read_records(TEST_DATA / "arc_challenge_test.jsonl"))
    assert f"{records} records of allenai/ai2_arc (ARC-Challenge) test" in result.stderr


def test_export_without_a_hub_names_the_dataset(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"cannot read allenai/ai2_arc \(ARC-Challenge\) from the hub"):
        export_mirror(_subset("arc_challenge"), tmp_path)
    assert not list(tmp_path.iterdir())


def test_two_datasets_cannot_share_a_file(tmp_path: Path) -> None:
    arc_c = GENERAL.task("arc_challenge")
    clash = arc_c.model_copy(update={"data": GENERAL.task("arc_easy").data})
    suite = GENERAL.model_copy(update={"tasks": [GENERAL.task("arc_easy"), clash]})
    with pytest.raises(SuiteError, match=r"tasks arc_easy and arc_challenge both name arc_easy_test\.jsonl"):
        export_mirror(suite, tmp_path, source=TEST_DATA)
