"""The gate end to end on tiny random models: verdict, exit codes, outputs, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gate.api import run
from gate.cli import main
from gate.config import GateConfig
from gate.errors import ExitCode
from gate.report.decisions import decisions
from gate.result import ActiveWaiver
from gate.verdict import Policy, TaskEvidence, decide


def _run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", *args])
    return result.exit_code, result.stdout + result.stderr


def test_base_against_itself_passes_with_zero_deltas(tmp_path: Path, tiny_model: Path, tiny_suite: Path) -> None:
    out = tmp_path / "out"
    code, output = _run_cli(
        "--ckpt",
        str(tiny_model),
        "--base",
        str(tiny_model),
        "--suite",
        str(tiny_suite),
        "--data-dir",
        str(tiny_suite.parent / "mirror"),
        "--out",
        str(out),
    )
    assert code == ExitCode.OK, output
    assert "PASS: no regression beyond budget" in output
    result = json.loads((out / "result.json").read_text())
    assert result["verdict"] == "PASS" and result["exit_code"] == 0 and result["schema_version"]
    for task in result["tasks"]:
        assert task["delta"] == 0 and task["discordance"] == 0 and task["right_to_wrong"] == 0
        assert task["n"] == 40 and len(task["items"]) == 40
        assert all(b == c for _, b, c in task["items"])
    report = (out / "report.md").read_text()
    assert report.splitlines()[0].startswith("✅ **gate: PASS**")
    assert result["suite"]["fingerprint"] in report and result["checkpoint"]["fingerprint"] in report


def test_two_runs_are_byte_identical_apart_from_timing(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    texts, reports = [], []
    for name in ("a", "b"):
        run(
            str(other_tiny_model),
            base=str(tiny_model),
            config=GateConfig(cache_dir=str(tmp_path / "cache")),  # empty at first, whatever ran before
            suite=str(tiny_suite),
            out_dir=tmp_path / name,
            data_dir=tiny_suite.parent / "mirror",
        )
        data = json.loads((tmp_path / name / "result.json").read_text())
        assert data["timing"]["seconds"]["total"] >= 0
        # The run id pairs report.md with its result.json (issue 18): the one line that differs between runs.
        run_row = f"| run | `{data['timing']['run_id']}` |\n"
        report = (tmp_path / name / "report.md").read_text()
        assert report.count(run_row) == 1
        # The second run reuses the first's results from the (unkeyed) cache, and its report says so.
        note = " · ⚠️ *base and checkpoint results from an unauthenticated cache*"
        assert report.splitlines()[0].endswith(note) == (name == "b")
        reports.append(report.replace(run_row, "").replace(note, ""))
        data.pop("timing")
        texts.append(json.dumps(data, sort_keys=True))
        assert data["base"]["fingerprint"] != data["checkpoint"]["fingerprint"]
    assert texts[0] == texts[1]
    assert reports[0] == reports[1]


def test_a_run_reads_each_tokenizer_once_and_skips_lm_evals_environment_report(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.utils.collect_env

    import gate.runner

    identities: list[object] = []
    identity = gate.runner._tokenizer_identity
    monkeypatch.setattr(gate.runner, "_tokenizer_identity", lambda lm: (identities.append(lm), identity(lm))[1])
    reports: list[str] = []  # lm-eval's environment report runs `pip list` in a subprocess on every harness call
    monkeypatch.setattr(torch.utils.collect_env, "get_pretty_env_info", lambda: reports.append("") or "")
    result = run(
        str(other_tiny_model),
        base=str(tiny_model),
        suite=str(tiny_suite),
        out_dir=None,
        data_dir=tiny_suite.parent / "mirror",
    )
    assert result.timing["looks"] >= 1 and result.drift is not None
    assert len(identities) == len({id(lm) for lm in identities}) == 2, "each loaded model's vocabulary read once"
    assert reports == []
    import lm_eval.evaluator
    from lm_eval.loggers.utils import add_env_info

    assert lm_eval.evaluator.add_env_info is add_env_info, "lm-eval's own report is back after the run"


def test_items_follow_the_seed_not_the_file_order(tmp_path: Path, tiny_model: Path, tiny_suite: Path) -> None:
    ids = {}
    for seed in (1, 2):
        config = tmp_path / f"gate{seed}.yaml"
        config.write_text(f"seed: {seed}\n")
        result = run(
            str(tiny_model),
            base=str(tiny_model),
            config=config,
            suite=str(tiny_suite),
            out_dir=None,
            data_dir=tiny_suite.parent / "mirror",
        )
        ids[seed] = [int(item[0]) for item in result.tasks[0].items]
    assert ids[1] != ids[2] and ids[1] != list(range(40)) and len(set(ids[1])) == 40


def test_missing_mirror_file_is_bad_input(tmp_path: Path, tiny_model: Path, tiny_suite: Path) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    code, output = _run_cli(
        "--ckpt",
        str(tiny_model),
        "--base",
        str(tiny_model),
        "--suite",
        str(tiny_suite),
        "--data-dir",
        str(empty),
        "--out",
        str(tmp_path / "out"),
    )
    assert code == ExitCode.BAD_INPUT and "tiny_mc.jsonl" in output and "--data-dir" in output
    assert not (tmp_path / "out").exists()


def test_unknown_suite_is_bad_input(tmp_path: Path, tiny_model: Path) -> None:
    code, output = _run_cli("--ckpt", str(tiny_model), "--suite", "no-such-suite", "--out", str(tmp_path / "o"))
    assert code == ExitCode.BAD_INPUT and "no-such-suite" in output and "gate suites list" in output


def test_a_waiver_sets_the_budget_the_verdict_uses_and_the_reports_list_it(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    reason = "<b>@team</b> | traded for domain accuracy, see JIRA-123"
    config = tmp_path / "gate.yaml"
    config.write_text(
        "mode: fixed\n"
        f"waivers:\n  - task: tiny_mc\n    budget: 35\n    reason: {json.dumps(reason)}\n    expires: 2999-12-31\n"
    )
    out = tmp_path / "out"
    result = run(str(other_tiny_model), base=str(tiny_model), config=config, suite=str(tiny_suite), out_dir=out,
                 data_dir=tiny_suite.parent / "mirror", html=True)
    assert result.waivers == [ActiveWaiver("tiny_mc", 35.0, 20.0, reason, "2999-12-31")]
    (task,) = result.tasks
    assert task.budget == 35.0
    # The decision was taken at -35 points: its p-value is the one for that margin, not for the suite's -20.
    base, ckpt = (np.array([item[k] for item in task.items]) for k in (1, 2))
    p_fail = {b: decide([TaskEvidence("tiny_mc", base, ckpt, b)], Policy(composite_budget=None)).tasks[0].p_fail
              for b in (20.0, 35.0)}
    assert task.p_fail == pytest.approx(p_fail[35.0]) and p_fail[35.0] != pytest.approx(p_fail[20.0])

    saved = json.loads((out / "result.json").read_text())
    assert saved["waivers"] == [{"task": "tiny_mc", "budget": 35.0, "normal_budget": 20.0, "reason": reason,
                                 "expires": "2999-12-31"}]
    assert saved["provenance"]["config"]["waivers"][0]["expires"] == "2999-12-31"
    assert "waived budget −35.0 pts" in decisions(saved)[0].line  # CI annotations and JUnit say so too
    report = (out / "report.md").read_text()
    assert "**Waivers in force**" in report and "| −20.0 → −35.0 |" in report and "| −35.0 (waived) |" in report
    assert "&lt;b&gt;@\u200bteam&lt;/b&gt; \\| traded for domain accuracy, see JIRA-123 | 2999-12-31 |" in report
    page = (out / "report.html").read_text()
    assert "<h2>Waivers in force</h2>" in page and "<b>@team" not in page
    assert "&lt;b&gt;@team&lt;/b&gt; | traded for domain accuracy, see JIRA-123" in page
    assert '−35.0<br><span class="alert">waived</span>' in page
