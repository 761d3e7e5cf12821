"""Per-item result cache keyed by fingerprints: the base is scored once per suite, an interrupted run resumes.

An entry holds one model's per-item outputs on one task. It is used only when everything that decides an item's
score matches: the model's weights fingerprint and tokenizer, the task's scoring key (lm-eval config, task version,
metric, filter, chat-template setting), each item's rendered prompt, the dtype, device and batch size, and the
versions of lm-eval, transformers and torch. lm-eval's own response cache is keyed by none of the weights, so the
gate never passes `use_cache`; this cache is. Entries carry a checksum: a stale or corrupt one is logged and
recomputed, never trusted.

A checksum stops accidents, not a forger: anyone who can write the folder can recompute it. Given a secret (the
Action's `cache-key-secret`, the CLI's GATE_CACHE_SECRET), each entry also carries an HMAC-SHA256 tag of its
content keyed by it, verified on read; an entry without a valid tag is recomputed and the log says so. Without a
secret the stats say the cache is unauthenticated, and the report says so beside the verdict. Every value read is
type- and range-checked, and writes of one entry take a file lock, so concurrent runs merge instead of losing items.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gate.errors import RunError
from gate.files import atomic_write_text, file_lock
from gate.items import ItemOutput, ItemScorer, ModelScores
from gate.provenance import installed_versions
from gate.suites import PreparedTask

log = logging.getLogger("gate")
CACHE_SCHEMA = 1
RESULTS_FOLDER = "results"
# Items scored per call and stored together: what an interrupted run can lose at most, per model and task.
STORE_EVERY = 100
# The gate's own scorer and answer extraction, lm-eval's tasks and metrics, and the model stacks.
_KEYED_PACKAGES = ("sft-gate", "lm_eval", "transformers", "torch", "peft", "vllm")


class Scorer(ItemScorer, Protocol):
    """What the cache wraps (gate.runner.ModelPair): an item scorer that also says who each role is."""

    def model_identity(self, role: str) -> dict[str, str]: ...

    def record_drafts(self, outputs: Sequence[ItemOutput]) -> None: ...


@dataclass
class CacheStats:
    """Items served from the cache and items scored, per role."""

    hits: dict[str, int] = field(default_factory=lambda: {"base": 0, "checkpoint": 0})
    scored: dict[str, int] = field(default_factory=lambda: {"base": 0, "checkpoint": 0})
    recomputed_entries: int = 0
    authenticated: bool = False


def _checksum(items: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _tag(secret: bytes, entry: Mapping[str, Any]) -> str:
    """HMAC-SHA256 of the entry's canonical JSON (everything but the tag itself)."""
    content = json.dumps({k: v for k, v in entry.items() if k != "tag"}, sort_keys=True, ensure_ascii=False)
    return hmac.new(secret, content.encode(), hashlib.sha256).hexdigest()


_TEXT_FIELDS = ("answer", "target", "prompt", "item_key")


_ITEM_FIELDS = {"doc_id", "score", "cluster", "generation", "generation_ids", *_TEXT_FIELDS}


def _valid_item(doc_id: str, item: Any) -> bool:
    """A stored item as the gate writes it: the right types, the doc id it is filed under, a score in [0, 1]."""
    if not isinstance(item, dict) or set(item) != _ITEM_FIELDS:
        return False
    score, ids = item["score"], item["generation_ids"]
    return (
        type(item["doc_id"]) is int and str(item["doc_id"]) == doc_id
        and type(score) in (int, float) and math.isfinite(score) and 0.0 <= score <= 1.0
        and all(isinstance(item[name], str) for name in _TEXT_FIELDS)
        and (item["cluster"] is None or isinstance(item["cluster"], str))
        and (item["generation"] is None or isinstance(item["generation"], str))
        and (ids is None or (isinstance(ids, list) and all(type(i) is int and i >= 0 for i in ids)))
    )


