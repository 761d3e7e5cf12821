"""The GitHub Action's entrypoint, `python -m gate.ci.action`: INPUT_* variables -> gate.api.run -> reporting.

GitHub does not enforce `required` nor types, so every input is validated here before any scoring. A Docker
action sees only the workspace (and HOME): inputs that are paths must lie inside $GITHUB_WORKSPACE, and the
report and caches are written there. The exit code is the gate's own; reporting problems only warn.

The change being gated wrote every file of the checkout, so the boundary is drawn here: the secrets are taken out
of the environment (the process re-executes itself without them) before any model, suite or user code runs; code
from the change runs only on the workflow's `allow-code` input, never under pull_request_target; a cache folder
holding tracked files is refused, and cache entries are authenticated with `cache-key-secret`; model folders may
not link out of themselves; everything printed goes through gate.ci.inert.
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

from gate.ci.secrets import reexec_without_secrets, remove_secrets, secrets_from_pipe

if __name__ == "__main__":
    reexec_without_secrets()  # first, before the heavy imports below: the process starts again cheaply

from gate.ci.checkout import tracked_under
from gate.ci.github import (
    ANNOTATIONS_PER_KIND,
    GitHubApiError,
    GitHubClient,
    PullRequest,
    attempt,
    check_api_url,
    comment_body,
    comment_marker,
    publish_to_workflow,
    pull_request_number,
    step_outputs,
    upsert_comment,
)
from gate.ci.inert import CommandLogHandler, InertStream
from gate.errors import BadInputError
from gate.exits import failure, stop_on_sigterm
from gate.files import chown_tree
from gate.result import GateResult

REQUIRED_INPUTS = ("checkpoint",)
OUT_DIR = "gate-out"
DEFAULT_CACHE_DIR = ".gate-cache"
DEFAULT_API_URL = "https://api.github.com"
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0", ""}
_BUDGET_ENTRY = re.compile(r"^([A-Za-z0-9_.:/-]+)\s*=\s*([0-9]+(?:\.[0-9]*)?)$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# What `allow-code` may opt in to: the config switch each one turns on.
CODE_OPT_INS = {
    "remote-code": "trust_remote_code",
    "pickle": "allow_pickle",
    "suite-hooks": "allow_suite_hooks",
    "code-execution": "allow_code_execution",  # the model's generated programs (code suites), in gate.sandbox
}

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


def _allow_code(value: str, event_name: str) -> frozenset[str]:
    """The code opt-ins the workflow gives; refused under pull_request_target, which holds a write token."""
    chosen = frozenset(filter(None, (part.strip() for part in re.split(r"[,\s]+", value))))
    unknown = sorted(chosen - set(CODE_OPT_INS))
    if unknown:
        raise BadInputError(
            f"input 'allow-code': {unknown[0]!r} is not one of {', '.join(CODE_OPT_INS)}: list those to allow, "
            "separated by commas"
        )
    if chosen and event_name == "pull_request_target":
        raise BadInputError(
            "input 'allow-code' is set on a pull_request_target event, which runs with a write token and the "
            "repository's secrets: never run the change's code there; score on pull_request and comment from "
            "workflow_run (see examples/ci)"
        )
    return chosen


def _check_cache_dir(workspace: Path, cache_dir: Path) -> None:
    """A cache folder holding files of the checkout came with the change: refused (the change could forge it)."""
    tracked = tracked_under(workspace, cache_dir)
    if tracked:
        raise BadInputError(
            f"input 'cache-dir': {cache_dir.relative_to(workspace.resolve())} holds files committed in the checkout "
            f"({tracked[0]}), which the change could have forged: use a folder outside the repository's files "
            "(restored by actions/cache), and never commit it"
        )


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
    comment_header: str  # "" for the default: suite and checkpoint
    checkpoint_input: str  # as written in the workflow: stable across runners, unlike the resolved path
    allow_code: frozenset[str] = frozenset()
    github_token: str = field(default="", repr=False)
    cache_secret: str = field(default="", repr=False)

    def marker(self, suite_name: str) -> str:
        """The sticky comment's marker: the comment-header input, else the suite and the checkpoint."""
        return comment_marker(self.comment_header or f"{suite_name} {self.checkpoint_input}")

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
        allow_code = _allow_code(_input(env, "allow-code"), env.get("GITHUB_EVENT_NAME", ""))
        cache_dir = _workspace_path(workspace, "cache-dir", _input(env, "cache-dir") or DEFAULT_CACHE_DIR)
        _check_cache_dir(workspace, cache_dir)
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
            cache_dir=cache_dir,
            out_dir=workspace.resolve() / OUT_DIR,
            summary_path=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            output_path=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            api_url=api_url,
            pull_request=pull_request,
            comment_header=_input(env, "comment-header"),
            checkpoint_input=_input(env, "checkpoint"),
            allow_code=allow_code,
            github_token=token,
            cache_secret=_input(env, "cache-key-secret"),
        )


