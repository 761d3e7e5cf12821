"""The CLI for people and scripts: JSON output, whole one-line command summaries, env vars in help, aliases."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gate.cli import main
from gate.errors import ExitCode
from gate.suites import list_suites, load_suite


def _json(*args: str) -> object:
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_plan_and_suites_speak_json() -> None:
    core = load_suite("core")
    rows = _json("plan", "--suite", "core")
    assert isinstance(rows, list) and [row["name"] for row in rows] == [spec.id for spec in core.tasks]
    assert all(row["planned"] <= row["cap"] and row["budget"] > 0 for row in rows)
    listed = _json("suites", "list")
    assert isinstance(listed, list) and [entry["name"] for entry in listed] == list_suites()
    shown = _json("suites", "show", "core")
    assert isinstance(shown, dict) and shown["composite_budget"] == core.composite_budget
    assert [task["id"] for task in shown["tasks"]] == [spec.id for spec in core.tasks]


def test_help_shows_whole_summaries_and_the_environment() -> None:
    top = CliRunner().invoke(main, ["--help"], terminal_width=80).stdout
    commands = top.split("Commands:")[1].strip().splitlines()
    assert len(commands) == len(main.commands) and not any(line.endswith("...") for line in commands)
    assert "GATE_CACHE_DIR" in top and "_GATE_COMPLETE=bash_source gate" in top
    run_help = " ".join(CliRunner().invoke(main, ["run", "--help"]).stdout.split())
    for shown in ("default: GATE_CACHE_DIR", "[env var: GATE_DATA_DIR]", "[env var: GITHUB_ACTIONS]",
                  "--ckpt, --checkpoint", "-q, --quiet"):
        assert shown in run_help


def test_checkpoint_is_an_alias_of_ckpt() -> None:
    result = CliRunner().invoke(main, ["run", "--checkpoint", "/nonexistent/adapter", "--quiet"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "/nonexistent/adapter does not exist" in result.stderr
