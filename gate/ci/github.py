"""GitHub Actions reporting: step summary, step outputs, annotations, and the sticky pull-request comment.

Everything here works on result.json data (a dict) and GitHub's documented contracts; the REST calls use
only urllib, with retries on 5xx and rate limits. Nothing here prints or stores the token anywhere else.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import error, parse, request

from gate.decision import Outcome
from gate.errors import GateError
from gate.report.decisions import decisions, regressed
from gate.report.escape import clean_text
from gate.report.markdown import MAX_FLIPPED_PER_TASK, render_markdown

# GitHub's documented limits.
STEP_SUMMARY_LIMIT_BYTES = 1024 * 1024
COMMENT_LIMIT_CHARS = 65_536
ANNOTATIONS_PER_KIND = 10

# The REST contract and how patiently we follow it.
API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
VIEWER_QUERY = "query { viewer { login } }"
COMMENTS_PER_PAGE = 100
MAX_PAGES = 100
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 1.0
RATE_LIMIT_DEFAULT_WAIT_SECONDS = 60.0
MAX_WAIT_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 30.0
USER_AGENT = "sft-gate"

# Examples of flipped items kept per task, tried in order until the report fits.
FLIPPED_KEPT_STEPS = (MAX_FLIPPED_PER_TASK, 2, 0)
TRUNCATED_NOTE = "\n\n*Truncated to fit GitHub's size limit: the full report is report.md in the gate's output.*\n"
CLOSE_DETAILS = "\n</details>\n"

log = logging.getLogger(__name__)


# --- the report, fitted to a limit -------------------------------------------------------------------------


def utf8_size(text: str) -> int:
    """Size in bytes as GitHub counts the step summary."""
    return len(text.encode("utf-8"))


def _cut(text: str, limit: int, size: Callable[[str], int]) -> str:
    """Whole lines of `text` within `limit`, open <details> closed, and a note saying it was cut."""
    budget = limit - size(TRUNCATED_NOTE) - size(CLOSE_DETAILS) * text.count("<details>")
    if budget < 0:
        return ""
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        used += size(line)
        if used > budget:
            break
        kept.append(line)
    body = "".join(kept)
    return body + CLOSE_DETAILS * (body.count("<details>") - body.count("</details>")) + TRUNCATED_NOTE


def fit_report(result: Mapping[str, Any], limit: int, size: Callable[[str], int] = len) -> str:
    """The markdown report within `limit`: fewer flipped examples first, then none, then cut at a line."""
    text = ""
    for kept in FLIPPED_KEPT_STEPS:
        trimmed = {**result, "tasks": [{**task, "flipped": task["flipped"][:kept]} for task in result["tasks"]]}
        text = render_markdown(trimmed)
        if size(text) <= limit:
            return text
    return _cut(text, limit, size)


# --- workflow files and commands ---------------------------------------------------------------------------


def append_step_summary(path: Path, result: Mapping[str, Any]) -> None:
    """Append the report to $GITHUB_STEP_SUMMARY, keeping the step's summary within 1 MiB."""
    room = STEP_SUMMARY_LIMIT_BYTES - (path.stat().st_size if path.exists() else 0)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(fit_report(result, room, size=utf8_size))


def set_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs to $GITHUB_OUTPUT in the multiline form, each with a fresh random delimiter."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value or delimiter in name:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, title: str | None = None) -> str:
    """A `::error::` / `::warning::` / `::notice::` line, escaped as the runner expects."""
    properties = f" title={_escape_property(title)}" if title else ""
    return f"::{kind}{properties}::{_escape_data(message)}"


