"""JUnit XML: one test case per task, valid against the common JUnit schema, written by `gate run --junit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_results import real_result, with_outcomes
from lxml import etree

from gate.cli import main
from gate.errors import ExitCode
from gate.report.junit import render_junit

SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "junit.xsd")))


@pytest.fixture()
def result(tiny_model: Path, other_tiny_model: Path, tiny_suite: Path) -> dict[str, Any]:
    return real_result(other_tiny_model, tiny_model, tiny_suite)


def valid_tree(text: str) -> Any:
    """Parse the JUnit text and assert it is valid against the schema; returns the root element."""
    root = etree.fromstring(text.encode("utf-8"))
    assert SCHEMA.validate(root), SCHEMA.error_log
    return root


def test_one_case_per_task_failure_skipped_and_passed(result: dict[str, Any]) -> None:
    root = valid_tree(render_junit(with_outcomes(result, ["FAIL", "WARN", "PASS"], composite="FAIL")))
    suite = root.find("testsuite")
    assert root.get("tests") == suite.get("tests") == "4"
    assert root.get("failures") == suite.get("failures") == "2" and suite.get("skipped") == "1"
    assert suite.get("errors") == "0" and suite.get("name") == "gate.tiny"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["task_0", "task_1", "task_2", "composite"]
    failure = cases["task_0"].find("failure")
    assert failure.get("type") == "regression"
    assert failure.get("message").startswith("task_0: regression beyond budget: Δ -4.0 pts, CI [-7.5, -1.0]")
    skipped = cases["task_1"].find("skipped")
    assert skipped is not None and "undecided" in skipped.get("message")
    assert len(cases["task_2"]) == 0  # passed: no child element
    assert cases["composite"].find("failure") is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == "FAIL" and properties["suite.fingerprint"] == result["suite"]["fingerprint"]


def test_warn_that_blocks_is_a_failure_not_a_skip(result: dict[str, Any]) -> None:
    blocking = {**with_outcomes(result, ["WARN", "PASS"]), "blocking": True, "exit_code": 1}
    root = valid_tree(render_junit(blocking))
    case = root.find("testsuite/testcase")
    assert case.find("failure").get("type") == "undecided" and case.find("skipped") is None
    assert root.find("testsuite").get("failures") == "1" and root.find("testsuite").get("skipped") == "0"


def test_characters_xml_cannot_carry_are_replaced(result: dict[str, Any]) -> None:
    data = with_outcomes(result, ["FAIL"])
    data["tasks"][0]["id"] = "bad\x00\x1bname <&>"
    root = valid_tree(render_junit(data))
    assert root.find("testsuite/testcase").get("name") == "bad\ufffd\ufffdname <&>"


def test_gate_run_writes_junit_and_gate_junit_rewrites_it(tmp_path: Path, tiny_model: Path,
                                                          other_tiny_model: Path, tiny_suite: Path) -> None:
    out, junit = tmp_path / "out", tmp_path / "reports" / "junit.xml"
    run = CliRunner().invoke(main, [
        "run", "--ckpt", str(other_tiny_model), "--base", str(tiny_model), "--suite", str(tiny_suite),
        "--data-dir", str(tiny_suite.parent / "mirror"), "--out", str(out), "--junit", str(junit),
    ])
    data = json.loads((out / "result.json").read_text())
    assert run.exit_code == data["exit_code"], run.output
    root = valid_tree(junit.read_text())
    assert [c.get("name") for c in root.iter("testcase")] == [t["id"] for t in data["tasks"]] + ["composite"]
    assert root.find("testsuite").get("timestamp") == data["timing"]["started"]

    again = tmp_path / "again.xml"
    rendered = CliRunner().invoke(main, ["junit", str(out / "result.json"), str(again)])
    assert rendered.exit_code == ExitCode.OK, rendered.output
    assert again.read_text() == junit.read_text()
