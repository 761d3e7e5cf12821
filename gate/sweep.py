"""`gate sweep`: the checkpoints of one training run gated in step order, and the trajectory of every delta.

A view over the checkpoints' own results: each checkpoint is gated by `gate.api.run` (the same sequential test, the
same result cache, so the base is scored once and an interrupted sweep resumes), and the sweep record reads their
result.json files; nothing is recomputed.
"""

from __future__ import annotations

import glob
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.decision import COMPOSITE
from gate.errors import BadInputError, ExitCode
from gate.provenance import package_versions

# 2.0: its results may hold tasks and a composite not reached, with null numbers (result.json 2.0); reads 1.x too.
SWEEP_SCHEMA_VERSION = "2.0"
_SWEEP_READ_MAJORS = ("1", "2")
SWEEP_FILE, SWEEP_REPORT, SWEEP_HTML = "sweep.json", "sweep.md", "sweep.html"

_STEP = re.compile(r"(?:checkpoint|step|ckpt)[-_]?(\d+)$", re.IGNORECASE)
_MODEL_FILES = ("config.json", "adapter_config.json")
_GLOB_CHARS = re.compile(r"[*?\[]")
_TASK_FIELDS = ("capability", "delta", "lower", "upper", "budget", "outcome", "n_items")


@dataclass(frozen=True)
class SweepPoint:
    """One checkpoint of the run: its folder or file, its name, and its training step."""

    name: str
    step: int
    path: Path


def _step_of(path: Path) -> int | None:
    match = _STEP.search(path.name) or re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else None


def _is_model(path: Path) -> bool:
    return path.is_file() or any((path / name).is_file() for name in _MODEL_FILES)


def _expand(argument: str) -> list[Path]:
    """A glob, a folder of checkpoint-N folders, or one checkpoint."""
    path = Path(argument)
    if not path.exists() and _GLOB_CHARS.search(argument):
        return [Path(found) for found in sorted(glob.glob(argument))]  # noqa: PTH207 (an absolute or relative glob)
    if path.is_dir() and not _is_model(path):
        inner = [child for child in sorted(path.iterdir()) if child.is_dir() and _STEP.search(child.name)]
        if inner:
            return inner
    return [path]


def discover(arguments: Sequence[str]) -> list[SweepPoint]:
    """The checkpoints named by the arguments, in step order; BadInputError when none, or steps are ambiguous.

    A step is read from the name (`checkpoint-500`, `step_500`, a trailing number); when no name carries one, the
    checkpoints keep the order given and are numbered 1, 2, ...
    """
    paths: list[Path] = []
    for argument in arguments:
        for path in _expand(argument):
            if path not in paths:
                paths.append(path)
    if not paths:
        raise BadInputError(
            f"no checkpoint matches {' '.join(arguments)}: pass a glob (runs/exp1/checkpoint-*), "
            "a folder of checkpoint-N folders, or checkpoint paths"
        )
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise BadInputError(f"checkpoint {missing[0]} does not exist: pass existing checkpoint folders")
    steps = [_step_of(path) for path in paths]
    if all(step is None for step in steps):
        return _unique_names([SweepPoint(path.name, i, path) for i, path in enumerate(paths, start=1)])
    if any(step is None for step in steps):
        unnamed = next(path for path, step in zip(paths, steps, strict=True) if step is None)
        raise BadInputError(
            f"{unnamed} carries no step in its name while others do: name every checkpoint checkpoint-N"
        )
    points = sorted(
        (SweepPoint(path.name, step, path) for path, step in zip(paths, steps, strict=True) if step is not None),
        key=lambda point: point.step,
    )
    for before, after in itertools.pairwise(points):
        if before.step == after.step:
            raise BadInputError(f"{before.path} and {after.path} are both step {before.step}: sweep one run at a time")
    return _unique_names(points)


def _unique_names(points: list[SweepPoint]) -> list[SweepPoint]:
    names = [point.name for point in points]
    clash = next((name for name in names if names.count(name) > 1), None)
    if clash is not None:
        raise BadInputError(f"two checkpoints are named {clash}: sweep one run's checkpoints (distinct folder names)")
    return points


def selected(points: Sequence[SweepPoint], require: str) -> str | None:
    """The checkpoint `--require` names (None for `any`); BadInputError when it names none of them."""
    if require == "any":
        return None
    if require == "last":
        return points[-1].name
    for point in points:
        if require in (point.name, str(point.step), str(point.path)):
            return point.name
    names = ", ".join(point.name for point in points)
    raise BadInputError(f"--require {require}: no such checkpoint in the sweep (its checkpoints: {names})")


