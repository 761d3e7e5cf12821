"""The versioned result record (result.json): everything a report or a machine needs, nothing recomputed later."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

SCHEMA_VERSION = "1.0"
PROVENANCE_PACKAGES = ("sft-gate", "lm_eval", "transformers", "torch", "peft", "numpy", "scipy")


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
class TaskResult:
    """One task's paired evidence and decision."""

    id: str
    capability: str
    metric: str
    lm_eval_task: str
    chat_template: bool
    pool_size: int
    fingerprint: str
    n: int
    base_score: float
    ckpt_score: float
    delta: float
    lower: float
    upper: float
    p_fail: float
    p_fail_adjusted: float
    budget: float
    discordance: float
    detectable: float
    method: str
    outcome: str
    right_to_wrong: int
    wrong_to_right: int
    flipped: list[FlippedItem]
    items: list[list[float]]


@dataclass(frozen=True)
class CompositeResult:
    """The weighted mean of the task deltas against its own budget."""

    delta: float
    lower: float
    upper: float
    p_fail: float
    p_fail_adjusted: float
    budget: float
    outcome: str


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
    timing: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)

    def to_json(self) -> str:
        """Deterministic JSON text: sorted keys, fixed indentation."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = sys.version.split()[0]
    versions["platform"] = platform.platform()
    return versions
