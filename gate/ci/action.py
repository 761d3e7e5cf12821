"""The GitHub Action's entrypoint, `python -m gate.ci.action`: INPUT_* variables -> gate.api.run -> reporting.

GitHub does not enforce `required` nor types, so every input is validated here before any scoring. A Docker
action sees only the workspace (and HOME): inputs that are paths must lie inside $GITHUB_WORKSPACE, and the
report and caches are written there. The exit code is the gate's own; reporting problems only warn.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.ci.github import (
    ANNOTATIONS_PER_KIND,
    GitHubApiError,
    GitHubClient,
    PullRequest,
    WorkflowCommandFormatter,
    append_step_summary,
    check_api_url,
    comment_body,
    comment_marker,
    pull_request_number,
    set_outputs,
    task_annotations,
    upsert_comment,
)
from gate.errors import BadInputError, ExitCode, GateError
from gate.report.decisions import regressed
from gate.result import GateResult

REQUIRED_INPUTS = ("checkpoint",)
OUT_DIR = "gate-out"
DEFAULT_CACHE_DIR = ".gate-cache"
DEFAULT_API_URL = "https://api.github.com"
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0", ""}
_BUDGET_ENTRY = re.compile(r"^([A-Za-z0-9_.:/-]+)\s*=\s*([0-9]+(?:\.[0-9]*)?)$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

log = logging.getLogger("gate.ci.action")


def _input(env: Mapping[str, str], name: str) -> str:
    # GitHub upper-cases the input's name and keeps its hyphens: data-dir -> INPUT_DATA-DIR.
    return env.get(f"INPUT_{name.upper()}", "").strip()


def _boolean(env: Mapping[str, str], name: str) -> bool:
    value = _input(env, name)
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise BadInputError(f"input '{name}' = {value!r} is not a boolean: use true or false (on/off also work)")


def _budgets(text: str) -> dict[str, float]:
    budgets: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in re.split(r"[,\n]", text))):
        match = _BUDGET_ENTRY.match(entry)
        if not match or not 0 < float(match.group(2)) <= 100:
            raise BadInputError(
                f"input 'budget': {entry!r} is not task=points with 0 < points <= 100: write e.g. 'gsm8k=3,mmlu=2'"
            )
        if match.group(1) in budgets:
            raise BadInputError(f"input 'budget': task '{match.group(1)}' is given twice: give each task once")
        budgets[match.group(1)] = float(match.group(2))
    return budgets


def _workspace_path(workspace: Path, name: str, value: str) -> Path:
    """The input as a resolved path, which must lie inside the workspace (symlinks and .. resolved first)."""
    path = Path(value)
    resolved = (path if path.is_absolute() else workspace / path).resolve()
    if not resolved.is_relative_to(workspace.resolve()):
        raise BadInputError(
            f"input '{name}': {value} is outside the workspace {workspace}, the only host folder a Docker action "
            "sees: give a path relative to the repository root (not ${{ github.workspace }}, the host's path)"
        )
    return resolved


def _reference(workspace: Path, name: str, value: str) -> str:
    """A model or suite reference: a path (absolute, with .., or existing) is checked; hub ids and names pass."""
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or (workspace / path).exists():
        return str(_workspace_path(workspace, name, value))
    return value


def _read_event(path: str) -> dict[str, Any]:
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"GITHUB_EVENT_PATH {path} is not readable JSON ({exc}): run inside GitHub") from None
    return event if isinstance(event, dict) else {}


@dataclass(frozen=True)
class ActionConfig:
    """The validated inputs and the GitHub environment the entrypoint needs; the token never shows in repr."""

    workspace: Path
    checkpoint: str
    base: str | None
    config: Path | None
    suite: str | None
    data_dir: Path | None
    budgets: dict[str, float]
    comment: bool
    fail_on_warn: bool
    cache_dir: Path
    out_dir: Path
    summary_path: Path | None
    output_path: Path | None
    api_url: str
    pull_request: PullRequest | None
    marker: str
    github_token: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionConfig:
        """Read and validate the INPUT_* and GITHUB_* variables; BadInputError names the input and the fix."""
        workspace = Path(env.get("GITHUB_WORKSPACE") or Path.cwd())
        for name in REQUIRED_INPUTS:
            if not _input(env, name):
                raise BadInputError(f"input '{name}' is required: set it under `with:` in the workflow step")

        def reference(name: str) -> str | None:
            value = _input(env, name)
            return _reference(workspace, name, value) if value else None

        def folder(name: str) -> Path | None:
            value = _input(env, name)
            return _workspace_path(workspace, name, value) if value else None

        config = folder("config")
        if config is not None and not config.is_file():
            raise BadInputError(f"input 'config': {_input(env, 'config')} is not a file in the workspace: "
                                "commit the gate.yaml and check the repository out first")
        comment = _boolean(env, "comment")
        token = _input(env, "github-token")
        if comment and not token:
            raise BadInputError("input 'github-token' is empty while comment is on: "
                                "pass `github-token: ${{ github.token }}` or set `comment: off`")
        pull_request = None
        if comment and env.get("GITHUB_EVENT_PATH"):
            number = pull_request_number(_read_event(env["GITHUB_EVENT_PATH"]))
            repository = env.get("GITHUB_REPOSITORY", "")
            if number is not None:
                if not _REPOSITORY.match(repository):
                    raise BadInputError(f"GITHUB_REPOSITORY {repository!r} is not owner/name: run inside GitHub")
                pull_request = PullRequest(repository, number)
        try:
            api_url = check_api_url(env.get("GITHUB_API_URL") or DEFAULT_API_URL)
        except GitHubApiError as exc:
            raise BadInputError(str(exc)) from None
        return cls(
            workspace=workspace,
            checkpoint=_reference(workspace, "checkpoint", _input(env, "checkpoint")),
            base=reference("base"),
            config=config,
            suite=reference("suite"),
            data_dir=folder("data-dir"),
            budgets=_budgets(_input(env, "budget")),
            comment=comment,
            fail_on_warn=_boolean(env, "fail-on-warn"),
            cache_dir=_workspace_path(workspace, "cache-dir", _input(env, "cache-dir") or DEFAULT_CACHE_DIR),
            out_dir=workspace.resolve() / OUT_DIR,
            summary_path=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            output_path=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            api_url=api_url,
            pull_request=pull_request,
            marker=comment_marker(_input(env, "checkpoint")),  # as written in the workflow: stable across runners
            github_token=token,
        )


def run_gate(config: ActionConfig) -> GateResult:
    """Map the inputs to gate.api.run: budgets merge over gate.yaml's, fail-on-warn true forces warn_blocks."""
    from gate.api import run
    from gate.config import load_config

    os.environ["GATE_CACHE_DIR"] = str(config.cache_dir)  # where gate.suites keeps its caches
    gate_config = load_config(config.config)
    if gate_config.allow_code_execution:
        raise BadInputError(
            f"{config.config.name if config.config else 'gate.yaml'} sets allow_code_execution: true, but the change "
            "wrote that file and cannot allow its own generated code to run: remove the key; the workflow's opt-in "
            "is the Action's only way to run a code suite"
        )
    gate_config = gate_config.with_overrides(
        warn_blocks=True if config.fail_on_warn else None,
        budgets={**gate_config.budgets, **config.budgets} if config.budgets else None,
    )
    return run(
        config.checkpoint, base=config.base, config=gate_config, suite=config.suite, out_dir=config.out_dir,
        data_dir=config.data_dir, progress=log.info,
    )


