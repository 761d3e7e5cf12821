"""JUnit XML: one test case per task (and the composite), so GitLab, Jenkins, Azure and Buildkite show the gate.

FAIL is a <failure>; WARN is <skipped> with its reason, or a <failure> when the result blocks on WARN
(fail-on-warn), so the test report never looks green while the gate blocks. The shape follows the Jenkins
xunit plugin's junit-10.xsd, which GitLab and the others also read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gate.decision import Outcome
from gate.files import atomic_write_text
from gate.report.decisions import decisions

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def render_junit(result: Mapping[str, Any]) -> str:
    """Render result.json data (as a dict) to JUnit XML text."""
    suite_name = f"gate.{result['suite']['name']}"
    cases = decisions(result)
    warn_blocks = result["verdict"] == Outcome.WARN.value and result["blocking"]
    failing = {Outcome.FAIL.value} | ({Outcome.WARN.value} if warn_blocks else set())
    failures = sum(case.outcome in failing for case in cases)
    skipped = sum(case.outcome == Outcome.WARN.value and not warn_blocks for case in cases)
    timing = result.get("timing") or {}
    seconds = f"{float(timing.get('seconds', {}).get('total', 0.0)):.3f}"

    root = ET.Element("testsuites", name="sft-gate", tests=str(len(cases)), failures=str(failures),
                      errors="0", time=seconds)
    suite = ET.SubElement(root, "testsuite", name=_text(suite_name), tests=str(len(cases)),
                          failures=str(failures), errors="0", skipped=str(skipped), time=seconds)
    if "started" in timing:
        suite.set("timestamp", _text(timing["started"]))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", result["verdict"]),
        ("checkpoint", result["checkpoint"]["reference"]),
        ("checkpoint.fingerprint", result["checkpoint"]["fingerprint"]),
        ("base", result["base"]["reference"]),
        ("base.fingerprint", result["base"]["fingerprint"]),
        ("suite.fingerprint", result["suite"]["fingerprint"]),
    ):
        ET.SubElement(properties, "property", name=name, value=_text(value))
    for case in cases:
        element = ET.SubElement(suite, "testcase", name=_text(case.name), classname=_text(suite_name))
        if case.outcome in failing:
            kind = "regression" if case.outcome == Outcome.FAIL.value else "undecided"
            failure = ET.SubElement(element, "failure", type=kind, message=_text(case.line))
            failure.text = _text(case.line)
        elif case.outcome == Outcome.WARN.value:
            ET.SubElement(element, "skipped", message=_text(case.line))
    ET.SubElement(suite, "system-out").text = _text(f"{result['verdict']}: {result['summary']}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(result: Mapping[str, Any], path: Path) -> Path:
    """Write the JUnit XML for result.json data to `path` atomically; returns the path."""
    atomic_write_text(path, render_junit(result))
    return path
