"""Sharded runs on tiny random models: shards cover the items once, and merged shards equal one unsharded run."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import add_tiny_task

from gate.api import merge, run
from gate.cli import main
from gate.errors import BadInputError, ExitCode
from gate.shards import Shard, parse_shard, shard_doc_ids
from gate.suites import load_suite, prepare_tasks


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout + result.stderr


def _shard(ckpt: Path, base: Path, suite: Path, out: Path, shard: str, config: Path) -> Path:
    code, output = _cli("run", "--ckpt", str(ckpt), "--base", str(base), "--suite", str(suite), "--data-dir",
                        str(suite.parent / "mirror"), "--out", str(out), "--shard", shard, "--config", str(config),
                        "--no-cache")
    assert code == ExitCode.OK, output
    index, count = shard.split("/")
    return out / f"partial-{index}-of-{count}.json"


def _without_timing(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "timing"}


def test_shard_slices_cover_every_item_once_and_keep_clusters_whole(tiny_suite: Path) -> None:
    (task,) = prepare_tasks(load_suite(str(tiny_suite)), seed=1234, data_dir=tiny_suite.parent / "mirror")
    slices = [shard_doc_ids(task, Shard(i, 3)) for i in (1, 2, 3)]
    assert sorted(doc for part in slices for doc in part) == sorted(task.doc_ids)
    assert [len(part) for part in slices] == [14, 13, 13]
    clustered = dataclasses.replace(task, clusters=tuple(str(position // 4) for position in range(40)))
    parts = [shard_doc_ids(clustered, Shard(i, 4)) for i in (1, 2, 3, 4)]
    cluster_of = dict(zip(clustered.doc_ids, clustered.clusters or (), strict=True))
    owners = {cluster_of[doc]: i for i, part in enumerate(parts) for doc in part}
    assert len(owners) == 10 and all(len({cluster_of[d] for d in part}) in (2, 3) for part in parts)
    assert sorted(doc for part in parts for doc in part) == sorted(task.doc_ids)
    for text in ("0/3", "4/3", "two/3", "1-3"):
        with pytest.raises(BadInputError, match="is not i/n"):
            parse_shard(text)


def test_merged_shards_equal_one_unsharded_run(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    add_tiny_task(tiny_suite, "tiny_shapes", 30)
    config = tmp_path / "gate.yaml"
    config.write_text("mode: fixed\n")
    shards = [_shard(other_tiny_model, tiny_model, tiny_suite, tmp_path / f"shard{i}", f"{i}/3", config)
              for i in (1, 2, 3)]
    assert all(path.is_file() for path in shards)
    assert not (tmp_path / "shard1" / "result.json").exists()  # a shard decides nothing

    code, output = _cli("merge", *map(str, reversed(shards)), "--out", str(tmp_path / "merged"), "--data-dir",
                        str(tiny_suite.parent / "mirror"))
    assert code in (ExitCode.OK, ExitCode.REGRESSION), output
    merged = json.loads((tmp_path / "merged" / "result.json").read_text())
    whole = run(str(other_tiny_model), base=str(tiny_model), config=config, suite=str(tiny_suite),
                data_dir=tiny_suite.parent / "mirror", out_dir=tmp_path / "whole").to_dict()
    assert merged["verdict"] == whole["verdict"]
    assert [task["items"] for task in merged["tasks"]] == [task["items"] for task in whole["tasks"]]
    merged_json = json.dumps(_without_timing(merged), sort_keys=True)
    whole_config = {**whole["provenance"]["config"], "cache": merged["provenance"]["config"]["cache"]}
    whole_json = json.dumps(_without_timing({**whole, "provenance": {**whole["provenance"], "config": whole_config}}),
                            sort_keys=True)
    assert merged_json == whole_json
    assert [shard["seconds"] >= 0 for shard in merged["timing"]["shards"]] == [True, True, True]


def test_merge_refuses_missing_repeated_and_foreign_shards(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text("{}\n")
    one = _shard(other_tiny_model, tiny_model, tiny_suite, tmp_path / "a", "1/2", config)
    two = _shard(other_tiny_model, tiny_model, tiny_suite, tmp_path / "b", "2/2", config)
    foreign = _shard(tiny_model, tiny_model, tiny_suite, tmp_path / "c", "2/2", config)
    not_partial = tmp_path / "result.json"
    not_partial.write_text("{}")
    copy = tmp_path / "copy.json"
    shutil.copy(one, copy)
    cases = {
        (one,): "shard(s) 2/2 missing: pass all 2 partial results",
        (one, copy): "are both shard 1/2: pass each shard once",
        (one, foreign): "come from different runs (checkpoint.description differs)",
        (one, not_partial): "is not a partial result",
        (one, tmp_path / "nope.json"): "does not exist",
    }
    for paths, message in cases.items():
        with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            merge(list(paths), out_dir=tmp_path / "never", data_dir=tiny_suite.parent / "mirror")
        assert not (tmp_path / "never").exists()
    code, output = _cli("run", "--ckpt", str(tiny_model), "--base", str(tiny_model), "--suite", str(tiny_suite),
                        "--data-dir", str(tiny_suite.parent / "mirror"), "--out", str(tmp_path / "many"),
                        "--shard", "1/41")
    assert code == ExitCode.BAD_INPUT and "has 40 units (items or passages), fewer than 41 shards" in output
    code, output = _cli("run", "--ckpt", str(tiny_model), "--shard", "1/2", "--html")
    assert code == ExitCode.BAD_INPUT and "pass --html and --junit to `gate merge`" in output
    merged = merge([one, two], out_dir=None, data_dir=tiny_suite.parent / "mirror")
    assert merged.policy["mode"] == "fixed" and sum(task.n for task in merged.tasks) == 40
