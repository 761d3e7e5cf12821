"""The per-item result cache on tiny random models: reuse, equality with uncached runs, staleness, resume."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import add_tiny_task

from gate.api import baseline, run
from gate.cli import main
from gate.config import GateConfig
from gate.errors import ExitCode
from gate.runner import ModelPair


def _gate(ckpt: Path, base: Path, suite: Path, out: Path | None, cache: Path | None, **extra: Any) -> dict[str, Any]:
    config = GateConfig(cache=cache is not None, cache_dir=str(cache) if cache else None, **extra)
    result = run(str(ckpt), base=str(base), config=config, suite=str(suite), data_dir=suite.parent / "mirror",
                 out_dir=out)
    return result.to_dict()


def _without_timing(data: dict[str, Any]) -> dict[str, Any]:
    """The result apart from timing and the config's cache settings, which differ between the runs compared."""
    kept = {key: value for key, value in data.items() if key != "timing"}
    config = {k: v for k, v in kept["provenance"]["config"].items() if k not in {"cache", "cache_dir"}}
    return {**kept, "provenance": {**kept["provenance"], "config": config}}


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "results").rglob("*.json"))


def test_second_checkpoint_reuses_the_cached_base_and_matches_an_uncached_run(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    first = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    assert first["timing"]["cache"]["hits"] == {"base": 0, "checkpoint": 0}
    assert first["timing"]["cache"]["scored"] == {"base": 40, "checkpoint": 40}
    assert len(_entries(cache)) == 2  # one entry per model on the one task

    with caplog.at_level(logging.INFO, logger="gate"):
        second = _gate(tiny_model, tiny_model, tiny_suite, None, cache)  # a "new checkpoint": the base itself
    assert second["timing"]["cache"]["hits"]["base"] == 40 and second["timing"]["cache"]["scored"]["base"] == 0
    reused = re.findall(r"base: (\d+) of \1 items of tiny_mc reused from the result cache", caplog.text)
    assert sum(int(n) for n in reused) == 40  # every look's base items came from the cache
    assert all(b == c for _, b, c in second["tasks"][0]["items"])

    uncached = _gate(other_tiny_model, tiny_model, tiny_suite, None, None)
    assert uncached["timing"]["cache"] is None
    assert _without_timing(uncached) == _without_timing(first)
    replay = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)  # both models now entirely cached
    assert replay["timing"]["cache"]["scored"] == {"base": 0, "checkpoint": 0}
    assert _without_timing(replay) == _without_timing(first)


