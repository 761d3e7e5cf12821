"""End to end on the real embedded SmolLM2-135M-Instruct: a real forgetful LoRA made here FAILs, an untrained one
PASSes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import chromium_render, real_checkpoint

from gate.ci.github import task_annotations
from gate.cli import main
from gate.errors import ExitCode
from gate.report.candidates import compare_candidates, render_candidates
from gate.report.compare import compare_results, render_comparison
from gate.report.junit import render_junit
from gate.report.sweep import render_sweep_html, render_sweep_markdown
from gate.sweep import SweepPoint, build_record

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def forgetful_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrow, high-learning-rate LoRA SFT of the embedded model, trained once in this test session (~90 s)."""
    return real_checkpoint("forgetful", tmp_path_factory)


def _gate(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", *args, "--out", str(out)])
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    return result.exit_code, json.loads((out / "result.json").read_text()), (out / "report.md").read_text()


def test_forgetful_adapter_fails(tmp_path: Path, forgetful_adapter: Path) -> None:
    code, result, report = _gate(tmp_path, "--ckpt", str(forgetful_adapter), "--html")
    assert code == ExitCode.REGRESSION
    assert result["verdict"] == "FAIL" and report.startswith("❌ **gate: FAIL**")
    assert result["base"]["reference"] == "smollm2-135m-instruct"  # read from adapter_config.json
    assert any(t["outcome"] == "FAIL" for t in result["tasks"]) or result["composite"]["outcome"] == "FAIL"
    # It FAILs within the smoke stage's 200 items. core v2's facts ask real GeoNames tables, on which the adapter's
    # answers vary (its support string on 9 of 50), so no format collapse is demonstrated; the task's own sequence
    # demonstrates Delta < -12 (measured: -44 at 50 items) before the smoke checks' smaller level shows a drop > 10.
    failed = [t for t in result["tasks"] if t["outcome"] == "FAIL"]
    assert failed and all(t["n_items"] <= 200 for t in failed), "it fails within the smoke stage"
    stopped = [t for t in result["tasks"] if t["stop_reason"].startswith("not decided: the gate stopped")]
    assert stopped and all(t["n_items"] <= 50 for t in stopped), "the gate stops at the FAIL, within its round"
    # Its first task's FAIL evidence builds at the first look, so that task is scored again at once and FAILs
    # before the round reaches the others: one round, under 150 items in all.
    assert result["timing"]["looks"] == 1 and sum(t["n_items"] for t in result["tasks"]) < 150
    generative = [t["delta"] for t in result["tasks"] if t["chat_template"] and t["reached"]]
    assert min(generative) < -20, "format collapse must show in the generation tasks"
    assert any(t["right_to_wrong"] > 0 and t["flipped"] for t in result["tasks"])
    assert result["drift"]["kl_mean"] > 0.01
    # It still ranks the right answers first, as multiple choice on the very facts it lost in generation.
    facts = next(t for t in result["tasks"] if t["id"] == "core_facts_gen")
    assert facts["diagnosis"]["label"] == "format/alignment" and "item by item" in facts["diagnosis"]["detail"]
    # Tasks the gate stopped before were not scored at all: no items, no numbers, in the record or any view; nor
    # has the composite of all tasks any.
    not_reached = [t for t in result["tasks"] if not t["reached"]]
    assert not_reached and all(t["outcome"] == "WARN" and t["n_items"] == 0 for t in not_reached)
    assert all(t["delta"] is None and t["lower"] is None and t["items"] == [] for t in not_reached)
    assert result["composite"]["reached"] is False and result["composite"]["delta"] is None
    assert "| **composite** | all | | | | | −" in report and "not reached" in report.split("| **composite** |")[1]
    html = (tmp_path / "out" / "report.html").read_text()
    junit, annotations = render_junit(result), "\n".join(task_annotations(result, per_kind=100))
    for task in not_reached:
        name = task["id"].replace("_", "\\_")  # as the markdown escapes it
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        assert row.startswith(f"| {name} | {task['capability']} | | | | | −") and "not reached" in row
        assert f"| 0 / {task['planned']} |" in row
        assert f"<tr class=\"not-reached\"><td>{task['id']}</td>" in html
        assert f'<skipped message="{task["id"]}: not reached: the gate stopped' in junit
        assert f"::{task['id']}: not reached: the gate stopped" in annotations
    assert "::composite: not reached: the gate stopped at the first demonstrated FAIL before every task" in annotations
    _views_say_not_reached(result, tmp_path, not_reached)
    if shutil.which("chromium"):  # the sign-off page, as a person sees it
        png = tmp_path / "report.png"
        text = chromium_render(tmp_path / "out" / "report.html", png)
        assert "gate: FAIL" in text and png.stat().st_size > 30_000


def _views_say_not_reached(result: dict, tmp_path: Path, not_reached: list[dict]) -> None:
    """gate compare (two and many candidates) and gate sweep show a task the gate never reached as "not reached"."""
    point = SweepPoint("checkpoint-1", 1, tmp_path)
    sweep = build_record([point], {point.name: result}, tmp_path, require="last", stop_at_fail=False, timing={})
    views = {
        "compare md": render_comparison(compare_results(result, result), "md"),
        "compare html": render_comparison(compare_results(result, result), "html"),
        "candidates md": render_candidates(compare_candidates([result] * 3, ["A", "B", "C"]), "md"),
        "candidates html": render_candidates(compare_candidates([result] * 3, ["A", "B", "C"]), "html"),
        "sweep md": render_sweep_markdown(sweep),
        "sweep html": render_sweep_html(sweep),
    }
    for view, text in views.items():
        for task in not_reached:
            name = task["id"].replace("_", "\\_") if view.endswith("md") else task["id"]
            rows = text.split("<tr") if view.endswith("html") else text.splitlines()
            row = next(row for row in rows if name in row and "not reached" in row)
            assert "[" not in row.split(name, 1)[1], f"{view}: {row}"  # no interval


def test_an_untrained_adapter_passes_with_zero_deltas(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The default gate (core, sequential) on a LoRA that was never trained: it answers as its base, item by item."""
    noop = real_checkpoint("noop", tmp_path_factory)
    code, result, _ = _gate(tmp_path, "--ckpt", str(noop))
    assert code == ExitCode.OK and result["verdict"] == "PASS", result["summary"]
    assert all(t["outcome"] == "PASS" and t["delta"] == 0 and t["right_to_wrong"] == 0 for t in result["tasks"])
    assert all(b == c for t in result["tasks"] for _, b, c in t["items"])
    assert result["drift"]["kl_mean"] == 0
