"""A stand-in for GitHub's REST API on 127.0.0.1, strict about the documented contract for issue comments.

It serves GET /user, POST /graphql (the `viewer { login }` query only),
GET/POST /repos/{owner}/{repo}/issues/{n}/comments (paginated with a Link header) and
PATCH /repos/{owner}/{repo}/issues/comments/{id}. Every request must carry the Bearer token, the
`application/vnd.github+json` Accept header, the API version header and a User-Agent; write requests must send
a JSON object whose only key is a string `body` of at most 65,536 characters. Contract violations are recorded
in `violations` (and answered as GitHub would), so a test asserts the list is empty.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2022-11-28"
TOKEN = "ghs_" + "t0k3n" * 8
ACTIONS_BOT_LOGIN = "github-actions[bot]"  # who the Actions GITHUB_TOKEN comments as
FORBIDDEN = {"message": "Resource not accessible by integration",
             "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment"}
_COMMENTS = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")
_COMMENT = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$")


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """The server's state: comments per issue, who the token is, scripted failures, and what it saw."""

    token: str
    login: str | None = None  # None: /user answers 403, as it does for the Actions GITHUB_TOKEN
    app: str | None = None  # a GitHub App installation token: comments as `<app>[bot]`, /user answers 403
    graphql: bool = True  # False: POST /graphql fails, as on a server without it
    read_only: bool = False  # True: writes answer 403, as for a pull request from a fork
    page_size: int = 2  # GitHub caps per_page at 100; a smaller cap here makes every test page
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    url: str = ""
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_comment(self, issue: int, login: str, body: str) -> dict[str, Any]:
        """Seed a comment as if someone had posted it."""
        self._next_id += 1
        comment = {
            "id": self._next_id, "node_id": f"IC_{self._next_id}",
            "url": f"{self.url}/repos/o/r/issues/comments/{self._next_id}",
            "html_url": f"https://github.com/o/r/pull/{issue}#issuecomment-{self._next_id}",
            "issue_url": f"{self.url}/repos/o/r/issues/{issue}",
            "body": body, "user": {"login": login, "id": 1, "type": "Bot" if login.endswith("[bot]") else "User"},
            "created_at": "2026-11-20T10:00:00Z", "updated_at": "2026-11-20T10:00:00Z",
            "author_association": "NONE",
        }
        self.comments.setdefault(issue, []).append(comment)
        return comment

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request, in order."""
        return [(r.method, r.path) for r in self.requests]

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        """Answer one request: (status, headers, JSON body)."""
        parts = urlsplit(target)
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Recorded(method, parts.path, parse_qs(parts.query), headers, body))
            problem = self._check_headers(method, headers)
            if problem:
                self.violations.append(f"{method} {parts.path}: {problem}")
                return 400, {}, {"message": problem}
            if self.failures:
                return self.failures.pop(0)
            return self._route(method, parts.path, parse_qs(parts.query), body)

    def _check_headers(self, method: str, headers: dict[str, str]) -> str | None:
        if headers.get("authorization") != f"Bearer {self.token}":
            return "Authorization is not 'Bearer <token>'"
        if headers.get("accept") != "application/vnd.github+json":
            return "Accept is not application/vnd.github+json"
        if headers.get("x-github-api-version") != API_VERSION:
            return f"X-GitHub-Api-Version is not {API_VERSION}"
        if not headers.get("user-agent"):
            return "no User-Agent (GitHub rejects such requests)"
        if method in ("POST", "PATCH") and headers.get("content-type", "").split(";")[0] != "application/json":
            return "a write without Content-Type: application/json"
        return None

    def _check_body(self, body: Any) -> str | None:
        if not isinstance(body, dict) or set(body) != {"body"} or not isinstance(body["body"], str):
            return "the JSON body is not {\"body\": string}"
        if len(body["body"]) > 65_536:
            return "body is too long (maximum is 65536 characters)"
        return None

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and path == "/graphql":
            if not self.graphql:
                return 502, {}, {"message": "Server Error"}
            if not isinstance(body, dict) or "viewer" not in str(body.get("query", "")):
                self.violations.append("POST /graphql: not the viewer query")
                return 400, {}, {"message": "Problems parsing JSON"}
            return 200, {}, {"data": {"viewer": {"login": self._author()}}}
        if method == "GET" and path == "/user":
            if self.login is None or self.app is not None:
                return 403, {}, {**FORBIDDEN, "documentation_url": "https://docs.github.com/rest/users/users"}
            return 200, {}, {"login": self.login, "id": 7, "type": "User"}
        if match := _COMMENTS.match(path):
            issue = int(match.group(3))
            if method == "GET":
                return self._page(path, issue, query)
            if method == "POST":
                return self._write(body, lambda text: (201, self.add_comment(issue, self._author(), text)))
        if (match := _COMMENT.match(path)) and method == "PATCH":
            wanted = int(match.group(3))
            found = [c for issue in self.comments.values() for c in issue if c["id"] == wanted]
            if not found:
                return 404, {}, {"message": "Not Found"}

            def edit(text: str) -> tuple[int, dict[str, Any]]:
                found[0].update(body=text, updated_at="2026-11-21T10:00:00Z")
                return 200, found[0]

            return self._write(body, edit)
        self.violations.append(f"{method} {path}: not an issue-comment endpoint")
        return 404, {}, {"message": "Not Found"}

    def _author(self) -> str:
        return f"{self.app}[bot]" if self.app else self.login or ACTIONS_BOT_LOGIN

    def _write(self, body: Any, apply: Any) -> tuple[int, dict[str, str], Any]:
        if self.read_only:
            return 403, {}, FORBIDDEN
        problem = self._check_body(body)
        if problem:
            self.violations.append(problem)
            return 422, {}, {"message": "Validation Failed", "errors": [problem]}
        status, data = apply(body["body"])
        return status, {}, data

    def _page(self, path: str, issue: int, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100, self.page_size)
        page = int(query.get("page", ["1"])[0])
        comments = self.comments.get(issue, [])
        last = max(1, -(-len(comments) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.url}{path}?per_page={query.get("per_page", ["30"])[0]}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={query.get("per_page", ["30"])[0]}&page={last}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, headers, comments[(page - 1) * per_page: page * per_page]


@contextmanager
def serving(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Serve the fake on an ephemeral 127.0.0.1 port (sets fake.url) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, data = fake.handle(self.command, self.path, headers, raw)
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _answer  # noqa: N815 (http.server's naming)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def parse_github_output(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT the way the runner does: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            else:
                raise AssertionError(f"no closing delimiter for {name}")
            outputs[name] = "\n".join(value)
        elif line:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
    return outputs
