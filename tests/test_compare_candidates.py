"""`gate compare A B C ...`: any number of candidates against one base, and which one to ship."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import external_references, gate_run

from gate.cli import main
from gate.errors import BadInputError, ExitCode
from gate.report.candidates import compare_candidates


def _failing(result: dict[str, Any], delta: float) -> dict[str, Any]:
    """The same result, as if its one task had lost `delta` points and failed."""
    failed = copy.deepcopy(result)
    failed["tasks"][0].update(delta=delta, lower=delta - 5, upper=delta + 5, outcome="FAIL")
    failed["verdict"] = "FAIL"
    return failed


def test_three_candidates_give_a_table_and_ship_the_pass(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    warn = gate_run(other_tiny_model, tiny_model, tiny_suite, out=tmp_path / "warn")
    passed = gate_run(tiny_model, tiny_model, tiny_suite, out=tmp_path / "pass")
    assert (warn["verdict"], passed["verdict"]) == ("WARN", "PASS"), "the tiny models no longer give this pair"
    (tmp_path / "fail.json").write_text(json.dumps(_failing(passed, -30.0)))
    paths = [str(tmp_path / name) for name in ("fail.json", "warn/result.json", "pass/result.json")]

    cli = CliRunner().invoke(main, ["compare", *paths])
    assert cli.exit_code == ExitCode.OK, cli.output
    text = cli.stdout
    assert text.startswith("✅ **gate compare: ship C**: C passes every budget (A fails on tiny\\_mc (-30.0 pts")
    header = next(line for line in text.splitlines() if line.startswith("| Capability · task"))
    assert header.count(" Δ (pts) [CI] |") == 3
    row = next(line for line in text.splitlines() if line.startswith("| knowledge · tiny\\_mc"))
    for delta in (-30.0, warn["tasks"][0]["delta"], passed["tasks"][0]["delta"]):
        assert f"{delta:+.1f} [" in row

    cli = CliRunner().invoke(main, ["compare", *paths, "--format", "html", "--out", str(tmp_path / "c.html")])
    page = (tmp_path / "c.html").read_text()
    assert cli.exit_code == ExitCode.OK and "gate compare: ship C" in page and page.count("<svg") == 1
    assert external_references(page) == []

    one = CliRunner().invoke(main, ["compare", paths[0]])
    assert one.exit_code == ExitCode.BAD_INPUT and "at least two" in one.stderr


def test_the_choice_among_many_prefers_pass_then_best_composite_and_refuses_other_suites(
    tiny_model: Path, tiny_suite: Path
) -> None:
    result = gate_run(tiny_model, tiny_model, tiny_suite, out=None)
    better, worse = copy.deepcopy(result), copy.deepcopy(result)
    better["composite"]["delta"], worse["composite"]["delta"] = 1.0, -2.0
    chosen = compare_candidates([worse, _failing(result, -25.0), better], ["w", "f", "b"])
    assert chosen.choice == ["C"] and "best composite delta (+1.0 pts" in chosen.reason and "A -2.0" in chosen.reason
    tie = compare_candidates([better, copy.deepcopy(better), worse], ["1", "2", "3"])
    assert tie.choice == ["A", "B"]
    none = compare_candidates([_failing(result, -25.0)] * 3, ["x", "y", "z"])
    assert none.choice == [] and none.reason.startswith("every candidate fails")
    other = copy.deepcopy(result)
    other["suite"]["fingerprint"] = "sha256:other"
    with pytest.raises(BadInputError, match="different suites or item samples"):
        compare_candidates([result, result, other], ["a", "b", "c"])
