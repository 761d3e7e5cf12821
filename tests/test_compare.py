"""`gate compare`: two checkpoints' results side by side, and which one to ship."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from helpers import external_references, gate_run

from gate.cli import main
from gate.errors import ExitCode
from gate.report.chart import shared_rows
from gate.report.compare import compare_results


def _compare(*args: str) -> tuple[int, str, str]:
    cli = CliRunner().invoke(main, ["compare", *args])
    return cli.exit_code, cli.stdout, cli.stderr


def _failing(result: dict[str, Any], delta: float) -> dict[str, Any]:
    """The same result, as if its one task had lost `delta` points and failed."""
    failed = copy.deepcopy(result)
    failed["tasks"][0].update(delta=delta, lower=delta - 5, upper=delta + 5, outcome="FAIL")
    failed["verdict"] = "FAIL"
    return failed


def _with_composite(result: dict[str, Any], delta: float) -> dict[str, Any]:
    changed = copy.deepcopy(result)
    changed["composite"]["delta"] = delta
    return changed


def test_compare_ships_the_pass_over_the_warn_in_either_order(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    warn = gate_run(other_tiny_model, tiny_model, tiny_suite, out=tmp_path / "warn")
    passed = gate_run(tiny_model, tiny_model, tiny_suite, out=tmp_path / "pass")
    assert (warn["verdict"], passed["verdict"]) == ("WARN", "PASS"), "the tiny models no longer give this pair"
    a, b = str(tmp_path / "warn" / "result.json"), str(tmp_path / "pass" / "result.json")

    code, text, _ = _compare(a, b)
    assert code == ExitCode.OK
    assert text.startswith("✅ **gate compare: ship B**") and "B passes" in text and "A is undecided" in text
    assert f"{warn['tasks'][0]['delta']:+.1f}" in text and f"{passed['tasks'][0]['delta']:+.1f}" in text
    assert "different bases" not in text
    code, swapped, _ = _compare(b, a)
    assert code == ExitCode.OK and swapped.startswith("✅ **gate compare: ship A**")

    code, _, _ = _compare(a, b, "--format", "html", "--out", str(tmp_path / "ab.html"))
    page = (tmp_path / "ab.html").read_text()
    assert code == ExitCode.OK and "gate compare: ship B" in page and page.count("<svg") == 1
    assert warn["checkpoint"]["fingerprint"] in page and passed["checkpoint"]["fingerprint"] in page
    assert external_references(page) == []

    code, text, _ = _compare(a, b, "--format", "json")
    data = json.loads(text)
    assert code == ExitCode.OK and data["choice"] == "B" and (data["A"]["verdict"], data["B"]["verdict"]) == (
        "WARN", "PASS")
    assert [t["id"] for t in data["tasks"]] == [t["id"] for t in warn["tasks"]]
    assert data["tasks"][0]["A"]["delta"] == warn["tasks"][0]["delta"] and data["tasks"][0]["B"]["reached"]


def test_compare_refuses_results_of_different_item_samples(
    tmp_path: Path, tiny_model: Path, tiny_suite: Path
) -> None:
    gate_run(tiny_model, tiny_model, tiny_suite, out=tmp_path / "a")
    config = tmp_path / "gate.yaml"
    config.write_text("seed: 7\n")
    b = gate_run(tiny_model, tiny_model, tiny_suite, out=tmp_path / "b", config=config)

    code, text, error = _compare(str(tmp_path / "a" / "result.json"), str(tmp_path / "b" / "result.json"))
    assert code == ExitCode.BAD_INPUT and text == ""
    assert "cannot compare" in error and "tiny_mc (other items or config)" in error
    assert b["suite"]["fingerprint"] in error and "same suite, seed and item caps" in error
    assert len(error.strip().splitlines()) == 1


def test_the_choice_never_ships_a_fail_then_prefers_the_better_composite(
    tmp_path: Path, tiny_model: Path, tiny_suite: Path
) -> None:
    result = gate_run(tiny_model, tiny_model, tiny_suite, out=None)
    assert result["verdict"] == "PASS" and result["composite"] is not None

    neither = compare_results(_failing(result, -30.0), _failing(result, -25.0))
    assert neither.choice == "neither" and "A on tiny_mc (-30.0 pts, budget 20)" in neither.reason
    one = compare_results(_failing(result, -30.0), result)
    assert one.choice == "B" and "A fails on tiny_mc (-30.0 pts" in one.reason
    better = compare_results(_with_composite(result, -2.0), _with_composite(result, 1.0))
    assert better.choice == "B" and "better composite delta (+1.0 pts vs -2.0 pts" in better.reason
    assert compare_results(result, copy.deepcopy(result)).choice == "either"

    other_base = copy.deepcopy(result)
    other_base["base"]["fingerprint"] = "sha256:0000000000000000"
    assert any("different bases" in warning for warning in compare_results(result, other_base).warnings)

    hostile = copy.deepcopy(result)
    hostile["checkpoint"]["description"] = "<script>alert(1)</script> @octocat"
    (tmp_path / "a.json").write_text(json.dumps(result))
    (tmp_path / "b.json").write_text(json.dumps(hostile))
    for fmt in ("md", "html"):
        code, text, _ = _compare(str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--format", fmt)
        assert code == ExitCode.OK and "<script" not in text
    assert "@octocat" not in _compare(str(tmp_path / "a.json"), str(tmp_path / "b.json"))[1]


def test_the_chart_of_two_results_has_a_row_for_what_either_reached() -> None:
    """A gate that FAILed early reached fewer tasks, and no composite: the shared chart still has a row for each
    task and the composite the other side reached, with no entry for the side that did not."""
    early = {
        "tasks": [
            {"id": "facts", "capability": "knowledge", "delta": -40.0},
            {"id": "math", "capability": "math", "delta": None, "reached": False},
        ],
        "composite": {"delta": None, "reached": False},
    }
    full = {
        "tasks": [
            {"id": "facts", "capability": "knowledge", "delta": -1.0},
            {"id": "math", "capability": "math", "delta": -2.0},
        ],
        "composite": {"delta": -1.5},
    }
    for first, second in ((early, full), (full, early)):
        rows, (entries_first, entries_second) = shared_rows([first, second])
        assert [row["id"] for row in rows] == ["facts", "math", "composite"]
        by_side = {id(first): entries_first, id(second): entries_second}
        assert [entry is None for entry in by_side[id(early)]] == [False, True, True]
        assert [entry["delta"] for entry in by_side[id(full)]] == [-1.0, -2.0, -1.5]
