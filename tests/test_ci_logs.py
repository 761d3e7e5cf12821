"""Logs people can read: no carriage-return bars in a CI log, plain throttled progress lines, and `gate run --github`
reporting to GitHub Actions (groups, annotations, step summary, outputs) from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_github import parse_github_output

from gate.progress import ItemProgress

ROOT = Path(__file__).resolve().parents[1]


def _live_bars(*, stdout_tty: bool, stderr_tty: bool, ci: bool) -> bool:
    """live_bars() in a fresh process whose stdout and stderr are a pseudo-terminal or a pipe."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    env["PYTHONPATH"] = str(ROOT)
    leader, follower = os.openpty()
    try:
        code = "import sys; from gate.progress import live_bars; sys.exit(0 if live_bars() else 1)"
        process = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=False,
                                 stdout=follower if stdout_tty else subprocess.PIPE,
                                 stderr=follower if stderr_tty else subprocess.PIPE)
    finally:
        os.close(leader)
        os.close(follower)
    return process.returncode == 0


def test_a_person_at_a_terminal_keeps_live_bars_and_a_log_never_gets_them() -> None:
    assert _live_bars(stdout_tty=True, stderr_tty=True, ci=False)
    assert not _live_bars(stdout_tty=True, stderr_tty=True, ci=True)
    assert not _live_bars(stdout_tty=False, stderr_tty=True, ci=False)
    assert not _live_bars(stdout_tty=True, stderr_tty=False, ci=False)


def test_a_plain_progress_line_at_most_every_interval_with_items_rate_and_eta() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = ItemProgress("base · core_facts_gen", 120, lines.append, interval=30.0, clock=lambda: now[0])
    for _ in range(119):  # one item every second
        now[0] += 1.0
        progress.advance(1)
    assert lines == [
        "base · core_facts_gen: 30/120 items, 1.00 items/s, ETA 1m30s",
        "base · core_facts_gen: 60/120 items, 1.00 items/s, ETA 1m00s",
        "base · core_facts_gen: 90/120 items, 1.00 items/s, ETA 30s",
    ]
    now[0] += 60.0
    progress.advance(1)  # the last item: the caller's own line says it is done
    assert len(lines) == 3


def test_gate_run_in_a_github_workflow_log(tmp_path: Path, tiny_model: Path, other_tiny_model: Path,
                                           tiny_suite: Path) -> None:
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    summary.touch()
    output.touch()
    env = {**os.environ, "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path),
           "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)}
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "gate", "run", "--ckpt", str(other_tiny_model), "--base", str(tiny_model),
               "--suite", str(tiny_suite), "--data-dir", str(tiny_suite.parent / "mirror"),
               "--out", str(tmp_path / "out"), "--no-cache"]
    process = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                             check=False)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert process.returncode == result["exit_code"], process.stdout + process.stderr
    assert "\r" not in process.stdout + process.stderr, "a progress bar drew in the log"
    lines = process.stdout.splitlines()
    groups = [line for line in lines if line.startswith("::group::")]
    assert groups and groups[0].startswith("::group::scoring ")
    assert len(groups) == lines.count("::endgroup::")
    assert lines.index("::endgroup::") > lines.index(groups[0])
    warnings = [line for line in lines if line.startswith("::warning title=gate WARN")]
    outcomes = [t["outcome"] for t in result["tasks"]] + [(result["composite"] or {}).get("outcome")]
    assert warnings and len(warnings) == outcomes.count("WARN")
    assert summary.read_text() == (tmp_path / "out" / "report.md").read_text()
    assert parse_github_output(output.read_text()) == {
        "verdict": result["verdict"], "report-path": "out/report.md", "result-path": "out/result.json",
        "regressed-tasks": "",
    }
