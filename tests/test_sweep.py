"""`gate sweep`: the checkpoints of one run gated in step order, their trajectory, and which one to ship."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import chromium_render, external_references, pixels_of

from gate.cli import main
from gate.errors import ExitCode
from gate.report.chart import OUTCOME_COLOURS
from gate.sweep import discover


def _sweep(*args: str) -> tuple[int, str, str]:
    cli = CliRunner().invoke(main, ["sweep", *args])
    return cli.exit_code, cli.stdout, cli.stderr


def _run_folder(tmp_path: Path, checkpoints: dict[int, Path]) -> Path:
    run = tmp_path / "run"
    for step, model in checkpoints.items():
        shutil.copytree(model, run / f"checkpoint-{step}")
    return run


def test_discover_reads_steps_from_names_and_orders_by_them(tmp_path: Path, tiny_model: Path) -> None:
    run = _run_folder(tmp_path, {10: tiny_model, 2: tiny_model, 100: tiny_model})
    (run / "logs").mkdir()
    by_folder = discover([str(run)])
    assert [point.step for point in by_folder] == [2, 10, 100]
    assert discover([str(run / "checkpoint-*")]) == by_folder
    assert discover([str(run / "checkpoint-100"), str(run / "checkpoint-2")])[0].step == 2
    plain = [tmp_path / "alpha", tmp_path / "beta"]
    for folder in plain:
        shutil.copytree(tiny_model, folder)
    assert [(p.name, p.step) for p in discover([str(plain[1]), str(plain[0])])] == [("beta", 1), ("alpha", 2)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{run}/nothing-*"], "no checkpoint matches"),
        (["{run}/checkpoint-2", "{tmp}/alpha"], "carries no step in its name"),
        (["{run}/checkpoint-2", "{tmp}/other/checkpoint-2"], "are both step 2"),
        (["{run}/missing"], "does not exist"),
    ],
)
def test_sweep_refuses_ambiguous_checkpoint_lists_before_any_scoring(
    tmp_path: Path, tiny_model: Path, arguments: list[str], message: str
) -> None:
    run = _run_folder(tmp_path, {2: tiny_model})
    shutil.copytree(tiny_model, tmp_path / "alpha")
    shutil.copytree(tiny_model, tmp_path / "other" / "checkpoint-2")
    args = [a.format(run=run, tmp=tmp_path) for a in arguments]
    code, out, error = _sweep(*args, "--out", str(tmp_path / "out"))
    assert code == ExitCode.BAD_INPUT and message in error and out == ""
    assert len(error.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_sweep_of_tiny_models_writes_the_record_the_reports_and_each_result(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    run = _run_folder(tmp_path, {5: tiny_model, 10: other_tiny_model, 15: tiny_model})
    out = tmp_path / "sweep"
    common = ["--base", str(tiny_model), "--suite", str(tiny_suite), "--data-dir", str(tiny_suite.parent / "mirror")]
    code, stdout, _ = _sweep(str(run), *common, "--out", str(out), "--require", "10")
    record = json.loads((out / "sweep.json").read_text())
    verdicts = [entry["verdict"] for entry in record["checkpoints"]]
    assert verdicts == ["PASS", "WARN", "PASS"], "the tiny models no longer give this trajectory"
    assert code == ExitCode.OK and record["selected"] == "checkpoint-10", "a WARN passes unless --fail-on-warn"
    assert record["schema_version"] == "2.0" and record["recommendation"]["latest_pass"] == "checkpoint-15"
    assert record["first_fail"] == {"tiny_mc": None, "composite": None}
    for entry in record["checkpoints"]:
        result = json.loads((out / entry["result"]).read_text())
        assert result["verdict"] == entry["verdict"]
        assert result["tasks"][0]["delta"] == entry["tasks"]["tiny_mc"]["delta"]
    # The base was scored once: the later checkpoints' runs read it from the result cache.
    later = [json.loads((out / e["result"]).read_text())["timing"]["cache"] for e in record["checkpoints"][1:]]
    assert all(cache["scored"]["base"] == 0 and cache["hits"]["base"] > 0 for cache in later)
    assert stdout.startswith("PASS (--require 10)") and str(out / "sweep.html") in stdout
    report = (out / "sweep.md").read_text()
    assert report.startswith("✅ **gate sweep: PASS** (--require 10: checkpoint-10)")
    assert f"{record['checkpoints'][1]['tasks']['tiny_mc']['delta']:+.1f}" in report
    page = (out / "sweep.html").read_text()
    assert page.count("<svg") == 1 and "gate sweep: PASS" in page and external_references(page) == []
    if shutil.which("chromium"):  # the trajectory page as a person sees it: the chart draws the WARN at step 10
        text = chromium_render(out / "sweep.html", tmp_path / "sweep.png", window="1280,2000")
        assert "gate sweep: PASS" in text and "First FAIL step" in text and "Trajectory" in text
        (tmp_path / "no-chart.html").write_text(re.sub(r"<svg.*</svg>", "", page, flags=re.DOTALL))
        chromium_render(tmp_path / "no-chart.html", tmp_path / "no-chart.png", window="1280,2000")
        colour = OUTCOME_COLOURS["WARN"]
        drawn = pixels_of(tmp_path / "sweep.png", colour) - pixels_of(tmp_path / "no-chart.png", colour)
        assert drawn > 60, f"the chart draws the WARN at step 10 ({drawn} WARN pixels)"

    code, _, error = _sweep(str(run), *common, "--out", str(out), "--require", "checkpoint-7")
    assert code == ExitCode.BAD_INPUT and "no such checkpoint" in error and "checkpoint-15" in error