def run_gate(config: ActionConfig) -> GateResult:
    """Map the inputs to gate.api.run: budgets merge over gate.yaml's, fail-on-warn true forces warn_blocks."""
    from gate.config import load_config

    gate_config = load_config(config.config)  # before the heavy imports: a bad gate.yaml fails at once
    for opt_in, key in CODE_OPT_INS.items():
        if getattr(gate_config, key) and opt_in not in config.allow_code:
            raise BadInputError(
                f"{config.config.name if config.config else 'gate.yaml'} sets {key}: true, but in the Action code "
                f"from the change runs only on the workflow's opt-in: add `allow-code: {opt_in}` to the step "
                "(not on pull_request_target), or remove the key"
            )
    gate_config = gate_config.with_overrides(
        warn_blocks=True if config.fail_on_warn else None,
        budgets={**gate_config.budgets, **config.budgets} if config.budgets else None,
        cache_dir=str(config.cache_dir),  # the workflow's folder, never one the change's gate.yaml names
        **{key: opt_in in config.allow_code for opt_in, key in CODE_OPT_INS.items()},
    )
    from gate.api import run

    return run(
        config.checkpoint, base=config.base, config=gate_config, suite=config.suite, out_dir=config.out_dir,
        data_dir=config.data_dir, progress=log.info, html=True, outside_links="refuse",
        cache_secret=config.cache_secret or None,
    )


def _comment(config: ActionConfig, data: Mapping[str, Any]) -> None:
    if config.pull_request is None:
        log.info("not a pull-request event: no comment to post")
        return
    client = GitHubClient(config.api_url, config.github_token)
    try:
        marker = config.marker(str(data["suite"]["name"]))
        outcome, comment_id = upsert_comment(client, config.pull_request, comment_body(data, marker), marker)
    except GitHubApiError as exc:
        hint = (" (the token may not comment here, as on pull requests from forks: give the job "
                "`permissions: pull-requests: write`, or set `comment: off`)") if exc.denied else ""
        log.warning("the pull-request comment was not posted: %s%s; the verdict stands", exc, hint)
        return
    log.info("pull-request #%d comment %d %s", config.pull_request.number, comment_id, outcome.value)


def report(config: ActionConfig, result: GateResult) -> None:
    """Verdict line, annotations, step summary, step outputs and (on pull requests) the sticky comment.

    Each step on its own: a summary file that cannot be written does not stop the outputs or the comment.
    """
    data = result.to_dict()
    log.info("%s: %s", result.verdict, result.summary)
    # One annotation per kind is kept free for this step's own warning (a comment that could not be posted).
    publish_to_workflow(data, step_outputs(data, config.out_dir, config.workspace), summary_path=config.summary_path,
                        output_path=config.output_path, per_kind=ANNOTATIONS_PER_KIND - 1)
    if config.comment:
        attempt("the pull-request comment", lambda: _comment(config, data))


def hand_over_outputs(config: ActionConfig) -> None:
    """As root (a Docker action's user), give the report folder and the cache to the workspace's owner.

    The steps after this one (upload-artifact, cache save, a script reading result.json) run as the runner's user.
    """
    if os.geteuid() != 0:
        return
    owner = config.workspace.stat()
    if owner.st_uid == 0:
        return
    failed = chown_tree([config.out_dir, config.cache_dir], owner.st_uid, owner.st_gid)
    if failed:
        log.warning("%d files could not be handed to the workspace owner (uid %d), e.g. %s",
                    len(failed), owner.st_uid, failed[0])


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the action; returns the gate's exit code (0 pass, 1 regression, 2 bad input, 3 runtime failure)."""
    config: ActionConfig | None = None
    try:
        config = ActionConfig.from_env(os.environ if env is None else env)
        remove_secrets(os.environ)
        result = run_gate(config)
    except (KeyboardInterrupt, Exception) as exc:
        message, code, unexpected = failure(exc)
        if unexpected:
            traceback.print_exc()
        log.error("gate: %s", message)
        return int(code)
    finally:
        if config is not None:
            hand_over_outputs(config)
    report(config, result)
    return result.exit_code


def _configure_output() -> None:
    """Inert stdout and stderr, no library progress bars, and the gate's log on stdout: warnings and errors as
    annotations."""
    from gate.progress import quiet_library_bars

    quiet_library_bars()  # a workflow log is never a terminal
    sys.stdout = InertStream(sys.stdout)
    sys.stderr = InertStream(sys.stderr)
    root = logging.getLogger()
    root.addHandler(CommandLogHandler(sys.stdout))
    root.setLevel(logging.ERROR)  # libraries speak only when something is wrong
    logging.getLogger("gate").setLevel(logging.INFO)


def _entrypoint() -> int:
    env = {**os.environ, **secrets_from_pipe()}
    _configure_output()
    stop_on_sigterm()
    try:
        return main(env)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.close()


if __name__ == "__main__":
    sys.exit(_entrypoint())