def task_annotations(result: Mapping[str, Any], per_kind: int = ANNOTATIONS_PER_KIND) -> list[str]:
    """An ::error:: per failed task and a ::warning:: per undecided one; past `per_kind`, the rest fold into one."""
    lines: list[str] = []
    for kind, outcome in (("error", Outcome.FAIL.value), ("warning", Outcome.WARN.value)):
        chosen = [d for d in decisions(result) if d.outcome == outcome]
        shown = chosen if len(chosen) <= per_kind else chosen[: per_kind - 1]
        lines += [workflow_command(kind, d.line, title=f"gate {outcome}: {d.name}") for d in shown]
        rest = chosen[len(shown):]
        if rest:
            names = ", ".join(d.name for d in rest)
            lines.append(workflow_command(kind, f"{len(rest)} more {outcome} tasks: {names} (see the report)",
                                          title=f"gate {outcome}: {len(rest)} more"))
    return lines


def publish_to_workflow(
    result: Mapping[str, Any],
    outputs: Mapping[str, str],
    *,
    summary_path: Path | None,
    output_path: Path | None,
    per_kind: int = ANNOTATIONS_PER_KIND,
) -> None:
    """Annotations on stdout, the report in the step summary and the step outputs, each where GitHub provides it.

    Each step on its own: a summary file that cannot be written does not stop the outputs.
    """

    def annotations() -> None:
        for line in task_annotations(result, per_kind=per_kind):
            emit_command(line)

    attempt("the annotations", annotations)
    if summary_path is not None:
        attempt("the step summary", lambda: append_step_summary(summary_path, result))
    if output_path is not None:
        attempt("the step outputs", lambda: set_outputs(output_path, outputs))


def emit_command(line: str) -> None:
    """A workflow command of the gate's own: through the trusted path where stdout is made inert (the Action)."""
    command = getattr(sys.stdout, "command", None)
    if command is not None:
        command(line)
    else:
        print(line, flush=True)


def attempt(what: str, step: Callable[[], None]) -> None:
    """Run one reporting step; a failure is a warning naming it, and the verdict's exit code stands."""
    try:
        step()
    except Exception as exc:
        log.warning("%s was not written (%s: %s); the verdict stands", what, type(exc).__name__, exc)


def step_outputs(result: Mapping[str, Any], out_dir: Path, workspace: Path | None) -> dict[str, str]:
    """The step outputs action.yml declares; report paths relative to the workspace where they lie inside it."""
    def where(name: str) -> str:
        path = (out_dir / name).resolve()
        inside = workspace is not None and path.is_relative_to(workspace.resolve())
        return (path.relative_to(workspace.resolve()) if inside and workspace else path).as_posix()

    return {
        "verdict": str(result["verdict"]),
        "report-path": where("report.md"),
        "result-path": where("result.json"),
        "regressed-tasks": ",".join(regressed(result)),
    }


class LogGroups:
    """Progress lines on stdout, each model's scoring folded into a `::group::` that the next one (or a look) ends."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.open = say, False

    def __call__(self, message: str) -> None:
        """Open a group on a `scoring ...` line; end it on any other gate line (a look, a cache reuse)."""
        if message.startswith("scoring "):
            self.end()
            emit_command(f"::group::{_escape_data(message)}")
            self.open = True
        elif message.startswith("look "):
            self.end()
        self.say(message)

    def end(self) -> None:
        """Close the open group, if any."""
        if self.open:
            emit_command("::endgroup::")
            self.open = False


class WorkflowCommandFormatter(logging.Formatter):
    """Warnings and errors become ::warning:: / ::error:: annotations; other records stay plain lines."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then wrap warnings and errors in their workflow command."""
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return workflow_command("error", text)
        if record.levelno >= logging.WARNING:
            return workflow_command("warning", text)
        return text


# --- the REST API ------------------------------------------------------------------------------------------