class ResultCache:
    """Per-item outputs on disk, one JSON file per (model, task, scoring key), written atomically."""

    def __init__(self, root: Path, settings: Mapping[str, Any], secret: str | None = None) -> None:
        self.root = root / RESULTS_FOLDER
        self.settings = dict(settings)
        self.versions = installed_versions(_KEYED_PACKAGES)
        self._secret = secret.encode() if secret else None
        self.stats = CacheStats(authenticated=self._secret is not None)
        self.unwritable = False

    def __repr__(self) -> str:
        return f"ResultCache({self.root}, authenticated={self._secret is not None})"

    def _key(self, identity: Mapping[str, str], task: PreparedTask) -> dict[str, Any]:
        return {
            "schema": CACHE_SCHEMA,
            "model": dict(identity),
            "task": task.spec.id,
            "scoring_key": task.scoring_key,
            "settings": self.settings,
            "versions": self.versions,
        }

    def _path(self, key: Mapping[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        model = str(key["model"]["fingerprint"]).replace("sha256:", "")
        return self.root / model / f"{key['task']}-{digest}.json"

    def _read(self, key: Mapping[str, Any]) -> tuple[bool, dict[str, Any]] | None:
        """(chat_template, items by doc id) of a valid entry; None when absent, stale or corrupt (then logged)."""
        path = self._path(key)
        if not path.is_file():
            return None
        problem = None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            valid = (
                isinstance(entry, dict)
                and entry.get("key") == key
                and isinstance(entry.get("items"), dict)
                and entry.get("sha256") == _checksum(entry["items"])
                and isinstance(entry.get("chat_template"), bool)
                and all(_valid_item(doc_id, item) for doc_id, item in entry["items"].items())
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            valid = False
        if not valid:
            problem = "is stale or corrupt"
        elif self._secret is not None and not hmac.compare_digest(str(entry.get("tag", "")), _tag(self._secret, entry)):
            problem = "fails its authentication tag (not written with this cache-key-secret, or edited since)"
        if problem is not None:
            log.warning("cache entry %s %s: recomputing it", path, problem)
            self.stats.recomputed_entries += 1
            path.unlink(missing_ok=True)
            return None
        return entry["chat_template"], entry["items"]

    def lookup(
        self, identity: Mapping[str, str], task: PreparedTask, doc_ids: Sequence[int]
    ) -> tuple[bool | None, dict[int, ItemOutput]]:
        """The chat-template setting and the cached outputs among `doc_ids` whose rendered item still matches."""
        found = self._read(self._key(identity, task))
        if found is None:
            return None, {}
        chat_template, items = found
        item_key = dict(zip(task.doc_ids, task.item_keys, strict=True))
        hits = {}
        try:
            for doc_id in doc_ids:
                stored = items.get(str(doc_id))
                if stored is not None and stored["item_key"] == item_key[doc_id]:
                    hits[doc_id] = ItemOutput(**{k: v for k, v in stored.items() if k != "item_key"})
        except (TypeError, KeyError, AttributeError):  # written by another layout of ItemOutput
            log.warning("cache entry for %s does not fit this gate version: recomputing it", task.spec.id)
            return None, {}
        return chat_template, hits

    def store(
        self, identity: Mapping[str, str], task: PreparedTask, chat_template: bool, outputs: Sequence[ItemOutput]
    ) -> None:
        """Add outputs to the task's entry (merging with what is there) and write it atomically."""
        if self.unwritable:
            return
        key = self._key(identity, task)
        path = self._path(key)
        item_key = dict(zip(task.doc_ids, task.item_keys, strict=True))
        try:
            # Read, merge and write under the entry's lock: a run storing into it at the same time loses nothing.
            with file_lock(path.with_name(path.name + ".lock")):
                found = self._read(key)
                items = dict(found[1]) if found is not None and found[0] == chat_template else {}
                for output in outputs:
                    items[str(output.doc_id)] = {**asdict(output), "item_key": item_key[output.doc_id]}
                entry: dict[str, Any] = {
                    "key": key, "chat_template": chat_template, "items": items, "sha256": _checksum(items)
                }
                if self._secret is not None:
                    entry["tag"] = _tag(self._secret, entry)
                atomic_write_text(path, json.dumps(entry, sort_keys=True, ensure_ascii=False))
        except OSError as exc:
            self.unwritable = True
            log.warning(
                "cannot write the result cache in %s (%s): going on without it; pass a writable --cache-dir, "
                "or --no-cache", self.root, exc.strerror or exc
            )


class CachedScorer:
    """Scores through the cache: hits are read, misses scored and stored every STORE_EVERY items.

    Storing as it goes is what lets an interrupted run resume without recomputing finished items. A few-shot task is
    never cached: lm-eval draws an item's examples from one random stream per call, so they depend on which items
    share the call, and a cached base could have seen other examples than the checkpoint.
    """

    def __init__(self, models: Scorer, cache: ResultCache) -> None:
        self.models, self.cache = models, cache
        self._identity = {role: models.model_identity(role) for role in ("base", "checkpoint")}

    def score(
        self,
        role: str,
        tasks: Sequence[PreparedTask],
        doc_ids: Mapping[str, Sequence[int]],
        progress: Any = None,
    ) -> ModelScores:
        """Like ModelPair.score: outputs in the order of `doc_ids`, cached ones read, the rest scored and stored."""
        uncached = [task for task in tasks if task.lm_eval_config.get("num_fewshot") and doc_ids[task.spec.id]]
        scores = self.models.score(role, uncached, doc_ids, progress) if uncached else ModelScores({}, {})
        for task in tasks:
            if task in uncached or not doc_ids[task.spec.id]:
                continue
            outputs, chat_template = self._task(role, task, list(doc_ids[task.spec.id]), progress)
            scores.outputs[task.spec.id], scores.chat_template[task.spec.id] = outputs, chat_template
        return scores

    def _task(self, role: str, task: PreparedTask, wanted: list[int], progress: Any) -> tuple[list[ItemOutput], bool]:
        identity, task_id = self._identity[role], task.spec.id
        chat_template, found = self.cache.lookup(identity, task, wanted)
        missing = [doc_id for doc_id in wanted if doc_id not in found]
        if found:
            if role == "base":  # the checkpoint's greedy generation verifies them instead of decoding anew
                self.models.record_drafts(list(found.values()))
            message = f"{role}: {len(found)} of {len(wanted)} items of {task_id} reused from the result cache"
            log.info(message)
            if progress:
                progress(message)
        for start in range(0, len(missing), STORE_EVERY):
            chunk = missing[start : start + STORE_EVERY]
            scored = self.models.score(role, [task], {task_id: chunk}, progress)
            chat_template = scored.chat_template[task_id]
            self.cache.store(identity, task, chat_template, scored.outputs[task_id])
            found.update({output.doc_id: output for output in scored.outputs[task_id]})
        if chat_template is None:
            raise RunError(f"task {task_id}: no item was scored or cached for the {role}: this is a bug, report it")
        self.cache.stats.hits[role] += len(wanted) - len(missing)
        self.cache.stats.scored[role] += len(missing)
        return [found[doc_id] for doc_id in wanted], chat_template
