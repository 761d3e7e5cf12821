"""GitHub reporting in the library: workflow files, annotations, size limits and the sticky comment's REST calls."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from fake_github import ACTIONS_BOT_LOGIN, TOKEN, FakeGitHub, parse_github_output, serving
from fake_results import real_result, with_outcomes

from gate.ci.github import (
    ANNOTATIONS_PER_KIND,
    COMMENT_LIMIT_CHARS,
    STEP_SUMMARY_LIMIT_BYTES,
    TRUNCATED_NOTE,
    CommentOutcome,
    GitHubApiError,
    GitHubClient,
    PullRequest,
    WorkflowCommandFormatter,
    append_step_summary,
    comment_body,
    comment_marker,
    pull_request_number,
    set_outputs,
    task_annotations,
    upsert_comment,
)

DATA = Path(__file__).parent / "data"
PR = PullRequest("octo-org/model-repo", 42)


@pytest.fixture()
def result(tiny_model: Path, other_tiny_model: Path, tiny_suite: Path) -> dict[str, Any]:
    return real_result(other_tiny_model, tiny_model, tiny_suite)


# --- workflow files and commands ---------------------------------------------------------------------------


def test_outputs_are_heredocs_with_fresh_random_delimiters(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n")
    hostile = "line one\nEOF\nghadelimiter_\nname<<EOF\n%0A"
    set_outputs(path, {"verdict": "FAIL", "regressed-tasks": "gsm8k,mmlu", "text": hostile, "empty": ""})
    text = path.read_text()
    assert parse_github_output(text) == {
        "earlier": "1", "verdict": "FAIL", "regressed-tasks": "gsm8k,mmlu", "text": hostile, "empty": "",
    }
    delimiters = re.findall(r"^(?:verdict|regressed-tasks|text|empty)<<(.+)$", text, flags=re.MULTILINE)
    assert len(delimiters) == 4 and len(set(delimiters)) == 4
    assert all(re.fullmatch(r"ghadelimiter_[0-9a-f-]{36}", d) for d in delimiters)


def test_step_summary_appends_the_report_within_one_mebibyte(tmp_path: Path, result: dict[str, Any]) -> None:
    path = tmp_path / "summary.md"
    path.write_text("## an earlier line of this step\n")
    append_step_summary(path, result)
    text = path.read_text()
    assert text.startswith("## an earlier line of this step\n⚠️ **gate: WARN**")
    earlier = "x" * (STEP_SUMMARY_LIMIT_BYTES - 1500) + "\n"  # earlier output of this step leaves 1.5 kB
    path.write_text(earlier)
    append_step_summary(path, with_outcomes(result, ["FAIL"] * 30, composite="FAIL", flipped=5))
    assert path.stat().st_size <= STEP_SUMMARY_LIMIT_BYTES
    added = path.read_text()[len(earlier):]
    assert added.startswith("❌ **gate: FAIL**") and added.endswith(TRUNCATED_NOTE)
    assert added.count("<details>") == added.count("</details>")


def test_comment_folds_examples_before_it_truncates(result: dict[str, Any]) -> None:
    marker = comment_marker("checkpoints/lora-a")
    full = comment_body(with_outcomes(result, ["FAIL"] * 3, flipped=5), marker)
    assert full.startswith(marker + "\n❌ **gate: FAIL**") and "flipped from right to wrong" in full

    many_examples = with_outcomes(result, ["FAIL"] * 40, flipped=5, text="a long prompt " * 30)
    body = comment_body(many_examples, marker)
    assert len(body) <= COMMENT_LIMIT_CHARS and TRUNCATED_NOTE not in body
    assert "task\\_39" in body  # every task row kept: examples went first

    many_tasks = with_outcomes(result, ["FAIL"] * 2000, composite="FAIL")
    body = comment_body(many_tasks, marker)
    assert len(body) <= COMMENT_LIMIT_CHARS and body.endswith(TRUNCATED_NOTE)
    assert body.startswith(marker + "\n❌ **gate: FAIL**") and body.count("<details>") == body.count("</details>")


def test_marker_is_a_valid_hidden_html_comment_per_checkpoint() -> None:
    marker = comment_marker("checkpoints/run 7 --final-->x")
    assert marker.startswith("<!-- sft-gate: ") and marker.endswith(" -->")
    assert "--" not in marker[4:-3] and ">" not in marker[:-1]
    assert comment_marker("checkpoints/a") != comment_marker("checkpoints/b")


def test_one_annotation_per_regressed_task_escaped(result: dict[str, Any]) -> None:
    data = with_outcomes(result, ["FAIL", "PASS", "WARN", "FAIL"], composite="FAIL")
    data["tasks"][0]["id"] = "math: 50%, hard\nsplit"
    lines = task_annotations(data)
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 3 and len(warnings) == 1 and len(lines) == 4
    assert errors[0].startswith("::error title=gate FAIL%3A math%3A 50%25%2C hard%0Asplit::math: 50%25, hard%0Asplit:")
    assert "regression beyond budget: Δ -4.0 pts" in errors[0]
    assert errors[2].startswith("::error title=gate FAIL%3A composite::composite: regression beyond budget")
    assert all("\n" not in line for line in lines)


def test_annotations_stay_within_the_per_step_limit(result: dict[str, Any]) -> None:
    lines = task_annotations(with_outcomes(result, ["FAIL"] * 25 + ["WARN"] * 10))
    errors = [line for line in lines if line.startswith("::error")]
    warnings = [line for line in lines if line.startswith("::warning")]
    assert len(errors) == ANNOTATIONS_PER_KIND and len(warnings) == ANNOTATIONS_PER_KIND
    assert "16 more FAIL tasks: task_9, task_10" in errors[-1] and "task_24 (see the report)" in errors[-1]
    assert len(task_annotations(with_outcomes(result, ["WARN"] * 10), per_kind=9)) == 9


def test_log_formatter_turns_warnings_and_errors_into_annotations() -> None:
    formatter = WorkflowCommandFormatter("%(message)s")

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("gate", level, __file__, 1, message, None, None)

    assert formatter.format(record(logging.INFO, "scoring")) == "scoring"
    assert formatter.format(record(logging.WARNING, "50% done\nnext")) == "::warning::50%25 done%0Anext"
    assert formatter.format(record(logging.ERROR, "boom")) == "::error::boom"


def test_pull_request_number_from_event_payloads() -> None:
    assert pull_request_number(json.loads((DATA / "pull_request_event.json").read_text())) == 42
    assert pull_request_number({"ref": "refs/heads/main", "head_commit": {}}) is None  # push
    assert pull_request_number({"issue": {"number": 7, "pull_request": {"url": "..."}}}) == 7  # PR comment
    assert pull_request_number({"issue": {"number": 7}}) is None  # a comment on a plain issue


# --- the REST API ------------------------------------------------------------------------------------------


def test_sticky_comment_is_found_created_updated_and_left_alone() -> None:
    marker = comment_marker("checkpoints/lora-a")
    with serving(FakeGitHub(token=TOKEN)) as github:
        github.add_comment(42, "mona", "Looks good")
        github.add_comment(42, "mona", f"quoting the bot:\n{marker}\nold report")  # a human's, with the marker
        github.add_comment(42, ACTIONS_BOT_LOGIN, "some other workflow's comment")  # ours, without it
        github.add_comment(42, ACTIONS_BOT_LOGIN, comment_marker("checkpoints/lora-b") + "\nanother checkpoint")
        client = GitHubClient(github.url, TOKEN)

        outcome, first = upsert_comment(client, PR, f"{marker}\nfirst report", marker)
        assert outcome is CommentOutcome.CREATED
        pages = [r.query.get("page", ["1"])[0] for r in github.requests if r.path.endswith("/42/comments")]
        assert pages == ["1", "2", "1"]  # both pages read (Link rel="next"), then the POST
        listed = [r for r in github.requests if r.method == "GET" and r.path.endswith("/comments")]
        assert all(r.query["per_page"] == ["100"] for r in listed)
        assert github.calls()[0] == ("POST", "/graphql")
        assert github.calls()[-1] == ("POST", "/repos/octo-org/model-repo/issues/42/comments")

        github.requests.clear()
        outcome, second = upsert_comment(client, PR, f"{marker}\nsecond report", marker)
        assert (outcome, second) == (CommentOutcome.UPDATED, first)
        assert github.calls()[-1] == ("PATCH", f"/repos/octo-org/model-repo/issues/comments/{first}")
        assert github.requests[-1].body == {"body": f"{marker}\nsecond report"}

        github.requests.clear()
        assert upsert_comment(client, PR, f"{marker}\nsecond report", marker) == (CommentOutcome.UNCHANGED, first)
        assert [call for call in github.calls() if call[0] != "GET"] == [("POST", "/graphql")]  # no write

        mine = [c for c in github.comments[42] if marker in c["body"] and c["user"]["login"] == ACTIONS_BOT_LOGIN]
        assert len(mine) == 1 and mine[0]["body"] == f"{marker}\nsecond report"
        assert github.comments[42][1]["body"].endswith("old report")  # the human's comment untouched
        assert github.violations == []


def test_a_token_that_can_read_user_matches_its_own_login() -> None:
    marker = comment_marker("ckpt")
    with serving(FakeGitHub(token=TOKEN, login="gate-bot")) as github:
        github.add_comment(42, ACTIONS_BOT_LOGIN, f"{marker}\nnot posted by this token")
        existing = github.add_comment(42, "gate-bot", f"{marker}\nposted by this token")
        outcome, comment_id = upsert_comment(GitHubClient(github.url, TOKEN), PR, f"{marker}\nnew", marker)
        assert (outcome, comment_id) == (CommentOutcome.UPDATED, existing["id"])
        assert github.violations == []


def test_an_app_token_finds_its_own_comment_and_two_headers_keep_a_comment_each() -> None:
    cpu, gpu = comment_marker("core checkpoints/lora-a"), comment_marker("core checkpoints/lora-a on GPU")
    with serving(FakeGitHub(token=TOKEN, app="gate-app")) as github:
        github.add_comment(42, ACTIONS_BOT_LOGIN, f"{cpu}\nan older gate's, posted with GITHUB_TOKEN")
        github.add_comment(42, "mona", f"quoting:\n{cpu}")
        client = GitHubClient(github.url, TOKEN)
        assert client.viewer_login() == "gate-app[bot]"  # REST /user refuses App tokens
        created = {m: upsert_comment(client, PR, f"{m}\nfirst", m) for m in (cpu, gpu)}
        assert {outcome for outcome, _ in created.values()} == {CommentOutcome.CREATED}
        updated = {m: upsert_comment(client, PR, f"{m}\nsecond", m) for m in (cpu, gpu)}
        assert updated == {m: (CommentOutcome.UPDATED, created[m][1]) for m in (cpu, gpu)}
        ours = [c for c in github.comments[42] if c["user"]["login"] == "gate-app[bot]"]
        assert sorted(c["body"] for c in ours) == sorted([f"{cpu}\nsecond", f"{gpu}\nsecond"])
        assert [c["body"] for c in github.comments[42][:2]] == [f"{cpu}\nan older gate's, posted with GITHUB_TOKEN",
                                                                f"quoting:\n{cpu}"]
        assert github.violations == []


def test_without_graphql_the_marker_on_a_bots_comment_finds_it() -> None:
    marker = comment_marker("core ckpt")
    with serving(FakeGitHub(token=TOKEN, graphql=False)) as github:
        github.add_comment(42, "mona", f"quoting:\n{marker}")
        ours = github.add_comment(42, ACTIONS_BOT_LOGIN, f"{marker}\nold")
        client = GitHubClient(github.url, TOKEN, sleep=lambda _: None)
        assert client.viewer_login() is None
        assert upsert_comment(client, PR, f"{marker}\nnew", marker) == (CommentOutcome.UPDATED, ours["id"])
        assert github.comments[42][0]["body"] == f"quoting:\n{marker}"


def test_retries_5xx_and_rate_limits_with_the_waits_github_asks_for() -> None:
    waits: list[float] = []
    now = 1_700_000_000.0
    with serving(FakeGitHub(token=TOKEN, login="gate-bot")) as github:
        github.failures = [
            (502, {}, {"message": "Server Error"}),
            (503, {}, {"message": "Service Unavailable"}),
            (429, {"Retry-After": "3"}, {"message": "secondary rate limit"}),
            (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 5)},
             {"message": "API rate limit exceeded"}),
        ]
        client = GitHubClient(github.url, TOKEN, sleep=waits.append, clock=lambda: now)
        assert client.viewer_login() == "gate-bot"
        assert waits == [1.0, 2.0, 3.0, 6.0]  # backoff, backoff, retry-after, until x-ratelimit-reset (+1 s)
        assert len(github.requests) == 5 and github.violations == []


def test_gives_up_after_max_attempts_or_a_wait_too_long() -> None:
    waits: list[float] = []
    with serving(FakeGitHub(token=TOKEN)) as github:
        client = GitHubClient(github.url, TOKEN, sleep=waits.append, max_attempts=3)
        github.failures = [(500, {}, {"message": "Server Error"})] * 3
        with pytest.raises(GitHubApiError, match=r"HTTP 500 Server Error, still failing after 3 attempt\(s\)"):
            client.request("GET", "/user")
        assert waits == [1.0, 2.0]
        github.failures = [(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"}, {})]
        with pytest.raises(GitHubApiError, match="HTTP 403") as raised:
            client.request("GET", "/user")
        assert waits == [1.0, 2.0] and raised.value.status == 403  # an hour-long wait is not taken


def test_permission_denied_is_reported_not_retried() -> None:
    waits: list[float] = []
    with serving(FakeGitHub(token=TOKEN, read_only=True)) as github:
        client = GitHubClient(github.url, TOKEN, sleep=waits.append)
        with pytest.raises(GitHubApiError, match="Resource not accessible by integration") as raised:
            upsert_comment(client, PR, "<!-- m -->\nreport", "<!-- m -->")
        assert raised.value.denied and raised.value.status == 403 and waits == []
        assert [m for m, _ in github.calls()] == ["POST", "GET", "POST"]
        assert TOKEN not in str(raised.value) and TOKEN not in repr(client)


def test_the_token_goes_only_to_the_api_host() -> None:
    with pytest.raises(GitHubApiError, match="not https"):
        GitHubClient("http://api.example.com", TOKEN)
    with serving(FakeGitHub(token=TOKEN)) as github:
        client = GitHubClient(github.url, TOKEN)
        with pytest.raises(GitHubApiError, match="refusing to send the token"):
            client.request("GET", "https://elsewhere.example.com/user")
        github.failures = [(200, {"Link": '<https://elsewhere.example.com/page2>; rel="next"'}, [])]
        with pytest.raises(GitHubApiError, match="refusing to send the token"):
            list(client.paginate("/repos/o/r/issues/1/comments"))
        github.failures = [(301, {"Location": "https://elsewhere.example.com/user"}, {"message": "Moved"})]
        with pytest.raises(GitHubApiError, match="HTTP 301"):
            client.request("GET", "/user")  # redirects are not followed with the token
        assert [r.path for r in github.requests] == ["/repos/o/r/issues/1/comments", "/user"]
