"""`gate sweep` over real checkpoints of the embedded SmolLM2-135M-Instruct: unchanged, gentle, forgetful."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import chromium_render, long_test, pixels_of, real_checkpoint

from gate.cli import main
from gate.errors import ExitCode
from gate.report.chart import OUTCOME_COLOURS

pytestmark = [pytest.mark.slow, long_test]
REPO = Path(__file__).resolve().parents[1]
KEPT_TASKS = ("core_facts_mc", "core_facts_gen")  # core's cheapest pair: knowledge as multiple choice and generated


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run's checkpoint folders, made for real: step 0 untrained (noop), 8 gentle, 12 forgetful LoRA SFT."""
    run = tmp_path_factory.mktemp("run")
    for step, kind in ((0, "noop"), (8, "gentle"), (12, "forgetful")):
        shutil.copytree(real_checkpoint(kind, tmp_path_factory), run / f"checkpoint-{step}")
    return run


def _knowledge_suite(folder: Path) -> Path:
    """core's two knowledge tasks (multiple choice and generated) as their own suite, so the test stays short."""
    shutil.copytree(REPO / "suites" / "core", folder)
    spec = yaml.safe_load((folder / "suite.yaml").read_text())
    spec["name"] = "core-knowledge"
    spec["tasks"] = [task for task in spec["tasks"] if task["id"] in KEPT_TASKS]
    (folder / "suite.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def test_sweep_finds_the_first_fail_step_and_recommends_the_latest_pass(tmp_path: Path, real_run: Path) -> None:
    suite = _knowledge_suite(tmp_path / "suite")
    out = tmp_path / "sweep"
    config = tmp_path / "gate.yaml"
    config.write_text("allow_suite_hooks: true\n")  # a copy of core keeps its hooks: not the gate's own
    cache_dir = tmp_path / "cache"  # this sweep's own: what it holds, the sweep scored
    args = ["sweep", f"{real_run}/checkpoint-*", "--suite", str(suite), "--config", str(config), "--out", str(out),
            "--cache-dir", str(cache_dir)]
    cli = CliRunner().invoke(main, args)
    assert (out / "sweep.json").is_file(), cli.output
    record = json.loads((out / "sweep.json").read_text())
    verdicts = {entry["step"]: entry["verdict"] for entry in record["checkpoints"]}
    assert verdicts[12] == "FAIL" and verdicts[0] != "FAIL" and verdicts[8] != "FAIL", verdicts
    assert cli.exit_code == ExitCode.REGRESSION, "--require last: the last checkpoint FAILs"
    assert record["first_fail"]["core_facts_gen"] == 12 and record["first_fail"]["core_facts_mc"] is None
    latest = [name for name, v in ((e["name"], e["verdict"]) for e in record["checkpoints"]) if v == "PASS"]
    assert record["recommendation"]["latest_pass"] == (latest[-1] if latest else None)
    assert record["recommendation"]["best_composite"] in ("checkpoint-0", "checkpoint-8")
    # The base was scored once: every base item the checkpoints' runs scored is a distinct item of the cache (a run
    # may score items its result does not list, when the gate stops mid-round), and a later checkpoint reads from the
    # cache every base item an earlier one used.
    results = [json.loads((out / entry["result"]).read_text()) for entry in record["checkpoints"]]
    base_entries = (cache_dir / "results" / results[0]["base"]["fingerprint"].removeprefix("sha256:")).glob("*.json")
    cached = {(json.loads(path.read_text())["key"]["task"], doc) for path in base_entries
              for doc in json.loads(path.read_text())["items"]}
    assert sum(result["timing"]["cache"]["scored"]["base"] for result in results) == len(cached) > 0
    seen: set[tuple[str, float]] = set()
    for index, result in enumerate(results):
        used = {(task["id"], item[0]) for task in result["tasks"] for item in task["items"]}
        assert index == 0 or result["timing"]["cache"]["hits"]["base"] >= len(used & seen) > 0
        seen |= used

    if shutil.which("chromium"):  # the trajectory page, as a person sees it
        text = chromium_render(out / "sweep.html", tmp_path / "sweep.png", window="1280,2000")
        assert "gate sweep: FAIL" in text and "First FAIL step" in text and "Trajectory" in text
        page = (out / "sweep.html").read_text()
        (tmp_path / "no-chart.html").write_text(re.sub(r"<svg.*</svg>", "", page, flags=re.DOTALL))
        chromium_render(tmp_path / "no-chart.html", tmp_path / "no-chart.png", window="1280,2000")
        # The banner and badges share the FAIL red; what the chart adds is its FAIL point and whisker (~180 pixels
        # for one, measured on a synthetic record) besides the legend's marker (~60).
        drawn = pixels_of(tmp_path / "sweep.png", OUTCOME_COLOURS["FAIL"]) - pixels_of(
            tmp_path / "no-chart.png", OUTCOME_COLOURS["FAIL"]
        )
        assert drawn > 120, f"the chart draws the FAIL at step 12 ({drawn} FAIL-red pixels)"

    again = CliRunner().invoke(main, ["sweep", str(real_run), "--suite", str(suite), "--config", str(config),
                                      "--out", str(out), "--require", "any", "--stop-at-fail",
                                      "--cache-dir", str(cache_dir)])
    resumed = json.loads((out / "sweep.json").read_text())
    assert again.exit_code == (ExitCode.OK if latest else ExitCode.REGRESSION)
    assert [e["verdict"] for e in resumed["checkpoints"]] == [e["verdict"] for e in record["checkpoints"]]
    assert all(json.loads((out / e["result"]).read_text())["timing"]["cache"]["scored"] == {"base": 0, "checkpoint": 0}
               for e in resumed["checkpoints"]), "a sweep run again resumes from the cache"