@pytest.mark.parametrize("damage", ["truncated", "tampered score", "other settings"])
def test_a_stale_or_corrupt_entry_is_recomputed_never_trusted(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    expected = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    for path in _entries(cache):
        entry = json.loads(path.read_text())
        if damage == "truncated":
            path.write_text(path.read_text()[: len(path.read_text()) // 2])
            continue
        if damage == "tampered score":
            first = next(iter(entry["items"].values()))
            first["score"] = 1.0 - first["score"]
        else:
            entry["key"]["settings"]["batch_size"] = 99
        path.write_text(json.dumps(entry))
    with caplog.at_level(logging.WARNING, logger="gate"):
        again = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    assert caplog.text.count("is stale or corrupt: recomputing it") == 2
    assert again["timing"]["cache"]["scored"] == {"base": 40, "checkpoint": 40}
    assert _without_timing(again) == _without_timing(expected)


def test_a_suite_that_gained_a_task_recomputes_only_that_task(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    cache = tmp_path / "cache"
    _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    add_tiny_task(tiny_suite, "tiny_shapes", 30)
    grown = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    assert grown["timing"]["cache"]["hits"] == {"base": 40, "checkpoint": 40}
    assert grown["timing"]["cache"]["scored"] == {"base": 30, "checkpoint": 30}
    assert [task["id"] for task in grown["tasks"]] == ["tiny_mc", "tiny_shapes"]


def test_changed_items_and_other_settings_are_not_served_from_the_cache(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    cache = tmp_path / "cache"
    _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    mirror = tiny_suite.parent / "mirror" / "tiny_mc.jsonl"
    docs = [json.loads(line) for line in mirror.read_text().splitlines()]
    for doc in docs[:5]:
        doc["question"] = doc["question"].replace("colour", "color")
    mirror.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    edited = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    assert edited["timing"]["cache"]["scored"] == {"base": 5, "checkpoint": 5}
    other_batch = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache, batch_size=4)
    assert other_batch["timing"]["cache"]["scored"] == {"base": 40, "checkpoint": 40}


def test_baseline_precomputes_the_base_for_later_runs(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    cache = tmp_path / "cache"
    config = GateConfig(cache_dir=str(cache))
    done = baseline(base=str(tiny_model), config=config, suite=str(tiny_suite), data_dir=tiny_suite.parent / "mirror")
    assert done.items == {"tiny_mc": 40} and done.scored == 40 and done.reused == 0
    again = baseline(base=str(tiny_model), config=config, suite=str(tiny_suite), data_dir=tiny_suite.parent / "mirror")
    assert again.scored == 0 and again.reused == 40
    gated = _gate(other_tiny_model, tiny_model, tiny_suite, None, cache)
    assert gated["timing"]["cache"]["hits"]["base"] == 40 and gated["timing"]["cache"]["scored"]["base"] == 0


def test_an_interrupted_run_writes_nothing_and_resumes_without_rescoring(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tiny_task(tiny_suite, "tiny_shapes", 30)
    cache, out = tmp_path / "cache", tmp_path / "out"
    real_score = ModelPair.score
    calls: list[tuple[str, list[str]]] = []

    def interrupt_on_third_call(self: ModelPair, role: str, tasks: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((role, [task.spec.id for task in tasks]))
        if len(calls) == 3:  # base scored on both tasks, the checkpoint not yet
            raise KeyboardInterrupt
        return real_score(self, role, tasks, *args, **kwargs)

    monkeypatch.setattr(ModelPair, "score", interrupt_on_third_call)
    args = ["run", "--ckpt", str(other_tiny_model), "--base", str(tiny_model), "--suite", str(tiny_suite),
            "--data-dir", str(tiny_suite.parent / "mirror"), "--out", str(out), "--cache-dir", str(cache),
            "--config", str(_fixed_mode(tmp_path))]
    interrupted = CliRunner().invoke(main, args)
    assert interrupted.exit_code == ExitCode.INTERRUPTED
    assert "run the same command again to resume" in interrupted.stderr
    assert not out.exists() or not any(out.iterdir())  # no result, no report, no temporary file

    calls.clear()
    resumed = CliRunner().invoke(main, args)
    assert resumed.exit_code == ExitCode.OK, resumed.output
    assert calls == [("checkpoint", ["tiny_mc"]), ("checkpoint", ["tiny_shapes"])]  # the base is not rescored
    data = json.loads((out / "result.json").read_text())
    assert data["timing"]["cache"]["hits"] == {"base": 70, "checkpoint": 0}
    monkeypatch.setattr(ModelPair, "score", real_score)
    fresh = _gate(other_tiny_model, tiny_model, tiny_suite, None, None, mode="fixed")
    assert _without_timing(fresh) == _without_timing(data)


def _fixed_mode(folder: Path) -> Path:
    config = folder / "gate.yaml"
    config.write_text("mode: fixed\n")
    return config


def test_sigterm_stops_the_cli_like_ctrl_c_leaving_no_result(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    add_tiny_task(tiny_suite, "tiny_shapes", 3000)  # long enough to be caught while scoring
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [sys.executable, "-m", "gate", "run", "--ckpt", str(other_tiny_model), "--base", str(tiny_model),
               "--suite", str(tiny_suite), "--data-dir", str(tiny_suite.parent / "mirror"), "--out", str(out),
               "--cache-dir", str(cache), "--config", str(_fixed_mode(tmp_path))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    deadline = time.monotonic() + 240
    for line in process.stderr:  # progress lines; the first cache entry is written after tiny_mc's base items
        if _entries(cache) or time.monotonic() > deadline:
            break
        assert "error" not in line, line
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == ExitCode.INTERRUPTED, rest
    assert "interrupted; no result was written" in rest
    assert not out.exists() or not any(out.iterdir())
    assert _entries(cache)  # what finished is kept for the resume


def test_each_output_is_labelled_with_the_item_it_scored(tiny_model: Path, tiny_suite: Path) -> None:
    """lm-eval mislabels an unsorted `samples=` list (its issue #4084): outputs must carry their own item's id."""
    from gate.loading.loaders import ScoringSettings
    from gate.loading.references import resolve_model
    from gate.suites import load_suite, prepare_tasks

    (task,) = prepare_tasks(load_suite(str(tiny_suite)), seed=1234, data_dir=tiny_suite.parent / "mirror")
    subset = task.doc_ids[3:17]  # seeded order: not sorted
    assert list(subset) != sorted(subset)
    model = resolve_model(str(tiny_model))
    with ModelPair(model, model, ScoringSettings()) as pair:
        outputs = pair.score("base", [task], {task.spec.id: subset}).outputs[task.spec.id]
    assert [output.doc_id for output in outputs] == list(subset)
    for output in outputs:  # the tiny items ask about "object <doc id>"
        assert f"object {output.doc_id}?" in output.prompt


def test_an_unwritable_cache_warns_once_and_the_run_goes_on(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="gate"):
        result = _gate(other_tiny_model, tiny_model, tiny_suite, None, blocked)
    assert result["verdict"] in ("PASS", "WARN", "FAIL") and result["timing"]["cache"]["scored"]["base"] == 40
    assert caplog.text.count("cannot write the result cache") == 1


def test_a_model_whose_config_files_change_is_a_new_model(tmp_path: Path, tiny_model: Path) -> None:
    from gate.loading.references import resolve_model

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    before = resolve_model(str(copy))
    generation = json.loads((copy / "generation_config.json").read_text())
    (copy / "generation_config.json").write_text(json.dumps({**generation, "repetition_penalty": 1.3}))
    after = resolve_model(str(copy))
    assert after.weight_sha256 == before.weight_sha256 and after.fingerprint != before.fingerprint


def test_sigterm_is_the_stop_even_when_a_library_turns_it_into_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datasets, for one, catches the interrupt while resolving files and raises FileNotFoundError instead."""
    import gate.api

    def swallowing_library(*args: Any, **kwargs: Any) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            raise FileNotFoundError("Unable to find 'mirror/tiny_shapes.jsonl'") from None

    monkeypatch.setattr(gate.api, "run", swallowing_library)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(main, ["run", "--ckpt", "x", "--out", str(tmp_path / "out")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == ExitCode.INTERRUPTED, result.stderr
    assert "interrupted; no result was written" in result.stderr and "FileNotFoundError" not in result.stderr