def _comment(config: ActionConfig, data: Mapping[str, Any]) -> None:
    if config.pull_request is None:
        log.info("not a pull-request event: no comment to post")
        return
    client = GitHubClient(config.api_url, config.github_token)
    try:
        body = comment_body(data, config.marker)
        outcome, comment_id = upsert_comment(client, config.pull_request, body, config.marker)
    except GitHubApiError as exc:
        hint = (" (the token may not comment here, as on pull requests from forks: give the job "
                "`permissions: pull-requests: write`, or set `comment: off`)") if exc.denied else ""
        log.warning("the pull-request comment was not posted: %s%s; the verdict stands", exc, hint)
        return
    log.info("pull-request #%d comment %d %s", config.pull_request.number, comment_id, outcome.value)


def report(config: ActionConfig, result: GateResult) -> None:
    """Verdict line, annotations, step summary, step outputs and (on pull requests) the sticky comment."""
    data = result.to_dict()
    log.info("%s: %s", result.verdict, result.summary)
    # One annotation per kind is kept free for this step's own warning (a comment that could not be posted).
    for line in task_annotations(data, per_kind=ANNOTATIONS_PER_KIND - 1):
        print(line, flush=True)
    if config.summary_path is not None:
        append_step_summary(config.summary_path, data)
    if config.output_path is not None:
        where = config.out_dir.relative_to(config.workspace.resolve())
        set_outputs(config.output_path, {
            "verdict": result.verdict,
            "report-path": (where / "report.md").as_posix(),
            "result-path": (where / "result.json").as_posix(),
            "regressed-tasks": ",".join(regressed(data)),
        })
    if config.comment:
        _comment(config, data)


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the action; returns the gate's exit code (0 pass, 1 regression, 2 bad input, 3 runtime failure)."""
    try:
        config = ActionConfig.from_env(os.environ if env is None else env)
        result = run_gate(config)
        report(config, result)
    except GateError as exc:
        log.error("gate: %s", exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        log.error("gate: interrupted")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        traceback.print_exc()
        log.error("gate: unexpected %s: %s", type(exc).__name__, exc)
        return int(ExitCode.RUNTIME)
    return result.exit_code


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(WorkflowCommandFormatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.ERROR)  # libraries speak only when something is wrong
    logging.getLogger("gate").setLevel(logging.INFO)


if __name__ == "__main__":
    _configure_logging()
    sys.exit(main())
