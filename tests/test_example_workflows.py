"""The example workflows' result cache: restored before the gate, saved after it even when it FAILs, under keys
that the next run finds. The keys are the examples' own expressions, evaluated as GitHub would, against a model
of actions/cache (exact key first, then the newest entry per restore-key prefix, in order; entries immutable)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "ci"
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
RESTORE, SAVE = "actions/cache/restore@", "actions/cache/save@"
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_HASH_FILES = re.compile(r"^hashFiles\('([^']+)'\)$")


def evaluate(text: str, context: dict[str, Any]) -> str:
    """Expand `${{ ... }}`: dotted names from the context, hashFiles('f') from context['files']; else KeyError."""
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        hashed = _HASH_FILES.match(expression)
        if hashed:
            return str(context["files"][hashed.group(1)])
        node: Any = context
        for part in expression.split("."):
            node = node[part]
        return str(node)

    return _EXPRESSION.sub(value, text)


@dataclass
class CacheService:
    """actions/cache's documented matching: an exact key hit, else per restore key the newest entry it prefixes."""

    entries: list[str] = field(default_factory=list)  # oldest first

    def restore(self, key: str, restore_keys: list[str]) -> str | None:
        if key in self.entries:
            return key
        for prefix in restore_keys:
            matches = [entry for entry in self.entries if entry.startswith(prefix)]
            if matches:
                return matches[-1]
        return None

    def save(self, key: str) -> bool:
        if key in self.entries:  # caches are immutable: saving an existing key fails
            return False
        self.entries.append(key)
        return True


@dataclass(frozen=True)
class CacheSteps:
    restore: dict[str, Any]
    save: dict[str, Any]


def cache_steps(workflow: str, job: str) -> CacheSteps:
    steps = yaml.safe_load((EXAMPLES / workflow).read_text())["jobs"][job]["steps"]
    (restore,) = [s for s in steps if str(s.get("uses", "")).startswith(RESTORE)]
    (save,) = [s for s in steps if str(s.get("uses", "")).startswith(SAVE)]
    assert steps.index(restore) < steps.index(save)
    return CacheSteps(restore, save)


def run_context(run_id: int, attempt: int = 1, job_index: int = 0, config_hash: str = "c0ffee") -> dict[str, Any]:
    return {"github": {"run_id": run_id, "run_attempt": attempt}, "strategy": {"job-index": job_index},
            "files": {"gate.yaml": config_hash}}


def restore_in(steps: CacheSteps, cache: CacheService, context: dict[str, Any]) -> str | None:
    keys = str(steps.restore["with"].get("restore-keys", "")).split("\n")
    prefixes = [evaluate(k.strip(), context) for k in keys if k.strip()]
    return cache.restore(evaluate(steps.restore["with"]["key"], context), prefixes)


def save_in(steps: CacheSteps, cache: CacheService, context: dict[str, Any]) -> str:
    key = evaluate(steps.save["with"]["key"], context)
    assert cache.save(key), f"{key} exists already: the save would fail"
    return key


@pytest.mark.parametrize(("workflow", "job"), [
    ("github-pr-gate.yml", "gate"), ("github-training-matrix.yml", "gate"), ("github-gpu.yml", "gate"),
])
def test_a_failed_runs_cache_is_saved_and_found_by_the_next_run(workflow: str, job: str) -> None:
    steps = cache_steps(workflow, job)
    assert steps.save.get("if") == "always()", "saved only on success, a FAIL (exit 1) or a cancel saves nothing"
    assert steps.restore["with"]["path"] == steps.save["with"]["path"] == ACTION["inputs"]["cache-dir"]["default"]
    assert steps.restore["with"]["key"] == steps.save["with"]["key"]

    cache = CacheService()
    assert restore_in(steps, cache, run_context(101)) is None
    failed = save_in(steps, cache, run_context(101))  # the gate exited 1; `if: always()` still saves
    assert restore_in(steps, cache, run_context(102)) == failed  # the next push
    rerun = save_in(steps, cache, run_context(101, attempt=2))  # a re-run of the same run gets a key of its own
    assert restore_in(steps, cache, run_context(103)) == rerun  # the newest wins
    assert restore_in(steps, cache, run_context(104, config_hash="beef")) is None  # a changed gate.yaml: fresh


def test_the_nightly_base_cache_seeds_pull_requests_until_they_have_their_own() -> None:
    nightly = yaml.safe_load((EXAMPLES / "github-nightly-baseline.yml").read_text())["jobs"]["baseline"]["steps"]
    (save,) = [s for s in nightly if str(s.get("uses", "")).startswith(SAVE)]
    assert save.get("if") == "always()"
    cache = CacheService()
    base = cache.save(evaluate(save["with"]["key"], {**run_context(7), "steps": {"day": {"outputs": {
        "day": "2026-12-07"}}}}))
    assert base
    pr = cache_steps("github-pr-gate.yml", "gate")
    assert restore_in(pr, cache, run_context(200)) == cache.entries[0]
    own = save_in(pr, cache, run_context(200))
    assert restore_in(pr, cache, run_context(201)) == own