class GitHubApiError(GateError):
    """A GitHub REST call failed; `status` is the HTTP status, 0 when no response came."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def denied(self) -> bool:
        """The token may not do this (or may not see the repository), as on pull requests from forks."""
        return self.status in (401, 403, 404)


@dataclass(frozen=True)
class Response:
    """An HTTP response: status, lower-cased headers, decoded JSON body (None when empty or not JSON)."""

    status: int
    headers: Mapping[str, str]
    data: Any


class _NoRedirects(request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would resend the Authorization header to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Refuse; the 3xx then surfaces as an HTTPError."""
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_url(url: str) -> str:
    """The API base URL without a trailing slash; https, or http only to this machine (tests, proxies)."""
    parts = parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
        return url.rstrip("/")
    raise GitHubApiError(f"GITHUB_API_URL {url!r} is not https: the token is only sent over https", 0)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _backoff(attempt: int) -> float:
    return BACKOFF_SECONDS * 2.0 ** (attempt - 1)


def _seconds(header: str) -> float:
    """A header holding seconds (retry-after) or an epoch time (x-ratelimit-reset); garbage reads as a minute."""
    try:
        return float(header)
    except ValueError:
        return RATE_LIMIT_DEFAULT_WAIT_SECONDS


def _next_link(header: str) -> str | None:
    match = re.search(r'<([^>]+)>\s*;\s*rel="next"', header)
    return match.group(1) if match else None


class GitHubClient:
    """A minimal GitHub REST client: JSON in and out, retries with backoff, no redirects, token never shown."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.api_url = check_api_url(api_url)
        self._token = token
        self._sleep = sleep
        self._clock = clock
        self._max_attempts = max_attempts
        self._opener = request.build_opener(_NoRedirects)

    def __repr__(self) -> str:
        return f"GitHubClient({self.api_url!r})"

    def _url(self, path_or_url: str) -> str:
        url = path_or_url if "://" in path_or_url else self.api_url + path_or_url
        if parse.urlsplit(url)[:2] != parse.urlsplit(self.api_url)[:2]:
            raise GitHubApiError(f"refusing to send the token to {url}: it is not on {self.api_url}", 0)
        return url

    def _send(self, method: str, url: str, body: Mapping[str, Any] | None) -> Response:
        headers = {
            "Accept": ACCEPT,
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        # The URL's scheme is checked in check_api_url and _url: https, or http on loopback.
        http_request = request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(http_request, timeout=REQUEST_TIMEOUT_SECONDS) as answer:
                return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, _json(answer.read()))
        except error.HTTPError as exc:
            return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, _json(exc.read()))

    def _wait_before_retry(self, response: Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when retrying cannot help."""
        backoff = _backoff(attempt)
        if response.status >= 500:
            return backoff
        if response.status not in (403, 429):
            return None
        if "retry-after" in response.headers:
            return max(_seconds(response.headers["retry-after"]), 0.0)
        if response.headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in response.headers:
            return max(_seconds(response.headers["x-ratelimit-reset"]) - self._clock(), 0.0) + 1.0
        # A 403 without rate-limit headers is a permission answer; a bare 429 asks for at least a minute.
        return max(RATE_LIMIT_DEFAULT_WAIT_SECONDS, backoff) if response.status == 429 else None

    def request(self, method: str, path_or_url: str, body: Mapping[str, Any] | None = None) -> Response:
        """Send one API call, retrying 5xx, rate limits and lost connections; raise GitHubApiError otherwise."""
        url = self._url(path_or_url)
        where = f"{method} {parse.urlsplit(url).path}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, url, body)
            except OSError as exc:  # URLError, timeouts, resets: no HTTP answer at all
                status, problem = 0, f"no response ({getattr(exc, 'reason', exc)})"
                wait: float | None = _backoff(attempt)
            else:
                if 200 <= response.status < 300:
                    return response
                message = response.data.get("message", "") if isinstance(response.data, dict) else ""
                status, problem = response.status, f"HTTP {response.status} {clean_text(str(message), 200)}".rstrip()
                wait = self._wait_before_retry(response, attempt)
            if wait is None:
                raise GitHubApiError(f"{where}: {problem}", status)
            if attempt >= self._max_attempts or wait > MAX_WAIT_SECONDS:
                raise GitHubApiError(f"{where}: {problem}, still failing after {attempt} attempt(s)", status)
            log.info("%s: %s; retrying in %.0f s", where, problem, wait)
            self._sleep(wait)

    def paginate(self, path: str) -> Iterator[Any]:
        """Every element of a list endpoint, following the Link header's rel="next" pages."""
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.request("GET", url)
            if not isinstance(response.data, list):
                raise GitHubApiError(f"GET {path}: expected a JSON list, got {type(response.data).__name__}", 0)
            yield from response.data
            url = _next_link(response.headers.get("link", ""))
        raise GitHubApiError(f"GET {path}: more than {MAX_PAGES} pages", 0)

    def viewer_login(self) -> str | None:
        """The token's own login through GraphQL `viewer { login }`, which answers user, Actions and App tokens
        alike (REST /user refuses the last two); None when GraphQL cannot say."""
        try:
            data = self.request("POST", self._graphql_url(), {"query": VIEWER_QUERY}).data
        except GitHubApiError as exc:
            log.info("the token's login is unknown (%s): the comment is found by its marker alone", exc)
            return None
        login = ((data.get("data") or {}).get("viewer") or {}).get("login") if isinstance(data, dict) else None
        return login if isinstance(login, str) and login else None

    def _graphql_url(self) -> str:
        # api.github.com/graphql; GitHub Enterprise Server: https://HOST/api/v3 -> https://HOST/api/graphql
        return self.api_url.removesuffix("/v3") + "/graphql"


