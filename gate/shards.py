"""Sharded runs for CI matrices: a deterministic slice of every task's items, partial results, and their merge.

Shard i of n takes every n-th unit (an item, or a cluster of items sharing a passage) of each task's seeded order,
starting at unit i - 1, so the n shards cover the items exactly once. A partial result holds both models' per-item
outputs of its slice and the identity of the run (suite fingerprint, model fingerprints, config, settings); merging
refuses partials whose identities differ, a missing or repeated shard, and a suite that changed since.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gate.errors import BadInputError
from gate.files import atomic_write_text
from gate.items import ItemPair, PairedTask
from gate.suites import PreparedTask

PARTIAL_KIND = "gate-partial-result"
PARTIAL_SCHEMA = "1.0"
_SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    @property
    def label(self) -> str:
        """`i/n`, as written on the command line."""
        return f"{self.index}/{self.count}"

    def file_name(self) -> str:
        """The partial result's file name: partial-<i>-of-<n>.json."""
        return f"partial-{self.index}-of-{self.count}.json"


def parse_shard(text: str) -> Shard:
    """`i/n` with 1 <= i <= n; BadInputError otherwise."""
    match = _SHARD.match(text.strip())
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise BadInputError(f"--shard {text!r} is not i/n with 1 <= i <= n: write it like 2/4")
    return Shard(int(match.group(1)), int(match.group(2)))


def check_shardable(tasks: Sequence[PreparedTask], shard: Shard) -> None:
    """BadInputError if a shard would be empty, or a task's few-shot examples would depend on the sharding."""
    for task in tasks:
        if task.units < shard.count:
            raise BadInputError(
                f"task {task.spec.id} has {task.units} units (items or passages), fewer than {shard.count} shards: "
                f"use at most {task.units} shards"
            )
        if task.lm_eval_config.get("num_fewshot"):
            raise BadInputError(
                f"task {task.spec.id} is few-shot, and lm-eval draws each item's examples from one stream per call, "
                "so a shard would see other examples than one run: gate it unsharded, or set num_fewshot: 0"
            )


def shard_doc_ids(task: PreparedTask, shard: Shard) -> tuple[int, ...]:
    """The task's doc ids in this shard, in the seeded order: every n-th unit, whole clusters kept together."""
    if task.clusters is None:
        return task.doc_ids[shard.index - 1 :: shard.count]
    unit = -1
    kept = []
    for position, doc_id in enumerate(task.doc_ids):
        if position == 0 or task.clusters[position] != task.clusters[position - 1]:
            unit += 1
        if unit % shard.count == shard.index - 1:
            kept.append(doc_id)
    return tuple(kept)


def write_partial(
    path: Path, shard: Shard, identity: Mapping[str, Any], paired: Sequence[PairedTask], extra: Mapping[str, Any]
) -> Path:
    """Write one shard's paired items and the run's identity atomically."""
    record = {
        "kind": PARTIAL_KIND,
        "schema_version": PARTIAL_SCHEMA,
        "shard": {"index": shard.index, "count": shard.count},
        "identity": dict(identity),
        "tasks": {
            task.task.spec.id: {"chat_template": task.chat_template, "items": [asdict(item) for item in task.items]}
            for task in paired
        },
        **extra,
    }
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist: pass the partial-<i>-of-<n>.json files the shards wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise BadInputError(
            f"{path} is not a readable JSON file ({reason}): pass a file `gate run --shard` wrote"
        ) from None
    if not isinstance(record, dict) or record.get("kind") != PARTIAL_KIND:
        raise BadInputError(f"{path} is not a partial result: pass the files `gate run --shard i/n` wrote")
    if not isinstance(record.get("shard"), dict) or not isinstance(record.get("identity"), dict):
        raise BadInputError(f"{path} lacks its shard or identity: pass the files `gate run --shard` wrote, unedited")
    if record.get("schema_version") != PARTIAL_SCHEMA:
        raise BadInputError(
            f"{path} has partial-result schema {record.get('schema_version')}, this gate reads {PARTIAL_SCHEMA}: "
            "rerun the shards with this version"
        )
    return record


def _difference(a: Any, b: Any, prefix: str = "") -> str:
    """The first key path at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
    return prefix or "(the whole record)"


def read_partials(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The partials of one run, ordered by shard; BadInputError if they differ, miss a shard or repeat one."""
    if not paths:
        raise BadInputError("no partial results given: pass every partial-<i>-of-<n>.json of the run")
    records = [(_read(path), path) for path in paths]
    first, first_path = records[0]
    for record, path in records[1:]:
        if record["identity"] != first["identity"]:
            where = _difference(record["identity"], first["identity"])
            raise BadInputError(
                f"{path} and {first_path} come from different runs ({where} differs): merge only the shards of one run"
            )
    count = first["shard"]["count"]
    seen: dict[int, Path] = {}
    for record, path in records:
        index = record["shard"]["index"]
        if record["shard"]["count"] != count:
            raise BadInputError(f"{path} is shard {index} of {record['shard']['count']}, the others of {count}")
        if index in seen:
            raise BadInputError(f"{path} and {seen[index]} are both shard {index}/{count}: pass each shard once")
        seen[index] = path
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise BadInputError(
            f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: pass all {count} partial results"
        )
    return [record for record, _ in sorted(records, key=lambda pair: pair[0]["shard"]["index"])]


def merge_pairs(partials: Sequence[Mapping[str, Any]], tasks: Sequence[PreparedTask]) -> list[PairedTask]:
    """Every task's paired items from all shards, back in the seeded order of the unsharded run."""
    try:
        return _merge_pairs(partials, tasks)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(
            f"a partial result lacks or mistypes a field ({exc}): pass the files `gate run --shard` wrote, unedited"
        ) from None


def _merge_pairs(partials: Sequence[Mapping[str, Any]], tasks: Sequence[PreparedTask]) -> list[PairedTask]:
    paired = []
    for task in tasks:
        task_id = task.spec.id
        items: dict[int, ItemPair] = {}
        templates = set()
        for partial in partials:
            part = partial["tasks"].get(task_id)
            if part is None:
                raise BadInputError(f"a partial result has no task {task_id}: rerun the shards with the same suite")
            templates.add(part["chat_template"])
            items.update({item["doc_id"]: ItemPair(**item) for item in part["items"]})
        missing = [doc_id for doc_id in task.doc_ids if doc_id not in items]
        if missing or len(items) != len(task.doc_ids) or len(templates) != 1:
            raise BadInputError(
                f"the shards do not cover task {task_id}'s items exactly once: rerun them with the same suite and seed"
            )
        paired.append(PairedTask(task, tuple(items[doc_id] for doc_id in task.doc_ids), templates.pop()))
    return paired
