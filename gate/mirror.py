"""The offline mirror: one JSONL file per task split (`<task>_<split>.jsonl`), read and written here.

A mirror file holds the split's records exactly as the `datasets` library gives them from the hub, one JSON
object a line, so a task reads it through the `json` loader with no change to its prompts or scoring.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import SuiteError
from gate.files import atomic_write_text
from gate.suites import DataSpec, Suite, dataset_label, task_config


@dataclass(frozen=True)
class MirrorFile:
    """One file an export wrote: which dataset split it holds, how many records, for which tasks."""

    path: Path
    dataset: str
    split: str
    rows: int
    tasks: tuple[str, ...]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a mirror file; SuiteError `path:line: problem` on the first line that is not one."""
    fix = "fix the line or re-export the file with `gate mirror export`"
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = f"cannot read the mirror file ({exc})"
        raise SuiteError(f"{path}: {reason}: re-export it with `gate mirror export`") from None
    try:
        # Bytes, not read_text: its universal newlines would also end lines at a lone "\r".
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number, line_start = data.count(b"\n", 0, exc.start) + 1, data.rfind(b"\n", 0, exc.start) + 1
        byte = f"byte {data[exc.start]:#04x} at column {exc.start - line_start + 1}"
        raise SuiteError(f"{path}:{number}: not UTF-8 text ({byte}): {fix}") from None
    if not text.strip():
        raise SuiteError(f"{path}: the mirror file has no records: re-export it with `gate mirror export`")
    records: list[dict[str, Any]] = []
    # JSON Lines ends records at "\n" only: str.splitlines would also split inside strings at U+2028 and kin.
    for number, line in enumerate(text.removesuffix("\n").split("\n"), start=1):
        try:
            records.append(_record(line, records[0] if records else None))
        except ValueError as exc:
            raise SuiteError(f"{path}:{number}: {exc}: {fix}") from None
    return records


def _record(line: str, first: dict[str, Any] | None) -> dict[str, Any]:
    """One line's record; ValueError naming the problem when it is not a JSON object shaped like the first."""
    if not line.strip():
        raise ValueError("blank line (a mirror file has one JSON object on every line)")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert, arrays nested too deep
        raise ValueError(f"not valid JSON ({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    if first is not None and record.keys() != first.keys():
        missing, extra = sorted(first.keys() - record.keys()), sorted(record.keys() - first.keys())
        raise ValueError(f"fields differ from line 1 (missing {missing}, extra {extra})")
    return record


def _load_split(config: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """The split's records through `datasets`, as lm-eval loads them (before any process_docs)."""
    import datasets

    rows = datasets.load_dataset(
        config["dataset_path"], config.get("dataset_name"), split=split, **(config.get("dataset_kwargs") or {})
    )
    return [dict(row) for row in rows]


def export_mirror(
    suite: Suite, out_dir: Path, *, source: Path | None = None, progress: Callable[[str], None] | None = None
) -> list[MirrorFile]:
    """Write the suite's mirror files into out_dir from the hub, or from the mirror `source` (to copy or check one).

    Tasks that share a file (TruthfulQA mc1 and mc2) must read the same dataset split; it is written once.
    """
    if suite.generator is not None:
        raise SuiteError(f"suite {suite.name} generates its own items and needs no mirror: export another suite")
    planned: dict[str, tuple[DataSpec, dict[str, Any], list[str]]] = {}
    for spec in suite.tasks:
        if spec.data is None:
            continue
        config = task_config(suite, spec)
        if spec.data.file in planned:
            data, first, tasks = planned[spec.data.file]
            if (dataset_label(first), data.split) != (dataset_label(config), spec.data.split):
                raise SuiteError(
                    f"suite {suite.name}: tasks {tasks[0]} and {spec.id} both name {spec.data.file} but read "
                    f"{dataset_label(first)} {data.split} and {dataset_label(config)} {spec.data.split}: "
                    "give each its own file"
                )
            tasks.append(spec.id)
            continue
        planned[spec.data.file] = (spec.data, config, [spec.id])
    if not planned:
        raise SuiteError(f"suite {suite.name} has no task with a `data` file to export")
    written = []
    for file, (data, hub_config, tasks) in planned.items():
        config = task_config(suite, suite.task(tasks[0]), source) if source is not None else hub_config
        try:
            records = _load_split(config, data.split)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            where = str(source / file) if source is not None else f"{dataset_label(hub_config)} from the hub"
            raise SuiteError(f"cannot read {where} ({reason}): export on a machine that reaches the hub") from None
        path = out_dir / file
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        written.append(MirrorFile(path, dataset_label(hub_config), data.split, len(records), tuple(tasks)))
        if progress:
            progress(f"wrote {path} ({len(records)} records of {dataset_label(hub_config)} {data.split})")
    return written
