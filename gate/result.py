"""The versioned result record (result.json): everything a report or a machine needs, nothing recomputed later."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gate.errors import BadInputError

# 1.1: waivers and per-task diagnosis, both optional (a 1.0 file reads as none of either).
# 1.2: per-task `reached`, false for a task the gate stopped before its first look (an older file reads as reached).
# 2.0: a task not reached has no items and null numbers; so has the composite (with its own `reached`) then. A 1.x
# reader would format those nulls as numbers, hence the major; this gate reads 1.x files as well.
SCHEMA_VERSION = "2.0"
READ_MAJORS = ("1", "2")


@dataclass(frozen=True)
class ModelInfo:
    """Which model was scored, and the hashes that identify its weights."""

    reference: str
    kind: str
    description: str
    fingerprint: str
    weight_sha256: dict[str, str]


@dataclass(frozen=True)
class FlippedItem:
    """An item the base got right and the checkpoint got wrong, with both answers (raw, escaped at render)."""

    doc_id: int
    prompt: str
    target: str
    base_answer: str
    ckpt_answer: str


@dataclass(frozen=True)
class Diagnosis:
    """A generation task's demonstrated drop read against its log-likelihood twin: reported, never the verdict.

    label is "format/alignment" (the twin's accuracy holds) or "knowledge" (the twin drops too); detail gives the
    numbers and says how the two tasks were compared.
    """

    label: str
    detail: str


@dataclass(frozen=True)
class ActiveWaiver:
    """A gate.yaml waiver in force for this run: the task's budget loosened from normal_budget to budget."""

    task: str
    budget: float
    normal_budget: float
    reason: str
    expires: str  # ISO date, the last day it applies (UTC)


@dataclass(frozen=True)
class TaskResult:
    """One task's paired evidence and decision; a task not reached (the gate FAILed before scoring it) has no items,
    and None for every number measured on them."""

    id: str
    capability: str
    metric: str
    lm_eval_task: str
    chat_template: bool | None
    pool_size: int
    fingerprint: str
    n: int
    base_score: float | None
    ckpt_score: float | None
    delta: float | None
    lower: float | None
    upper: float | None
    p_fail: float | None
    p_fail_adjusted: float | None
    budget: float
    discordance: float | None
    detectable: float | None
    certifiable: float | None
    n_items: int
    planned: int
    stop_reason: str
    method: str | None
    outcome: str
    right_to_wrong: int
    wrong_to_right: int
    flipped: list[FlippedItem]
    items: list[list[float]]
    diagnosis: Diagnosis | None = None
    reached: bool = True  # False: the gate stopped before scoring an item of it


@dataclass(frozen=True)
class CompositeResult:
    """The weighted mean of the task deltas against its own budget; not reached (None for every number) when a
    task was."""

    delta: float | None
    lower: float | None
    upper: float | None
    p_fail: float | None
    p_fail_adjusted: float | None
    budget: float
    outcome: str
    reached: bool = True


@dataclass(frozen=True)
class GateResult:
    """A gate run: verdict, per-task evidence, policy and provenance."""

    verdict: str
    blocking: bool
    exit_code: int
    summary: str
    checkpoint: ModelInfo
    base: ModelInfo
    suite: dict[str, Any]
    policy: dict[str, Any]
    settings: dict[str, Any]
    composite: CompositeResult | None
    tasks: list[TaskResult]
    provenance: dict[str, Any]
    drift: dict[str, Any] | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    waivers: list[ActiveWaiver] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)

    def to_json(self) -> str:
        """Deterministic JSON text: sorted keys, fixed indentation."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load_result(path: Path) -> dict[str, Any]:
    """Read a result.json back as data, refusing anything that is not a gate result of a schema this gate reads."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read it ({exc.strerror}): pass the result.json `gate run` wrote") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path} is not a gate result.json ({exc}): pass the file `gate run` wrote") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path} holds JSON but not a gate result: pass the result.json `gate run` wrote")
    version = data.get("schema_version")
    if not isinstance(version, str) or version.split(".")[0] not in READ_MAJORS:
        raise BadInputError(
            f"{path}: schema_version {version!r} is not one this gate reads (1.x or {SCHEMA_VERSION}): render it "
            "with the gate that wrote it"
        )
    required = [f.name for f in fields(GateResult) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        missing.append("tasks (a list of task records)")
    if missing:
        raise BadInputError(f"{path} lacks {', '.join(missing)}: pass an unedited result.json written by `gate run`")
    return data