# --- the sticky comment ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequest:
    """A pull request: `owner/name` and its number."""

    repository: str
    number: int


class CommentOutcome(str, enum.Enum):
    """What upsert_comment did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def pull_request_number(event: Mapping[str, Any]) -> int | None:
    """The pull request an event payload is about (pull_request, pull_request_target, PR comments), if any."""
    for key, pr_flag in (("pull_request", None), ("issue", "pull_request")):
        entry = event.get(key)
        if isinstance(entry, dict) and (pr_flag is None or entry.get(pr_flag)):
            number = entry.get("number")
            return number if isinstance(number, int) else None
    return None


def comment_marker(header: str) -> str:
    """The hidden HTML marker that finds this gate's comment again: one sticky comment per header (the action's
    `comment-header`, by default suite and checkpoint), so two gates on one pull request keep a comment each."""
    return f"<!-- sft-gate: {re.sub(r'[^A-Za-z0-9._/]+', '-', header)} -->"


def _same_login(author: str, viewer: str) -> bool:
    # Apps show as `slug[bot]` on comments; be lenient about the suffix on either side.
    return author.removesuffix("[bot]") == viewer.removesuffix("[bot]")


def comment_body(result: Mapping[str, Any], marker: str) -> str:
    """The marker and the report, within GitHub's comment limit."""
    return f"{marker}\n" + fit_report(result, COMMENT_LIMIT_CHARS - len(marker) - 1)


def upsert_comment(client: GitHubClient, pr: PullRequest, body: str, marker: str) -> tuple[CommentOutcome, int]:
    """Create the marked comment once, then edit it in place; skip the edit when the body is unchanged.

    Ours is the marked comment by the token's own login; when that is unknown, the marked comment by a bot (never a
    person's comment that quotes the marker).
    """
    login = client.viewer_login()
    path = f"/repos/{pr.repository}/issues/{pr.number}/comments"
    for comment in client.paginate(f"{path}?per_page={COMMENTS_PER_PAGE}"):
        user = comment.get("user") or {}
        author, old = str(user.get("login") or ""), comment.get("body") or ""
        ours = _same_login(author, login) if login else user.get("type") == "Bot"
        if ours and marker in old:
            if old.replace("\r\n", "\n") == body:
                return CommentOutcome.UNCHANGED, int(comment["id"])
            client.request("PATCH", f"/repos/{pr.repository}/issues/comments/{comment['id']}", {"body": body})
            return CommentOutcome.UPDATED, int(comment["id"])
    created = client.request("POST", path, {"body": body}).data
    return CommentOutcome.CREATED, int(created["id"])