def _entry(point: SweepPoint, result: dict[str, Any] | None, out_dir: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": point.name, "step": point.step, "path": str(point.path)}
    if result is None:
        return {
            **entry,
            "status": "skipped",
            "verdict": None,
            "exit_code": None,
            "result": None,
            "tasks": {},
            "composite": None,
            "seconds": None,
        }
    tasks = {
        task["id"]: {key: task[key] for key in _TASK_FIELDS} | {"reached": task.get("reached", True)}
        for task in result["tasks"]
    }
    seconds = result.get("timing", {}).get("seconds", {})
    return {
        **entry,
        "status": "gated",
        "verdict": result["verdict"],
        "exit_code": result["exit_code"],
        "summary": result["summary"],
        "fingerprint": result["checkpoint"]["fingerprint"],
        "result": str((out_dir / point.name / "result.json").relative_to(out_dir)),
        "tasks": tasks,
        "composite": result["composite"],
        "seconds": seconds.get("total") if isinstance(seconds, dict) else None,
    }


def _first_fails(entries: Sequence[dict[str, Any]], series: Sequence[str]) -> dict[str, int | None]:
    """Per task (and the composite), the step of the first checkpoint that FAILs it."""
    first: dict[str, int | None] = {}
    for key in series:
        first[key] = None
        for entry in entries:
            found = entry["composite"] if key == COMPOSITE else entry["tasks"].get(key)
            if found is not None and found["outcome"] == "FAIL":
                first[key] = entry["step"]
                break
    return first


def _recommend(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The latest checkpoint that PASSes every budget, and the best composite delta among those that do not FAIL."""
    gated = [entry for entry in entries if entry["status"] == "gated"]
    passing = [entry for entry in gated if entry["verdict"] == "PASS"]
    unfailed = [entry for entry in gated if entry["verdict"] != "FAIL" and entry["composite"] is not None]
    latest = passing[-1] if passing else None
    best = max(unfailed, key=lambda entry: (entry["composite"]["delta"], entry["step"]), default=None)
    if latest is not None:
        reason = f"{latest['name']} (step {latest['step']}) is the latest checkpoint that passes every budget"
    elif unfailed:
        reason = "no checkpoint passes every budget (each FAILs or is undecided somewhere)"
    else:
        reason = "every gated checkpoint FAILs: ship none of them"
    if best is not None:
        reason += (
            f"; {best['name']} (step {best['step']}) has the best composite delta among those without a FAIL "
            f"({best['composite']['delta']:+.1f} pts, a point estimate)"
        )
    return {
        "latest_pass": latest["name"] if latest else None,
        "best_composite": best["name"] if best else None,
        "reason": reason,
    }


def build_record(
    points: Sequence[SweepPoint],
    results: dict[str, dict[str, Any]],
    out_dir: Path,
    *,
    require: str,
    stop_at_fail: bool,
    timing: dict[str, Any],
) -> dict[str, Any]:
    """The sweep record (sweep.json): one entry per checkpoint, first FAILs, recommendation and the CI outcome."""
    entries = [_entry(point, results.get(point.name), out_dir) for point in points]
    first = next(results[point.name] for point in points if point.name in results)
    series = [task["id"] for task in sorted(first["tasks"], key=lambda task: (task["capability"], task["id"]))]
    if first["composite"] is not None:
        series.append(COMPOSITE)
    target = selected(points, require)
    passed = (
        any(entry["exit_code"] == ExitCode.OK for entry in entries)
        if target is None
        else next(entry["exit_code"] == ExitCode.OK for entry in entries if entry["name"] == target)
    )
    return {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "kind": "gate-sweep",
        "base": first["base"],
        "suite": first["suite"],
        "policy": first["policy"],
        "series": series,
        "capabilities": {task["id"]: task["capability"] for task in first["tasks"]},
        "checkpoints": entries,
        "first_fail": _first_fails(entries, series),
        "recommendation": _recommend(entries),
        "require": require,
        "selected": target,
        "stop_at_fail": stop_at_fail,
        "passed": passed,
        "exit_code": int(ExitCode.OK if passed else ExitCode.REGRESSION),
        "provenance": {"versions": package_versions()},
        "timing": timing,
    }


def load_sweep(path: Path) -> dict[str, Any]:
    """Read a sweep.json back, refusing anything that is not a sweep record of a schema this gate reads."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path} is not a gate sweep.json ({exc}): pass the file `gate sweep` wrote") from None
    if not isinstance(data, dict) or data.get("kind") != "gate-sweep":
        raise BadInputError(f"{path} is not a gate sweep.json: pass the file `gate sweep` wrote")
    if str(data.get("schema_version", "")).split(".")[0] not in _SWEEP_READ_MAJORS:
        raise BadInputError(
            f"{path}: schema_version {data.get('schema_version')!r} is not one this gate reads (1.x or "
            f"{SWEEP_SCHEMA_VERSION}): render it with the gate that wrote it"
        )
    return data
