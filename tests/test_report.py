"""Model output is untrusted: the markdown report must render it inert."""

from __future__ import annotations

from gate.report.escape import ZERO_WIDTH_SPACE, clean_text, markdown_inline


def test_mentions_html_and_table_breakers_are_neutralised() -> None:
    hostile = "@octocat <img src=x onerror=alert(1)> | col | [link](http://evil) **bold** #12 `code`\n# Heading"
    out = markdown_inline(hostile, limit=500)
    assert "@" + ZERO_WIDTH_SPACE + "octocat" in out and "@octocat" not in out
    assert "<" not in out and ">" not in out.replace("&gt;", "")
    assert "\n" not in out
    unescaped_pipes = [i for i, ch in enumerate(out) if ch == "|" and out[i - 1] != "\\"]
    assert unescaped_pipes == []
    assert "\\[link\\](http://evil)" in out
    assert "\\*\\*bold\\*\\*" in out


def test_long_and_control_text_is_one_bounded_line() -> None:
    out = clean_text("a" * 5000 + "\x00\x1b[31m\r\nb", limit=100)
    assert len(out) == 100 and out.endswith("…") and "\x00" not in out and "\x1b" not in out


def test_invalid_utf8_surrogates_do_not_crash() -> None:
    broken = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    out = markdown_inline(broken)
    out.encode("utf-8")  # must be encodable


def test_empty_output_is_visible() -> None:
    assert markdown_inline("   ") == "(empty)"
