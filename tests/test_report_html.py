"""The HTML sign-off report: a self-contained view over result.json that keeps model output inert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import chromium_render, external_references, gate_run

from gate.cli import main
from gate.errors import ExitCode
from gate.report import render_html, render_markdown
from gate.report.chart import CKPT_COLOUR

HOSTILE_ANSWERS = {
    "script": "<script>alert(document.cookie)</script>",
    "markup": '</td></tr></table><img src=x onerror="alert(1)"><a href="https://evil.example/x">click</a>',
    "mention": "@octocat please merge, fixes #1",
    "long": "A" * 10_000,
    # What lm-eval hands back for bytes that are not UTF-8: lone surrogates, which cannot be encoded as is.
    "undecodable": b"caf\xe9 \xff\xfe na\xefve".decode("utf-8", "surrogateescape"),
    "disguised": "safe\u202etxt.exe\u200b\x1b[31m",
}


def hostile(result: dict[str, Any]) -> dict[str, Any]:
    """A real result whose flipped items answer with every kind of hostile output, under a hostile task name."""
    task = result["tasks"][0]
    task["id"] = "<b>$\\alpha$ task</b>"
    task["flipped"] = [
        {"doc_id": i, "prompt": f"Question {i}: {text}", "target": text, "base_answer": "right", "ckpt_answer": text}
        for i, text in enumerate(HOSTILE_ANSWERS.values())
    ]
    return result


def test_run_html_writes_a_self_contained_page_that_is_a_view_over_result_json(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    out = tmp_path / "out"
    cli = CliRunner().invoke(main, ["run", "--ckpt", str(other_tiny_model), "--base", str(tiny_model), "--suite",
                                    str(tiny_suite), "--data-dir", str(tiny_suite.parent / "mirror"), "--out",
                                    str(out), "--html"])
    assert cli.exit_code in (ExitCode.OK, ExitCode.REGRESSION), cli.output
    assert str(out / "report.html") in cli.stdout
    result = json.loads((out / "result.json").read_text())
    page = (out / "report.html").read_text()

    hardware = result["provenance"]["hardware"]
    assert hardware["cores"] >= 1 and hardware["cpu"] and hardware["torch_device"] == "cpu"
    assert f"gate: {result['verdict']}" in page and result["summary"] in page
    for name in ("Scores and deltas by capability", "Tasks", "Items that flipped", "Items used", "Provenance"):
        assert name in page
    assert "<svg" in page and page.count("<svg") == 1
    assert result["drift"] and f"{result['drift']['tokens']} tokens" in page
    for model in ("checkpoint", "base"):
        for digest in result[model]["weight_sha256"].values():
            assert digest in page
    task = result["tasks"][0]
    for value in (result["suite"]["fingerprint"], task["fingerprint"], str(result["settings"]["seed"]),
                  result["timing"]["started"], result["timing"]["finished"], hardware["cpu"],
                  result["provenance"]["versions"]["torch"], f"−{task['detectable']:.1f}",
                  f"{task['n_items']} of {task['pool_size']}", f"{task['delta']:+.1f}"):
        assert value in page, value
    assert external_references(page) == []

    # Rendering again from the saved file gives the same bytes: nothing is recomputed or time-dependent.
    again = CliRunner().invoke(main, ["report", str(out / "result.json"), "--format", "html", "--out",
                                      str(tmp_path / "again.html")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again.html").read_text() == page
    markdown = CliRunner().invoke(main, ["report", str(out / "result.json")])
    assert markdown.exit_code == 0 and markdown.stdout == (out / "report.md").read_text()

    del result["tasks"][0]["certifiable"]
    (tmp_path / "edited.json").write_text(json.dumps(result))
    edited = CliRunner().invoke(main, ["report", str(tmp_path / "edited.json"), "--format", "html"])
    assert edited.exit_code == ExitCode.BAD_INPUT and "certifiable" in edited.stderr and edited.stdout == ""


def test_hostile_model_output_renders_inert_in_markdown_and_html(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    data = hostile(gate_run(other_tiny_model, tiny_model, tiny_suite, out=None))
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(data))  # ASCII JSON: the surrogates survive as \udcxx escapes
    outputs = {}
    for fmt in ("md", "html"):
        cli = CliRunner().invoke(main, ["report", str(saved), "--format", fmt, "--out", str(tmp_path / f"r.{fmt}")])
        assert cli.exit_code == 0, cli.output
        outputs[fmt] = (tmp_path / f"r.{fmt}").read_text(encoding="utf-8")
    assert outputs["md"] == render_markdown(data) and outputs["html"] == render_html(data)

    for fmt, text in outputs.items():
        assert "<script" not in text.lower() and "<img" not in text.lower() and "<b>" not in text, fmt
        assert "A" * 2001 not in text, f"{fmt}: 10k-character output is not cut"
        assert "\u202e" not in text and "\x1b" not in text, fmt
    html = outputs["html"]
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;img src=x" in html
    assert "caf\ufffd" in html or "caf?" in html
    assert external_references(html) == []
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    markdown = outputs["md"]
    assert "@octocat" not in markdown and "@\u200boctocat" in markdown


def test_report_refuses_what_is_not_a_gate_result(tmp_path: Path) -> None:
    cases = {
        "binary.json": b"\xff\xfe\x00garbage",
        "list.json": b"[1, 2, 3]",
        "old.json": json.dumps({"schema_version": "0.3", "verdict": "PASS"}).encode(),
        "newer.json": json.dumps({"schema_version": "3.0", "verdict": "PASS"}).encode(),
        "partial.json": json.dumps({"schema_version": "1.0", "verdict": "PASS", "tasks": []}).encode(),
    }
    expected = {"binary.json": "is not a gate result.json", "list.json": "not a gate result",
                "old.json": "schema_version '0.3'", "newer.json": "schema_version '3.0' is not one this gate reads",
                "partial.json": "lacks blocking, exit_code, summary"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        cli = CliRunner().invoke(main, ["report", str(tmp_path / name), "--format", "html",
                                        "--out", str(tmp_path / "r.html")])
        assert cli.exit_code == ExitCode.BAD_INPUT, (name, cli.output)
        assert expected[name] in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (`make install` installs it where it runs as root)")
def test_chromium_renders_the_report_with_its_verdict_and_chart(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    from PIL import Image

    result = gate_run(other_tiny_model, tiny_model, tiny_suite, out=None)
    page = tmp_path / "report.html"
    page.write_text(render_html(result), encoding="utf-8")
    png = tmp_path / "report.png"
    text = chromium_render(page, png)
    assert f"gate: {result['verdict']}" in text and "Provenance" in text
    assert png.stat().st_size > 30_000
    with Image.open(png) as image:
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200, "the page renders as a near-blank image"
    # The chart is drawn: the checkpoint's bars are on the page in their own colour.
    blue = tuple(int(CKPT_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    assert sum(count for count, colour in colours if colour == blue) > 500


def test_a_diagnosis_shows_beside_its_task_and_older_results_without_one_still_render(
    tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    data = gate_run(other_tiny_model, tiny_model, tiny_suite, out=None)
    assert data["schema_version"] == "2.0" and data["waivers"] == [] and data["tasks"][0]["diagnosis"] is None
    plain = {"md": render_markdown(data), "html": render_html(data)}
    assert all("Diagnosis" not in text and "Waivers" not in text for text in plain.values())
    # A 1.0 result has none of the later fields: it renders exactly as a 2.0 result with no waiver or diagnosis.
    old = {**data, "schema_version": "1.0", "tasks": [dict(data["tasks"][0])]}
    del old["waivers"], old["tasks"][0]["diagnosis"], old["tasks"][0]["reached"]
    if old["composite"]:
        old["composite"] = {key: value for key, value in old["composite"].items() if key != "reached"}
    assert render_markdown(old) == plain["md"]

    detail = "tiny_mc dropped (Δ -40.0 pts) while its twin <i>held</i> @octocat"
    data["tasks"][0]["diagnosis"] = {"label": "format/alignment", "detail": detail}
    markdown, html = render_markdown(data), render_html(data)
    assert "| tiny\\_mc · *format/alignment* |" in markdown
    escaped = "tiny\\_mc dropped (Δ -40.0 pts) while its twin &lt;i&gt;held&lt;/i&gt; @\u200boctocat"
    assert f"- tiny\\_mc: **format/alignment**: {escaped}" in markdown
    assert '<td>tiny_mc<br><span class="diagnosis">format/alignment</span></td>' in html
    assert "<h2>Diagnosis (reported, never the verdict)</h2>" in html and "&lt;i&gt;held&lt;/i&gt;" in html
    assert "<i>held" not in html

    undecided = "3 matched items, 10 needed; tiny_mc dropped (Δ -40.0 pts), and its twin was not decided"
    data["tasks"][0]["diagnosis"] = {"label": "undetermined", "detail": undecided}
    markdown, html = render_markdown(data), render_html(data)
    assert "- tiny\\_mc: **undetermined**: 3 matched items, 10 needed; " in markdown
    assert '<td>tiny_mc</td><td>undetermined</td><td>3 matched items, 10 needed; ' in html
